"""The main job's plan (experiments/plan.py): one table, every scale planned with a champion
and a baseline, the same table in the docs, and the caps carried into the runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.pipeline import StageLog, announce_plan
from experiments.plan import MAIN_MODEL, PLAN, RowCaps, ScalePlan, plan_for, plan_markdown
from experiments.verify import logged_caps
from microdata.scales import SCALES
from models.estimators import MODELS
from models.evaluation import negative_sample

ROOT = Path(__file__).resolve().parents[1]


def test_every_scale_has_a_champion_and_a_baseline() -> None:
    assert set(PLAN) == set(SCALES)
    for scale, plan in PLAN.items():
        assert plan.scale == scale
        assert plan.models[0] == MAIN_MODEL and plan.baselines, scale
        assert set(plan.models) <= set(MODELS) and len(set(plan.models)) == len(plan.models)
        assert plan.n_folds == 5, "the folds are part of zicht.protocol: keep them at 5"
        for cap in (plan.caps.lightgbm_max_fit_rows, plan.caps.baseline_max_rows):
            assert cap is None or cap >= 100_000, scale
    # larger scales never fit on more rows than smaller ones would have
    assert PLAN["tiny"].caps == RowCaps()
    assert plan_for("real") is PLAN["national"]
    with pytest.raises(ValueError, match="no plan"):
        plan_for("galaxy")


def test_a_plan_without_a_baseline_or_led_by_a_baseline_is_refused() -> None:
    with pytest.raises(ValueError, match="baseline"):
        ScalePlan("x", ("lightgbm",), 5, RowCaps(), 5, "")
    with pytest.raises(ValueError, match="first model"):
        ScalePlan("x", ("logistic", "lightgbm"), 5, RowCaps(), 5, "")


def test_caps_go_to_the_right_model() -> None:
    caps = RowCaps(lightgbm_max_fit_rows=300_000, baseline_max_rows=200_000)
    assert caps.for_model("lightgbm") == (None, 300_000)  # (uniform sample, negative sampling)
    assert caps.for_model("logistic") == (200_000, None)
    # verify reads them back from the params a run logged; none logged: the standalone caps
    assert logged_caps({"max_fit_rows": "300000", "max_train_rows": "None"}).for_model(
        "lightgbm"
    ) == (None, 300_000)
    assert logged_caps({"max_fit_rows": "None", "max_train_rows": "200000"}).for_model("tree") == (
        200_000,
        None,
    )
    assert logged_caps({"n_folds": "5"}) is None


def test_the_region_cap_keeps_every_positive() -> None:
    # hennep at region: ~1.1M training rows, ~750 events; the plan's LightGBM cap
    rng = np.random.default_rng(0)
    y = (rng.random(1_100_000) < 0.0007).astype(np.int64)
    cap = PLAN["region"].caps.lightgbm_max_fit_rows
    keep, rate = negative_sample(y, np.ones(len(y), dtype=bool), cap, random_state=7)
    assert keep.sum() == cap and y[keep].sum() == y.sum()
    assert rate == pytest.approx((cap - y.sum()) / (len(y) - y.sum()))


def test_the_docs_state_the_same_plan() -> None:
    table = plan_markdown()
    for doc in ("README.md", "docs/models.md"):
        assert table in (ROOT / doc).read_text(), f"{doc}: paste plan_markdown() output"


def test_zicht_run_prints_its_plan_first() -> None:
    said: list[str] = []
    announce_plan(PLAN["region"], None, said.append)
    assert "plan for region" in said[0]
    assert any(line.strip().startswith("| region | lightgbm | logistic | 5 |") for line in said)
    said.clear()
    announce_plan(PLAN["region"], ("lightgbm", "tree"), said.append)
    assert said[-1].strip() == "models from --models: lightgbm, tree"


def test_stage_table_has_cpu_seconds() -> None:
    log = StageLog()
    log.add("bench", "hennep", "ran", 12.0, "", 1.5, 20.25)
    log.add("features", "hennep", "reused", 0.0, "why")
    md = log.markdown()
    assert "| stage | task | action | seconds | peak GiB | CPU s |" in md
    assert "| bench | hennep | ran | 12.0 | 1.50 | 20.2 |" in md
    assert "| features | hennep | reused | 0.0 | – | – |" in md
