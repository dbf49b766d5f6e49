"""Paired bootstrap over gemeenten: uncertainty of model-vs-baseline and model-vs-oracle.

Gemeenten are resampled with replacement; a unit's weight is how often its gemeente was
drawn. All models are scored on the same resamples (paired), so the interval of a
difference reflects only how the models differ, not which gemeenten happened to be drawn.
Weighted AUC and R² avoid copying rows. AUC goes through a gemeente × gemeente matrix of
correctly ordered (positive, negative) pairs, built once per model; a resample's AUC is then
a quadratic form in the gemeente weights, exact and independent of the number of units (at
national scale, 70 million rows and 200 resamples). R² sums per gemeente the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


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


def auc_pairs(score: np.ndarray, y: np.ndarray, g_idx: np.ndarray, n_groups: int) -> np.ndarray:
    """``A[g, h]``: (positive in g, negative in h) pairs ordered correctly, ties counting a half.

    For unit weights constant within a gemeente, the weighted AUC is
    ``w @ A @ w / ((w @ P) * (w @ N))`` with P and N the positives and negatives per gemeente
    (:func:`weighted_auc` on the units gives the same value). One sort of the negatives per
    gemeente, and a binary search of every positive's score in it.
    """
    score = np.asarray(score, dtype=np.float64)
    pos = np.asarray(y) == 1
    p_score, p_group = score[pos], g_idx[pos]
    neg_score, neg_group = score[~pos], g_idx[~pos]
    order = np.lexsort((neg_score, neg_group))
    neg_score, neg_group = neg_score[order], neg_group[order]
    bounds = np.searchsorted(neg_group, np.arange(n_groups + 1))
    A = np.zeros((n_groups, n_groups))
    for h in range(n_groups):
        s_h = neg_score[bounds[h] : bounds[h + 1]]
        if not len(s_h):
            continue
        lo = np.searchsorted(s_h, p_score, side="left")
        hi = np.searchsorted(s_h, p_score, side="right")
        A[:, h] = np.bincount(p_group, weights=lo + 0.5 * (hi - lo), minlength=n_groups)
    return A


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
    g_idx, g_codes = pd.factorize(np.asarray(groups), sort=True)
    G = len(g_codes)
    y = np.asarray(y, dtype=np.float64)
    draws = np.stack(
        [np.bincount(rng.integers(0, G, G), minlength=G) for _ in range(n_boot)]
    ).astype(np.float64)  # (n_boot, G): how often each gemeente was drawn
    out: dict[str, np.ndarray] = {}
    if kind == "binary":
        P = np.bincount(g_idx, weights=y, minlength=G)
        N = np.bincount(g_idx, weights=1 - y, minlength=G)
        for k, pred in predictions.items():
            A = auc_pairs(pred, y, g_idx, G)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[k] = np.einsum("bg,gh,bh->b", draws, A, draws) / ((draws @ P) * (draws @ N))
        return out
    # R² = 1 - SS_res / SS_tot, both sums of per-gemeente moments weighted by the draws
    n_g = np.bincount(g_idx, minlength=G).astype(np.float64)
    sy = np.bincount(g_idx, weights=y, minlength=G)
    syy = np.bincount(g_idx, weights=y * y, minlength=G)
    wn, wsy, wsyy = draws @ n_g, draws @ sy, draws @ syy
    ss_tot = wsyy - wsy**2 / wn
    for k, pred in predictions.items():
        r = y - np.asarray(pred, dtype=np.float64)
        ss_res = draws @ np.bincount(g_idx, weights=r * r, minlength=G)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[k] = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.nan)
    return out


def interval(samples: np.ndarray) -> tuple[float, float]:
    """95% percentile interval."""
    lo, hi = np.nanpercentile(samples, [2.5, 97.5])
    return float(lo), float(hi)
