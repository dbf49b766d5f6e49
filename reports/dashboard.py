"""The public dashboard: a static, self-contained site built from a published version only.

The gate (:func:`disclosure.publish.publish`) calls :func:`build_dashboard` on the version it
is building, after every task's files are written and checked, and writes the files it
returns under ``<version>/dashboard/``; they go into the manifest with the rest. The site is
made from what the version already publishes, read back from its files (``schema.json``,
``<level>.parquet``, ``areas.geojson``), never from the secure zone:

* ``index.html``: the page, with the published tables (a projection of their columns, every
  row) and the area polygons embedded as JSON (``<script type="application/json">``: no
  request is needed, and a browser may open it from ``file://``), the app's own script and
  styles inline, and a Content-Security-Policy that allows no request to any other host;
* ``vega.min.js`` and its licence: Vega (:data:`VEGA`), vendored from the npm registry and
  pinned by SHA-256.

Upper levels have no polygons of their own in the version (``areas.geojson`` holds the
finest level), so wijken and gemeenten are the union of their published buurten (or wijken),
grouped by the ``parent_code`` of the published tables.

Both the table format of today and the planned one are read: a ``year`` column (one or
several years) or none (then the year in the manifest, if any, stands for the table), and a
GeoJSON with one feature per table row or one per area. :func:`check_dashboard` re-reads
the written page and refuses anything the tables do not carry.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import jinja2
import numpy as np
import pandas as pd
import shapely
from markupsafe import Markup

from reports.maps import colour_domain
from reports.vendored import VEGA, VENDORED

ASSETS = Path(__file__).parent / "assets"  # the app (dashboard.js, dashboard.css)
TEMPLATES = Path(__file__).parent / "templates"
#: where the site lives inside a version
SITE = "dashboard"
#: levels that can be drawn, coarse to fine (the drill-down order), and the national row
MAP_LEVELS = ("gemeente", "wijk", "buurt")
NATIONAL = "nederland"
#: the element that holds the embedded data
DATA_ID = "zicht-data"
#: columns of a published table that the page does not need (the reason of a suppressed
#: cell is always ``suppressed``, and its status column says as much)
DROPPED = re.compile(r"^(reason|reason_.+|level)$")
#: coordinates are published with 6 decimals (about 0.1 m); the dissolved levels keep them
PRECISION = 1e-6


#: the order of the tabs (others follow by name)
TASK_ORDER = ("hennep", "jonge_aanwas", "branch_turnover")
#: what each task's map shows: its measure and the reference value at the scale's centre
MAP_MEASURES = {"index": 100.0, "deviation_ratio": 1.0}


class DashboardError(ValueError):
    """A version the dashboard cannot be built from (names the file and the fix)."""


@dataclass(frozen=True)
class PublishedTask:
    """One task of a published version, as read back from its files."""

    task: str
    schema: Mapping[str, Any]
    tables: Mapping[str, pd.DataFrame]  # level -> the published table
    areas: gpd.GeoDataFrame  # area_code, geometry (EPSG:4326): one row per area
    year: int | None = None  # stands for the tables when they have no ``year`` column
    files: tuple[str, ...] = ()  # downloadable files, relative to the version


@dataclass(frozen=True)
class SiteInfo:
    """What the page says about the version (from the gate, not from any data)."""

    version: str
    created_at: str
    source: str
    years: Mapping[str, int | None] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def read_version(version: Path, *, years: Mapping[str, int | None]) -> list[PublishedTask]:
    """Every task directory of *version* that has a ``schema.json``, read back.

    *years*: per task, the publication year when its tables have no ``year`` column.
    """
    tasks = []
    for task_dir in sorted(p for p in Path(version).iterdir() if (p / "schema.json").is_file()):
        schema = json.loads((task_dir / "schema.json").read_text())
        levels = [str(lv) for lv in schema.get("levels", [])] or [
            lv for lv in (*MAP_LEVELS, NATIONAL) if (task_dir / f"{lv}.csv").is_file()
        ]
        tables = {}
        for level in levels:
            if level in (*MAP_LEVELS, NATIONAL):
                tables[level] = _read_table(task_dir, level)
        geo = task_dir / "areas.geojson"
        if not geo.is_file():
            raise DashboardError(f"{geo}: missing; the map needs the published polygons")
        areas = gpd.read_file(geo)
        if "area_code" not in areas.columns:
            raise DashboardError(f"{geo}: no area_code property; fix: publish again")
        areas = areas[["area_code", "geometry"]].drop_duplicates("area_code")
        files = tuple(
            sorted(
                p.relative_to(version).as_posix()
                for p in task_dir.iterdir()
                if p.is_file() and p.suffix in (".csv", ".parquet", ".geojson", ".json", ".md")
            )
        )
        tasks.append(
            PublishedTask(
                task=task_dir.name,
                schema=schema,
                tables=tables,
                areas=gpd.GeoDataFrame(areas, geometry="geometry", crs=areas.crs or 4326),
                year=years.get(task_dir.name),
                files=files,
            )
        )
    if not tasks:
        raise DashboardError(f"{version}: no task with a schema.json; nothing to show")
    return tasks


def _read_table(task_dir: Path, level: str) -> pd.DataFrame:
    parquet, csv = task_dir / f"{level}.parquet", task_dir / f"{level}.csv"
    if parquet.is_file():
        return pd.read_parquet(parquet)
    if csv.is_file():
        return pd.read_csv(csv, dtype={"area_code": str, "parent_code": str})
    raise DashboardError(f"{parquet}: missing (schema.json lists level {level!r})")


# --------------------------------------------------------------------------- pure core


def level_geometry(tasks: Sequence[PublishedTask]) -> dict[str, gpd.GeoDataFrame]:
    """Per map level, one polygon per area: ``area_code``, ``area_name``, ``parent_code``.

    A level's polygons are the published ones where a task publishes that level's polygons
    (its ``areas.geojson``), else the union of the level below grouped by the published
    tables' ``parent_code``.
    """
    names: dict[str, pd.DataFrame] = {}
    for t in tasks:
        for level, table in t.tables.items():
            if level in MAP_LEVELS and {"area_code", "area_name", "parent_code"} <= set(table):
                part = table[["area_code", "area_name", "parent_code"]].astype(str)
                names[level] = pd.concat([names.get(level, part.iloc[:0]), part])
    names = {lv: f.drop_duplicates("area_code") for lv, f in names.items()}
    own: dict[str, gpd.GeoDataFrame] = {}
    for t in tasks:
        polys = t.areas.to_crs(4326)
        for level, table in names.items():
            hit = polys[polys["area_code"].astype(str).isin(table["area_code"])]
            if len(hit):
                prev = own.get(level)
                own[level] = hit if prev is None else pd.concat([prev, hit])
    out: dict[str, gpd.GeoDataFrame] = {}
    for i in reversed(range(len(MAP_LEVELS))):
        level = MAP_LEVELS[i]
        if level not in names:
            continue
        if level in own:
            geo = own[level].drop_duplicates("area_code")
            geo = geo.assign(area_code=geo["area_code"].astype(str))
        elif i + 1 < len(MAP_LEVELS) and MAP_LEVELS[i + 1] in out:
            child = out[MAP_LEVELS[i + 1]]  # its parent_code is a code of this level
            parts = child.assign(geometry=shapely.set_precision(child.geometry.values, PRECISION))
            geo = parts.dissolve(by="parent_code", as_index=False)[["parent_code", "geometry"]]
            geo = geo.rename(columns={"parent_code": "area_code"})
        else:
            continue
        merged = names[level].merge(geo[["area_code", "geometry"]], on="area_code", how="inner")
        out[level] = gpd.GeoDataFrame(merged, geometry="geometry", crs=4326)
    return {lv: out[lv] for lv in MAP_LEVELS if lv in out}


def _feature_collection(geo: gpd.GeoDataFrame) -> dict[str, Any]:
    """GeoJSON for Vega: exterior rings clockwise, as d3-geo's spherical polygons need (an
    RFC 7946 counter-clockwise ring is, to d3, the whole globe but the area)."""
    feats = []
    geo = geo.assign(geometry=shapely.orient_polygons(geo.geometry.values, exterior_cw=True))
    for row in geo.itertuples(index=False):
        feats.append(
            {
                "type": "Feature",
                "properties": {
                    "area_code": row.area_code,
                    "area_name": row.area_name,
                    "parent_code": row.parent_code,
                },
                "geometry": _rounded(shapely.geometry.mapping(row.geometry)),
            }
        )
    return {"type": "FeatureCollection", "features": feats}


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, list | tuple):
        return [_rounded(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj


def embedded_table(table: pd.DataFrame) -> dict[str, Any]:
    """A published table as the page embeds it: ``{"columns", "data"}`` (pandas' split
    orient), every row, the columns but :data:`DROPPED`; missing values are ``null``."""
    cols = [c for c in table.columns if not DROPPED.match(str(c))]
    data = [[_json_value(v) for v in row] for row in table[cols].itertuples(index=False)]
    return {"columns": [str(c) for c in cols], "data": data}


def _json_value(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _breakdown(schema: Mapping[str, Any], table: pd.DataFrame) -> str | None:
    for col in ("age_group", "branch"):
        if col in table.columns:
            return col
    bd = schema.get("breakdown")
    return str(bd) if isinstance(bd, str) and bd in table.columns else None


def dashboard_document(tasks: Sequence[PublishedTask], *, info: SiteInfo) -> dict[str, Any]:
    """The page's data: per task its map settings, years, breakdowns and downloads, the
    published tables (``tables["<task>/<level>"]``) and the polygons per level."""
    from features.catalogue import CATALOGUE

    geo = level_geometry(tasks)
    docs, tables = [], {}
    order = {name: i for i, name in enumerate(TASK_ORDER)}
    for t in sorted(tasks, key=lambda x: (order.get(x.task, len(order)), x.task)):
        measure = next((m for m in MAP_MEASURES if m in t.schema.get("measures", {})), None)
        if measure is None:
            continue
        centre = MAP_MEASURES[measure]
        present = [lv for lv in (*MAP_LEVELS, NATIONAL) if lv in t.tables]
        first = t.tables[present[0]]
        bd = _breakdown(t.schema, first)
        years: set[int] = set()
        for level in present:
            table = t.tables[level]
            tables[f"{t.task}/{level}"] = embedded_table(table)
            if "year" in table.columns:
                years |= {int(y) for y in table["year"].dropna().unique()}
        if not years and t.year is not None:
            years = {int(t.year)}
        breakdowns: list[dict[str, str]] = []
        if bd is not None:
            ref = t.tables.get(NATIONAL, first)
            label_col = "branch_name" if bd == "branch" else None
            seen = ref.drop_duplicates(bd)
            for row in seen.itertuples(index=False):
                value = str(getattr(row, bd))
                label = str(getattr(row, label_col)) if label_col else value
                breakdowns.append({"value": value, "label": label})
        drivers = sorted(
            {
                str(v)
                for level in present
                for c in t.tables[level].columns
                if re.fullmatch(r"driver_\d+", str(c))
                for v in t.tables[level][c].dropna().unique()
            }
        )
        docs.append(
            {
                "task": t.task,
                "measure": measure,
                "centre": centre,
                "domain": list(colour_domain(centre)),
                "breakdown": bd,
                "breakdowns": breakdowns,
                "levels": [lv for lv in MAP_LEVELS if lv in t.tables and lv in geo],
                "years": sorted(years),
                "default_year": t.year,
                "measures": dict(t.schema.get("measures", {})),
                "notes": list(t.schema.get("notes", [])),
                "downloads": ["../" + f for f in t.files],
                "drivers": {
                    d: {"nl": CATALOGUE[d].nl, "en": CATALOGUE[d].en}
                    for d in drivers
                    if d in CATALOGUE
                },
            }
        )
    if not docs:
        raise DashboardError("no task publishes an index or a deviation ratio; nothing to map")
    return {
        "version": info.version,
        "created_at": info.created_at,
        "source": info.source,
        "tasks": docs,
        "tables": tables,
        "geo": {lv: _feature_collection(g) for lv, g in geo.items()},
    }


def _script_json(doc: Mapping[str, Any]) -> str:
    """JSON safe inside ``<script>``: no ``</`` (so no ``</script>``) and no ``<!--``."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(doc: Mapping[str, Any]) -> str:
    """``index.html``: the page with *doc*, the app and its styles inline."""
    app = (ASSETS / "dashboard.js").read_text()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, keep_trailing_newline=True
    )
    app_hash = "sha256-" + _b64(hashlib.sha256(app.encode()).digest())
    return env.get_template("dashboard.html").render(
        data=Markup(_script_json(doc)),
        app=Markup(app),
        css=Markup((ASSETS / "dashboard.css").read_text()),
        app_hash=app_hash,
        vega=VEGA.file,
        title=html.escape("Zicht"),
    )


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def site_files(doc: Mapping[str, Any]) -> dict[str, bytes]:
    """The site: relative path in the version -> bytes."""
    files = {f"{SITE}/index.html": render_page(doc).encode()}
    for v in VENDORED:
        files[f"{SITE}/{v.file}"] = v.read()
        files[f"{SITE}/{v.licence}"] = v.read_licence()
    return files


