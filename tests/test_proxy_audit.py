"""The proxy audit: known answers on hand-built arrays, and on two tiny worlds.

The default world has no direct effect of origin on any label (only correlation with area
and income): a model's scores stay calibrated within every origin group, and the audit
passes. A variant with a planted direct effect (``params.HERKOMST_DIRECT_EFFECT``) leaves
the groups miscalibrated, and the audit flags it.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from experiments.config import default_config_path, load_config
from features.audit import AuditSettings, ProtectedAccess, ProxyAudit, proxy_audit
from features.tables import build_task_year, load_world, world_years
from microdata import params
from microdata.io import write_world
from microdata.scales import get_scale

NAMES = ("a", "b", "c")
FAST = AuditSettings(n_boot=100)


def _synthetic(direct: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Units in 8 gemeenten x 10 buurten; origin shifts with the buurt, risk with a feature."""
    rng = np.random.default_rng(seed)
    n = 20_000
    buurt = rng.integers(0, 80, n)
    gemeente = buurt // 10
    mix = (buurt % 10) / 10
    origin = np.where(rng.random(n) < mix * 0.6, rng.integers(1, 3, n), 0)
    x = rng.normal(size=n) + 0.8 * (origin > 0)  # a feature correlated with origin
    eta = -2.5 + 0.8 * x + direct * (origin > 0)
    labels = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    scores = 1 / (1 + np.exp(-(-2.5 + 0.8 * x)))  # the model without origin
    return {
        "origin": origin,
        "labels": labels,
        "scores": scores,
        "features": np.c_[x, mix].astype(np.float32),
        "gemeente": np.array([f"GM{g:04d}" for g in gemeente]),
        "buurt": np.array([f"BU{b:08d}" for b in buurt]),
    }


def _value(table: pd.DataFrame, group: str, column: str) -> float:
    """One aggregate of one group (the tables are tiny: one row per group)."""
    return float(table.loc[table["group"] == group, column].to_numpy()[0])


def _audit(
    d: dict[str, np.ndarray],
    settings: AuditSettings = FAST,
    names: tuple[str, ...] = NAMES,
    other: tuple[str, ...] = (),
) -> ProxyAudit:
    return proxy_audit(
        d["origin"],
        labels=d["labels"],
        scores=d["scores"],
        features=d["features"],
        area_columns=[1],
        gemeente=d["gemeente"],
        buurt=d["buurt"],
        group_names=names,
        settings=settings,
        other_groups=other,
    )


def test_calibrated_scores_pass_and_a_direct_effect_is_flagged() -> None:
    clean = _audit(_synthetic(0.0))
    assert not clean.flagged, clean.flags
    assert clean.groups["relative_calibration"].between(0.85, 1.15).all()
    planted = _audit(_synthetic(1.0))
    assert planted.flagged
    flagged = set(planted.groups.loc[planted.groups["flagged"], "group"])
    assert {"b", "c"} <= flagged  # the groups with the direct effect are under-predicted
    assert _value(planted.groups, "b", "relative_calibration") < 0.8
    assert _value(planted.groups, "b", "relative_calibration_hi") < 1
    assert any(f.startswith("b: ") for f in planted.flags)


def test_proxy_auc_sees_the_feature_and_the_gaps_track_the_buurt_mix() -> None:
    a = _audit(_synthetic(0.0))
    chance, area, full = a.proxy["roc_auc_ovr_macro"]
    assert list(a.proxy["reference"]) == ["chance", "area features only", "all model features"]
    assert chance == 0.5 and 0.6 < full < 0.9 and 0.55 < area < full  # x adds to the buurt mix
    reading = a.proxy_reading()
    assert f"AUC {full:.2f}" in reading and f"alone reach {area:.2f}" in reading
    assert f"add {full - area:.2f}" in reading and "0.5 is chance" in reading
    # buurten with many group-b units have higher scores and higher observed rates
    assert _value(a.area_gaps, "b", "score_gap") > 0
    assert _value(a.area_gaps, "b", "observed_gap") > 0
    assert _value(a.area_gaps, "a", "score_gap") < 0
    # every gap has a gemeente-bootstrap interval around it
    for col in ("score_gap", "observed_gap", "excess_gap"):
        lo, hi = a.area_gaps[f"{col}_lo"], a.area_gaps[f"{col}_hi"]
        assert (lo <= a.area_gaps[col] + 1e-12).all() and (a.area_gaps[col] <= hi + 1e-12).all()
    # the model is right about every buurt: its score gap matches the observed gap
    lo, hi = (_value(a.area_gaps, "b", f"excess_gap_{e}") for e in ("lo", "hi"))
    assert lo < 0 < hi
    g = a.groups
    assert (g["fpr_elevated_lo"] <= g["fpr_elevated"]).all()
    assert (g["fpr_elevated"] <= g["fpr_elevated_hi"]).all()


def test_small_groups_are_suppressed_and_nothing_is_unit_level() -> None:
    d = _synthetic(0.0)
    d["origin"] = np.where(d["origin"] == 2, 1, d["origin"])
    d["origin"][:7] = 2  # a group of 7 units
    a = _audit(d)
    c = a.groups.set_index("group").loc["c"]
    assert c["status"].startswith("suppressed") and pd.isna(c["units"])
    assert pd.isna(c["mean_score"]) and pd.isna(c["observed_rate"])
    assert a.area_gaps.set_index("group").loc["c", "status"].startswith("suppressed")
    for table in (a.proxy, a.groups, a.area_gaps):
        assert len(table) <= len(NAMES)
        assert not [col for col in table.columns if col.endswith("_id")]
    assert (a.groups["units"].dropna() >= 10).all()


