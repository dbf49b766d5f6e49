"""The feature table built on a Dask cluster, per partition of the units (gemeenten).

:func:`write_partitioned` is the cluster twin of :func:`features.tables.write_feature_table`
and writes the same file, byte for byte (same rows in the same order, same values, same
dtypes, same row groups, so the same SHA-256 in the stamp):

1. **pieces**: one task per reference year and group of gemeenten
   (:func:`plan_partitions`) builds the rows of the units in those gemeenten
   (:func:`features.tables.build_task_part`) and writes them, with each row's position in
   the whole year, as a Parquet piece into a staging folder beside the table;
2. **years**: one task per year puts its pieces in the order of the whole year, runs the
   table's schema over them (and, for the first year, the protected-attribute copy audit)
   and writes the year as Parquet row groups of :data:`~features.tables.ROW_GROUP_ROWS`;
3. **the table**: the client streams those row groups, one at a time, into the table, then
   checks the values and writes the stamp exactly as the single-machine build does.

Every feature of a unit is computed from the whole world (parents and siblings anywhere,
neighbouring buurten across a gemeente border, area indicators), so every worker holds the
world's tables in memory (read once per worker and build) and the snapshot of the year it
builds; the partitions split the units, not the world. Workers must reach the world and
``DATA/features`` at the paths the client uses (``docs/distributed.md``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import builders as b
from features.guard import check_copies, check_selection
from features.tables import (
    ROW_GROUP_ROWS,
    build_task_part,
    feature_schema,
    finish_feature_table,
    load_world,
    world_years,
    year_table,
)
from microdata.extract import read_areas

#: gemeenten per partition (342 gemeenten: 14 partitions a year at national scale)
GEMEENTEN_PER_PARTITION = 25
_POSITION = "__position"

#: per worker process: the world of the current build and the snapshot of the last year
_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class Partition:
    """The units of reference year *year* in *gemeenten* ("" = units without a buurt)."""

    year: int
    index: int
    gemeenten: tuple[str, ...]


def plan_partitions(
    world_dir: Path, years: Sequence[int], *, gemeenten_per_partition: int
) -> list[Partition]:
    """Per year, the gemeenten in code order, *gemeenten_per_partition* at a time; units
    without a known buurt go with the last group."""
    if gemeenten_per_partition < 1:
        raise ValueError(f"gemeenten_per_partition must be >= 1, got {gemeenten_per_partition}")
    areas = read_areas(Path(world_dir) / "areas.parquet", ["area_code", "level"])
    codes = sorted(areas.loc[areas["level"] == "gemeente", "area_code"].astype(str))
    k = gemeenten_per_partition
    groups = [tuple(codes[i : i + k]) for i in range(0, len(codes), k)] or [()]
    groups[-1] = (*groups[-1], "")
    return [Partition(t, i, g) for t in years for i, g in enumerate(groups)]


def _world(world_dir: str, build: str) -> b.WorldFrames:
    """The world of build *build* in this worker process (read once per build)."""
    if _CACHE.get("build") != build:
        _CACHE.clear()
        _CACHE["world"] = load_world(Path(world_dir))
        _CACHE["build"] = build
    return _CACHE["world"]


def _snapshot(w: b.WorldFrames, build: str, y: int) -> b.Snapshot:
    if _CACHE.get("snapshot_key") != (build, y):
        _CACHE.pop("snapshot", None)
        _CACHE["snapshot"] = b.Snapshot(w, y)
        _CACHE["snapshot_key"] = (build, y)
    return _CACHE["snapshot"]


def build_piece(
    world_dir: str,
    build: str,
    task: str,
    features: Sequence[str],
    window: int,
    part: Partition,
    staging: str,
) -> str:
    """On a worker: write the rows of *part* (with their position in the year) as a Parquet
    piece into *staging*; returns its path."""
    w = _world(world_dir, build)
    rows = build_task_part(
        w,
        task,
        part.year,
        features,
        window=window,
        gemeenten=part.gemeenten,
        snapshot=_snapshot(w, build, part.year - 1),
    )
    # the pandas metadata of the table describes the frame (as the single-machine build's
    # does); the position column is added after it and dropped again before the year is
    # written
    table = pa.Table.from_pandas(rows.frame, preserve_index=False)
    table = table.append_column(_POSITION, pa.array(rows.positions, pa.int64()))
    path = Path(staging) / f"piece-{part.year}-{part.index:05d}.parquet"
    pq.write_table(table, path)
    return str(path)


def merge_year(
    world_dir: str,
    build: str,
    task: str,
    features: Sequence[str],
    year: int,
    pieces: Sequence[str],
    out_path: str,
    staging: str,
    audit: Callable[[b.WorldFrames, pd.DataFrame], dict[str, float]] | None = None,
    copy_threshold: float = 0.9,
) -> str:
    """On a worker: the pieces of *year* in the whole year's order, checked by the table's
    schema (and the copy audit when *audit* is given), as Parquet row groups; returns the
    path of the year's file."""
    table = pa.concat_tables([pq.read_table(p) for p in pieces])
    positions = table.column(_POSITION).to_numpy()
    order = np.argsort(positions, kind="stable")
    if not np.array_equal(positions[order], np.arange(len(positions))):
        raise RuntimeError(f"reference year {year}: the partitions do not cover its units once")
    table = table.take(pa.array(order)).drop_columns([_POSITION]).combine_chunks()
    frame = table.to_pandas()
    if audit is not None:
        check_copies(audit(_world(world_dir, build), frame), threshold=copy_threshold)
    year_table(feature_schema(task, features), frame, Path(out_path), year)  # refuses or passes
    path = Path(staging) / f"year-{year}.parquet"
    with pq.ParquetWriter(path, table.schema, compression="zstd") as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    for p in pieces:
        Path(p).unlink(missing_ok=True)
    return str(path)


