"""Record time-varying state as spells and events, in a way that streams at national scale.

The simulation keeps the *current* state of every unit in numpy arrays and tells a recorder
which units changed in which year. A recorder turns that into rows of a spell table
(``valid_from``/``valid_to``, both inclusive calendar years; an open spell has
``valid_to = OPEN_END``) or of an event table (one row per event, with its ``year``).

Rows are emitted to a :class:`Sink` in chunks, so no table has to be held whole in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np
import pyarrow as pa

#: ``valid_to`` of a spell that is still open at the end of the world's last year.
OPEN_END = 9999


class Sink(Protocol):
    """Receives table chunks; the io edge writes them to Parquet, tests keep them in memory."""

    def emit(self, table: str, chunk: pa.Table) -> None: ...


class MemorySink:
    """A sink that concatenates chunks in memory (for tests and small worlds)."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[pa.Table]] = {}

    def emit(self, table: str, chunk: pa.Table) -> None:
        self.chunks.setdefault(table, []).append(chunk)

    def table(self, name: str) -> pa.Table:
        return pa.concat_tables(self.chunks[name])

    def to_pandas(self, name: str):
        return self.table(name).to_pandas()


Encoder = Callable[[str, np.ndarray], pa.Array]


def _plain(_name: str, values: np.ndarray) -> pa.Array:
    return pa.array(values)


class SpellRecorder:
    """Tracks spells of one or more value columns per unit.

    Parameters
    ----------
    sink, table:
        Where finished spells go, and under which table name.
    id_column:
        Name of the unit id column (``person_id``, ``household_id`` …).
    values:
        Initial value arrays, one per column, indexed by unit id.
    start_year:
        ``valid_from`` of the initial spells.
    active:
        Optional predicate on the value arrays: spells whose values are inactive (for example
        "no debts") are not written. Sparse states stay sparse.
    drop:
        Value columns tracked but not written (a sparse flag that is always true when written).
    encode:
        Turns a value array into an Arrow array (for example integer codes to a dictionary
        array with category names).
    """

    def __init__(
        self,
        sink: Sink,
        table: str,
        *,
        id_column: str,
        values: Mapping[str, np.ndarray],
        start_year: int | np.ndarray,
        active: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None,
        encode: Encoder = _plain,
        flush_rows: int = 4_000_000,
        drop: tuple[str, ...] = (),
    ) -> None:
        self._sink = sink
        self._table = table
        self._id_column = id_column
        self._values = {k: np.asarray(v).copy() for k, v in values.items()}
        n = len(next(iter(self._values.values())))
        self._start = np.broadcast_to(np.asarray(start_year, dtype=np.int16), (n,)).copy()
        self._alive = np.ones(n, dtype=bool)
        self._active = active
        self._encode = encode
        self._flush_rows = flush_rows
        self._drop = drop
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0

    @property
    def values(self) -> Mapping[str, np.ndarray]:
        """The current values (read-only views)."""
        return self._values

    def grow(self, values: Mapping[str, np.ndarray], year: int) -> None:
        """Append new units (ids continue from the count) whose first spell starts in *year*."""
        m = len(next(iter(values.values())))
        for k in self._values:
            self._values[k] = np.concatenate([self._values[k], np.asarray(values[k])])
        self._start = np.concatenate([self._start, np.full(m, year, dtype=np.int16)])
        self._alive = np.concatenate([self._alive, np.ones(m, dtype=bool)])

    def update(self, idx: np.ndarray, new: Mapping[str, np.ndarray], year: int) -> None:
        """Set new values for units *idx* from *year* on; spells that really change are closed."""
        idx = np.asarray(idx)
        if idx.size == 0:
            return
        changed = np.zeros(idx.size, dtype=bool)
        for k, v in new.items():
            changed |= self._values[k][idx] != v
        changed &= self._alive[idx]
        idx = idx[changed]
        if idx.size == 0:
            return
        self._close(idx, year - 1)
        for k, v in new.items():
            self._values[k][idx] = np.asarray(v)[changed]
        self._start[idx] = year

    def restart(self, idx: np.ndarray, year: int) -> None:
        """Let the open spells of *idx* start no later than *year* (the unit existed earlier)."""
        idx = np.asarray(idx)
        self._start[idx] = np.minimum(self._start[idx], year)

    def end(self, idx: np.ndarray, year: int) -> None:
        """Close the spells of units *idx* with ``valid_to = year`` (death, dissolution)."""
        idx = np.asarray(idx)
        idx = idx[self._alive[idx]]
        self._close(idx, year)
        self._alive[idx] = False

    def finish(self) -> None:
        """Write every spell that is still open, with ``valid_to = OPEN_END``."""
        self._close(np.flatnonzero(self._alive), OPEN_END)
        self._flush()

    def _close(self, idx: np.ndarray, valid_to: int) -> None:
        if idx.size == 0:
            return
        rows = {k: v[idx] for k, v in self._values.items()}
        keep = self._start[idx] <= valid_to
        if self._active is not None:
            keep &= self._active(rows)
        if not keep.any():
            return
        chunk = {self._id_column: idx[keep].astype(np.int32)}
        chunk.update({k: v[keep] for k, v in rows.items() if k not in self._drop})
        chunk["valid_from"] = self._start[idx][keep]
        chunk["valid_to"] = np.full(int(keep.sum()), valid_to, dtype=np.int16)
        self._pending.append(chunk)
        self._pending_rows += int(keep.sum())
        if self._pending_rows >= self._flush_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        cols = {k: np.concatenate([c[k] for c in self._pending]) for k in self._pending[0]}
        order = np.lexsort((cols["valid_from"], cols[self._id_column]))
        arrays = {k: self._encode(k, v[order]) for k, v in cols.items()}
        self._sink.emit(self._table, pa.table(arrays))
        self._pending = []
        self._pending_rows = 0


class EventRecorder:
    """Collects dated events (one row each) and emits them in year order."""

    def __init__(self, sink: Sink, table: str, *, encode: Encoder = _plain) -> None:
        self._sink = sink
        self._table = table
        self._encode = encode

    def record(self, year: int, **columns: np.ndarray) -> None:
        """Emit the events of one year; columns are arrays of equal length."""
        n = len(next(iter(columns.values())))
        if n == 0:
            return
        first = next(iter(columns))
        order = np.argsort(columns[first], kind="stable")
        arrays = {k: self._encode(k, np.asarray(v)[order]) for k, v in columns.items()}
        arrays["year"] = pa.array(np.full(n, year, dtype=np.int16))
        self._sink.emit(self._table, pa.table(arrays))
