"""Evaluation metrics exactly as CONTRACT.md defines them. Pure: arrays in, floats out.

Classification: ROC AUC, PR AUC, Brier (and its skill against the base rate), log loss, ECE
on 10 equal-count bins, capture@k (recall among the top k% of units by score), and PAI at
10% of land area (buurten ranked by predicted events per km²). Regression (turnover, on
log(1 + turnover per inhabitant)): RMSE, MAE and R², and anomaly precision/recall at k.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

EPS = 1e-12


def capture_at(y: np.ndarray, score: np.ndarray, k: float) -> float:
    """Share of all positives among the top *k* (fraction) of units by *score* (recall@k).

    Ties at the cut are broken by a stable order of the scores, so the top set has exactly
    ``ceil(k * n)`` units.
    """
    y = np.asarray(y)
    n_pos = y.sum()
    if n_pos == 0:
        return float("nan")
    top = int(np.ceil(k * len(y)))
    order = np.argsort(-np.asarray(score), kind="stable")[:top]
    return float(y[order].sum() / n_pos)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE on *bins* equal-count bins: the count-weighted mean |observed - predicted|."""
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, bins)
    n = len(p)
    return float(sum(len(b) / n * abs(y[b].mean() - p[b].mean()) for b in parts if len(b)))


def pai_at(
    y: np.ndarray,
    p: np.ndarray,
    buurt: np.ndarray,
    area_km2: Mapping[str, float],
    share: float = 0.10,
) -> float:
    """Predictive accuracy index at *share* of land area.

    Buurten are ranked by predicted events per km² (sum of *p* / land area); the top buurten
    that together cover *share* of the land area are taken (the last one partly, by its
    area); PAI = their share of all positives ÷ their share of the area.
    """
    df = pd.DataFrame({"buurt": buurt, "y": y, "p": p})
    g = df.groupby("buurt", sort=True).agg(y=("y", "sum"), p=("p", "sum"))
    g["area"] = pd.Series(area_km2).reindex(g.index).to_numpy(np.float64)
    g = g[g["area"] > 0]
    total_y, total_area = g["y"].sum(), g["area"].sum()
    if total_y == 0 or total_area == 0:
        return float("nan")
    g = g.assign(rate=g["p"] / g["area"]).sort_values("rate", ascending=False, kind="stable")
    budget = share * total_area
    cum_before = g["area"].cumsum() - g["area"]
    take = np.clip((budget - cum_before) / g["area"], 0.0, 1.0)
    caught = float((g["y"] * take).sum())
    return (caught / total_y) / share


