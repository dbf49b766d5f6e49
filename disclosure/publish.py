"""The only writer under the public zone: build a version, check it, swap the link.

``PUBLISH`` (default ``./publish``) is a symbolic link to ``<PUBLISH>.d/<id>/`` (so
``publish.d/<id>/`` for the default). :func:`publish` builds the new version in
``publish.d/<id>.partial/``, writes every task's files, re-reads and checks everything
(checksums, no unit-id-like or min/max columns, no measure on a cell under the threshold),
builds the dashboard (``dashboard/``, :mod:`reports.dashboard`) from the version's own files
and checks it, renames it to ``publish.d/<id>/`` and only then replaces the link with
``os.replace`` of a temporary link. A failure at any point removes the half-built directory
and leaves the old version in place; a killed run leaves at most a ``*.partial``
directory, which the next run removes once its builder (recorded beside it in
``<id>.owner``: host, pid, start time) is gone. Only directories named like a version id
that hold the suite's manifest are ever pruned; a versions directory holding anything else
is refused. A multi-task publish is all-or-nothing; tasks not named keep their files from
the current version (the dashboard is rebuilt over all of them).

:func:`task_release` is pure: the roll-up, its level tables and the disclosure core's
decisions in, a :class:`TaskRelease` out.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from disclosure.readme import render_readme
from disclosure.settings import RuleSettings
from microdata.io import sha256_file
from microdata.text import neutralise
from reports.dashboard import SiteInfo, build_dashboard, check_dashboard
from reports.maps import choropleth_png, map_frame
from reports.rollup import SUPPRESSED_REASON, Rollup, column_doc

MANIFEST = "manifest.json"
README = "README.md"
LEDGER = "ledger.csv"
LEDGER_COLUMNS = ("level", "area_code", "breakdown", "basis", "status", "reason")
#: a column that looks like a unit id (person_id, dwelling_id, id, rin, ...)
UNIT_ID_COLUMN = re.compile(r"(^|_)(id|rin|bsn|rinpersoon|rinobject)$", re.IGNORECASE)
#: minima and maxima may never be published
MIN_MAX_COLUMN = re.compile(r"(^|_)(min|max|minimum|maximum|top1|top2)($|_)", re.IGNORECASE)
#: measures that are always published (not governed by a basis)
ALWAYS = ("n", "inhabitants")
KEEP_VERSIONS = 2
#: the source line of maps and the dashboard: a generated world, or real CBS microdata
SOURCE_SYNTHETIC = "Bron: Zicht, synthetische data"
SOURCE_CBS = "Bron: CBS (microdata), bewerking Zicht"


class PublishRefused(RuntimeError):
    """Disclosure control or the export check refused; nothing was published (exit 3)."""


class PublishWriteError(PublishRefused):
    """The public zone cannot be written (not writable, disk full): nothing was published,
    the old version stays in place. Not disclosure control's refusal: the CLI makes it exit 2
    (with the directory and the fix); a subclass so callers that catch PublishRefused still do.
    """


def write_error(publish_dir: Path, exc: OSError) -> PublishWriteError:
    """A :class:`PublishWriteError` naming *publish_dir*, what failed and the fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "disk full: no space left on device"
        fix = f"free space on the disk of {versions_dir(publish_dir)} and publish again"
    else:
        denied = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST)
        why = "not writable" if exc.errno in denied else "cannot write"
        why += f": {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        fix = "pass a --publish-dir whose parent is a directory you can write to"
    return PublishWriteError(
        f"{publish_dir}: {why} (rule: a new version is written in full, then the link is "
        f"swapped); nothing was published and the old version stays in place; fix: {fix}"
    )


@dataclass(frozen=True)
class TaskRelease:
    """Everything one task publishes, already disclosure-controlled (no true values)."""

    task: str
    tables: Mapping[str, pd.DataFrame]  # level -> level table (suppressed measures empty)
    breakdown: str | None  # "age_group", "branch" or None
    geometry: gpd.GeoDataFrame  # area_code, geometry (EPSG:28992) of geo_level and gemeenten
    geo_level: str  # "buurt", or "wijk" for branch_turnover
    map_measure: str
    map_centre: float | None
    schema: Mapping[str, Any]
    ledger: pd.DataFrame  # LEDGER_COLUMNS
    run_id: str
    notes: tuple[str, ...] = ()
    year: int | None = None  # the publication year the tables speak of


