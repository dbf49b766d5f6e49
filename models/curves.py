"""Binned aggregates behind every evaluation plot: each point rests on >= ``min_count`` units.

Plots never see unit rows. These functions turn labels and scores into small tables of
aggregates (equal-count bins or quantile thresholds), and :mod:`reports.plots` draws only
such tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def calibration_bins(
    y: np.ndarray, p: np.ndarray, *, n_bins: int = 10, min_count: int = 10
) -> pd.DataFrame:
    """Mean prediction and observed rate in equal-count bins (at most ``len(y) // min_count``)."""
    n_bins = max(1, min(n_bins, len(p) // min_count))
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, n_bins)
    return pd.DataFrame(
        {
            "mean_predicted": [float(p[b].mean()) for b in parts],
            "observed_rate": [float(y[b].mean()) for b in parts],
            "units": [len(b) for b in parts],
        }
    )


def capture_curve(
    y: np.ndarray, p: np.ndarray, *, points: int = 50, min_count: int = 10
) -> pd.DataFrame:
    """Share of all events caught in the top share of units, on a grid of shares."""
    order = np.argsort(-p, kind="stable")
    cum = np.cumsum(y[order])
    total = max(cum[-1], 1)
    n = len(y)
    tops = np.unique(
        np.clip(np.round(np.linspace(0, 1, points + 1)[1:] * n).astype(int), min_count, n)
    )
    return pd.DataFrame(
        {"share_of_units": tops / n, "capture": cum[tops - 1] / total, "units": tops}
    )


def roc_pr_points(
    y: np.ndarray, p: np.ndarray, *, points: int = 50, min_count: int = 10
) -> pd.DataFrame:
    """ROC and precision-recall points at score-quantile thresholds (each step >= min_count)."""
    order = np.argsort(-p, kind="stable")
    ys = y[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    pos, neg = max(tp[-1], 1), max(fp[-1], 1)
    n = len(y)
    step = max(min_count, n // points)
    k = np.unique(np.r_[np.arange(step, n, step), n]) - 1
    return pd.DataFrame(
        {
            "units_above": k + 1,
            "fpr": fp[k] / neg,
            "tpr": tp[k] / pos,
            "precision": tp[k] / (k + 1),
            "recall": tp[k] / pos,
        }
    )
