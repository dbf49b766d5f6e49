"""Plots drawn from binned aggregate tables only (never from unit rows).

Every function takes a small aggregate frame (see :mod:`models.curves`), checks that each
mark rests on at least ``min_count`` units, and writes a PNG. Matplotlib runs headless.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

MAX_ROWS = 500


class NotAggregateError(ValueError):
    """A plot was handed something that is not a binned aggregate table."""


def require_aggregate(frame: pd.DataFrame, *, count: str, min_count: int) -> None:
    """Refuse unit-level input: too many rows, an id column, or a mark under *min_count* units."""
    if len(frame) > MAX_ROWS:
        raise NotAggregateError(f"{len(frame)} rows: plots take binned aggregates, not unit rows")
    ids = [c for c in frame.columns if str(c).endswith("_id")]
    if ids:
        raise NotAggregateError(f"id column(s) {ids}: plots take binned aggregates only")
    if count not in frame.columns:
        raise NotAggregateError(
            f"no {count!r} column: each mark must say how many units it rests on"
        )
    if (frame[count] < min_count).any():
        raise NotAggregateError(f"a mark rests on fewer than {min_count} units")


def calibration_plot(bins: pd.DataFrame, path: Path, *, title: str, min_count: int = 10) -> Path:
    require_aggregate(bins, count="units", min_count=min_count)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    lim = max(bins["mean_predicted"].max(), bins["observed_rate"].max()) * 1.05
    ax.plot([0, lim], [0, lim], color="0.7", lw=1, label="perfect")
    ax.plot(bins["mean_predicted"], bins["observed_rate"], "o-", label="equal-count bins")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title=title)
    ax.legend(loc="upper left", frameon=False)
    return _save(fig, path)


def capture_plot(curve: pd.DataFrame, path: Path, *, title: str, min_count: int = 10) -> Path:
    require_aggregate(curve, count="units", min_count=min_count)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, label="random")
    ax.plot(curve["share_of_units"], curve["capture"], label="model")
    ax.set(
        xlabel="share of units, highest scores first",
        ylabel="share of events captured",
        title=title,
    )
    ax.legend(loc="lower right", frameon=False)
    return _save(fig, path)


def roc_pr_plot(points: pd.DataFrame, path: Path, *, title: str, min_count: int = 10) -> Path:
    require_aggregate(points, count="units_above", min_count=min_count)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4), dpi=110)
    a.plot([0, 1], [0, 1], color="0.7", lw=1)
    a.plot(points["fpr"], points["tpr"])
    a.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC")
    b.plot(points["recall"], points["precision"])
    b.set(xlabel="recall", ylabel="precision", title=f"{title}: precision-recall")
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path
