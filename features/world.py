"""Read world tables for feature building, never touching a protected column.

:class:`WorldReader` is the only way the feature builders get data. It reads the columns
the schemas declare and refuses protected ones (marked in :mod:`microdata.schemas`, or
named like origin or migration background), so a protected column of a real extract cannot
reach a builder even when the file carries it. The audit accessor in
:mod:`features.audit` is the one place that reads protected columns, and it returns
aggregates only.

**Ids.** Real extracts carry ids as they come: any non-negative int64 (sparse, 16-digit,
near 2**63). The reader factorises them once, at read time, into dense internal codes
(:class:`IdSpace`: position in the sorted unique ids of the unit's own table), so that every
array the builders index by unit is as long as the table, never as long as the largest id.
The mapping stays in memory (the secure zone); feature tables get the original ids back.

Also here: point-in-time helpers that give the state of every unit as of a year, from
spell tables (``valid_from``/``valid_to``), as dense arrays indexed by the unit code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from microdata.schemas import TABLES, is_protected_name


class ProtectedAttributeError(ValueError):
    """A protected attribute (origin, migration background) was about to become a feature."""


class WorldFileError(ValueError):
    """A world file is missing or unreadable; the message names the file and the fix."""


def refuse_protected(table: str, columns: list[str] | tuple[str, ...]) -> None:
    """Raise :class:`ProtectedAttributeError` if any of *columns* of *table* is protected."""
    spec = TABLES.get(table)
    marked = set(spec.protected_columns) if spec else set()
    for col in columns:
        if col in marked or is_protected_name(col):
            raise ProtectedAttributeError(
                f"{table}.{col} is a protected attribute (origin/migration background); "
                "it may not be read for features. Only the audit accessor "
                "(features.audit.ProtectedAccess) may use it, and it returns aggregates only"
            )


#: id columns -> the unit whose id space they live in (what :class:`IdSpace` recodes)
ID_COLUMNS = MappingProxyType(
    {
        "person_id": "person",
        "mother_id": "person",
        "father_id": "person",
        "household_id": "household",
        "dwelling_id": "dwelling",
    }
)
#: where each unit's ids are defined: (table, column) pairs whose union is the space
ID_SOURCES = MappingProxyType(
    {
        "person": (("persons", "person_id"),),
        "household": (("households", "household_id"), ("household_members", "household_id")),
        "dwelling": (("dwellings", "dwelling_id"),),
    }
)


@dataclass(frozen=True)
class IdSpace:
    """The sorted unique ids of one kind of unit; a unit's code is its position here."""

    ids: np.ndarray  # int64, sorted, unique

    def __len__(self) -> int:
        return len(self.ids)

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Dense codes (int64) of *values*; -1 for an id not in the space (or negative)."""
        values = np.asarray(values, dtype=np.int64)
        if not len(self.ids):
            return np.full(len(values), -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, values)
        pos = np.minimum(pos, len(self.ids) - 1)
        return np.where(self.ids[pos] == values, pos, -1)

    def original(self, codes: np.ndarray) -> np.ndarray:
        """The original ids (int64) of dense *codes*."""
        return self.ids[np.asarray(codes, dtype=np.int64)]


def id_array(table: pa.Table | pa.ChunkedArray, path: Path, column: str) -> np.ndarray:
    """An id column as exact int64 (nulls as -1): never through float, never cast to int32;
    a value outside int64 (an unsigned id >= 2**63) is refused naming file and column."""
    arr = table.column(column) if isinstance(table, pa.Table) else table
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    try:
        arr = pc.fill_null(arr.cast(pa.int64()), -1)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise WorldFileError(
            f"{path}: column {column}: ids are integers 0 <= id < 2**63: cannot read them as "
            f"int64 ({exc}); fix: export the ids as int64"
        ) from None
    return arr.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


@dataclass(frozen=True)
class WorldReader:
    """Reads declared, non-protected columns of the world tables in *world_dir*."""

    world_dir: Path

    def _path(self, table: str) -> Path:
        path = Path(self.world_dir) / TABLES[table].file
        if not path.exists():
            raise WorldFileError(
                f"{path}: missing; run `zicht generate` or put the {table} extract there "
                "(`zicht world validate` lists what a world needs)"
            )
        return path

    def columns(self, table: str) -> list[str]:
        """The declared, non-protected, non-geometry columns of *table*."""
        spec = TABLES[table]
        return [
            c
            for c, col in spec.columns.items()
            if not col.protected and not is_protected_name(c) and col.family != "binary"
        ]

    def read(
        self,
        table: str,
        columns: list[str] | None = None,
        year: int | None = None,
        years: tuple[int, int] | None = None,
        ids: Mapping[str, IdSpace] | None = None,
    ) -> pd.DataFrame:
        """Read *table* (declared columns only). ``year``/``years`` filter a ``year`` column.

        Dictionary-encoded string columns come back as pandas categoricals. With *ids*, id
        columns (:data:`ID_COLUMNS`) come back as dense int64 codes of their unit's space
        (-1: empty or unknown), and rows whose own unit id is unknown are dropped (the
        validator reports them as broken references).
        """
        cols = list(columns) if columns is not None else self.columns(table)
        refuse_protected(table, cols)
        undeclared = [c for c in cols if c not in TABLES[table].columns]
        if undeclared:
            raise WorldFileError(
                f"{TABLES[table].file}: columns {undeclared} are not in the schema; "
                "features may only use declared columns (see microdata/schemas.py)"
            )
        path = self._path(table)
        try:
            _check_columns(path, table, cols)
            if year is None and years is None:
                data = pq.read_table(path, columns=cols)
            else:
                lo, hi = (year, year) if year is not None else years  # type: ignore[misc]
                dataset = ds.dataset(path, format="parquet")
                flt = (ds.field("year") >= lo) & (ds.field("year") <= hi)
                data = dataset.to_table(columns=cols, filter=flt)
        except (OSError, pa.ArrowInvalid) as exc:  # a truncated or non-Parquet file
            raise WorldFileError(
                f"{path}: column *: readable Parquet: cannot read ({exc}); fix: re-export the "
                "file or regenerate the world with `zicht generate --overwrite`"
            ) from exc
        for col in cols:
            nulls = data.column(col).null_count
            if nulls and not TABLES[table].columns[col].nullable:
                raise WorldFileError(
                    f"{path}: column {col}: not null: {nulls} empty value(s); fix: fill or drop "
                    "them (`zicht world validate` lists every problem)"
                )
        if ids is None:
            return data.to_pandas()
        recoded = {}
        for col in cols:
            unit = ID_COLUMNS.get(col)
            if unit is not None and unit in ids:
                recoded[col] = ids[unit].codes(id_array(data, path, col))
        data = data.drop_columns(list(recoded))
        frame = data.to_pandas()
        for col in cols:  # back in the order asked for
            if col in recoded:
                frame.insert(cols.index(col), col, recoded[col])
        required = [c for c in recoded if not TABLES[table].columns[c].nullable]
        if required:
            keep = np.logical_and.reduce([frame[c].to_numpy() >= 0 for c in required])
            if not keep.all():
                frame = frame[keep].reset_index(drop=True)
        return frame

    def id_spaces(self) -> dict[str, IdSpace]:
        """Every unit's :class:`IdSpace`, from the tables that define its ids."""
        out = {}
        for unit, sources in ID_SOURCES.items():
            parts = []
            for table, column in sources:
                path = self._path(table)
                try:
                    _check_columns(path, table, [column])
                    parts.append(id_array(pq.read_table(path, columns=[column]), path, column))
                except (OSError, pa.ArrowInvalid) as exc:
                    raise WorldFileError(
                        f"{path}: column *: readable Parquet: cannot read ({exc}); fix: "
                        "re-export the file or regenerate the world"
                    ) from exc
            allids = np.unique(np.concatenate(parts))
            out[unit] = IdSpace(allids[allids >= 0])
        return out


