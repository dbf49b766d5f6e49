"""Paired bootstrap over gemeenten: uncertainty of model-vs-baseline and model-vs-oracle.

Gemeenten are resampled with replacement; a unit's weight is how often its gemeente was
drawn. All models are scored on the same resamples (paired), so the interval of a
difference reflects only how the models differ, not which gemeenten happened to be drawn.
Weighted AUC and R² avoid copying rows: one ranking per model, then O(n) per resample.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def weighted_auc(rank: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """AUC with unit weights; *rank* is the dense rank of each score (ties share a rank and
    count one half, as in the Mann-Whitney statistic)."""
    n = int(rank.max()) + 1
    pos = np.bincount(rank, weights=w * y, minlength=n)
    neg = np.bincount(rank, weights=w * (1 - y), minlength=n)
    below = np.cumsum(neg) - neg
    tp, tn = pos.sum(), neg.sum()
    if tp <= 0 or tn <= 0:
        return float("nan")
    return float(np.sum(pos * (below + 0.5 * neg)) / (tp * tn))


def weighted_r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    mean = np.sum(w * y) / np.sum(w)
    ss_res = np.sum(w * (y - pred) ** 2)
    ss_tot = np.sum(w * (y - mean) ** 2)
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def paired_bootstrap(
    y: np.ndarray,
    groups: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    kind: str,
    n_boot: int = 200,
    random_state: int = 0,
) -> dict[str, np.ndarray]:
    """The primary metric of every prediction set on *n_boot* paired gemeente resamples."""
    rng = np.random.default_rng(random_state)
    g_codes, g_idx = np.unique(groups, return_inverse=True)
    y = np.asarray(y, dtype=np.float64)
    ranks = {
        k: np.unique(np.asarray(v, dtype=np.float64), return_inverse=True)[1]
        for k, v in predictions.items()
    }
    out = {k: np.empty(n_boot) for k in predictions}
    for b in range(n_boot):
        draws = np.bincount(rng.integers(0, len(g_codes), len(g_codes)), minlength=len(g_codes))
        w = draws[g_idx].astype(np.float64)
        for k, pred in predictions.items():
            if kind == "binary":
                out[k][b] = weighted_auc(ranks[k], y, w)
            else:
                out[k][b] = weighted_r2(y, np.asarray(pred, dtype=np.float64), w)
    return out


def interval(samples: np.ndarray) -> tuple[float, float]:
    """95% percentile interval."""
    lo, hi = np.nanpercentile(samples, [2.5, 97.5])
    return float(lo), float(hi)