def classification_metrics(
    y: np.ndarray,
    p: np.ndarray,
    *,
    buurt: np.ndarray | None = None,
    area_km2: Mapping[str, float] | None = None,
    oracle: np.ndarray | None = None,
) -> dict[str, float]:
    """The contract's classification metrics for labels *y* and probabilities *p*."""
    y = np.asarray(y).astype(np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    out: dict[str, float] = {}
    both = 0 < y.sum() < len(y)
    out["roc_auc"] = float(roc_auc_score(y, p)) if both else float("nan")
    out["pr_auc"] = float(average_precision_score(y, p)) if both else float("nan")
    out["brier"] = float(brier_score_loss(y, p))
    base = y.mean()
    ref = base * (1 - base)
    out["brier_skill"] = float(1 - out["brier"] / ref) if ref > 0 else float("nan")
    out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    out["ece"] = expected_calibration_error(y, p)
    for k, name in ((0.01, "1pct"), (0.05, "5pct"), (0.10, "10pct")):
        out[f"capture_at_{name}"] = capture_at(y, p, k)
    if buurt is not None and area_km2 is not None:
        out["pai_at_10pct"] = pai_at(y, p, buurt, area_km2)
    if oracle is not None and both:
        out["oracle_roc_auc"] = float(roc_auc_score(y, oracle))
        out["oracle_ratio"] = out["roc_auc"] / out["oracle_roc_auc"]
    return out


def regression_metrics(
    y: np.ndarray, pred: np.ndarray, *, oracle: np.ndarray | None = None
) -> dict[str, float]:
    """RMSE, MAE and R² on the log scale, and the oracle's R² when the truth is known."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(pred)
    out = {
        "rmse_log": float(np.sqrt(np.mean((y[ok] - pred[ok]) ** 2))),
        "mae_log": float(mean_absolute_error(y[ok], pred[ok])),
        "r2_log": float(r2_score(y[ok], pred[ok])),
    }
    if oracle is not None:
        o = np.asarray(oracle, dtype=np.float64)
        okk = ok & np.isfinite(o)
        out["oracle_r2_log"] = float(r2_score(y[okk], o[okk]))
    return out


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 · MAD): a z-score that a few anomalies cannot inflate."""
    x = np.asarray(x, dtype=np.float64)
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    return (x - med) / (mad if mad > 0 else EPS)


#: the largest size class of :func:`size_classes` (cells of 32 or more establishments)
TOP_SIZE_CLASS = 6
#: the fewest cells a size class needs for its own robust z; smaller classes join a neighbour
MIN_CLASS_CELLS = 30


def size_classes(n: np.ndarray) -> np.ndarray:
    """The size class of a cell of *n* establishments: 0 for none, then powers of two (1, 2-3,
    4-7, 8-15, 16-31, 32 or more: classes 1 to 6). The noise of a cell's turnover shrinks about
    as 1/sqrt(n), so cells in one class deviate about equally by chance."""
    n = np.nan_to_num(np.asarray(n, dtype=np.float64), nan=0.0)
    with np.errstate(divide="ignore"):
        cls = np.floor(np.log2(np.maximum(n, 1))) + 1
    return np.where(n >= 1, np.minimum(cls, TOP_SIZE_CLASS), 0).astype(np.int64)


def merged_classes(classes: np.ndarray, *, min_cells: int = MIN_CLASS_CELLS) -> np.ndarray:
    """*classes* (ordered integers) with every class of fewer than *min_cells* members joined
    to the next larger one (the last to the one before), so that each has a stable median and
    MAD; when all together are fewer than *min_cells*, one class."""
    classes = np.asarray(classes, dtype=np.int64)
    values, counts = np.unique(classes, return_counts=True)
    group = np.zeros(len(values), dtype=np.int64)
    g, filled = 0, 0
    for i, c in enumerate(counts):
        group[i] = g
        filled += c
        if filled >= min_cells:
            g, filled = g + 1, 0
    if filled and g > 0:  # the last classes fell short: they join the group before
        group[group == g] = g - 1
    return group[np.searchsorted(values, classes)]


def robust_z_within(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """:func:`robust_z` computed separately within each group of *groups*."""
    x = np.asarray(x, dtype=np.float64)
    groups = np.asarray(groups)
    z = np.full(len(x), np.nan)
    for g in np.unique(groups):
        m = groups == g
        z[m] = robust_z(x[m])
    return z


def anomaly_at_k(
    truth: np.ndarray, score: np.ndarray, k: int, *, among: np.ndarray | None = None
) -> tuple[float, float]:
    """Precision and recall of the *k* highest scores against the planted anomalies.

    With *among* (a subset of the anomalies, e.g. one kind), the recall is that subset's:
    the share of it among the *k* highest scores (the precision stays that of all *truth*).
    """
    truth = np.asarray(truth, dtype=bool)
    among = truth if among is None else np.asarray(among, dtype=bool) & truth
    if k <= 0 or truth.sum() == 0:
        return float("nan"), float("nan")
    order = np.argsort(
        -np.nan_to_num(np.asarray(score, dtype=np.float64), nan=-np.inf), kind="stable"
    )[:k]
    recall = among[order].sum() / among.sum() if among.any() else float("nan")
    return float(truth[order].sum() / k), float(recall)
