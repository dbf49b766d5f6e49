"""Read world tables for feature building, never touching a protected column.

:class:`WorldReader` is the only way the feature builders get data. It reads the columns
the schemas declare and refuses protected ones (marked in :mod:`microdata.schemas`, or
named like origin or migration background), so a protected column of a real extract cannot
reach a builder even when the file carries it. The audit accessor in
:mod:`features.audit` is the one place that reads protected columns, and it returns
aggregates only.

Also here: point-in-time helpers that give the state of every unit as of a year, from
spell tables (``valid_from``/``valid_to``), as dense arrays indexed by the unit id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
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
    ) -> pd.DataFrame:
        """Read *table* (declared columns only). ``year``/``years`` filter a ``year`` column.

        Dictionary-encoded string columns come back as pandas categoricals.
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
        return data.to_pandas()


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