@dataclass(frozen=True)
class ReleaseMeta:
    """Provenance written into the manifest."""

    data_fingerprint: str
    git_commit: str
    zicht_version: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    source: str = SOURCE_SYNTHETIC  # the source line on maps and the dashboard


# --------------------------------------------------------------------------- pure part


def public_status(status: pd.DataFrame) -> pd.DataFrame:
    """The disclosure core's decisions as the public zone may state them.

    Which rule suppressed a cell (threshold, dominance, group) or that it is a complement
    (secondary) says something about the units in it (e.g. "group" on a cell of one person
    states that person's attribute), so every suppressed cell's public reason is the single
    :data:`~reports.rollup.SUPPRESSED_REASON`; the reasons stay in the secure ledger.
    """
    out = status[["cell_id", "status"]].copy()
    out["reason"] = np.where(out["status"] == "published", "", SUPPRESSED_REASON)
    return out


def secure_ledger(rollup: Rollup, status: pd.DataFrame) -> pd.DataFrame:
    """Every cell × basis with its decision and primary reasons (secure zone only)."""
    led = rollup.cells[["cell_id", "level", "area_code", "breakdown", "basis", "intent"]].merge(
        status[["cell_id", "status", "reason"]], on="cell_id", how="left", validate="1:1"
    )
    if led["status"].isna().any():
        first = led.loc[led["status"].isna(), "cell_id"].iloc[0]
        raise PublishRefused(f"ledger: no disclosure decision for cell {first}")
    led["reason"] = led["reason"].fillna("").astype(str)
    return led.sort_values(["level", "area_code", "breakdown", "basis"]).reset_index(drop=True)


def ledger(
    rollup: Rollup, tables: Mapping[str, pd.DataFrame], status: pd.DataFrame
) -> pd.DataFrame:
    """The public ledger: one row per cell and additive basis *that the tables speak of*.

    The task's own bases (``risk_sum``, ``elevated_count``, ``turnover_sum``) have a row for
    every cell. A driver count has a row only where a table names that driver (the area's
    risk is published) and for the national cells whose share the tables show beside it:
    listing the driver bases of a cell too small to publish would itself say what its units
    have. *status* must be :func:`public_status`'s; no value is ever listed.
    """
    st = status.set_index("cell_id")
    core = rollup.cells[~rollup.cells["basis"].str.startswith("driver_count:")]
    rows = [core[["cell_id", "level", "area_code", "breakdown", "basis"]]]
    if rollup.task == "jonge_aanwas":
        for level, table in tables.items():
            for k in range(1, 4):
                col = f"driver_{k}"
                if col not in table.columns:
                    continue
                shown = table[table[col].notna() & (table[col].astype(str) != "")]
                nl_shown = shown[shown[f"driver_prevalence_nl_{k}"].notna()]
                for frame in (
                    pd.DataFrame(
                        {
                            "level": level,
                            "area_code": shown["area_code"].astype(str),
                            "breakdown": shown["age_group"].astype(str),
                            "basis": "driver_count:" + shown[col].astype(str),
                        }
                    ),
                    pd.DataFrame(
                        {
                            "level": "nederland",
                            "area_code": "NL",
                            "breakdown": "total",
                            "basis": "driver_count:" + nl_shown[col].astype(str),
                        }
                    ),
                ):
                    frame["cell_id"] = (
                        frame["level"]
                        + "|"
                        + frame["area_code"]
                        + "|"
                        + frame["breakdown"]
                        + "|"
                        + frame["basis"]
                    )
                    rows.append(frame)
    led = pd.concat(rows, ignore_index=True).drop_duplicates("cell_id")
    missing = ~led["cell_id"].isin(st.index)
    if missing.any():
        first = led["cell_id"][missing].iloc[0]
        raise PublishRefused(f"ledger: no disclosure decision for cell {first}")
    led["status"] = led["cell_id"].map(st["status"]).to_numpy()
    led["reason"] = led["cell_id"].map(st["reason"]).fillna("").astype(str).to_numpy()
    return (
        led[list(LEDGER_COLUMNS)]
        .sort_values(["level", "area_code", "breakdown", "basis"])
        .reset_index(drop=True)
    )


