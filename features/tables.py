"""Feature tables per task: one row per unit and reference year, guarded and schema-checked.

``build_task_year`` is pure (world frames in, DataFrame out). ``write_feature_table`` is the
file edge: it streams one reference year at a time into ``DATA/features/<task>.parquet``
through a temporary file, so a failed run leaves no half-written table.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq

from features import builders as b
from features.catalogue import CATALOGUE
from features.guard import ProtectedAttributeError, check_copies, check_frame, check_selection
from features.world import WorldFileError, WorldReader
from microdata import params
from microdata.extract import AreasFileError, read_areas
from microdata.geography import neighbours
from microdata.integrity import HashCache, IntegrityError, sha256_file
from microdata.io import data_fingerprint, generator_manifest, world_hash_cache

#: meta columns (not features) of each task's table, in order
META: dict[str, tuple[str, ...]] = {
    "jonge_aanwas": (
        "person_id",
        "year",
        "buurt_code",
        "wijk_code",
        "gemeente_code",
        "riec_code",
        "age_group",
        "label",
    ),
    "hennep": (
        "dwelling_id",
        "year",
        "buurt_code",
        "wijk_code",
        "gemeente_code",
        "riec_code",
        "label",
    ),
    "branch_turnover": (
        "cell_id",
        "year",
        "level",
        "area_code",
        "sbi",
        "riec_code",
        "prior_establishments",
        "label",
    ),
}
UNIT_ID = {"jonge_aanwas": "person_id", "hennep": "dwelling_id", "branch_turnover": "cell_id"}


@dataclass(frozen=True)
class WorldYears:
    """The world's first and last year, and the follow-up window of jonge aanwas."""

    first: int
    last: int
    window: int = params.WINDOW

    def reference_years(self, task: str) -> list[int]:
        """Years with complete features (t - 1 >= first) and complete labels."""
        last = self.last - self.window + 1 if task == "jonge_aanwas" else self.last
        return list(range(self.first + 1, last + 1))


def world_years(world_dir: Path, frames: b.WorldFrames | None = None) -> WorldYears:
    """From the generator's manifest; for a real extract (no manifest, or one of its own),
    from the area statistics' years."""
    manifest = Path(world_dir) / "manifest.json"
    doc = generator_manifest(Path(world_dir))
    if doc is not None:
        check_generator_version(manifest, doc)
        return WorldYears(
            int(doc["first_year"]), int(doc["last_year"]), int(doc.get("window", params.WINDOW))
        )
    stats = (
        frames["area_stats"]
        if frames is not None
        else WorldReader(world_dir).read("area_stats", ["year"])
    )
    return WorldYears(int(stats["year"].min()), int(stats["year"].max()))


def check_generator_version(manifest: Path, doc: dict) -> None:
    """Refuse a world written by a generator of another major version (its tables may mean
    something else): :class:`WorldFileError` with the fix."""
    version = str(doc.get("generator_version", ""))
    if version.split(".")[0] != params.GENERATOR_VERSION.split(".")[0]:
        raise WorldFileError(
            f"{manifest}: column generator_version: same major version as this generator "
            f"({params.GENERATOR_VERSION}): the world was made by generator "
            f"{version or 'unknown'}; fix: regenerate it with `zicht generate --overwrite`"
        )


def load_world(world_dir: Path) -> b.WorldFrames:
    """World frames for feature building, with buurt neighbours from the geometry."""
    reader = WorldReader(Path(world_dir))
    try:
        areas = read_areas(Path(world_dir) / "areas.parquet", ["area_code", "level"])
    except AreasFileError as exc:
        raise WorldFileError(str(exc)) from None
    nb = neighbours(areas, "buurt")
    return b.load_frames(reader, neighbours=nb)


def build_task_year(
    w: b.WorldFrames, task: str, t: int, features: Sequence[str], *, window: int = params.WINDOW
) -> pd.DataFrame:
    """The feature table of *task* for reference year *t*: meta columns, then *features*."""
    return build_task_part(w, task, t, features, window=window).frame


@dataclass(frozen=True)
class TablePart:
    """Rows of one reference year's feature table, and where each sits in the whole year."""

    frame: pd.DataFrame
    positions: np.ndarray  # int64: row position in :func:`build_task_year`'s table of the year


def unit_gemeente(w: b.WorldFrames, buurt_idx: np.ndarray) -> np.ndarray:
    """The gemeente code of each buurt index ("" where the buurt is unknown)."""
    codes_ = np.append(w.buurten["gemeente_code"].astype(str).to_numpy(), "")
    return codes_[np.where(np.asarray(buurt_idx) >= 0, buurt_idx, len(codes_) - 1)]


