"""Feature tables per task: one row per unit and reference year, guarded and schema-checked.

``build_task_year`` is pure (world frames in, DataFrame out). ``write_feature_table`` is the
file edge: it streams one reference year at a time into ``DATA/features/<task>.parquet``
through a temporary file, so a failed run leaves no half-written table.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq

from features import builders as b
from features.catalogue import CATALOGUE
from features.guard import check_copies, check_frame, check_selection
from features.world import WorldFileError, WorldReader
from microdata import params
from microdata.extract import AreasFileError, read_areas
from microdata.geography import neighbours
from microdata.io import generator_manifest

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
    "branch_turnover": ("cell_id", "year", "level", "area_code", "sbi", "riec_code", "label"),
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
    check_selection(features)
    snap = b.Snapshot(w, t - 1)
    if task == "jonge_aanwas":
        ids = b.person_population(snap)
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
        feats = b.cell_features(snap, cells)
        riec = w["areas"].set_index("area_code")["riec_code"].astype(str)
        meta = {
            "cell_id": (cells["area_code"] + "|" + cells["sbi"]).to_numpy(),
            "year": np.full(len(cells), t, np.int16),
            "level": cells["level"].to_numpy(),
            "area_code": cells["area_code"].to_numpy(),
            "sbi": cells["sbi"].to_numpy(),
            "riec_code": riec.reindex(cells["area_code"]).to_numpy(),
            "label": b.cell_labels(w, cells, t),
        }
    else:
        raise ValueError(f"unknown task {task!r}; choose hennep, jonge_aanwas or branch_turnover")
    frame = pd.DataFrame({**meta, **{f: feats[f] for f in features}})
    check_frame(frame, meta=META[task])
    return frame


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
        "label": label,
    }
    cols: dict[str, pa.Column] = {
        c: special.get(c, pa.Column(None, nullable=c == "wijk_code")) for c in META[task]
    }
    for f in features:
        cols[f] = pa.Column(np.float32, nullable=True, title=CATALOGUE[f].en)
    return pa.DataFrameSchema(cols, strict=True, ordered=True, name=f"features.{task}")


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
) -> Path:
    """Build every reference year of *task* and write it atomically to *out_path*.

    *audit* returns each feature's association with the protected attribute (the audit
    accessor's ``copy_scores``); a near-copy is refused before anything is written.
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
            try:
                frame = schema.validate(frame)
            except pa.errors.SchemaError as exc:  # a world the validator would reject
                raise WorldFileError(
                    f"{out_path}: column {exc.schema.name}: {str(exc).splitlines()[0]} "
                    f"(reference year {t}); the world's tables do not fit together; fix: run "
                    "`zicht world validate` and correct what it lists"
                ) from None
            table = pa_arrow.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema), row_group_size=1_000_000)
        if writer is not None:
            writer.close()
            writer = None
        os.replace(tmp, out_path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return out_path
