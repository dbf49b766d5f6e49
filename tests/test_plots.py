"""Plots take binned aggregates only, and every mark rests on at least min_count units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import curves as C
from models.metrics import Ranked
from reports import plots


def _data(n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, n)
    return (rng.random(n) < p).astype(float), p


def test_curves_rest_on_min_count_units() -> None:
    y, p = _data()
    ranked = Ranked.of(y, p)
    assert C.calibration_bins(ranked)["units"].min() >= 10
    assert C.capture_curve(ranked)["units"].min() >= 10
    pts = C.roc_pr_points(ranked)
    assert pts["units_above"].min() >= 10 and np.all(np.diff(pts["tpr"]) >= 0)
    few = Ranked.of(y[:25], p[:25])
    assert C.calibration_bins(few)["units"].min() >= 10  # few units: fewer bins


def test_plots_draw_aggregates(tmp_path: Path) -> None:
    ranked = Ranked.of(*_data())
    cal = plots.calibration_plot(C.calibration_bins(ranked), tmp_path / "c.png", title="t")
    assert cal.stat().st_size > 0
    assert plots.capture_plot(C.capture_curve(ranked), tmp_path / "k.png", title="t").exists()
    assert plots.roc_pr_plot(C.roc_pr_points(ranked), tmp_path / "r.png", title="t").exists()


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