def suppression_summary(ledger_frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Suppressed cells by level and reason (a cell with two reasons counts under both)."""
    sup = ledger_frame[ledger_frame["status"] != "published"]
    reasons = sup.assign(reason=sup["reason"].replace("", "unspecified").str.split(";"))
    counts = reasons.explode("reason").groupby(["level", "reason"]).size().reset_index()
    out: dict[str, dict[str, int]] = {}
    for level, reason, k in counts.itertuples(index=False):
        out.setdefault(str(level), {})[str(reason)] = int(k)
    return out


def task_release(
    rollup: Rollup,
    tables: Mapping[str, pd.DataFrame],
    status: pd.DataFrame,
    *,
    geometry: gpd.GeoDataFrame,
    run_id: str,
    year: int | None = None,
) -> TaskRelease:
    """Assemble a :class:`TaskRelease` from the roll-up, its level tables and the decisions
    (*year*: the publication year the tables speak of)."""
    turnover = rollup.task == "branch_turnover"
    return TaskRelease(
        task=rollup.task,
        tables=dict(tables),
        breakdown=rollup.breakdown,
        geometry=geometry,
        geo_level="wijk" if turnover else "buurt",
        map_measure="deviation_ratio" if turnover else "index",
        map_centre=1.0 if turnover else 100.0,
        schema=rollup.schema,
        ledger=ledger(rollup, tables, status),
        run_id=run_id,
        year=year,
    )


def _geo(release: TaskRelease, level: str) -> gpd.GeoDataFrame:
    """The level table joined to its polygons (EPSG:28992)."""
    table = release.tables[level]
    geom = release.geometry[["area_code", "geometry"]].drop_duplicates("area_code")
    joined = geom.merge(table, on="area_code", how="inner")
    return gpd.GeoDataFrame(joined, geometry="geometry", crs=release.geometry.crs)


# --------------------------------------------------------------------------- writers


def _write_table(frame: pd.DataFrame, stem: Path) -> None:
    """``<stem>.csv`` and ``<stem>.parquet`` twins; in the CSV, text that a spreadsheet
    would read as a formula is prefixed with ``'`` (:func:`microdata.text.neutralise`), and
    lines end in CRLF as RFC 4180 says (so a carriage return inside a name is quoted)."""
    neutralise(frame).to_csv(stem.with_suffix(".csv"), index=False, lineterminator="\r\n")
    frame.to_parquet(stem.with_suffix(".parquet"), index=False)


#: columns that describe the area itself: one value per area, not per breakdown
AREA_COLUMNS = ("area_code", "area_name", "level", "parent_code", "year", "inhabitants")


def wide_by_area(table: pd.DataFrame, breakdown: str | None) -> pd.DataFrame:
    """One row per area: the breakdown's ``total`` row, and for every other breakdown value
    its columns suffixed ``_<value>`` (``index_8-12``, ``deviation_ratio_47111``).

    >>> t = pd.DataFrame({"area_code": ["A", "A"], "age_group": ["8-12", "total"],
    ...                   "index": [90.0, 100.0]})
    >>> wide_by_area(t, "age_group").to_dict("records")
    [{'area_code': 'A', 'index': 100.0, 'index_8-12': 90.0}]
    """
    if breakdown is None or breakdown not in table.columns:
        return table.reset_index(drop=True)
    labels = [c for c in ("branch_name",) if c in table.columns]
    is_total = table[breakdown].astype(str) == "total"
    out = table[is_total].drop(columns=[breakdown, *labels]).reset_index(drop=True)
    varying = [c for c in out.columns if c not in AREA_COLUMNS]
    rest = table[~is_total]
    for value in pd.unique(rest[breakdown].astype(str)):
        part = rest[rest[breakdown].astype(str) == value].set_index("area_code")[varying]
        part = part.add_suffix(f"_{value}")
        out = out.join(part, on="area_code")
    return out


def _write_geojson(geo: gpd.GeoDataFrame, path: Path) -> None:
    """RFC 7946 GeoJSON in EPSG:4326 (WGS 84 longitude/latitude), 6 decimals.

    Rendered in memory and written with :func:`_write_bytes`: GDAL reports a failed write
    (disk full) as its own error type, or not at all, so the file is written by Python,
    whose ``OSError`` names the reason.
    """
    import io

    out = geo.to_crs(4326)
    for col in out.columns:
        if col != "geometry" and isinstance(out[col].dtype, pd.BooleanDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    buf = io.BytesIO()
    out.to_file(buf, driver="GeoJSON", layer=path.stem, RFC7946="YES", COORDINATE_PRECISION=6)
    _write_bytes(buf.getvalue(), path)


def _write_bytes(data: bytes, path: Path) -> None:
    path.write_bytes(data)


def _write_json(doc: Any, path: Path) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _write_task(
    release: TaskRelease, target: Path, settings: RuleSettings, *, source: str = SOURCE_SYNTHETIC
) -> None:
    target.mkdir(parents=True)
    for level, table in release.tables.items():
        _write_table(table, target / level)
    wide = wide_by_area(release.tables[release.geo_level], release.breakdown)
    geom = release.geometry[["area_code", "geometry"]].drop_duplicates("area_code")
    geo = gpd.GeoDataFrame(
        geom.merge(wide, on="area_code", how="inner"),
        geometry="geometry",
        crs=release.geometry.crs,
    )
    _write_geojson(geo, target / "areas.geojson")
    places = map_frame(_geo(release, "gemeente"), breakdown=release.breakdown)
    for name, level in (("map_gemeente", "gemeente"), ("map_buurt", release.geo_level)):
        frame = map_frame(_geo(release, level), breakdown=release.breakdown)
        what = f"{release.task}: {release.map_measure} per {level}"
        if release.breakdown:
            what += f" ({release.breakdown} total)"
        png = choropleth_png(
            frame,
            measure=release.map_measure,
            title=what,
            min_count=settings.min_count,
            centre=release.map_centre,
            year=release.year,
            source=source,
            places=places[["area_name", "geometry"]],
        )
        _write_bytes(png, target / f"{name}.png")
    release.ledger.to_csv(target / "ledger.csv", index=False)
    schema = copy.deepcopy(dict(release.schema))
    schema["status_columns"] = {
        basis: {"status": s, "reason": r} for basis, (s, r) in _status_cols(release).items()
    }
    schema["geojson"] = (
        f"{release.geo_level} polygons in EPSG:4326 (RFC 7946), one feature per area, with "
        f"the {release.geo_level} table's columns"
        + (
            f": the values of its {release.breakdown} 'total' row, and for every other "
            f"{release.breakdown} the same columns suffixed _<{release.breakdown}> "
            "(e.g. index_8-12)"
            if release.breakdown
            else ""
        )
    )
    schema["levels"] = list(release.tables)
    first = next(iter(release.tables.values()))
    schema["columns"] = {c: column_doc(c, schema) for c in first.columns}
    for name, spec in schema.get("measures", {}).items():
        doc = column_doc(name, schema)
        spec["label_nl"], spec["description_nl"] = doc["label_nl"], doc["description_nl"]
    _write_json(schema, target / "schema.json")


def _status_cols(release: TaskRelease) -> dict[str, tuple[str, str]]:
    cols: dict[str, tuple[str, str]] = {}
    for table in release.tables.values():
        for c in table.columns:
            if c == "status":
                cols["status"] = ("status", "reason")
            elif c.startswith("status_"):
                cols[c.removeprefix("status_")] = (c, "reason_" + c.removeprefix("status_"))
        break
    return cols


# --------------------------------------------------------------------------- what was published


@dataclass(frozen=True)
class LevelCount:
    """How many cells (cell x additive basis, as in ``ledger.csv``) of one task and level
    a version publishes."""

    task: str
    level: str
    published: int
    cells: int

    @property
    def share(self) -> float:
        return self.published / self.cells if self.cells else 1.0


def published_counts(version: Path) -> list[LevelCount]:
    """Published cells per task and level of the version in *version* (from its ledgers)."""
    out = []
    for ledger_path in sorted(Path(version).glob(f"*/{LEDGER}")):
        led = pd.read_csv(ledger_path, dtype=str, keep_default_na=False)
        for level, grp in led.groupby("level", sort=False):
            published = int((grp["status"] == "published").sum())
            out.append(LevelCount(ledger_path.parent.name, str(level), published, len(grp)))
    return out


def publication_lines(version: Path) -> list[str]:
    """One line per task and level, ``branch_turnover wijk: 483 of 1267 cells published
    (38%)``, and a warning line for every level that publishes fewer than half its cells."""
    lines, warnings = [], []
    for c in published_counts(version):
        lines.append(
            f"  {c.task} {c.level}: {c.published} of {c.cells} cells published ({c.share:.0%})"
        )
        if c.share < 0.5:
            warnings.append(
                f"warning: {c.task} {c.level} publishes fewer than half its cells "
                f"({c.published} of {c.cells}); see ledger.csv and docs/disclosure.md"
            )
    return lines + warnings


# --------------------------------------------------------------------------- checks


def check_task_dir(task_dir: Path, settings: RuleSettings) -> list[str]:
    """Re-read a task's tables: problems as ``file: column: rule`` lines (empty if fine)."""
    problems: list[str] = []
    schema = json.loads((task_dir / "schema.json").read_text())
    governed = [m for m in schema.get("measures", {}) if m not in ALWAYS]
    for path in sorted(task_dir.glob("*.parquet")) + [task_dir / "ledger.csv"]:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        for col in frame.columns:
            if UNIT_ID_COLUMN.search(str(col)):
                problems.append(f"{path}: {col}: looks like a unit id (rule: no unit ids)")
            if MIN_MAX_COLUMN.search(str(col)):
                problems.append(f"{path}: {col}: a minimum or maximum (rule: none published)")
        if path.suffix != ".parquet":
            continue
        twin = pd.read_csv(path.with_suffix(".csv"), keep_default_na=False, dtype=str)
        if len(twin) != len(frame):
            problems.append(f"{path}: the .csv twin has {len(twin)} rows, not {len(frame)}")
        small = frame["n"] < settings.min_count
        for col in [c for c in frame.columns if c == "status" or c.startswith("status_")]:
            shown = small & (frame[col] == "published")
            if shown.any():
                problems.append(
                    f"{path}: {col}: published with n < {settings.min_count} "
                    f"(rule: threshold), e.g. {frame.loc[shown, 'area_code'].iloc[0]}"
                )
        for col in [c for c in governed if c in frame.columns]:
            v = frame[col]
            filled = v.notna() & (v.astype(str) != "")
            if (small & filled).any():
                problems.append(
                    f"{path}: {col}: a value on a cell with n < {settings.min_count} "
                    "(rule: threshold)"
                )
    return problems


def verify_version(version: Path) -> list[str]:
    """Compare every file under *version* with its manifest entry (and find strays)."""
    manifest = version / MANIFEST
    if not manifest.is_file():
        return [f"{manifest}: missing"]
    files = json.loads(manifest.read_text()).get("files", {})
    problems = []
    on_disk = {p.relative_to(version).as_posix() for p in version.rglob("*") if p.is_file()}
    for rel in sorted(on_disk - set(files) - {MANIFEST}):
        problems.append(f"{version / rel}: not in the manifest")
    for rel, digest in sorted(files.items()):
        path = version / rel
        if not path.is_file():
            problems.append(f"{path}: in the manifest but missing")
        elif sha256_file(path) != digest:
            problems.append(f"{path}: checksum differs from the manifest")
    return problems


# --------------------------------------------------------------------------- publish


def versions_dir(publish_dir: Path) -> Path:
    """``<parent>/<name>.d``: where the versions live (``publish.d`` for ``./publish``)."""
    return publish_dir.parent / f"{publish_dir.name}.d"


def current_version(publish_dir: Path) -> Path | None:
    """The version the link points to, or None when nothing has been published."""
    if not publish_dir.is_symlink():
        return None
    return publish_dir.resolve()


def publish(
    releases: Sequence[TaskRelease],
    *,
    publish_dir: Path,
    settings: RuleSettings,
    meta: ReleaseMeta,
    progress: Callable[[str], None] = lambda _m: None,
    on_version: Callable[[str], None] | None = None,
) -> Path:
    """Write *releases* as a new version and swap the ``publish`` link to it atomically.

    *on_version* is called with the new version's id after every check passed and before
    the version goes live (the edge keeps its secure states there); if it fails, nothing is
    published.

    Returns the new version's directory. Raises :class:`PublishRefused` (and leaves the old
    version in place) when anything fails or a check finds a problem.
    """
    publish_dir = Path(publish_dir)
    if publish_dir.exists() and not publish_dir.is_symlink():
        raise PublishRefused(
            f"{publish_dir}: is a real directory, not the link to a version; move it away "
            f"(versions live in {versions_dir(publish_dir)}/) and publish again"
        )
    if not releases:
        raise PublishRefused("nothing to publish: no task given")
    vdir = versions_dir(publish_dir)
    try:
        vdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(publish_dir, exc) from exc
    refuse_foreign(vdir, publish_dir)
    remove_stale_partials(vdir)
    now = datetime.now(UTC)
    vid = f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:8]}"
    build = vdir / f"{vid}.partial"
    final = vdir / vid
    owner = vdir / f"{vid}{OWNER_SUFFIX}"
    old = current_version(publish_dir)
    try:
        _write_json(owner_record(), owner)  # who builds *build*: removed only when gone
        build.mkdir()
        tasks_doc = _carry_over(old, build, {r.task for r in releases})
        for r in releases:
            progress(f"export {r.task}")
            _write_task(r, build / r.task, settings, source=meta.source)
            tasks_doc[r.task] = {
                "run_id": r.run_id,
                "published_at": now.isoformat(timespec="seconds"),
                "rule_settings": _settings_doc(settings),
                "suppressed": suppression_summary(r.ledger),
                **({"year": r.year} if r.year is not None else {}),
            }
        _write_bytes(
            render_readme(
                {t: json.loads((build / t / "schema.json").read_text()) for t in tasks_doc},
                settings=_settings_doc(settings),
                version=vid,
                created_at=now.isoformat(timespec="seconds"),
            ).encode("utf-8"),
            build / README,
        )
        progress("check")
        problems = [p for t in tasks_doc for p in check_task_dir(build / t, settings)]
        if problems:
            raise PublishRefused("export check failed:\n" + "\n".join(problems))
        _write_dashboard(build, vid=vid, now=now, meta=meta, tasks_doc=tasks_doc)
        files = {
            p.relative_to(build).as_posix(): sha256_file(p)
            for p in sorted(build.rglob("*"))
            if p.is_file()
        }
        doc = {
            "created_at": now.isoformat(timespec="seconds"),
            "version": vid,
            "zicht_version": meta.zicht_version,
            "git_commit": meta.git_commit,
            "data_fingerprint": meta.data_fingerprint,
            "runs": {t: d["run_id"] for t, d in sorted(tasks_doc.items())},
            "rule_settings": _settings_doc(settings),
            "source": meta.source,
            "suppressed": {t: d["suppressed"] for t, d in sorted(tasks_doc.items())},
            "tasks": tasks_doc,
            "files": files,
            **dict(meta.extra),
        }
        _write_json(doc, build / MANIFEST)
        problems = verify_version(build)
        if problems:
            raise PublishRefused("manifest check failed:\n" + "\n".join(problems))
        if on_version is not None:
            on_version(vid)
        os.replace(build, final)
        progress("swap")
        _swap_link(publish_dir, final)
    except BaseException as exc:
        shutil.rmtree(build, ignore_errors=True)
        if final.exists() and current_version(publish_dir) != final.resolve():
            shutil.rmtree(final, ignore_errors=True)
        owner.unlink(missing_ok=True)
        if isinstance(exc, PublishRefused):
            raise
        if isinstance(exc, OSError):
            raise write_error(publish_dir, exc) from exc
        if isinstance(exc, Exception):
            raise PublishRefused(
                f"export failed ({type(exc).__name__}: {exc}); the old version stays in place"
            ) from exc
        raise
    owner.unlink(missing_ok=True)
    _prune(vdir, keep={final.name, old.name if old else ""})
    return final