def write_partitioned(
    client: Any,
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
    gemeenten_per_partition: int = GEMEENTEN_PER_PARTITION,
) -> Path:
    """:func:`features.tables.write_feature_table` on the Dask cluster of *client*: the
    same arguments, the same table and stamp. Nothing is written to *out_path* unless every
    partition succeeded; the staging folder is removed either way."""
    check_selection(features)
    world_dir, out_path = Path(world_dir), Path(out_path)
    progress("planning the partitions")
    wy = world_years(world_dir)
    years = list(years) if years is not None else wy.reference_years(task)
    parts = plan_partitions(world_dir, years, gemeenten_per_partition=gemeenten_per_partition)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{out_path.name}.parts-", dir=out_path.parent)
    build = uuid.uuid4().hex  # a fresh world read per build: the world may have changed
    feats = list(features)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    futures: list[Any] = []
    try:
        pieces = {
            p: client.submit(
                build_piece, str(world_dir), build, task, feats, wy.window, p, staging, pure=False
            )
            for p in parts
        }
        futures += list(pieces.values())
        merged = [
            client.submit(
                merge_year,
                str(world_dir),
                build,
                task,
                feats,
                t,
                [f for p, f in pieces.items() if p.year == t],
                str(out_path),
                staging,
                audit if t == years[0] else None,
                copy_threshold,
                pure=False,
            )
            for t in years
        ]
        futures += merged
        writer: pq.ParquetWriter | None = None
        try:
            for t, fut in zip(years, merged, strict=True):
                year_file = pq.ParquetFile(fut.result())
                progress(f"year {t}")
                if writer is None:
                    writer = pq.ParquetWriter(tmp, year_file.schema_arrow, compression="zstd")
                for i in range(year_file.num_row_groups):
                    group = year_file.read_row_group(i)
                    writer.write_table(group.cast(writer.schema), row_group_size=ROW_GROUP_ROWS)
        finally:
            if writer is not None:
                writer.close()
        finish_feature_table(tmp, out_path, task, feats, world_dir, years, config)
    finally:
        client.cancel(futures)
        tmp.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return out_path
