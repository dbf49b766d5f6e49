"""Plots take binned aggregates only, and every mark rests on at least min_count units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import curves as C
from reports import plots


def _data(n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, n)
    return (rng.random(n) < p).astype(float), p


def test_curves_rest_on_min_count_units() -> None:
    y, p = _data()
    assert C.calibration_bins(y, p)["units"].min() >= 10
    assert C.capture_curve(y, p)["units"].min() >= 10
    pts = C.roc_pr_points(y, p)
    assert pts["units_above"].min() >= 10 and np.all(np.diff(pts["tpr"]) >= 0)
    assert C.calibration_bins(y[:25], p[:25])["units"].min() >= 10  # few units: fewer bins


def test_plots_draw_aggregates(tmp_path: Path) -> None:
    y, p = _data()
    assert (
        plots.calibration_plot(C.calibration_bins(y, p), tmp_path / "c.png", title="t")
        .stat()
        .st_size
        > 0
    )
    assert plots.capture_plot(C.capture_curve(y, p), tmp_path / "k.png", title="t").exists()
    assert plots.roc_pr_plot(C.roc_pr_points(y, p), tmp_path / "r.png", title="t").exists()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame({"mean_predicted": np.zeros(1000), "observed_rate": 0.0, "units": 10}),
            "rows",
        ),
        (
            pd.DataFrame(
                {"person_id": [1], "mean_predicted": [0.1], "observed_rate": [0.0], "units": [50]}
            ),
            "id",
        ),
        (
            pd.DataFrame({"mean_predicted": [0.1], "observed_rate": [1.0], "units": [1]}),
            "fewer than 10",
        ),
        (pd.DataFrame({"mean_predicted": [0.1], "observed_rate": [1.0]}), "units"),
    ],
)
def test_plots_refuse_unit_level_input(frame: pd.DataFrame, message: str, tmp_path: Path) -> None:
    with pytest.raises(plots.NotAggregateError, match=message):
        plots.calibration_plot(frame, tmp_path / "x.png", title="t")
    assert not (tmp_path / "x.png").exists()