def _write_dashboard(
    build: Path, *, vid: str, now: datetime, meta: ReleaseMeta, tasks_doc: Mapping[str, Any]
) -> None:
    """The dashboard, built from the files of *build* only (every task in it, carried over
    or new), written into ``dashboard/`` and re-read: it may carry nothing the tables don't."""
    years = {t: d.get("year") for t, d in tasks_doc.items()}
    info = SiteInfo(
        version=vid, created_at=now.isoformat(timespec="seconds"), source=meta.source, years=years
    )
    for rel, data in build_dashboard(build, info=info).items():
        (build / rel).parent.mkdir(parents=True, exist_ok=True)
        _write_bytes(data, build / rel)
    problems = check_dashboard(build, years=years)
    if problems:
        raise PublishRefused("dashboard check failed:\n" + "\n".join(problems))


def _settings_doc(settings: RuleSettings) -> dict[str, Any]:
    doc = asdict(settings)
    doc["nk"] = list(settings.nk) if settings.nk else None
    return doc


def _carry_over(old: Path | None, build: Path, replaced: set[str]) -> dict[str, Any]:
    """Copy the tasks this run does not replace from the current version; their manifest
    entries come along."""
    if old is None or not (old / MANIFEST).is_file():
        return {}
    doc = json.loads((old / MANIFEST).read_text())
    kept = {}
    for task, entry in doc.get("tasks", {}).items():
        if task in replaced or not (old / task).is_dir():
            continue
        shutil.copytree(old / task, build / task)
        kept[task] = entry
    return kept


