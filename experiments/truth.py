"""Read the planted truth for evaluation (benchmarks and evaluation only; never features).

Aligns the oracle with the rows of a feature table: the true probability for the two
classification tasks, and for turnover the expected log(1 + turnover per inhabitant) and
which kind of anomaly (``spike``, ``front``) was planted in the cell that year, if any. A
real extract has no truth: everything here returns ``None`` then, and the ``oracle_*``
metrics are left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def truth_of(world_dir: Path) -> Path | None:
    """The truth beside *world_dir* (``../truth``) when it was generated with that very world
    (its manifest's ``world_fingerprint``), else None: a truth never scores another world."""
    from microdata.io import data_fingerprint

    truth = Path(world_dir).parent / "truth"
    manifest = truth / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if doc.get("world_fingerprint") != data_fingerprint(Path(world_dir)):
        return None
    return truth


def oracle_for(
    task: str, frame: pd.DataFrame, world_dir: Path
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(oracle, anomalous) aligned with *frame*'s rows, or (None, None) without the truth of
    the world in *world_dir*.

    For turnover, *anomalous* holds the kind of planted anomaly per row (``""`` where none);
    a truth of generator 1.1 or older records no kinds and gives booleans instead.
    """
    truth = truth_of(world_dir)
    if truth is None:
        return None, None
    if task == "hennep":
        t = pq.read_table(
            truth / "hennep_probability.parquet", columns=["dwelling_id", "year", "probability"]
        )
        key = ["dwelling_id", "year"]
    elif task == "jonge_aanwas":
        t = pq.read_table(
            truth / "jonge_aanwas_probability.parquet", columns=["person_id", "year", "probability"]
        )
        key = ["person_id", "year"]
    else:
        path = truth / "turnover_cells.parquet"
        has_kind = "kind" in pq.read_schema(path).names
        cells = pd.read_parquet(
            path,
            columns=["level", "area_code", "sbi", "year", "expected_turnover", "anomalous"]
            + ["kind"] * has_kind,
        )
        stats = pd.read_parquet(
            Path(world_dir) / "area_stats.parquet",
            columns=["area_code", "year", "inhabitants"],
        )
        cells = cells.merge(stats, on=["area_code", "year"], how="left")
        with np.errstate(divide="ignore", invalid="ignore"):
            cells["oracle"] = np.where(
                cells["inhabitants"] > 0,
                np.log1p(cells["expected_turnover"] / cells["inhabitants"]),
                np.nan,
            )
        m = (
            frame[["area_code", "sbi", "year"]]
            .astype({"area_code": str, "sbi": str})
            .merge(
                cells.astype({"area_code": str, "sbi": str}),
                on=["area_code", "sbi", "year"],
                how="left",
            )
        )
        anomalous = m["anomalous"].fillna(False).to_numpy(bool)
        if has_kind:
            kind = m["kind"].astype(object).to_numpy()
            anomalous = np.where(anomalous, kind, "").astype(object)
        return m["oracle"].to_numpy(np.float64), anomalous
    return _align(frame[key[0]].to_numpy(), frame["year"].to_numpy(), t, key[0]), None


def _align(ids: np.ndarray, years: np.ndarray, truth: pa.Table, id_col: str) -> np.ndarray:
    """The truth's probability for every (id, year) row, NaN where the truth has none.

    A sorted int64 key and a binary search instead of a DataFrame merge: at national scale
    both sides hold 70-90 million rows, and a merge's hash tables would need several GiB.
    """

    def key(i: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.int64) << 32 | np.asarray(i, dtype=np.int64)

    t_key = key(truth[id_col].to_numpy(), truth["year"].to_numpy())
    prob = truth["probability"].to_numpy().astype(np.float64)
    del truth
    order = np.argsort(t_key, kind="stable")
    t_key, prob = t_key[order], prob[order]
    del order
    want = key(ids, years)
    pos = np.clip(np.searchsorted(t_key, want), 0, len(t_key) - 1)
    found = t_key[pos] == want
    return np.where(found, prob[pos], np.nan)
