"""Models: metric known answers, grouped folds, hold-out, calibration, the zoo's guarantees,
and tracked training runs on the tiny world with a temporary MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from experiments import tracking
from experiments.cli import main
from experiments.config import default_config_path, load_config
from experiments.truth import oracle_for
from models import metrics as M
from models.calibration import BinnedIsotonicCalibrator
from models.estimators import MODELS, make_estimator
from models.evaluation import deviation_flags, evaluate, fold_ids, protocol_for
from models.tasks import get_task

# ----------------------------------------------------------------------------- metrics


def test_capture_at_k_is_recall_in_the_top() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    score = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.05, 0.04, 0.03, 0.02, 0.01])
    assert M.capture_at(y, score, 0.10) == 0.5
    assert M.capture_at(y, score, 0.20) == 1.0


def test_pai_known_answer() -> None:
    # buurt A (1 km²) holds every event and the highest predicted rate; it is 10% of the land
    y = np.array([1, 1, 0, 0, 0, 0])
    p = np.array([0.5, 0.5, 0.01, 0.01, 0.01, 0.01])
    buurt = np.array(["A", "A", "B", "B", "B", "B"])
    assert M.pai_at(y, p, buurt, {"A": 1.0, "B": 9.0}) == pytest.approx(10.0)
    # half of B's area would be needed for 10% of 20 km²: A (1) + 1 of B's 19 -> partial credit
    assert M.pai_at(y, p, buurt, {"A": 1.0, "B": 19.0}) == pytest.approx(1.0 / 0.1 * 1.0)


def test_ece_is_zero_when_calibrated() -> None:
    p = np.repeat(np.linspace(0.05, 0.95, 10), 100)
    y = np.concatenate(
        [
            np.r_[np.ones(round(q * 100)), np.zeros(100 - round(q * 100))]
            for q in np.linspace(0.05, 0.95, 10)
        ]
    )
    assert M.expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-9)


def test_oracle_ratio_and_anomalies() -> None:
    rng = np.random.default_rng(1)
    truth_p = rng.uniform(0, 1, 2000)
    y = rng.random(2000) < truth_p
    m = M.classification_metrics(y, truth_p * 0.5 + 0.25, oracle=truth_p)
    assert m["oracle_ratio"] == pytest.approx(1.0)
    z = M.robust_z(np.r_[np.zeros(99), 10.0])
    assert (z[-1] > 3 and np.all(np.abs(z[:-1]) < 1e-9)) or z[-1] > 3
    assert M.anomaly_at_k(np.r_[True, False, False], np.array([3.0, 2.0, 1.0]), 1) == (1.0, 1.0)


def test_anomaly_recall_per_kind_among_the_same_k() -> None:
    truth = np.array([True, True, True, False, False])
    kind = np.array(["front", "front", "spike", "", ""])
    score = np.array([5.0, 1.0, 4.0, 3.0, 0.0])  # top 3: front, spike, a normal cell
    assert M.anomaly_at_k(truth, score, 3) == pytest.approx((2 / 3, 2 / 3))
    assert M.anomaly_at_k(truth, score, 3, among=kind == "front")[1] == 0.5
    assert M.anomaly_at_k(truth, score, 3, among=kind == "spike")[1] == 1.0


def test_robust_z_within_size_classes() -> None:
    """A doubled turnover in a large cell stands out among large cells; a small cell's chance
    swing of the same size does not stand out among small cells."""
    assert M.size_classes(np.array([0, 1, 2, 3, 4, 7, 8, 31, 32, 500])).tolist() == [
        0, 1, 2, 2, 3, 3, 4, 5, 6, 6,
    ]  # fmt: skip
    # classes with fewer than min_cells members join the next larger one; the last, the one before
    merged = M.merged_classes(np.array([0, 1, 1, 2, 2, 2, 3]), min_cells=3)
    assert merged.tolist() == [0, 0, 0, 1, 1, 1, 1]
    rng = np.random.default_rng(0)
    small, large = rng.normal(0, 0.5, 200), rng.normal(0, 0.05, 200)
    large[0] = np.log(2)  # a doubled turnover in a cell of 40 businesses
    small[0] = 1.2  # a 2.4-sd chance swing in a cell of one business
    x, n = np.r_[small, large], np.r_[np.ones(200), np.full(200, 40)]
    z = M.robust_z_within(x, M.size_classes(n))
    assert z[200] > 8 and z[0] < 3
    assert z[200] > z[:200].max(), "the doubled large cell ranks first"
    pooled = M.robust_z(x)
    assert pooled[0] > pooled[200], "one z for all ranks the small cell's noise first"


def test_fronts_and_spikes_are_both_flagged(tiny_data: Path) -> None:
    """Known answer: in the tiny world with the generator's own anomalies undone, plant a
    five-year front (x5 from 2019 to 2023) in one wijk x branch cell and a one-year spike (x5
    in 2021) in another. The out-of-fold expectation from area and branch structure flags
    every planted year of both (recall 1 per kind at k = 6); an expectation from the cell's
    own turnover last year flags the front in its first year only."""
    from features.builders import _active_establishments
    from features.catalogue import TASK_FEATURES
    from features.tables import build_task_year, load_world

    w = load_world(tiny_data / "world")
    for table in ("turnover", "household_income", "woz"):
        w.frames[table] = w.reader.read(table)  # type: ignore[union-attr]
    est = w["establishments"][["establishment_id", "buurt_code", "sbi"]].copy()
    wijk_of = w.buurten.set_index("area_code")["wijk_code"].astype(str)
    est["cell"] = est["buurt_code"].astype(str).map(wijk_of) + "|" + est["sbi"].astype(str)
    tv = w.frames["turnover"].merge(est[["establishment_id", "cell"]], on="establishment_id")
    factor = pd.Series(1.0, index=tv.index)
    plan = pd.read_parquet(tiny_data / "truth" / "turnover_anomalies.parquet")
    for a in plan.itertuples():  # undo the generator's anomalies
        on = (tv["cell"] == f"{a.area_code}|{a.sbi}") & tv["year"].between(
            a.first_year, a.last_year
        )
        factor[on] /= a.inflation
    # the two largest wijk cells of 2018 in two different gemeenten
    n = _active_establishments(w, 2018)[["establishment_id"]].merge(est)["cell"]
    ranked = n.value_counts().index
    front = ranked[0]
    spike = next(c for c in ranked[1:] if c[2:6] != front[2:6])
    planted = {(front, y): "front" for y in range(2019, 2024)} | {(spike, 2021): "spike"}
    for (cell, year), _ in planted.items():
        factor[(tv["cell"] == cell) & (tv["year"] == year)] *= 5.0
    w.frames["turnover"] = tv.assign(turnover=tv["turnover"] * factor).drop(columns="cell")

    feats = list(TASK_FEATURES["branch_turnover"])
    frame = pd.concat(
        [build_task_year(w, "branch_turnover", t, feats) for t in range(2017, 2026)],
        ignore_index=True,
    )
    frame = frame[frame["level"] == "wijk"].reset_index(drop=True)
    kinds = np.array(
        [
            planted.get((c, int(y)), "")
            for c, y in zip(frame["cell_id"], frame["year"], strict=True)
        ],
        dtype=object,
    )
    assert (kinds == "front").sum() == 5 and (kinds == "spike").sum() == 1
    task = get_task("branch_turnover")
    ev = evaluate(
        frame,
        task,
        feats,
        model_name="lightgbm",
        protocol=protocol_for(list(range(2017, 2026)), "branch_turnover"),
        anomalous=kinds,
        n_jobs=1,
    )
    assert ev.extra["anomaly_k"] == 6
    assert ev.extra["anomaly_k_front"] == 5 and ev.extra["anomaly_k_spike"] == 1
    assert ev.metrics["anomaly_recall_at_k_front"] == 1.0
    assert ev.metrics["anomaly_recall_at_k_spike"] == 1.0
    assert ev.metrics["anomaly_recall_at_k"] == 1.0
    # the cell's own turnover last year as the expectation: the front is its own expectation
    lag = frame.set_index(["cell_id", "year"])["label"]
    prev = lag.reindex(pd.MultiIndex.from_arrays([frame["cell_id"], frame["year"] - 1]))
    has_prev = prev.notna().to_numpy()
    z = np.full(len(frame), np.nan)
    for yr in range(2018, 2026):
        m = has_prev & (frame["year"] == yr).to_numpy()
        _, z[m], _ = deviation_flags(
            frame["label"].to_numpy()[m],
            prev.to_numpy()[m],
            establishments=frame["prior_establishments"].to_numpy()[m],
        )
    fronts = np.flatnonzero(kinds == "front")
    flagged = z[fronts] > 3
    assert flagged[0] and not flagged[1:].any(), "only the front's first year stands out"
    assert z[kinds == "spike"][0] > 3


def test_folds_never_split_a_gemeente() -> None:
    groups = np.repeat([f"GM{i:04d}" for i in range(12)], np.arange(1, 13))
    folds = fold_ids(groups, 5)
    frame = pd.DataFrame({"g": groups, "f": folds})
    assert frame.groupby("g")["f"].nunique().max() == 1
    assert sorted(frame["f"].unique()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("name", MODELS)
def test_zoo_keeps_min_count_and_never_reweights(name: str) -> None:
    for kind in ("binary", "regression"):
        est = make_estimator(name, kind, min_count=10)
        params = {k: v for k, v in est.get_params().items()}
        for key in (
            "min_child_samples",
            "min_samples_leaf",
            "tree__min_samples_leaf",
            "decisiontreeclassifier__min_samples_leaf",
            "decisiontreeregressor__min_samples_leaf",
        ):
            if key in params:
                assert params[key] >= 10, key
        assert not params.get("class_weight") and not params.get("is_unbalance")
        assert not params.get("scale_pos_weight") and not params.get(
            "logisticregression__class_weight"
        )
    lgb = make_estimator("lightgbm", "binary")
    assert lgb.get_params()["deterministic"] is True


def test_calibrator_rests_on_bins_of_min_count() -> None:
    rng = np.random.default_rng(0)
    s = rng.uniform(size=1003)
    y = (rng.uniform(size=1003) < s).astype(int)
    cal = BinnedIsotonicCalibrator(min_count=10).fit(s, y)
    assert cal.bin_count_.min() >= 10
    p = cal.predict(np.sort(s))
    assert np.all(np.diff(p) >= -1e-12), "not monotone"


# ----------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def tiny_features(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("train")
    (data / "world").symlink_to(tiny_data / "world")
    (data / "truth").symlink_to(tiny_data / "truth")
    for task in ("hennep", "jonge_aanwas", "branch_turnover"):
        assert main(["features", task, "--data-dir", str(data)]) == 0
    return data


def test_holdout_and_calibration_in_the_large(tiny_features: Path) -> None:
    frame = pd.read_parquet(tiny_features / "features" / "jonge_aanwas.parquet")
    cfg = load_config(default_config_path("jonge_aanwas"))
    years = sorted(frame["year"].unique())
    proto = protocol_for(years, "jonge_aanwas")
    assert proto.holdout_year == years[-1] and proto.holdout_year not in proto.train_years
    oracle, _ = oracle_for("jonge_aanwas", frame, tiny_features / "world")
    ev = evaluate(
        frame,
        get_task("jonge_aanwas"),
        list(cfg.features),
        model_name="lightgbm",
        protocol=proto,
        oracle=oracle,
    )
    assert ev.extra["n_train"] == int((frame["year"] < years[-1]).sum())
    assert ev.extra["n_holdout"] == int((frame["year"] == years[-1]).sum())
    expected, observed = ev.extra["holdout_expected_events"], ev.extra["holdout_observed_events"]
    assert abs(expected - observed) <= 3 * np.sqrt(observed), (expected, observed)
    # the planted effects are found: far better than chance, close to the oracle
    assert ev.metrics["roc_auc"] > 0.72 and ev.metrics["oracle_ratio"] > 0.9
    for g in ("8_12", "13_19", "20_23"):
        assert f"roc_auc_{g}" in ev.metrics and f"holdout_oracle_ratio_{g}" in ev.metrics


# ----------------------------------------------------------------------------- tracked runs

CLASSIFICATION = [
    "roc_auc",
    "pr_auc",
    "brier",
    "brier_skill",
    "log_loss",
    "ece",
    "capture_at_1pct",
    "capture_at_5pct",
    "capture_at_10pct",
    "pai_at_10pct",
    "oracle_roc_auc",
    "oracle_ratio",
    "fit_seconds",
]
REGRESSION = [
    "rmse_log",
    "mae_log",
    "r2_log",
    "oracle_r2_log",
    "anomaly_precision_at_k",
    "anomaly_recall_at_k",
    "anomaly_recall_at_k_front",
    "anomaly_recall_at_k_spike",
    "fit_seconds",
]
TAGS = [
    "zicht.task",
    "zicht.model",
    "zicht.kind",
    "zicht.scale",
    "zicht.seed",
    "zicht.data_fingerprint",
    "zicht.protocol",
]


@pytest.fixture(scope="module")
def store(tiny_features: Path) -> str:
    return f"sqlite:///{tiny_features / 'mlflow.db'}"


@pytest.mark.parametrize("task", ["jonge_aanwas", "hennep", "branch_turnover"])
def test_train_logs_the_contract(
    task: str, tiny_features: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", task, "--data-dir", str(tiny_features), "--tracking-uri", store])
    out = capsys.readouterr()
    assert code == 0, out.err
    mlflow.set_tracking_uri(store)
    client = MlflowClient()
    exp = client.get_experiment_by_name(f"zicht/{task}")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.info.status == "FINISHED"
    for tag in TAGS:
        assert run.data.tags.get(tag), tag
    assert run.data.tags["zicht.kind"] == "train" and run.data.tags["zicht.scale"] == "tiny"
    names = CLASSIFICATION if task != "branch_turnover" else REGRESSION
    for m in names:
        assert m in run.data.metrics, m
        if m != "fit_seconds":
            assert f"holdout_{m}" in run.data.metrics or m.startswith("anomaly"), f"holdout_{m}"
    if task == "jonge_aanwas":
        for g in ("8_12", "13_19", "20_23"):
            assert f"roc_auc_{g}" in run.data.metrics and f"oracle_ratio_{g}" in run.data.metrics
    if task == "branch_turnover":
        assert int(run.data.params["anomaly_k"]) > 0
        for kind in ("front", "spike"):
            assert int(run.data.params[f"anomaly_k_{kind}"]) > 0
    champion = client.get_model_version_by_alias(f"zicht-{task}", "champion")
    assert champion.run_id == run.info.run_id
    _assert_no_unit_rows(client, run.info.run_id)


def _assert_no_unit_rows(client: MlflowClient, run_id: str) -> None:
    """No artifact is a unit-level table, and no model carries an input example."""
    todo, files = [""], []
    while todo:
        for item in client.list_artifacts(run_id, todo.pop()):
            (todo if item.is_dir else files).append(item.path)
    assert not any("input_example" in f for f in files)
    local = Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, tracking_uri=mlflow.get_tracking_uri())
    )
    for csv in local.rglob("*.csv"):
        df = pd.read_csv(csv)
        assert not [c for c in df.columns if c.endswith("_id")], csv
        assert len(df) <= 500, f"{csv.name} has {len(df)} rows: a unit-level table?"
        if "units" in df.columns:
            assert df["units"].min() >= 10
    assert not list(local.rglob("input_example*"))


def test_champion_ignores_other_worlds(tiny_features: Path, store: str) -> None:
    mlflow.set_tracking_uri(store)
    assert tracking.choose_champion("jonge_aanwas", fingerprint="0" * 64, protocol="x") is None
    client = MlflowClient()
    if not client.search_registered_models(filter_string="name = 'zicht-jonge_aanwas'"):
        # run alone (or on another worker than the contract tests): make the champion first
        args = ["--data-dir", str(tiny_features), "--tracking-uri", store]
        assert main(["train", "jonge_aanwas", *args]) == 0
    before = client.get_model_version_by_alias("zicht-jonge_aanwas", "champion").version
    # a worse model on the same world and protocol does not take the alias
    assert (
        main(
            [
                "train",
                "jonge_aanwas",
                "--model",
                "tree",
                "--data-dir",
                str(tiny_features),
                "--tracking-uri",
                store,
            ]
        )
        == 0
    )
    assert client.get_model_version_by_alias("zicht-jonge_aanwas", "champion").version == before


def test_a_failing_run_is_not_marked_finished(store: str) -> None:
    tracking.connect(store, "hennep")
    with (
        pytest.raises(RuntimeError),
        tracking.run("hennep", run_name="boom", tags={"zicht.kind": "train"}) as r,
    ):
        run_id = r.info.run_id
        raise RuntimeError("killed mid-training")
    assert MlflowClient().get_run(run_id).info.status == "FAILED"


def test_unreachable_store_exits_2(
    tiny_features: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = "sqlite:////proc/zicht-cannot-write-here/mlflow.db"
    code = main(
        ["train", "branch_turnover", "--data-dir", str(tiny_features), "--tracking-uri", bad]
    )
    assert code == 2 and "tracking-uri" in capsys.readouterr().err


def test_predict_scores_the_publication_year_and_refuses_other_worlds(
    tiny_features: Path, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["train", "jonge_aanwas", "--data-dir", str(tiny_features), "--tracking-uri", store])
        == 0
    )
    assert (
        main(["predict", "jonge_aanwas", "--data-dir", str(tiny_features), "--tracking-uri", store])
        == 0
    )
    pred = pd.read_parquet(tiny_features / "predictions" / "jonge_aanwas.parquet")
    feats = pd.read_parquet(
        tiny_features / "features" / "jonge_aanwas.parquet", columns=["year", "label"]
    )
    last = feats["year"].max()
    assert (pred["year"] == last).all() and len(pred) == int((feats["year"] == last).sum())
    assert pred["probability"].between(0, 1).all()
    # calibration in the large on the publication year
    observed = feats.loc[feats["year"] == last, "label"].sum()
    assert abs(pred["probability"].sum() - observed) <= 3 * np.sqrt(observed)
    # a world from another seed has another fingerprint: the champion is refused
    other = tmp_path / "other"
    assert main(["generate", "--scale", "tiny", "--seed", "8", "--data-dir", str(other)]) == 0
    (other / "features").symlink_to(tiny_features / "features")
    capsys.readouterr()
    code = main(["predict", "jonge_aanwas", "--data-dir", str(other), "--tracking-uri", store])
    assert code == 2 and "not on the current world" in capsys.readouterr().err


def test_bench_models_leaderboard_with_paired_intervals(
    tiny_features: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "bench",
            "models",
            "jonge_aanwas",
            "--models",
            "lightgbm,tree",
            "--bootstrap",
            "30",
            "--data-dir",
            str(tiny_features),
            "--tracking-uri",
            store,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "| lightgbm |" in out and "| tree |" in out and "ratio to oracle" in out
    client = MlflowClient()
    exp = client.get_experiment_by_name("zicht/jonge_aanwas")
    parent = next(
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("mlflow.runName") == "bench-jonge_aanwas"
    )
    assert parent.data.tags["zicht.kind"] == "bench"
    children = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert {c.data.tags["zicht.model"] for c in children} == {"lightgbm", "tree"}
    board = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=parent.info.run_id, artifact_path="leaderboard/leaderboard.csv"
        )
    )
    lg = board.set_index("model").loc["lightgbm"]
    assert (
        lg["roc_auc_lo"] <= lg["roc_auc_hi"]
        and lg["vs_oracle_lo"] <= lg["vs_oracle"] <= lg["vs_oracle_hi"] + 1e-9
    )
    assert lg["best_baseline"] == "tree"
    # the main model minus every baseline, with its interval and whether it excludes 0
    assert lg["minus_tree_lo"] <= lg["minus_tree"] <= lg["minus_tree_hi"] + 1e-9
    assert "| lightgbm minus |" in out and "| tree |" in out.split("| lightgbm minus |")[1]
    # benches never become champion (the main model's nested `train` run may: by design)
    chosen = tracking.choose_champion(
        "jonge_aanwas",
        fingerprint=parent.data.tags["zicht.data_fingerprint"],
        protocol=parent.data.tags["zicht.protocol"],
    )
    benches = [c.info.run_id for c in children if c.data.tags["zicht.kind"] == "bench"]
    assert len(benches) == 2 and chosen not in {parent.info.run_id, *benches}


def test_tune_makes_nested_trials_and_a_competing_refit(
    tiny_features: Path, store: str, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [
        "tune",
        "branch_turnover",
        "--trials",
        "3",
        "--model",
        "tree",
        "--storage",
        storage,
        "--data-dir",
        str(tiny_features),
        "--tracking-uri",
        store,
    ]
    assert main(args) == 0
    client = MlflowClient()
    exp = client.get_experiment_by_name("zicht/branch_turnover")
    parent = client.search_runs(
        [exp.experiment_id], "tags.`zicht.kind` = 'tune'", order_by=["attributes.start_time DESC"]
    )[0]
    trials = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(trials) == 3 and all(t.data.tags["zicht.kind"] == "trial" for t in trials)
    assert "best.max_depth" in parent.data.params and "r2_log" in parent.data.metrics
    chosen = tracking.choose_champion(
        "branch_turnover",
        fingerprint=parent.data.tags["zicht.data_fingerprint"],
        protocol=parent.data.tags["zicht.protocol"],
    )
    assert chosen not in {t.info.run_id for t in trials}
    # the study resumes from its storage
    assert main(args) == 0
    import optuna

    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    assert len(study.trials) == 6


def test_baselines_fit_on_a_stated_uniform_sample() -> None:
    from models.evaluation import _fit_rows

    y = (np.arange(10_000) % 100 == 0).astype(int)
    keep = _fit_rows(y, 1_000, 7)
    assert keep.sum() == 1_000 and np.array_equal(keep, _fit_rows(y, 1_000, 7))
    assert _fit_rows(y, None, 7).all() and _fit_rows(y, 20_000, 7).all()


def test_config_params_reach_the_logged_model(
    tiny_features: Path, store: str, tmp_path: Path
) -> None:
    """`params:` in a config sets the model's parameters in a tracked run (and its logged
    config), so a tuned setting can be carried over; the shipped configs stay valid."""
    import yaml

    cfg = load_config(default_config_path("branch_turnover"))
    path = tmp_path / "turnover_depth3.yaml"
    doc = {"task": "branch_turnover", "features": list(cfg.features)}
    path.write_text(yaml.safe_dump({**doc, "params": {"tree": {"max_depth": 3}}}))
    args = ["train", "branch_turnover", "--model", "tree", "--config", str(path)]
    assert main([*args, "--data-dir", str(tiny_features), "--tracking-uri", store]) == 0
    client = MlflowClient()
    exp = client.get_experiment_by_name("zicht/branch_turnover")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    depth = {k: v for k, v in run.data.params.items() if k.endswith("max_depth")}
    assert depth and set(depth.values()) == {"3"}, depth
    logged = yaml.safe_load(
        mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config/experiment.yaml")
    )
    assert logged["params"] == {"tree": {"max_depth": 3}}