def _swap_link(publish_dir: Path, target: Path) -> None:
    """Point *publish_dir* at *target* with one ``os.replace`` of a temporary link."""
    tmp = publish_dir.parent / f".{publish_dir.name}.{uuid.uuid4().hex[:8]}.tmp"
    relative = os.path.relpath(target, publish_dir.parent)
    os.symlink(relative, tmp, target_is_directory=True)
    try:
        os.replace(tmp, publish_dir)
    finally:
        if tmp.is_symlink():
            tmp.unlink()


# --------------------------------------------------------------------------- what is ours

#: a version's directory name, as :func:`publish` makes it: UTC time and 8 hex digits
VERSION_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
#: a version being built, and the record of who builds it (beside it, not in it: nothing
#: that is not published may enter the public version)
PARTIAL_SUFFIX, OWNER_SUFFIX = ".partial", ".owner"


class ForeignContentError(PublishWriteError):
    """``PUBLISH.d`` holds something the suite did not write: nothing is published (exit 2)."""


def is_suite_version(path: Path) -> bool:
    """A directory named like a version id that holds the manifest :func:`publish` wrote."""
    if path.is_symlink() or not path.is_dir() or not VERSION_ID.match(path.name):
        return False
    try:
        doc = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(doc, dict)
        and doc.get("version") == path.name
        and isinstance(doc.get("files"), dict)
        and "zicht_version" in doc
    )


