"""Rewrite a generated world the way real extracts differ from it, for tests and benchmarks.

A real CBS extract meets the schemas of :mod:`microdata.schemas` but not the generator's
habits: it has no ``manifest.json``; its ids are whatever the source registers use
(16-digit BAG dwelling ids, 9-digit RIN person numbers, ids near 2**63); ``areas.parquet``
may be plain Parquet with WKB geometry and no GeoParquet metadata, with MultiPolygons; strings
may be ``large_string`` or dictionary-encoded, integers pandas' nullable ``Int64``; there may
be extra columns, another column order, and other years. :func:`write_variant` writes such an
extract from a world directory; the values (and so every feature) stay the same up to the
id relabelling and the year shift.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from microdata.schemas import OPEN_END, TABLES

#: the id transformations: unit -> f(original int64 ids) -> new int64 ids (monotone, so the
#: order of units, and with it every feature table's row order, is unchanged)
IdMap = Callable[[np.ndarray], np.ndarray]

ID_OF_COLUMN = {
    "person_id": "person",
    "mother_id": "person",
    "father_id": "person",
    "household_id": "household",
    "dwelling_id": "dwelling",
    "establishment_id": "establishment",
}
YEAR_COLUMNS = (
    "year",
    "valid_from",
    "valid_to",
    "birth_year",
    "death_year",
    "build_year",
    "founded_year",
    "closed_year",
)

#: the variants the tests and benchmarks use; each is a set of the options below
VARIANTS: dict[str, dict[str, object]] = {
    "dwelling_ids_16_digits": {"ids": {"dwelling": "bag16"}},
    "person_ids_9_digits": {"ids": {"person": "rin9", "household": "rin9"}},
    "ids_near_2_63": {"ids": {"person": "near63", "dwelling": "near63", "household": "near63"}},
    "plain_wkb_areas": {"plain_wkb": True, "multipolygons": True},
    "years_2014_2023": {"year_shift": -2},
    "extra_columns": {"extra_columns": True},
    "column_order": {"reverse_columns": True},
    "nullable_ints": {"nullable_ints": True},
    "dictionary_strings": {"strings": "dictionary"},
    "large_strings": {"strings": "large"},
}
COMBINED: dict[str, object] = {
    "ids": {"person": "rin9", "household": "rin9", "dwelling": "bag16", "establishment": "bag16"},
    "plain_wkb": True,
    "multipolygons": True,
    "year_shift": -2,
    "extra_columns": True,
    "reverse_columns": True,
    "nullable_ints": True,
    "strings": "dictionary",
}


def id_map(kind: str) -> IdMap:
    """A monotone relabelling of non-negative ids."""
    if kind == "bag16":  # 0363010000123456: gemeente 0363, object type 01, 10 digits
        return lambda i: 363_010_000_000_000 + i * 7919 + 17
    if kind == "rin9":  # 9-digit person numbers, offset by 1e8
        return lambda i: 100_000_000 + i * 13 + 5
    if kind == "near63":  # the top of int64
        return lambda i: (2**63 - 1) - 2**40 + i * 1_000_003
    raise ValueError(f"unknown id map {kind!r}")


def _years(arr: pa.ChunkedArray, shift: int) -> pa.ChunkedArray:
    shifted = pc.add(arr, pa.scalar(shift, arr.type))
    return pc.if_else(pc.equal(arr, OPEN_END), arr, shifted)


def transform_table(name: str, table: pa.Table, options: dict[str, object]) -> pa.Table:
    """*table* (one world table) rewritten with *options* (see :data:`VARIANTS`)."""
    ids: dict[str, str] = dict(options.get("ids") or {})  # type: ignore[call-overload]
    shift = int(options.get("year_shift") or 0)  # type: ignore[call-overload]
    cols = {}
    for col in table.column_names:
        arr = table.column(col)
        unit = ID_OF_COLUMN.get(col)
        if unit in ids:
            vals = arr.cast(pa.int64())
            mapped = id_map(ids[unit])(pc.fill_null(vals, 0).to_numpy().astype(np.int64))
            arr = pa.chunked_array([pa.array(mapped, pa.int64(), mask=vals.is_null().to_numpy())])
        elif col in YEAR_COLUMNS and shift:
            arr = _years(arr, shift)
        strings = options.get("strings")
        value_type = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
        if col != "geometry" and pa.types.is_string(value_type):
            if strings == "dictionary":
                arr = arr.cast(value_type).dictionary_encode()
            elif strings == "large":
                arr = arr.cast(pa.large_string())
        cols[col] = arr
    out = pa.table(cols)
    if options.get("extra_columns"):
        out = out.append_column("bron", pa.array(["extract 2024-06"] * out.num_rows))
        out = out.append_column("regel_nr", pa.array(np.arange(out.num_rows, dtype=np.int64)))
    if options.get("reverse_columns"):
        out = out.select(list(reversed(out.column_names)))
    return out


def _areas_plain(table: pa.Table, multipolygons: bool) -> pa.Table:
    """areas as plain Parquet: WKB geometry, no GeoParquet ``geo`` metadata (and, with
    *multipolygons*, every polygon as a one-part MultiPolygon)."""
    import shapely

    geom = table.column("geometry")
    if multipolygons:
        shapes = shapely.from_wkb(geom.to_numpy(zero_copy_only=False))
        multi = [
            shapely.MultiPolygon([s]) if s.geom_type == "Polygon" else s for s in shapes.tolist()
        ]
        geom = pa.chunked_array([pa.array(shapely.to_wkb(np.asarray(multi)), pa.binary())])
    else:
        geom = geom.cast(pa.binary())
    i = table.column_names.index("geometry")
    table = table.set_column(i, "geometry", geom)
    return table.replace_schema_metadata(None)


def write_variant(world: Path, out: Path, options: dict[str, object]) -> Path:
    """Write the world in *world* to *out* as an extract rewritten with *options* (no
    ``manifest.json``, as a real extract). Returns *out*."""
    world, out = Path(world), Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for spec in TABLES.values():
        table = pq.read_table(world / spec.file)
        meta = table.schema.metadata or {}
        if spec.name == "areas" and options.get("plain_wkb"):
            table = _areas_plain(table, bool(options.get("multipolygons")))
            meta = {}
        table = transform_table(spec.name, table, options)
        if spec.name == "areas" and not options.get("plain_wkb"):
            meta = {k: v for k, v in meta.items() if k == b"geo"}
            table = table.replace_schema_metadata(meta)
        if options.get("nullable_ints"):
            # pandas' nullable Int64 (exact, also with empty values), recorded in the
            # file's pandas metadata as a real export through pandas would
            df = table.to_pandas(
                types_mapper=lambda t: pd.Int64Dtype() if pa.types.is_integer(t) else None
            )
            geo = (table.schema.metadata or {}).get(b"geo")
            table = pa.Table.from_pandas(df, preserve_index=False)
            if geo is not None:
                table = table.replace_schema_metadata({**table.schema.metadata, b"geo": geo})
        pq.write_table(table, out / spec.file, compression="zstd")
    return out