def build_dashboard(version: Path, *, info: SiteInfo) -> dict[str, bytes]:
    """Read *version*'s published files and return the site's files (nothing is written)."""
    return site_files(dashboard_document(read_version(version, years=info.years), info=info))


# --------------------------------------------------------------------------- checks


def embedded_document(page: str) -> dict[str, Any]:
    """The JSON a page embeds (``<script type="application/json" id="zicht-data">``)."""
    m = re.search(
        rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', page, flags=re.S
    )
    if m is None:
        raise DashboardError(f"no <script id={DATA_ID!r}> in the page")
    doc = json.loads(m.group(1))
    if not isinstance(doc, dict):
        raise DashboardError("the embedded data is not an object")
    return doc


def check_dashboard(version: Path, *, years: Mapping[str, int | None]) -> list[str]:
    """Problems with ``<version>/dashboard/``, as ``file: rule`` lines (empty if fine).

    Every embedded table must equal its published table (the same rows, the same values in
    the columns it keeps, no column of its own); the page may name no other host; the
    vendored files must match their pinned digests; nothing else may be in the directory.
    """
    site = Path(version) / SITE
    page_path = site / "index.html"
    if not page_path.is_file():
        return [f"{page_path}: missing"]
    problems: list[str] = []
    page = page_path.read_text()
    if re.search(r"(?i)\b(?:https?|wss?|ftp):|(?<![\w/*:])//[a-z0-9.-]+\.[a-z]{2,}/", page):
        problems.append(f"{page_path}: names another host (rule: no request leaves the machine)")
    expected = {"index.html"} | {v.file for v in VENDORED} | {v.licence for v in VENDORED}
    for p in sorted(site.rglob("*")):
        if p.is_file() and p.relative_to(site).as_posix() not in expected:
            problems.append(f"{p}: not part of the dashboard (rule: only its own files)")
    for v in VENDORED:
        for name, digest in ((v.file, v.sha256), (v.licence, v.licence_sha256)):
            path = site / name
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                problems.append(f"{path}: SHA-256 differs from the pinned {v.package} file")
    try:
        doc = embedded_document(page)
    except (DashboardError, ValueError) as exc:
        return [*problems, f"{page_path}: embedded data unreadable ({exc})"]
    published = {t.task: t for t in read_version(Path(version), years=years)}
    for key, emb in dict(doc.get("tables", {})).items():
        task, _, level = str(key).partition("/")
        if task not in published or level not in published[task].tables:
            problems.append(f"{page_path}: table {key!r} is not published")
            continue
        problems += [f"{page_path}: {key}: {p}" for p in _same_table(emb, published[task], level)]
    shown = {str(t.get("task")) for t in doc.get("tasks", [])}
    for t in published.values():
        if t.task not in shown:
            continue  # a task with nothing to map is not on the page at all
        for level in t.tables:
            key = f"{t.task}/{level}"
            if level in (*MAP_LEVELS, NATIONAL) and key not in doc.get("tables", {}):
                problems.append(f"{page_path}: the published table {key} is not shown")
    return problems


def _same_table(emb: Mapping[str, Any], task: PublishedTask, level: str) -> list[str]:
    table = task.tables[level]
    cols = [str(c) for c in emb.get("columns", [])]
    extra = [c for c in cols if c not in table.columns]
    if extra:
        return [f"column(s) {extra} that the published table does not have"]
    rows = len(emb.get("data", []))
    if rows != len(table):
        return [f"{rows} rows, the published table {len(table)}"]
    if embedded_table(table[cols])["data"] != emb.get("data"):
        return ["values differ from the published table"]
    return []
