"""Binned aggregates behind every evaluation plot: each point rests on >= ``min_count`` units.

Plots never see unit rows. These functions turn labels and scores into small tables of
aggregates (equal-count bins or quantile thresholds), and :mod:`reports.plots` draws only
such tables. They read the order of the scores from a :class:`~models.metrics.Ranked`
(``Ranked.of(y, p)``), so the evaluation sorts its out-of-fold scores once for the metrics,
the curves and the calibration map together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.metrics import Ranked


def calibration_bins(ranked: Ranked, *, n_bins: int = 10, min_count: int = 10) -> pd.DataFrame:
    """Mean prediction and observed rate in equal-count bins (at most ``len(y) // min_count``)."""
    n_bins = max(1, min(n_bins, len(ranked) // min_count))
    units, sum_p, sum_y = ranked.bins(n_bins)
    return pd.DataFrame(
        {
            "mean_predicted": sum_p / units,
            "observed_rate": sum_y / units,
            "units": units.astype(np.int64),
        }
    )


def capture_curve(ranked: Ranked, *, points: int = 50, min_count: int = 10) -> pd.DataFrame:
    """Share of all events caught in the top share of units, on a grid of shares."""
    cum = np.cumsum(ranked.y_descending())
    total = max(cum[-1], 1)
    n = len(ranked)
    tops = np.unique(
        np.clip(np.round(np.linspace(0, 1, points + 1)[1:] * n).astype(int), min_count, n)
    )
    return pd.DataFrame(
        {"share_of_units": tops / n, "capture": cum[tops - 1] / total, "units": tops}
    )


def roc_pr_points(ranked: Ranked, *, points: int = 50, min_count: int = 10) -> pd.DataFrame:
    """ROC and precision-recall points at score-quantile thresholds (each step >= min_count)."""
    ys = ranked.y_descending()
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    pos, neg = max(tp[-1], 1), max(fp[-1], 1)
    n = len(ranked)
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
