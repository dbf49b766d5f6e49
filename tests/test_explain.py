"""SHAP: exactness against shap, additivity for every zoo model, a planted driver, area
profiles that add up, binned plots only, and `zicht explain` writing the contract's files."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import shap
from hypothesis import given
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from experiments.cli import main
from features.catalogue import TASK_FEATURES
from models import explain as E
from models.estimators import MODELS, fit_kwargs, make_estimator
from models.tasks import get_task
from reports import plots

SMALL = {"lightgbm": {"n_estimators": 60}, "histgb": {"max_iter": 60}}


@pytest.fixture(scope="module")
def tiny_features(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("explain")
    (data / "world").symlink_to(tiny_data / "world")
    (data / "truth").symlink_to(tiny_data / "truth")
    for task in ("jonge_aanwas", "branch_turnover"):
        assert main(["features", task, "--data-dir", str(data)]) == 0
    return data


def _fit(task: str, name: str, data: Path) -> tuple[object, np.ndarray, list[str], pd.DataFrame]:
    spec = get_task(task)
    feats = list(TASK_FEATURES[task])
    frame = pd.read_parquet(data / "features" / f"{task}.parquet")
    X = frame[feats].to_numpy(np.float32)
    cat = spec.categorical(feats)
    model = make_estimator(name, spec.kind, params=SMALL.get(name), categorical=cat)
    model.fit(X, frame["label"].to_numpy(), **fit_kwargs(name, cat))  # type: ignore[attr-defined]
    return model, X, feats, frame


@pytest.mark.parametrize("task", ["jonge_aanwas", "branch_turnover"])
@pytest.mark.parametrize("name", MODELS)
def test_every_zoo_model_is_explained_additively(task: str, name: str, tiny_features: Path) -> None:
    model, X, feats, _ = _fit(task, name, tiny_features)
    sv = E.explain(model, X[:1500], feats)
    assert sv.values.shape == (1500, len(feats))
    raw = E.raw_output(model, X[:1500])
    np.testing.assert_allclose(sv.raw(), raw, atol=1e-5, rtol=1e-6)
    if get_task(task).kind == "binary" and name != "tree":
        assert sv.output == "log-odds"  # classifiers are explained on their raw log-odds
    # tidy frame and shap.Explanation carry the same numbers
    tidy = sv.to_frame()
    assert len(tidy) == 1500 * len(feats)
    np.testing.assert_array_equal(tidy["shap"].to_numpy(), sv.values.ravel())
    assert np.array_equal(sv.to_explanation().values, sv.values)


def test_lightgbm_native_treeshap_matches_shap_exactly(tiny_features: Path) -> None:
    model, X, feats, _ = _fit("jonge_aanwas", "lightgbm", tiny_features)
    ours = E.explain(model, X[:2000], feats)
    theirs = np.asarray(shap.TreeExplainer(model)(X[:2000]).values)
    if theirs.ndim == 3:
        theirs = theirs[:, :, -1]
    np.testing.assert_allclose(ours.values, theirs, atol=1e-6)


def test_planted_strongest_driver_is_in_the_top_three(tiny_features: Path) -> None:
    """The world's age curve (-0.03 (age - 18.5)^2: up to 3.3 log-odds over 8-23) is the
    strongest planted jonge-aanwas effect; the model's global SHAP must rank it top 3."""
    model, X, feats, _ = _fit("jonge_aanwas", "lightgbm", tiny_features)
    imp = E.global_importance(E.explain(model, X, feats))
    assert "age" in imp["feature"].head(3).tolist(), imp.head(5)