def _ours(path: Path) -> bool:
    name = path.name
    if name.endswith(PARTIAL_SUFFIX):
        return path.is_dir() and bool(VERSION_ID.match(name.removesuffix(PARTIAL_SUFFIX)))
    if name.endswith(OWNER_SUFFIX):
        return path.is_file() and bool(VERSION_ID.match(name.removesuffix(OWNER_SUFFIX)))
    return is_suite_version(path)


def refuse_foreign(vdir: Path, publish_dir: Path) -> None:
    """Refuse a versions directory that holds anything the suite did not write."""
    foreign = sorted(p.name for p in vdir.iterdir() if not _ours(p))
    if foreign:
        listed = ", ".join(repr(n) for n in foreign[:3]) + (" …" if len(foreign) > 3 else "")
        raise ForeignContentError(
            f"{vdir}: holds {listed}, which zicht did not write (rule: {vdir.name}/ holds only "
            "versions that zicht published, each a <version id> directory with its "
            "manifest.json, and versions being built; publish prunes old versions there and "
            f"never deletes anything else); nothing was published; fix: move {listed} out of "
            f"{vdir}, or pass another --publish-dir"
        )


def owner_record() -> dict[str, Any]:
    """This process: host, pid and start time (a reused pid is not mistaken for it)."""
    import socket

    import psutil

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": psutil.Process().create_time(),
    }