def _check_columns(path: Path, table: str, cols: list[str]) -> None:
    """Refuse a file that lacks one of *cols* or holds it with the wrong type (cheap: the
    Parquet schema only); values, keys and references are `zicht world validate`'s job."""
    from microdata.validate import column_family

    schema = pq.read_schema(path)
    for col in cols:
        want = TABLES[table].columns[col].family
        if col not in schema.names:
            raise WorldFileError(
                f"{path}: column {col}: column present: missing; fix: add column {col!r} "
                f"({want}) to the extract (`zicht world validate` lists every problem)"
            )
        found = column_family(schema.field(col).type)
        if found != want and not (want == "float" and found == "int"):
            raise WorldFileError(
                f"{path}: column {col}: type {want}: found {schema.field(col).type}; fix: cast "
                f"{col!r} to {want} (`zicht world validate` lists every problem)"
            )


def dense(
    ids: np.ndarray,
    values: np.ndarray | float | bool,
    size: int,
    fill: float | int = 0,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """An array of length *size* with ``out[ids] = values`` and *fill* elsewhere."""
    out = np.full(size, fill, dtype=dtype or np.asarray(values).dtype)
    out[np.asarray(ids, dtype=np.int64)] = values
    return out


def active_at(spells: pd.DataFrame, year: int) -> pd.DataFrame:
    """Rows of a spell table in force during *year* (``valid_from <= year <= valid_to``)."""
    vf = spells["valid_from"].to_numpy()
    vt = spells["valid_to"].to_numpy()
    return spells[(vf <= year) & (vt >= year)]


def codes(series: pd.Series, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Integer codes of a string/categorical column in the order of *vocabulary* (-1 unknown).

    Categorical columns (how dictionary-encoded Parquet arrives) are recoded through their
    categories only, so national tables are never turned into Python strings.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        lookup = {v: i for i, v in enumerate(vocabulary)}
        mapping = np.array(
            [lookup.get(str(c), -1) for c in series.cat.categories] + [-1], dtype=np.int8
        )
        return mapping[series.cat.codes.to_numpy()]  # code -1 (missing) maps to the last entry
    return np.asarray(pd.Categorical(series, categories=list(vocabulary)).codes, dtype=np.int8)
