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


def anomaly_at_k(truth: np.ndarray, score: np.ndarray, k: int) -> tuple[float, float]:
    """Precision and recall of the *k* highest scores against the planted anomalies."""
    truth = np.asarray(truth, dtype=bool)
    if k <= 0 or truth.sum() == 0:
        return float("nan"), float("nan")
    order = np.argsort(
        -np.nan_to_num(np.asarray(score, dtype=np.float64), nan=-np.inf), kind="stable"
    )[:k]
    hits = truth[order].sum()
    return float(hits / k), float(hits / truth.sum())