def build_task_part(
    w: b.WorldFrames,
    task: str,
    t: int,
    features: Sequence[str],
    *,
    window: int = params.WINDOW,
    gemeenten: Collection[str] | None = None,
    snapshot: b.Snapshot | None = None,
) -> TablePart:
    """The rows of *task*'s table for year *t* whose unit lies in one of *gemeenten* ("" for
    units without a known buurt; None: every unit), in the order of the whole year's table.

    Every feature of a unit is computed from the whole world (family, neighbouring buurten,
    area indicators), so a part's rows equal those rows of the whole table; *snapshot* (the
    world at the end of ``t - 1``) may be shared between the parts of one year.
    """
    check_selection(features)
    snap = snapshot if snapshot is not None else b.Snapshot(w, t - 1)
    if snap.y != t - 1:
        raise ValueError(f"the snapshot is of {snap.y}, reference year {t} needs {t - 1}")
    keep: np.ndarray | None = None
    if task == "jonge_aanwas":
        ids = b.person_population(snap)
        if gemeenten is not None:
            keep = np.isin(unit_gemeente(w, snap.person_buurt[ids]), list(gemeenten))
            ids = ids[keep]
        feats = b.person_features(snap, ids)
        codes = b.area_codes(w, snap.person_buurt[ids])
        meta = {
            "person_id": w.original_ids("person", ids),
            "year": np.full(len(ids), t, np.int16),
            **codes,
            "age_group": b.age_groups(snap.age[ids]),
            "label": b.person_labels(w, ids, t, window),
        }
    elif task == "hennep":
        ids = b.dwelling_population(snap)
        if gemeenten is not None:
            keep = np.isin(unit_gemeente(w, w.dwelling_buurt[ids]), list(gemeenten))
            ids = ids[keep]
        feats = b.dwelling_features(snap, ids)
        codes = b.area_codes(w, w.dwelling_buurt[ids])
        meta = {
            "dwelling_id": w.original_ids("dwelling", ids),
            "year": np.full(len(ids), t, np.int16),
            **codes,
            "label": b.dwelling_labels(w, ids, t),
        }
    elif task == "branch_turnover":
        cells = b.cell_population(w, t)
        if gemeenten is not None:
            areas = w["areas"].set_index("area_code")
            own = areas["gemeente_code"].astype(str).reindex(cells["area_code"]).to_numpy()
            gm = np.where(cells["level"].to_numpy() == "gemeente", cells["area_code"], own)
            keep = np.isin(pd.Series(gm).fillna("").astype(str).to_numpy(), list(gemeenten))
            cells = cells[keep].reset_index(drop=True)
        feats = b.cell_features(snap, cells)
        riec = w["areas"].set_index("area_code")["riec_code"].astype(str)
        meta = {
            "cell_id": (cells["area_code"] + "|" + cells["sbi"]).to_numpy(),
            "year": np.full(len(cells), t, np.int16),
            "level": cells["level"].to_numpy(),
            "area_code": cells["area_code"].to_numpy(),
            "sbi": cells["sbi"].to_numpy(),
            "riec_code": riec.reindex(cells["area_code"]).to_numpy(),
            # not a feature: the size class the deviation flag compares the cell within
            "prior_establishments": b.cell_establishments(w, cells, t - 1),
            "label": b.cell_labels(w, cells, t),
        }
    else:
        raise ValueError(f"unknown task {task!r}; choose hennep, jonge_aanwas or branch_turnover")
    frame = pd.DataFrame({**meta, **{f: feats[f] for f in features}})
    check_frame(frame, meta=META[task])
    positions = np.arange(len(frame), dtype=np.int64) if keep is None else np.flatnonzero(keep)
    return TablePart(frame, positions)


def feature_schema(task: str, features: Sequence[str]) -> pa.DataFrameSchema:
    """Schema of a feature table: meta columns typed, features float32 (empty allowed)."""
    label = (
        pa.Column(np.int8, pa.Check.isin([0, 1]))
        if task != "branch_turnover"
        else pa.Column(np.float32, nullable=True)
    )
    special = {
        UNIT_ID[task]: pa.Column(None, unique=True),
        "year": pa.Column(np.int16),
        "prior_establishments": pa.Column(np.int32, pa.Check.ge(0)),
        "label": label,
    }
    cols: dict[str, pa.Column] = {
        c: special.get(c, pa.Column(None, nullable=c == "wijk_code")) for c in META[task]
    }
    for f in features:
        cols[f] = pa.Column(np.float32, nullable=True, title=CATALOGUE[f].en)
    return pa.DataFrameSchema(cols, strict=True, ordered=True, name=f"features.{task}")