def owner_gone(record: Path) -> bool:
    """Whether the process that *record* names has ended. Unknown (no record, another host,
    unreadable) counts as alive: what we cannot prove abandoned stays."""
    import socket

    import psutil

    try:
        doc = json.loads(record.read_text())
        host, pid, started = doc["host"], int(doc["pid"]), float(doc["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname():
        return False
    try:
        return abs(psutil.Process(pid).create_time() - started) > 1.0  # pid reused
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def remove_stale_partials(vdir: Path) -> list[str]:
    """Remove the ``<id>.partial`` versions (and owner records) whose builder is gone; a
    partial without a record, or of a live process or another host, stays. Returns names."""
    removed = []
    for record in sorted(vdir.glob(f"*{OWNER_SUFFIX}")):
        vid = record.name.removesuffix(OWNER_SUFFIX)
        if not VERSION_ID.match(vid) or not owner_gone(record):
            continue
        partial = vdir / f"{vid}{PARTIAL_SUFFIX}"
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial.name)
        record.unlink(missing_ok=True)
    return removed


def _prune(vdir: Path, keep: set[str]) -> None:
    """Keep the current and the previous version; older versions that the suite published
    go. Nothing else is ever deleted (:func:`is_suite_version`)."""
    versions = sorted(p for p in vdir.iterdir() if is_suite_version(p))
    for p in versions[:-KEEP_VERSIONS]:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
