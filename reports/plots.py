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


def shap_axis(output: str) -> str:
    """The unit of SHAP values on an axis: ``log-odds`` for a classifier's raw score."""
    return {
        "log-odds": "log-odds",
        "probability": "probability",
        "raw": "raw model output",
    }.get(output, output)


def shap_importance_plot(
    importance: pd.DataFrame,
    path: Path,
    *,
    title: str,
    top: int = 20,
    min_count: int = 10,
    output: str = "log-odds",
) -> Path:
    """Bar chart of mean |SHAP| per feature (``feature``, ``mean_abs_shap``, ``units``)."""
    require_aggregate(importance, count="units", min_count=min_count)
    shown = importance.nsmallest(top, "rank") if "rank" in importance else importance.head(top)
    shown = shown.iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(shown) + 1.2), dpi=110)
    ax.barh(shown["feature"], shown["mean_abs_shap"], color="#3b6ea8")
    ax.set(xlabel=f"mean |SHAP| ({shap_axis(output)})", title=title)
    return _save(fig, path)


def _is_category(part: pd.DataFrame) -> pd.Series:
    if "category" not in part.columns:
        return pd.Series(False, index=part.index)
    return part["category"].notna() & (part["category"].astype(str) != "")


def shap_summary_plot(
    binned: pd.DataFrame,
    path: Path,
    *,
    title: str,
    order: list[str],
    min_count: int = 10,
    output: str = "log-odds",
) -> Path:
    """A binned beeswarm: per feature, one mark per value bin at the bin's mean SHAP.

    Numeric features: colour is the bin's position in the feature's values (low blue, high
    red), size the bin's units. Categorical features (rows with a ``category``): one grey
    diamond per category, which has no low or high. A cross marks the missing values. A
    legend explains the marks. Every mark rests on at least *min_count* units.
    """
    from matplotlib.lines import Line2D

    require_aggregate(binned, count="units", min_count=min_count)
    feats = [f for f in order if f in set(binned["feature"])][::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(feats) + 1.8), dpi=110)
    cmap = plt.get_cmap("coolwarm")
    biggest = float(binned["units"].max())
    categorical = _is_category(binned)
    for y, f in enumerate(feats):
        on = binned["feature"] == f
        known = binned[on & (binned["bin"] >= 0) & ~categorical]
        ax.scatter(
            known["shap_mean"],
            [y] * len(known),
            c=cmap(known["value_rank"].to_numpy()),
            s=20 + 180 * known["units"].to_numpy() / biggest,
            edgecolors="0.3",
            linewidths=0.3,
        )
        cats = binned[on & (binned["bin"] >= 0) & categorical]
        ax.scatter(
            cats["shap_mean"],
            [y] * len(cats),
            marker="D",
            color="0.55",
            s=14 + 120 * cats["units"].to_numpy() / biggest,
            edgecolors="0.2",
            linewidths=0.3,
        )
        missing = binned[on & (binned["bin"] < 0)]
        ax.scatter(missing["shap_mean"], [y] * len(missing), marker="x", color="0.4", s=25)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_yticks(range(len(feats)), feats)
    ax.set(
        xlabel=f"mean SHAP per bin ({shap_axis(output)}); right of 0 raises the score",
        title=title,
    )
    handles = [
        Line2D([], [], marker="o", ls="", color=cmap(0.85), mec="0.3", label="value bin"),
        Line2D([], [], marker="D", ls="", color="0.55", mec="0.2", label="category (no order)"),
        Line2D([], [], marker="x", ls="", color="0.4", label="missing values"),
    ]
    sm = plt.cm.ScalarMappable(cmap=cmap)
    bar = fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.02)
    bar.set_ticks([0, 1], labels=["low", "high"])
    bar.set_label("value bin")
    legend_in = 0.6  # inches kept free below the axes for the legend
    fig.tight_layout(rect=(0, legend_in / fig.get_figheight(), 1, 1))
    fig.legend(
        handles=handles,
        title=f"one mark per bin of ≥ {min_count} units; size: units in the bin",
        loc="lower center",
        ncol=3,
        frameon=False,
        fontsize=8,
        title_fontsize=8,
    )
    return _save(fig, path, tight=False)


def shap_dependence_plot(
    binned: pd.DataFrame,
    path: Path,
    *,
    feature: str,
    title: str,
    min_count: int = 10,
    output: str = "log-odds",
) -> Path:
    """Mean SHAP per value bin of one feature, with a ±1 SD band (binned aggregates).

    A categorical feature (rows with a ``category``) gets one point with a ±1 SD bar per
    category, labelled by name and not joined by a line: categories have no order.
    """
    part = binned[(binned["feature"] == feature) & (binned["bin"] >= 0)]
    require_aggregate(part, count="units", min_count=min_count)
    unit = shap_axis(output)
    if _is_category(part).all() and len(part):
        part = part.sort_values("shap_mean", kind="stable")
        fig, ax = plt.subplots(figsize=(5.6, 3.2 + 0.12 * len(part)), dpi=110)
        pos = range(len(part))
        ax.errorbar(
            part["shap_mean"],
            list(pos),
            xerr=part["shap_sd"],
            fmt="D",
            color="#3b6ea8",
            ecolor="#9fb8d8",
            capsize=2,
            label="mean SHAP per category, ±1 SD",
        )
        ax.set_yticks(list(pos), part["category"].astype(str))
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set(xlabel=f"SHAP ({unit})", ylabel=f"{feature} (category)", title=title)
        ax.legend(frameon=False, fontsize=8, loc="lower right")
        return _save(fig, path)
    fig, ax = plt.subplots(figsize=(4.8, 3.6), dpi=110)
    x, m, sd = part["value_mean"], part["shap_mean"], part["shap_sd"]
    ax.fill_between(x, m - sd, m + sd, color="#3b6ea8", alpha=0.2, label="±1 SD within bin")
    ax.plot(x, m, "o-", color="#3b6ea8", label="mean SHAP per value bin")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xlabel=f"{feature} (bin mean)", ylabel=f"SHAP ({unit})", title=title)
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path, *, tight: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path