# --------------------------------------------------------------------------- integrity


class FeatureTableError(IntegrityError):
    """A feature table that the suite did not write as it is, or that breaks the catalogue
    (exit 2); the message names the file, the column, the rule and the fix."""


def stamp_path(table: Path) -> Path:
    """``DATA/features/<task>.stamp.json``: what ``zicht features`` wrote, and from what."""
    return Path(table).with_name(f"{Path(table).stem}.stamp.json")


#: (low, high, integer) per catalogue unit; a unit not listed has no range rule
UNIT_RANGES: dict[str, tuple[float, float, bool]] = {
    "0/1": (0, 1, True),
    "share": (0, 1, False),
    "class 1-5": (1, 5, True),
    "count": (0, np.inf, True),
    "persons": (0, np.inf, False),
    "percentile": (0, 100, False),
}


def _value_rule(name: str) -> tuple[float, float, bool, str] | None:
    """(low, high, integer, rule in words) of a catalogue feature; None: no range rule."""
    feat = CATALOGUE[name]
    if feat.categories:
        k = len(feat.categories) - 1
        return 0.0, float(k), True, f"a category code 0..{k} of the catalogue"
    if feat.unit not in UNIT_RANGES:
        return None
    low, high, integer = UNIT_RANGES[feat.unit]
    words = "in {0, 1}" if feat.unit == "0/1" else f"{'an integer ' if integer else ''}"
    return low, high, integer, words if feat.unit == "0/1" else f"{words}in [{low:g}, {high:g}]"


def check_feature_values(path: Path, features: Sequence[str]) -> None:
    """Each feature column of the table at *path* against the catalogue: float32, binary
    features in {0, 1}, categories coded 0..k-1, shares in [0, 1], counts >= 0, classes 1-5.
    Row group by row group, so a national table is never held whole."""
    import pyarrow.compute as pc

    pf = pq.ParquetFile(path)
    types = {f.name: f.type for f in pf.schema_arrow}
    rules = {}
    for name in features:
        if types.get(name) != pa_arrow.float32():
            raise FeatureTableError(
                f"{path}: column {name}: type float32 (rule: feature columns are float32 as "
                f"`zicht features` writes them): found {types.get(name)}; fix: rebuild it "
                "with `zicht features`"
            )
        rule = _value_rule(name)
        if rule is not None:
            rules[name] = rule
    for i in range(pf.num_row_groups):
        group = pf.read_row_group(i, columns=list(rules))
        for name, (low, high, integer, words) in rules.items():
            col = pc.drop_null(group.column(name))
            col = pc.filter(col, pc.invert(pc.is_nan(col)))
            if len(col) == 0:
                continue
            mm = pc.min_max(col).as_py()
            bad = mm["min"] < low or mm["max"] > high
            if integer and not bad:
                bad = not pc.all(pc.equal(col, pc.floor(col))).as_py()
            if bad:
                raise FeatureTableError(
                    f"{path}: column {name}: {words} (rule: feature values match the feature "
                    f"catalogue, features/catalogue.py): found values from {mm['min']:g} to "
                    f"{mm['max']:g}; fix: rebuild it with `zicht features` (the catalogue "
                    f"defines {name!r} as {CATALOGUE[name].unit})"
                )


def check_feature_table(
    path: Path,
    task: str,
    features: Sequence[str],
    *,
    fingerprint: str | None = None,
    cache: HashCache | None = None,
) -> dict:
    """Refuse a feature table the suite did not write as it is: its SHA-256 must match the
    stamp ``zicht features`` wrote (and, given *fingerprint*, come from the current world);
    then the protected-attribute guard on its columns and the catalogue's types and ranges on
    *features*. Returns the stamp. Raises :class:`FeatureTableError` (or the guard's
    :class:`ProtectedAttributeError`)."""
    path = Path(path)
    stamp = stamp_path(path)
    rebuild = f"rebuild it with `zicht features {task}`"
    try:
        doc = json.loads(stamp.read_text())
    except FileNotFoundError:
        raise FeatureTableError(
            f"{path}: column *: written by `zicht features` (rule: only tables the suite built "
            f"and stamped are read): {stamp.name} is missing; fix: {rebuild}"
        ) from None
    except (OSError, ValueError) as exc:
        raise FeatureTableError(
            f"{stamp}: column *: readable JSON: {exc}; fix: {rebuild}"
        ) from None
    if not isinstance(doc, dict) or doc.get("task") != task:
        raise FeatureTableError(
            f"{stamp}: column task: the stamp of a {task} table: found "
            f"{doc.get('task') if isinstance(doc, dict) else doc!r}; fix: {rebuild}"
        )
    have = (cache or HashCache(None)).sha256(path)
    if cache is not None:
        cache.save()
    if have != doc.get("sha256"):
        raise FeatureTableError(
            f"{path}: column *: SHA-256 as in {stamp.name} (rule: a feature table is used only "
            f"as `zicht features` wrote it): it was edited or replaced afterwards ({have[:12]}… "
            f"against {str(doc.get('sha256'))[:12]}…); fix: {rebuild}"
        )
    if fingerprint is not None and doc.get("world_fingerprint") != fingerprint:
        raise FeatureTableError(
            f"{path}: column *: built from the current world (rule: features come from the "
            f"world the run is tagged with): built from world "
            f"{str(doc.get('world_fingerprint'))[:16]}, the world is now {fingerprint[:16]}; "
            f"fix: {rebuild}"
        )
    names = pq.read_schema(path).names
    try:
        check_frame(pd.DataFrame(columns=names), meta=META[task])
        check_selection(features)
    except ProtectedAttributeError as exc:
        raise ProtectedAttributeError(f"{path}: {exc}; fix: {rebuild}") from None
    check_feature_values(path, [f for f in features if f in names])
    return doc