def test_a_planted_local_driver_tops_its_area() -> None:
    """Known answer: a feature that raises risk only in one area is that area's top driver,
    and its prevalence there is against the national one."""
    rng = np.random.default_rng(3)
    n = 40_000
    area = rng.integers(0, 20, n)
    x = np.c_[rng.normal(size=n), rng.normal(size=n), (rng.random(n) < 0.05).astype(float)]
    x[area == 7, 2] = (rng.random((area == 7).sum()) < 0.6).astype(float)  # planted here
    logit = -3 + 0.3 * x[:, 0] + 2.5 * x[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    model = make_estimator("lightgbm", "binary", params={"n_estimators": 80})
    model.fit(x.astype(np.float32), y)  # type: ignore[attr-defined]
    sv = E.explain(model, x, ["a", "b", "planted"])
    codes = pd.DataFrame(
        {
            "buurt_code": [f"BU{a:08d}" for a in area],
            "wijk_code": [f"WK{a // 5:06d}" for a in area],
            "gemeente_code": "GM0001",
            "riec_code": "RIEC01",
        }
    )
    ind = E.indicators(sv, x)
    prof = E.area_profiles(sv, np.ones(n), codes, ind, codes)
    row = prof[(prof["level"] == "buurt") & (prof["area_code"] == "BU00000007")].iloc[0]
    assert row["driver_1"] == "planted"
    assert row["driver_prevalence_1"] > 0.5 > 0.1 > row["driver_national_1"] - 0.05


@given(
    n_areas=st.integers(2, 30),
    cap=st.one_of(st.none(), st.integers(1, 50)),
    seed=st.integers(0, 10_000),
)
def test_area_profiles_add_up_to_the_national_total(
    n_areas: int, cap: int | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    buurt = rng.integers(0, n_areas, n)
    codes = pd.DataFrame(
        {
            "buurt_code": [f"BU{b:08d}" for b in buurt],
            "wijk_code": [f"WK{b // 3:06d}" for b in buurt],
            "gemeente_code": [f"GM{b // 7:04d}" for b in buurt],
            "riec_code": "RIEC01",
            "age_group": rng.choice(["8-12", "13-19", "20-23"], n),
        }
    )
    strata = (codes["buurt_code"] + "|" + codes["age_group"]).to_numpy()
    rows, weight = E.sample_per_area(strata, max_per_area=cap)
    values = rng.normal(size=(len(rows), 3))
    sv = E.ShapValues(values, -2.0, rng.normal(size=(len(rows), 3)), ("a", "b", "c"), "log-odds")
    ind = rng.random((n, 3)) < 0.3
    prof = E.area_profiles(sv, weight, codes.iloc[rows], ind, codes, group="age_group")
    for group in ("total", "8-12"):
        p = prof[prof["age_group"] == group]
        national = p[p["level"] == "nederland"].iloc[0]
        for level in ("buurt", "wijk", "gemeente", "riec"):
            part = p[p["level"] == level]
            assert part["n"].sum() == national["n"]
            for f in ("a", "b", "c"):
                total = (part[f"shap__{f}"] * part["n"]).sum()
                assert np.isclose(total, national[f"shap__{f}"] * national["n"])
    # the sample weights restore every area's units exactly
    per_area = pd.Series(weight).groupby(strata[rows]).sum()
    assert np.allclose(per_area.to_numpy(), pd.Series(strata).value_counts().sort_index())
    # a sample drawn per buurt only cannot restore the age groups: refused, not mis-weighted
    rows, weight = E.sample_per_area(codes["buurt_code"].to_numpy(), max_per_area=1)
    sv = E.ShapValues(rng.normal(size=(len(rows), 3)), 0.0, values[:0], ("a", "b", "c"), "raw")
    if len(rows) < n:
        with pytest.raises(E.ExplainError):
            E.area_profiles(sv, weight, codes.iloc[rows], ind, codes, group="age_group")


@given(
    sizes=st.lists(st.integers(1, 400), min_size=1, max_size=40),
    budget=st.integers(1, 5_000),
)
def test_cap_for_budget_is_the_largest_cap_that_fits(sizes: list[int], budget: int) -> None:
    areas = np.repeat(np.arange(len(sizes)), sizes)
    cap = E.cap_for_budget(areas, budget)
    counts = np.asarray(sizes)
    if np.minimum(counts, 1).sum() <= budget:
        assert np.minimum(counts, cap).sum() <= budget
        assert cap >= counts.max() or np.minimum(counts, cap + 1).sum() > budget
    else:
        assert cap == 1  # even one unit per area exceeds the budget: one each


@pytest.mark.parametrize("task", ["branch_turnover", "jonge_aanwas"])
def test_sampled_profiles_restore_every_area(task: str, tiny_features: Path) -> None:
    """A per-area sample (as at national scale) keeps every level's totals exact."""
    from experiments.explain import ExplainSettings, profiles

    model, _, feats, frame = _fit(task, "lightgbm", tiny_features)
    last = frame[frame["year"] == frame["year"].max()].reset_index(drop=True)
    exact, n_exact, _ = profiles(task, model, last, feats, ExplainSettings())
    sampled, n_rows, _ = profiles(task, model, last, feats, ExplainSettings(max_per_area=3))
    assert n_rows < n_exact == len(last)
    keys = [c for c in ("level", "area_code", "age_group") if c in exact.columns]
    both = exact.merge(sampled, on=keys, suffixes=("", "_s"))
    assert len(both) == len(exact) and (both["n"] == both["n_s"]).all()
    f = f"shap__{feats[0]}"
    for part in (sampled, exact):
        nl = part[part["level"] == "nederland"]
        for level in set(part["level"]) - {"nederland", "wijk"}:
            lv = part[part["level"] == level]
            if "age_group" in part.columns:
                lv, nlg = lv[lv["age_group"] == "total"], nl[nl["age_group"] == "total"]
            else:
                nlg = nl
            assert np.isclose((lv[f] * lv["n"]).sum(), (nlg[f] * nlg["n"]).sum())


def test_plots_take_binned_frames_only() -> None:
    rng = np.random.default_rng(0)
    sv = E.ShapValues(
        rng.normal(size=(5000, 2)), 0.0, rng.normal(size=(5000, 2)), ("a", "b"), "log-odds"
    )
    binned = E.binned_summary(sv)
    assert binned["units"].min() >= 10
    unit_rows = sv.to_frame().rename(columns={"shap": "shap_mean"}).assign(units=1)
    with pytest.raises(plots.NotAggregateError):
        plots.shap_summary_plot(unit_rows, Path("x.png"), title="t", order=["a", "b"])
    small = binned.assign(units=5)
    with pytest.raises(plots.NotAggregateError):
        plots.shap_dependence_plot(small, Path("x.png"), feature="a", title="t")


def test_categoricals_are_binned_per_category_not_as_a_range(tmp_path: Path) -> None:
    """Known answer: 12 regions whose effect does not follow their code order. Each region
    is its own bin, named, unordered; the driver indicator is the set of risk-raising
    regions; a region of 4 units joins the pooled bin, never a neighbour."""
    rng = np.random.default_rng(5)
    n = 30_000
    names = tuple(f"R{i:02d}" for i in range(12))
    region = rng.integers(0, 11, n).astype(float)
    region[:4] = 11  # a tiny region: pooled with nothing else big enough
    effect = np.array([1.0, -1.0] * 6)  # alternating: no range of codes captures it
    x = np.c_[region, rng.normal(size=n)]
    logit = -2 + effect[region.astype(int)] + 0.5 * x[:, 1]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    model = make_estimator("lightgbm", "binary", params={"n_estimators": 80}, categorical=[0])
    model.fit(x.astype(np.float32), y, **fit_kwargs("lightgbm", [0]))  # type: ignore[attr-defined]
    sv = E.explain(model, x, ["region", "z"])
    cats = {"region": names}
    binned = E.binned_summary(sv, categories=cats)
    reg = binned[binned["feature"] == "region"].set_index("category")
    assert set(reg.index) == set(names[:11])  # one row per region, by name; R11 too small
    assert reg["value_rank"].isna().all() and (reg["units"] >= 10).all()
    for k in range(11):
        assert np.sign(reg.loc[names[k], "shap_mean"]) == np.sign(effect[k])
    numeric = binned[binned["feature"] == "z"]
    assert numeric["category"].isna().all() and numeric["value_rank"].notna().all()
    ind = E.indicators(sv, x, categories=cats)
    rising = effect[region.astype(int)] > 0
    assert (ind[4:, 0] == rising[4:]).all()
    # the plots draw categories as unordered marks, on log-odds axes
    assert plots.shap_summary_plot(binned, tmp_path / "s.png", title="t", order=["region", "z"])
    dep = plots.shap_dependence_plot(binned, tmp_path / "d.png", feature="region", title="t")
    assert dep.stat().st_size > 0
    assert plots.shap_axis(sv.output) == "log-odds"


def test_value_bins_never_hold_fewer_than_min_count() -> None:
    x = np.r_[np.zeros(3), np.arange(200.0), [np.nan] * 4]
    b = E.value_bins(x, min_count=10)
    counts = np.bincount(b[b >= 0])
    assert counts.min() >= 10 and (b[-4:] == -1).all()


def test_zicht_explain_writes_the_contract_files(
    tiny_features: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tiny_features / 'mlflow.db'}"
    args = ["--data-dir", str(tiny_features), "--tracking-uri", store]
    assert main(["train", "jonge_aanwas", *args]) == 0
    assert main(["explain", "jonge_aanwas", "--sample", "3000", *args]) == 0
    mlflow.set_tracking_uri(store)
    client = MlflowClient()
    version = client.get_model_version_by_alias("zicht-jonge_aanwas", "champion")
    names = {a.path for a in client.list_artifacts(str(version.run_id), "shap")}
    assert {"shap/global_importance.csv", "shap/importance_bar.png", "shap/summary.png"} <= names
    local = Path(client.download_artifacts(str(version.run_id), "shap"))
    imp = pd.read_csv(local / "global_importance.csv")
    assert list(imp.columns) == ["feature", "mean_abs_shap", "rank"]
    assert imp["rank"].tolist() == list(range(1, len(imp) + 1))
    binned = pd.read_csv(local / "binned_summary.csv")
    assert binned["units"].min() >= 10  # aggregates only, never a unit row
    for csv in local.glob("*.csv"):
        assert not [c for c in pd.read_csv(csv).columns if c.endswith("_id")], csv
    prof = pd.read_parquet(tiny_features / "explain" / "jonge_aanwas_profiles.parquet")
    assert set(prof["level"]) == {"buurt", "wijk", "gemeente", "riec", "nederland"}
    assert set(prof["age_group"]) == {"8-12", "13-19", "20-23", "total"}
    assert {"driver_1", "driver_prevalence_1", "driver_national_1"} <= set(prof.columns)
    # an unknown run id is bad input
    capsys.readouterr()
    assert main(["explain", "jonge_aanwas", "--run-id", "nope", *args]) == 2
    assert "does not exist" in capsys.readouterr().err
