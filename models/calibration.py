"""Monotone calibration fitted on binned aggregates, so it stores no unit's label.

A plain isotonic fit on unit-level scores can end in a block of one unit, whose threshold
pair (score, 0 or 1) is that unit's label: a disclosure inside a logged model. Here the
out-of-fold scores are first pooled into equal-count bins of at least ``min_count`` units,
and the isotonic map is fitted on the bins' mean score and event rate, weighted by size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression

from models.metrics import Ranked


class BinnedIsotonicCalibrator(BaseEstimator):
    """Isotonic map from score to probability, fitted on bins of >= ``min_count`` units."""

    def __init__(self, min_count: int = 10, max_bins: int = 200) -> None:
        self.min_count = min_count
        self.max_bins = max_bins

    def fit(self, scores: np.ndarray, y: np.ndarray) -> BinnedIsotonicCalibrator:
        return self.fit_ranked(Ranked.of(y, scores))

    def fit_ranked(self, ranked: Ranked) -> BinnedIsotonicCalibrator:
        """:meth:`fit` on scores and labels already sorted (the evaluation's one sort)."""
        n_bins = int(max(1, min(self.max_bins, len(ranked) // max(self.min_count, 1))))
        units, sum_score, sum_y = ranked.bins(n_bins)
        self.bin_score_ = sum_score / units
        self.bin_rate_ = sum_y / units
        self.bin_count_ = units.astype(np.int64)
        self.isotonic_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        self.isotonic_.fit(self.bin_score_, self.bin_rate_, sample_weight=self.bin_count_)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return self.isotonic_.predict(np.asarray(scores, dtype=np.float64))


def calibrator_from_bins(bins: pd.DataFrame, min_count: int = 10) -> BinnedIsotonicCalibrator:
    """Rebuild a calibrator from its logged bins (mean_score, event_rate, units)."""
    cal = BinnedIsotonicCalibrator(min_count=min_count)
    cal.bin_score_ = bins["mean_score"].to_numpy(np.float64)
    cal.bin_rate_ = bins["event_rate"].to_numpy(np.float64)
    cal.bin_count_ = bins["units"].to_numpy(np.int64)
    cal.isotonic_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    cal.isotonic_.fit(cal.bin_score_, cal.bin_rate_, sample_weight=cal.bin_count_)
    return cal
