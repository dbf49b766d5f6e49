"""The national-scale plan: negative down-sampling with its log-odds correction, features
streamed from Parquet (identical results to the in-memory path), and the exact paired
bootstrap that no longer walks every unit per resample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from experiments import train as train_mod
from experiments.cli import main
from experiments.config import default_config_path, load_config
from models.bootstrap import paired_bootstrap, weighted_auc, weighted_r2
from models.estimators import make_estimator
from models.evaluation import _fit, negative_sample


def _planted(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    logit = -7.0 + 1.2 * X[:, 0] - 0.8 * X[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return X, y, logit


def test_negative_sample_keeps_every_positive_and_states_its_rate() -> None:
    _, y, _ = _planted(200_000)
    eligible = np.ones(len(y), dtype=bool)
    eligible[:1000] = False
    keep, rate = negative_sample(y, eligible, 20_000, random_state=1)
    assert keep.sum() == 20_000 and not keep[:1000].any()
    assert keep[eligible & (y == 1)].all()
    n_neg = int((eligible & (y == 0)).sum())
    assert rate == pytest.approx((20_000 - int((eligible & (y == 1)).sum())) / n_neg)
    again, _ = negative_sample(y, eligible, 20_000, random_state=1)
    assert np.array_equal(keep, again)
    # nothing to drop: every eligible row, rate 1
    all_rows, one = negative_sample(y, eligible, 10**7, random_state=1)
    assert one == 1.0 and np.array_equal(all_rows, eligible)


def test_down_sampled_lightgbm_predicts_the_populations_probabilities() -> None:
    """Planted: logit p = -7 + 1.2 x0 - 0.8 x1 (about 0.3% events). LightGBM fitted on every
    positive and 1 in ~18 negatives, with the offset, predicts as many events as occurred and
    recovers the planted log-odds; without the offset it over-predicts about 1/r-fold."""
    X, y, logit = _planted(400_000)
    keep, rate = negative_sample(y, np.ones(len(y), dtype=bool), 25_000, random_state=0)
    assert rate < 0.1
    est = make_estimator("lightgbm", "binary", params={"n_estimators": 150})
    fixed = _fit(clone(est), X[keep], y[keep], "lightgbm", [], offset=np.log(rate))
    naive = _fit(clone(est), X[keep], y[keep], "lightgbm", [])
    events = y.sum()
    assert fixed.predict_proba(X)[:, 1].sum() / events == pytest.approx(1.0, abs=0.1)
    assert naive.predict_proba(X)[:, 1].sum() / events > 5
    raw = fixed.predict(X, raw_score=True)
    central = np.abs(logit + 7) < 2  # where the data pin the log-odds down
    assert np.mean(raw[central] - logit[central]) == pytest.approx(0.0, abs=0.25)
    assert np.corrcoef(raw, logit)[0, 1] > 0.9


def test_an_offset_is_refused_for_models_that_cannot_take_it() -> None:
    X, y, _ = _planted(5_000)
    with pytest.raises(ValueError, match="needs LightGBM"):
        _fit(make_estimator("logistic", "binary"), X, y, "logistic", [], offset=2.0)


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_paired_bootstrap_equals_the_unit_level_computation(kind: str) -> None:
    rng = np.random.default_rng(5)
    n, n_groups = 30_000, 40
    groups = np.array([f"GM{g:04d}" for g in rng.integers(0, n_groups, n)])
    if kind == "binary":
        y = (rng.random(n) < 0.05).astype(float)
        pred = np.round(0.2 * y + rng.random(n), 2)  # ties, counted a half
    else:
        y = rng.normal(size=n)
        pred = y + rng.normal(size=n)
    boot = paired_bootstrap(y, groups, {"m": pred}, kind=kind, n_boot=5, random_state=9)
    draw_rng = np.random.default_rng(9)
    codes, g_idx = np.unique(groups, return_inverse=True)
    rank = np.unique(pred, return_inverse=True)[1]
    for b in range(5):
        w = np.bincount(draw_rng.integers(0, len(codes), len(codes)), minlength=len(codes))
        w_units = w[g_idx].astype(float)
        want = weighted_auc(rank, y, w_units) if kind == "binary" else weighted_r2(y, pred, w_units)
        assert boot["m"][b] == pytest.approx(want, rel=1e-9)


@pytest.fixture(scope="module")
def tiny_hennep(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("national")
    (data / "world").symlink_to(tiny_data / "world")
    (data / "truth").symlink_to(tiny_data / "truth")
    assert main(["features", "hennep", "--data-dir", str(data)]) == 0
    return data


def test_streaming_from_parquet_gives_the_in_memory_results(
    tiny_hennep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The national path (meta in memory, features streamed row group by row group, with
    negative down-sampling) equals the in-memory path on the same rows, metric for metric."""
    cfg = load_config(default_config_path("hennep"))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setattr(train_mod, "LIGHTGBM_MAX_FIT_ROWS", 60_000)
    small = train_mod.prepare(cfg, data_dir=tiny_hennep, tracking_uri=store, n_folds=3)
    assert small.rows is None and "woz_value" in small.frame
    monkeypatch.setattr(train_mod, "STREAM_ROWS", 1_000)
    streamed = train_mod.prepare(cfg, data_dir=tiny_hennep, tracking_uri=store, n_folds=3)
    assert streamed.rows is not None and "woz_value" not in streamed.frame.columns
    assert str(streamed.frame["buurt_code"].dtype) == "category"
    with pytest.raises(train_mod.TrainInputError, match="zicht tune"):
        streamed.in_memory("zicht tune")
    a = small.evaluate("lightgbm")
    b = streamed.evaluate("lightgbm")
    assert 0 < a.extra["negative_sampling_rate"] < 1
    assert a.extra["n_fit_rows"] == b.extra["n_fit_rows"] == 60_000
    np.testing.assert_array_equal(a.extra["oof"], b.extra["oof"])
    for key, value in a.metrics.items():
        if key != "fit_seconds":
            assert b.metrics[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    # calibration in the large survives the down-sampling (hold-out year)
    ratio = a.extra["holdout_expected_events"] / a.extra["holdout_observed_events"]
    assert 0.7 < ratio < 1.4


def test_stage_table_reports_each_stages_own_peak() -> None:
    from experiments.pipeline import StageLog
    from experiments.resources import peak_gib, reset_peak

    block = np.ones(64 * 2**20 // 8)  # 64 MiB resident
    del block
    if reset_peak():  # Linux: the peak restarts, so it is below the freed block's peak
        before = peak_gib()
        block = np.ones(256 * 2**20 // 8)
        assert peak_gib() >= before + 0.2
        del block
    log = StageLog()
    log.add("features", "hennep", "ran", 12.34, peak_gib=1.234)
    log.add("generate", "", "reused", 0.0)
    md = log.markdown()
    assert "| features | hennep | ran | 12.3 | 1.23 |" in md
    assert "| generate | all | reused | 0.0 | – |" in md
