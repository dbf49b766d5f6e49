"""Benchmark: the evaluation's classification metrics with one shared sort against the
per-metric path they replaced (sklearn calls, a sort per metric and fold, PAI on strings).

Synthetic out-of-fold scores with ties (rounded to 4 decimals, as boosters' scores cluster),
a rare label (0.5%, like hennep), an oracle score, and buurt codes as a categorical column
(14,000 buurten). Two measurements per size:

* **one call**: the metrics of one set of *n* units (a fold or a hold-out year), the old
  ``classification_metrics`` against ``Ranked.of`` + ``ranked_metrics``;
* **evaluation**: what ``models.evaluation.evaluate`` computes from its scores for *n*
  training rows in 5 gemeente-sized folds: the metrics of every fold, the three curve tables
  and the calibration bins (old: a sort per metric, fold and curve; new: one sort of the
  scores and one of the oracle, folds as subsets).

Both paths must give the same values (checked to 1e-9); times are CPU seconds of this
process (``time.process_time``, less disturbed than wall time by other work on a shared
machine) and wall seconds. Results as a markdown table, to ``benchmarks/results/metrics.md``.

    .venv/bin/python benchmarks/metrics.py [--rows 1000000 5000000 14000000] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from models import curves as C
from models import metrics as M
from models.calibration import BinnedIsotonicCalibrator

N_FOLDS = 5
N_BUURTEN = 14_000


# ------------------------------------------------ the per-metric path (before the shared sort)


def ref_capture_at(y: np.ndarray, score: np.ndarray, k: float) -> float:
    n_pos = y.sum()
    if n_pos == 0:
        return float("nan")
    top = int(np.ceil(k * len(y)))
    order = np.argsort(-np.asarray(score), kind="stable")[:top]
    return float(y[order].sum() / n_pos)


def ref_ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, bins)
    n = len(p)
    return float(sum(len(b) / n * abs(y[b].mean() - p[b].mean()) for b in parts if len(b)))


def ref_pai(
    y: np.ndarray, p: np.ndarray, buurt: np.ndarray, area_km2: Mapping[str, float]
) -> float:
    df = pd.DataFrame({"buurt": buurt, "y": y, "p": p})
    g = df.groupby("buurt", sort=True).agg(y=("y", "sum"), p=("p", "sum"))
    g["area"] = pd.Series(area_km2).reindex(g.index).to_numpy(np.float64)
    g = g[g["area"] > 0]
    total_y, total_area = g["y"].sum(), g["area"].sum()
    if total_y == 0 or total_area == 0:
        return float("nan")
    g = g.assign(rate=g["p"] / g["area"]).sort_values("rate", ascending=False, kind="stable")
    cum_before = g["area"].cumsum() - g["area"]
    take = np.clip((0.1 * total_area - cum_before) / g["area"], 0.0, 1.0)
    return float((g["y"] * take).sum() / total_y) / 0.1


def ref_classification_metrics(
    y: np.ndarray,
    p: np.ndarray,
    *,
    buurt: np.ndarray,
    area_km2: Mapping[str, float],
    oracle: np.ndarray,
) -> dict[str, float]:
    """``models.metrics.classification_metrics`` as it was: a sort per metric."""
    y = np.asarray(y).astype(np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), M.EPS, 1 - M.EPS)
    out: dict[str, float] = {}
    both = 0 < y.sum() < len(y)
    out["roc_auc"] = float(roc_auc_score(y, p)) if both else float("nan")
    out["pr_auc"] = float(average_precision_score(y, p)) if both else float("nan")
    out["brier"] = float(brier_score_loss(y, p))
    base = y.mean()
    ref = base * (1 - base)
    out["brier_skill"] = float(1 - out["brier"] / ref) if ref > 0 else float("nan")
    out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    out["ece"] = ref_ece(y, p)
    for k, name in ((0.01, "1pct"), (0.05, "5pct"), (0.10, "10pct")):
        out[f"capture_at_{name}"] = ref_capture_at(y, p, k)
    out["pai_at_10pct"] = ref_pai(y, p, buurt, area_km2)
    if both:
        out["oracle_roc_auc"] = float(roc_auc_score(y, oracle))
        out["oracle_ratio"] = out["roc_auc"] / out["oracle_roc_auc"]
    return out


def ref_curves(y: np.ndarray, p: np.ndarray) -> list[np.ndarray]:
    """The three curve tables and the calibration bins as they were: a sort each."""
    out = []
    order = np.argsort(p, kind="stable")  # calibration_bins
    out.append(np.array([p[b].mean() for b in np.array_split(order, 10)]))
    out.append(np.cumsum(y[np.argsort(-p, kind="stable")]))  # capture_curve
    out.append(np.cumsum(y[np.argsort(-p, kind="stable")]))  # roc_pr_points
    order = np.argsort(p, kind="stable")  # the calibrator's bins
    out.append(np.array([p[b].mean() for b in np.array_split(order, min(200, len(p) // 10))]))
    return out


# ------------------------------------------------------------------------------ the benchmark


def synthetic(n: int, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    logit = rng.normal(-6.0, 1.3, n)
    truth = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < truth).astype(np.int64)
    p = np.round(1 / (1 + np.exp(-(logit + rng.normal(0, 0.8, n)))), 4)  # ties
    names = np.array([f"BU{i:08d}" for i in rng.permutation(N_BUURTEN)], dtype=object)
    buurt = pd.Categorical.from_codes(rng.integers(0, N_BUURTEN, n), categories=names)
    area = dict(zip(names, rng.uniform(0.05, 20.0, N_BUURTEN), strict=True))
    gemeente = rng.integers(0, 342, n)  # folds by gemeente, as GroupKFold would
    folds = gemeente % N_FOLDS
    return {
        "y": y,
        "p": p,
        "oracle": truth,
        "buurt": pd.Series(buurt),
        "area": area,
        "folds": folds,
    }


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def one_call_old(d: dict) -> dict[str, float]:
    buurt = np.asarray(d["buurt"].astype(str), dtype=object)
    return ref_classification_metrics(
        d["y"], d["p"], buurt=buurt, area_km2=d["area"], oracle=d["oracle"]
    )


def one_call_new(d: dict) -> dict[str, float]:
    ranked = M.Ranked.of(d["y"], np.clip(d["p"], M.EPS, 1 - M.EPS))
    areas = M.AreaCodes.of(d["buurt"], d["area"])
    return M.ranked_metrics(ranked, areas=areas, oracle=M.Ranked.of(d["y"], d["oracle"]))


def evaluation_old(d: dict) -> list[object]:
    y, p, folds = d["y"], d["p"], d["folds"]
    buurt = np.asarray(d["buurt"].astype(str), dtype=object)  # _metric_columns, once
    out: list[object] = [
        ref_classification_metrics(
            y[f], p[f], buurt=buurt[f], area_km2=d["area"], oracle=d["oracle"][f]
        )
        for f in (folds == k for k in range(N_FOLDS))
    ]
    return out + ref_curves(y.astype(np.float64), p)


def evaluation_new(d: dict) -> list[object]:
    y, p, folds = d["y"], d["p"], d["folds"]
    areas = M.AreaCodes.of(d["buurt"], d["area"])
    ranked = M.Ranked.of(y, p)
    oracle = M.Ranked.of(y, d["oracle"])
    out: list[object] = []
    for k in range(N_FOLDS):
        f = folds == k
        sub = ranked.subset(f).clipped(M.EPS, 1 - M.EPS)
        out.append(M.ranked_metrics(sub, areas=areas, oracle=oracle.subset(f)))
    out.append(C.calibration_bins(ranked)["mean_predicted"].to_numpy())
    out.append(np.cumsum(ranked.y_descending()))
    out.append(C.roc_pr_points(ranked))
    out.append(BinnedIsotonicCalibrator(min_count=10).fit_ranked(ranked).bin_score_)
    return out


def same(a: dict[str, float], b: dict[str, float]) -> None:
    for k in a:
        x, z = a[k], b[k]
        if not (np.isnan(x) and np.isnan(z)) and abs(x - z) > 1e-9 * max(1.0, abs(x)):
            raise SystemExit(f"metric {k} differs: per-metric path {x}, shared sort {z}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 14_000_000])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/metrics.md"))
    args = ap.parse_args()
    rows = []
    for n in args.rows:
        d = synthetic(n)
        old1, cpu_o1, wall_o1 = timed(lambda d=d: one_call_old(d))
        new1, cpu_n1, wall_n1 = timed(lambda d=d: one_call_new(d))
        same(old1, new1)
        old_e, cpu_oe, wall_oe = timed(lambda d=d: evaluation_old(d))
        new_e, cpu_ne, wall_ne = timed(lambda d=d: evaluation_new(d))
        for a, b in zip(old_e[:N_FOLDS], new_e[:N_FOLDS], strict=True):
            same(a, b)  # type: ignore[arg-type]
        np.testing.assert_allclose(old_e[N_FOLDS], new_e[N_FOLDS], rtol=1e-9)
        np.testing.assert_array_equal(old_e[N_FOLDS + 1], new_e[N_FOLDS + 1])
        np.testing.assert_allclose(old_e[N_FOLDS + 3], new_e[N_FOLDS + 3], rtol=1e-9)
        for what, co, wo, cn, wn in (
            ("one call", cpu_o1, wall_o1, cpu_n1, wall_n1),
            (f"evaluation, {N_FOLDS} folds + curves", cpu_oe, wall_oe, cpu_ne, wall_ne),
        ):
            rows.append((n, what, co, cn, wo, wn))
            print(f"{n:>12,} {what:<30} CPU {co:8.2f} s -> {cn:7.2f} s ({co / cn:5.1f}x)")
        del d, old_e, new_e
    load = os.getloadavg()
    lines = [
        "# Classification metrics: one shared sort against a sort per metric",
        "",
        "`.venv/bin/python benchmarks/metrics.py --rows "
        + " ".join(str(n) for n in args.rows)
        + "`",
        "",
        f"{os.cpu_count()} cores, shared: load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1 / 5 / 15 min) when it ended, so wall times are upper bounds; CPU "
        "seconds are this process's. Old: the per-metric path (sklearn `roc_auc_score`, "
        "`average_precision_score`, `brier_score_loss`, `log_loss`, a stable sort each for "
        "ECE and the three capture@k, PAI grouped on buurt strings, and a sort per curve "
        "table and for the calibration bins). New: `models.metrics.Ranked` (one sort per "
        "score), PAI by `bincount` on integer buurt codes. Both give the same values (checked "
        "to 1e-9 relative). Scores are rounded to 4 decimals (ties); 0.5% positives; "
        f"{N_BUURTEN:,} buurten; {N_FOLDS} folds.",
        "",
        "| rows | what | CPU s, old | CPU s, new | speed-up (CPU) | wall s, old | wall s, new "
        "| speed-up (wall) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, what, co, cn, wo, wn in rows:
        lines.append(
            f"| {n:,} | {what} | {co:.2f} | {cn:.2f} | {co / cn:.1f}x | {wo:.2f} | {wn:.2f} "
            f"| {wo / wn:.1f}x |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
