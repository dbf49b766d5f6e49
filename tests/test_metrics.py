"""The shared-sort metrics (models.metrics.Ranked) against sklearn and the plain definitions,
on random data with ties, one-class samples and subsets: one sort gives the same values as
a sort per metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from models import curves as C
from models import metrics as M
from models.calibration import BinnedIsotonicCalibrator


@st.composite
def labelled_scores(draw: st.DrawFn, min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and scores in [0, 1]: continuous, or from a few levels (many ties), with
    some values at or beyond the clipping bounds; sometimes a single class."""
    n = draw(st.integers(min_size, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    levels = draw(st.sampled_from([0, 2, 3, 7, 50]))  # 0: continuous
    p = rng.random(n) if levels == 0 else rng.integers(0, levels, n) / max(levels - 1, 1)
    extremes = draw(st.booleans())
    if extremes:  # clipping merges these into ties at EPS and 1 - EPS
        p[rng.random(n) < 0.2] = 1e-15
        p[rng.random(n) < 0.1] = 1e-13
        p[rng.random(n) < 0.1] = 1.0
    rate = draw(st.sampled_from([0.0, 0.02, 0.3, 0.9, 1.0]))
    y = (rng.random(n) < rate).astype(np.int64)
    return y, p


def _close(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= 1e-12 * max(1.0, abs(b))


@settings(max_examples=300)
@given(labelled_scores())
def test_shared_sort_metrics_equal_sklearn(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    pc = np.clip(p, M.EPS, 1 - M.EPS)
    got = M.classification_metrics(y, p)
    both = 0 < y.sum() < len(y)
    want_auc = roc_auc_score(y, pc) if both else np.nan
    want_ap = average_precision_score(y, pc) if both else np.nan
    assert _close(got["roc_auc"], want_auc)
    assert _close(got["pr_auc"], want_ap)
    assert _close(got["brier"], brier_score_loss(y, pc, labels=[0, 1]))
    assert _close(got["log_loss"], log_loss(y, pc, labels=[0, 1]))
    # ECE and capture@k by their definitions: a stable sort per metric
    order = np.argsort(pc, kind="stable")
    ece = sum(
        len(b) / len(y) * abs(y[b].mean() - pc[b].mean())
        for b in np.array_split(order, 10)
        if len(b)
    )
    assert _close(got["ece"], ece)
    top_order = np.argsort(-pc, kind="stable")
    for k, name in ((0.01, "1pct"), (0.05, "5pct"), (0.10, "10pct")):
        want = y[top_order[: int(np.ceil(k * len(y)))]].sum() / y.sum() if y.sum() else np.nan
        assert _close(got[f"capture_at_{name}"], want), name


@settings(max_examples=200)
@given(labelled_scores(), st.integers(0, 2**32 - 1))
def test_a_subset_keeps_the_order_of_a_fresh_sort(
    data: tuple[np.ndarray, np.ndarray], seed: int
) -> None:
    y, p = data
    mask = np.random.default_rng(seed).random(len(y)) < 0.5
    whole = M.Ranked.of(y, p)
    sub, fresh = whole.subset(mask), M.Ranked.of(y[mask], p[mask])
    assert np.array_equal(np.flatnonzero(mask)[fresh.order], sub.order)
    assert np.array_equal(sub.y, fresh.y) and np.array_equal(sub.p, fresh.p)
    # clipping the sorted scores equals sorting the clipped scores (ties in input order)
    clipped, direct = whole.clipped(M.EPS, 1 - M.EPS), M.Ranked.of(y, np.clip(p, M.EPS, 1 - M.EPS))
    assert np.array_equal(clipped.order, direct.order) and np.array_equal(clipped.y, direct.y)
    # the descending order of a stable sort of -p, without sorting again
    assert np.array_equal(whole.y_descending(), y[np.argsort(-p, kind="stable")])


def test_ranked_metrics_of_a_fold_equal_the_metrics_of_its_rows() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    p = np.round(rng.random(n), 2)  # ties
    y = (rng.random(n) < p * 0.3).astype(np.int64)
    oracle = np.round(p + rng.normal(0, 0.05, n), 3)
    buurt = rng.choice([f"BU{i:04d}" for i in range(40)], n)
    area = {f"BU{i:04d}": float(1 + i % 7) for i in range(38)}  # two buurten without an area
    positions = np.flatnonzero(rng.random(n) < 0.8)
    whole = M.Ranked.of(y[positions], p[positions], positions=positions)
    ranked_oracle = M.Ranked.of(y, oracle)
    areas = M.AreaCodes.of(pd.Series(buurt, dtype="category"), area)
    fold = np.zeros(n, dtype=bool)
    fold[positions[::3]] = True
    got = M.ranked_metrics(
        whole.subset(fold).clipped(M.EPS, 1 - M.EPS),
        areas=areas,
        oracle=ranked_oracle.subset(fold),
    )
    want = M.classification_metrics(
        y[fold], p[fold], buurt=buurt[fold], area_km2=area, oracle=oracle[fold]
    )
    assert got.keys() == want.keys()
    for k in want:
        assert _close(got[k], want[k]), k


def _pai_reference(y: np.ndarray, p: np.ndarray, buurt: np.ndarray, km2: dict) -> float:
    """The definition on strings with pandas (the implementation before integer codes)."""
    df = pd.DataFrame({"buurt": buurt, "y": y, "p": p})
    g = df.groupby("buurt", sort=True).agg(y=("y", "sum"), p=("p", "sum"))
    g["area"] = pd.Series(km2).reindex(g.index).to_numpy(np.float64)
    g = g[g["area"] > 0]
    if g["y"].sum() == 0 or g["area"].sum() == 0:
        return float("nan")
    g = g.assign(rate=g["p"] / g["area"]).sort_values("rate", ascending=False, kind="stable")
    before = g["area"].cumsum() - g["area"]
    take = np.clip((0.1 * g["area"].sum() - before) / g["area"], 0.0, 1.0)
    return float((g["y"] * take).sum() / g["y"].sum()) / 0.1


@settings(max_examples=200)
@given(labelled_scores(), st.integers(1, 30), st.integers(0, 2**32 - 1), st.booleans())
def test_pai_on_integer_codes_equals_the_definition(
    data: tuple[np.ndarray, np.ndarray], n_buurten: int, seed: int, categorical: bool
) -> None:
    y, p = data
    rng = np.random.default_rng(seed)
    names = np.array([f"BU{rng.integers(0, 10**6):07d}" for _ in range(n_buurten)])
    buurt = names[rng.integers(0, n_buurten, len(y))]
    # areas: some equal (tied rates), one zero, one unknown
    km2 = {b: float(rng.choice([0.5, 1.0, 2.0])) for b in names[:-1]}
    km2[names[0]] = 0.0
    column = pd.Series(buurt, dtype="category") if categorical else buurt
    assert _close(M.pai_at(y, p, column, km2), _pai_reference(y, p, buurt, km2))


@settings(max_examples=100)
@given(labelled_scores(min_size=1))
def test_curves_and_calibration_from_one_sort(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    y = y.astype(np.float64)
    ranked = M.Ranked.of(y, p)
    # calibration bins and the calibrator's bins: equal-count slices of the ascending order
    n_bins = max(1, min(10, len(p) // 10))
    parts = np.array_split(np.argsort(p, kind="stable"), n_bins)
    bins = C.calibration_bins(ranked)
    assert np.allclose(bins["mean_predicted"], [p[b].mean() for b in parts], rtol=1e-12)
    assert np.allclose(bins["observed_rate"], [y[b].mean() for b in parts], rtol=1e-12)
    assert bins["units"].tolist() == [len(b) for b in parts]
    cal = BinnedIsotonicCalibrator(min_count=10).fit(p, y)
    parts = np.array_split(np.argsort(p, kind="stable"), max(1, min(200, len(p) // 10)))
    assert np.allclose(cal.bin_score_, [p[b].mean() for b in parts], rtol=1e-12)
    # capture and ROC/PR points: the descending order of a stable sort of -p
    cum = np.cumsum(y[np.argsort(-p, kind="stable")])
    cap = C.capture_curve(ranked, min_count=1)
    assert np.allclose(cap["capture"], cum[cap["units"] - 1] / max(cum[-1], 1))
    pts = C.roc_pr_points(ranked, min_count=1)
    assert np.allclose(pts["tpr"], cum[pts["units_above"] - 1] / max(cum[-1], 1))


def test_one_class_and_bad_input() -> None:
    y = np.zeros(50, dtype=np.int64)
    p = np.linspace(0, 1, 50)
    m = M.classification_metrics(y, p)
    assert np.isnan(m["roc_auc"]) and np.isnan(m["pr_auc"]) and np.isnan(m["capture_at_1pct"])
    assert m["brier"] == pytest.approx(brier_score_loss(y, np.clip(p, M.EPS, 1 - M.EPS)))
    with pytest.raises(ValueError, match="NaN"):
        M.Ranked.of(y, np.r_[np.nan, p[1:]])
    with pytest.raises(ValueError, match="at least one unit"):
        M.classification_metrics(y[:0], p[:0])