def test_groups_with_too_few_events_are_not_judged_and_said_so() -> None:
    d = _synthetic(0.0)
    # group c: 400 units with 4 events (and, planted, scores 3x too high: not judged all the
    # same, because 4 events cannot say so)
    c = np.flatnonzero(d["origin"] == 2)[:400]
    d["origin"] = np.where(d["origin"] == 2, 1, d["origin"])
    d["origin"][c] = 2
    d["labels"][c] = 0.0
    d["labels"][c[:4]] = 1.0
    d["scores"][c] = np.minimum(d["scores"][c] * 3, 1.0)
    a = _audit(d)
    row = a.groups.set_index("group").loc["c"]
    assert row["status"] == "not judged: fewer than 10 events" and row["units"] == 400
    assert not row["flagged"] and pd.isna(row["relative_calibration"])
    assert a.not_judged == ("c",) and not a.flagged
    kinds = dict(a.headline())
    assert kinds["note"].startswith("Not judged: c: fewer than 10 events")
    assert kinds["ok"].startswith("Passed for a and b:")  # c is not among the passed


def test_a_planted_miscalibration_of_one_origin_group_is_flagged_by_name() -> None:
    d = _synthetic(0.0)
    b = d["origin"] == 1
    d["scores"][b] *= 0.5  # group b: half the events it has are predicted
    a = _audit(d)
    assert a.flagged_origin == ("b",) and not a.flagged_other
    assert _value(a.groups, "b", "relative_calibration_hi") < 1 / FAST.tolerance
    (kind, text), *rest = a.headline()
    assert kind == "flag" and "origin group(s) b," in text
    assert ("ok", "Calibrated for a and c.") in rest


def test_a_flagged_group_that_is_not_an_origin_group_is_not_called_one() -> None:
    d = _synthetic(0.0)
    # group c stands for vacant dwellings: not an origin group; plant its miscalibration
    d["scores"][d["origin"] == 2] *= 0.4
    a = _audit(d, other=("c",))
    assert a.flagged_other == ("c",) and not a.flagged_origin and a.flagged
    text = " ".join(t for _, t in a.headline())
    assert "c (not an origin group)" in text and "origin group(s)" not in text
    assert "Passed for a and b" in text
    assert "c" not in set(a.area_gaps["group"])  # no origin mix for a group that is none
    assert set(a.groups.loc[a.groups["group"] == "c", "group_kind"]) == {"other"}


def test_codes_outside_the_groups_are_refused() -> None:
    d = _synthetic(0.0)
    d["origin"][0] = 5
    with pytest.raises(ValueError, match="origin code"):
        _audit(d)


def _world_audit(data: Path, task: str) -> ProxyAudit:
    """Fit a quick model on the earlier years and audit its scores for the last year."""
    feats = list(load_config(default_config_path(task)).features)
    w = load_world(data / "world")
    years = world_years(data / "world", w).reference_years(task)
    frames = [build_task_year(w, task, t, feats) for t in years]
    train = pd.concat(frames[:-1], ignore_index=True)
    test = frames[-1]
    model: lgb.LGBMClassifier = lgb.LGBMClassifier(
        n_estimators=200,
        num_leaves=15,
        learning_rate=0.05,
        min_child_samples=50,
        random_state=0,
        n_jobs=2,
        verbose=-1,
    )
    model.fit(train[feats].to_numpy(np.float32), train["label"].to_numpy())
    scores = np.asarray(model.predict_proba(test[feats].to_numpy(np.float32)))[:, 1]
    access = ProtectedAccess(data / "world")
    return access.proxy_audit(w, task, test, scores, features=feats, settings=FAST)


@pytest.fixture(scope="module")
def planted_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny world (seed 7) with a planted direct origin effect of 1.5 log-odds."""
    data = tmp_path_factory.mktemp("planted")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(params, "HERKOMST_DIRECT_EFFECT", 1.5)
        write_world(data, get_scale("tiny"), seed=7)
    return data


@pytest.mark.parametrize("task", ["jonge_aanwas", "hennep"])
def test_default_world_passes_and_a_planted_direct_effect_is_flagged(
    tiny_data: Path, planted_data: Path, task: str
) -> None:
    clean = _world_audit(tiny_data, task)
    assert not clean.flagged, clean.flags
    planted = _world_audit(planted_data, task)
    assert planted.flagged
    # the majority group is over-predicted, a minority group under-predicted
    assert _value(planted.groups, "Nederland", "relative_calibration") > 1
    assert planted.groups["relative_calibration"].min() < 0.8
    assert (clean.groups["units"].dropna() >= 10).all()
    # the headline names origin groups only when an origin group is flagged
    assert planted.flagged_origin and "origin group(s)" in planted.headline()[0][1]
    assert not any("origin group(s)" in t for _, t in clean.headline())


def test_the_default_world_has_no_direct_effect() -> None:
    assert params.HERKOMST_DIRECT_EFFECT == 0.0


def test_branch_turnover_is_not_unit_level(tiny_data: Path) -> None:
    access = ProtectedAccess(tiny_data / "world")
    frame = pd.DataFrame({"year": [2020], "label": [1.0]})
    with pytest.raises(ValueError, match="area × branch"):
        access.proxy_audit(None, "branch_turnover", frame, np.ones(1), features=[])
