"""Reading the area polygons of a world or a real extract: the one reader every stage uses.

``areas.parquet`` is GeoParquet when the generator wrote it. A real extract may instead be
plain Parquet with the polygons as WKB (``binary``) and no ``geo`` metadata, with
MultiPolygons among them. :func:`read_areas` reads both. Without ``geo`` metadata (or
without a CRS in it) the polygons are taken to be in EPSG:28992 (RD New), the CRS the
schema prescribes, and :func:`area_notes` says so; a GeoParquet file in another CRS is
reprojected to EPSG:28992.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

CRS = "EPSG:28992"


class AreasFileError(ValueError):
    """``areas.parquet`` cannot be read as polygons; the message names file, column, fix."""


def _geo_metadata(schema: pa.Schema) -> dict | None:
    raw = (schema.metadata or {}).get(b"geo")
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def area_notes(path: Path) -> list[str]:
    """What :func:`read_areas` assumes about *path* (empty for a GeoParquet file with a CRS)."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid):
        return []
    if "geometry" not in schema.names:
        return []  # the validator reports the missing column
    meta = _geo_metadata(schema)
    if meta is None:
        return [
            f"{path.name}: geometry: no GeoParquet metadata; reading it as WKB polygons in "
            f"{CRS} (RD New), the schema's CRS"
        ]
    col = (meta.get("columns") or {}).get(meta.get("primary_column", "geometry")) or {}
    if col.get("crs") is None:
        return [f"{path.name}: geometry: GeoParquet without a CRS; assuming {CRS} (RD New)"]
    return []


def read_areas(path: Path, columns: list[str] | None = None) -> gpd.GeoDataFrame:
    """The areas of *path* with their polygons (GeoParquet or plain WKB) in EPSG:28992.

    *columns* are the non-geometry columns to read (default: all); ``geometry`` is always
    read and comes last.
    """
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise AreasFileError(
            f"{path}: column *: readable Parquet: cannot read ({exc}); fix: re-export the file"
        ) from None
    if "geometry" not in schema.names:
        raise AreasFileError(
            f"{path}: column geometry: column present: missing; fix: add the polygons as WKB "
            f"in {CRS} in a column 'geometry'"
        )
    cols = [c for c in (columns or schema.names) if c != "geometry"]
    meta = _geo_metadata(schema)
    if meta is not None:
        frame = gpd.read_parquet(path, columns=[*cols, "geometry"])
        if frame.crs is None or not _has_crs(meta):
            frame = frame.set_crs(CRS, allow_override=True)
        elif frame.crs.to_epsg() != 28992:
            frame = frame.to_crs(CRS)
        return frame
    table = pq.read_table(path, columns=[*cols, "geometry"])
    geom = table.column("geometry")
    if not (pa.types.is_binary(geom.type) or pa.types.is_large_binary(geom.type)):
        raise AreasFileError(
            f"{path}: column geometry: WKB polygons: found {geom.type}; fix: write the polygons "
            f"as WKB (binary) in {CRS}, or as GeoParquet"
        )
    try:
        shapes = shapely.from_wkb(geom.to_numpy(zero_copy_only=False))
    except shapely.errors.GEOSException as exc:
        raise AreasFileError(
            f"{path}: column geometry: WKB polygons: cannot parse ({exc}); fix: re-export the "
            "polygons as WKB"
        ) from None
    frame = table.drop_columns(["geometry"]).to_pandas()
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(shapes, index=frame.index), crs=CRS)


def _has_crs(meta: dict) -> bool:
    col = (meta.get("columns") or {}).get(meta.get("primary_column", "geometry")) or {}
    return col.get("crs") is not None