def _write_stamp(out_path: Path, doc: dict) -> None:
    target = stamp_path(out_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True, default=str)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_feature_table(
    world_dir: Path,
    out_path: Path,
    task: str,
    features: Sequence[str],
    *,
    audit: Callable[[b.WorldFrames, pd.DataFrame], dict[str, float]] | None = None,
    copy_threshold: float = 0.9,
    progress: Callable[[str], None] = lambda _m: None,
    years: Sequence[int] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Build every reference year of *task* and write it atomically to *out_path*, with its
    stamp (``<task>.stamp.json``: SHA-256, features, *config*, world fingerprint) that every
    reader checks (:func:`check_feature_table`).

    *audit* returns each feature's association with the protected attribute (the audit
    accessor's ``copy_scores``); a near-copy is refused before anything is written. A world
    whose files differ from its manifest is refused before anything is written, too.
    """
    check_selection(features)
    progress("loading the world")
    w = load_world(world_dir)
    wy = world_years(world_dir, w)
    years = list(years) if years is not None else wy.reference_years(task)
    schema = feature_schema(task, features)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    writer: pq.ParquetWriter | None = None
    try:
        for t in years:
            progress(f"year {t}")
            frame = build_task_year(w, task, t, features, window=wy.window)
            if audit is not None and t == years[0]:
                # the columns are the same code every year: one audited year suffices
                check_copies(audit(w, frame), threshold=copy_threshold)
            table = year_table(schema, frame, out_path, t)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema), row_group_size=ROW_GROUP_ROWS)
        if writer is not None:
            writer.close()
            writer = None
        finish_feature_table(tmp, out_path, task, features, world_dir, years, config)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return out_path


#: rows per Parquet row group of a feature table (one reference year spans one or more)
ROW_GROUP_ROWS = 1_000_000


def year_table(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, out_path: Path, t: int
) -> pa_arrow.Table:
    """One reference year's rows, checked against the table's schema, as Arrow; a world the
    validator would reject gets :class:`WorldFileError` naming the column and the fix."""
    try:
        frame = schema.validate(frame)
    except pa.errors.SchemaError as exc:
        raise WorldFileError(
            f"{out_path}: column {exc.schema.name}: {str(exc).splitlines()[0]} "
            f"(reference year {t}); the world's tables do not fit together; fix: run "
            "`zicht world validate` and correct what it lists"
        ) from None
    return pa_arrow.Table.from_pandas(frame, preserve_index=False)


def finish_feature_table(
    tmp: Path,
    out_path: Path,
    task: str,
    features: Sequence[str],
    world_dir: Path,
    years: Sequence[int],
    config: Mapping[str, Any] | None,
) -> None:
    """Check the values of the table written to *tmp*, move it to *out_path* and write its
    stamp (SHA-256, features, *config*, world fingerprint)."""
    # after the build, so a world with broken tables gets the schema's own message first
    fingerprint = data_fingerprint(world_dir, cache=world_hash_cache(world_dir))
    check_feature_values(tmp, features)
    stamp = {
        "task": task,
        "table": out_path.name,
        "sha256": sha256_file(tmp),
        "bytes": tmp.stat().st_size,
        "features": list(features),
        "config": dict(config) if config is not None else None,
        "world_fingerprint": fingerprint,
        "years": [int(t) for t in years],
        "written_by": "zicht features",
    }
    os.replace(tmp, out_path)
    _write_stamp(out_path, stamp)
