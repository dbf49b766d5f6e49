"""``zicht bench shap``: the project's SHAP path against exact TreeSHAP of a reference model.

On one task's data (training years to fit, the hold-out year to explain):

* **Speed**: rows/s of exact SHAP of the project's LightGBM (its defaults: 15 leaves,
  300 trees) against the unconstrained reference (200 trees, 63 leaves, no depth limit,
  ``min_child_samples`` = ``min_count``), both through LightGBM's native TreeSHAP on the
  same rows and threads; also on one thread, to show the multithreading lever.
* **Cost**: the hold-out AUC of both, and the reference minus the project model with a
  95% paired bootstrap interval over gemeenten (a positive value is AUC given up).
* **Area profiles**: time to build them exactly (every unit) and with the per-buurt sample
  of :class:`~experiments.explain.ExplainSettings`, and the sample's error against the
  exact profiles: the share of areas (n ≥ ``min_count``) whose top-3 drivers agree, and
  the mean absolute error of area mean SHAP as a share of each feature's national SHAP
  standard deviation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score as roc_auc

from experiments.config import default_config_path, load_config
from experiments.explain import ExplainSettings, profiles
from experiments.train import prepare
from models import explain as E
from models.bootstrap import interval, paired_bootstrap
from models.estimators import fit_kwargs, make_estimator

#: The reference of the issue: 200 trees, 63 leaves, grown without a depth limit.
REFERENCE = {"n_estimators": 200, "num_leaves": 63, "max_depth": -1, "learning_rate": 0.1}


def _mean_depth(model: Any) -> float:
    def depth(node: dict[str, Any]) -> int:
        if "leaf_index" in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    trees = model.booster_.dump_model()["tree_info"]
    return float(statistics.mean(depth(t["tree_structure"]) for t in trees))


def _rows_per_second(model: Any, X: np.ndarray, features: list[str], n_jobs: int) -> float:
    t0 = time.perf_counter()
    E.explain(model, X, features, n_jobs=n_jobs)
    return len(X) / (time.perf_counter() - t0)


def profile_error(
    exact: pd.DataFrame,
    sampled: pd.DataFrame,
    features: list[str],
    *,
    sd: np.ndarray,
    min_count: int = 10,
) -> dict[str, float]:
    """Top-3 agreement and relative MAE of area mean SHAP, over areas with n ≥ *min_count*."""
    keys = [c for c in ("level", "area_code", "age_group") if c in exact.columns]
    both = exact.merge(sampled, on=keys, suffixes=("", "_s"))
    both = both[both["n"] >= min_count]
    top = [f"driver_{k}" for k in (1, 2, 3)]
    same = [
        set(filter(None, a)) == set(filter(None, b))
        for a, b in zip(
            both[top].itertuples(index=False),
            both[[f"{t}_s" for t in top]].itertuples(index=False),
            strict=True,
        )
    ]
    cols = [f"shap__{f}" for f in features]
    err = np.abs(both[cols].to_numpy() - both[[f"{c}_s" for c in cols]].to_numpy())
    rel = err.mean(axis=0) / np.where(sd > 0, sd, np.inf)
    return {
        "areas": float(len(both)),
        "top3_agreement": float(np.mean(same)) if same else float("nan"),
        "mae_over_sd_mean": float(rel.mean()),
        "mae_over_sd_max": float(rel.max()),
    }


def bench_shap(
    task: str,
    *,
    data_dir: Path,
    tracking_uri: str,
    rows: int = 5_000,
    settings: ExplainSettings | None = None,
    n_boot: int = 200,
    progress: Callable[[str], None] = lambda _m: None,
) -> pd.DataFrame:
    """Measure one task; returns a table ``metric, value, note``."""
    settings = settings or ExplainSettings(max_per_area=200)
    cfg = load_config(default_config_path(task))
    prep = prepare(cfg, data_dir=data_dir, tracking_uri=tracking_uri)
    frame, feats, spec = prep.in_memory("zicht bench shap"), prep.features, prep.task
    hold = (frame["year"] == prep.protocol.holdout_year).to_numpy()
    train = np.isin(frame["year"].to_numpy(), prep.protocol.train_years)
    X = frame[feats].to_numpy(np.float32)
    y = frame[spec.label].to_numpy()
    cat = spec.categorical(feats)
    out: list[tuple[str, float, str]] = []

    fitted = {}
    # the project model is the one `zicht train` fits: the zoo defaults with the config's params
    for name, params in (("project", prep.model_params("lightgbm")), ("reference", REFERENCE)):
        progress(f"fit the {name} model")
        model = make_estimator(
            "lightgbm",
            spec.kind,
            params=params,
            categorical=cat,
            min_count=settings.min_count,
            random_state=settings.random_state,
            n_jobs=settings.n_jobs,
        )
        if name == "reference":
            model.set_params(
                min_child_samples=settings.min_count,
                subsample=1.0,
                colsample_bytree=1.0,
                reg_lambda=0.0,
                max_bin=255,
            )
        t0 = time.perf_counter()
        model.fit(X[train], y[train], **fit_kwargs("lightgbm", cat))
        out.append((f"{name}_fit_seconds", time.perf_counter() - t0, ""))
        out.append((f"{name}_mean_depth", _mean_depth(model), "mean depth of its trees"))
        fitted[name] = model

    progress("SHAP speed on identical rows")
    Xh = X[hold]
    rng = np.random.default_rng(settings.random_state)
    pick = np.sort(rng.choice(len(Xh), size=min(rows, len(Xh)), replace=False))
    ref_rows = pick[: max(200, len(pick) // 5)]
    ours = _rows_per_second(fitted["project"], Xh[pick], feats, settings.n_jobs)
    ours_1 = _rows_per_second(fitted["project"], Xh[pick], feats, 1)
    ref = _rows_per_second(fitted["reference"], Xh[ref_rows], feats, settings.n_jobs)
    out += [
        ("project_rows_per_second", ours, f"{settings.n_jobs} threads, {len(pick):,} rows"),
        ("project_rows_per_second_1_thread", ours_1, "one thread"),
        ("reference_rows_per_second", ref, f"{settings.n_jobs} threads, {len(ref_rows):,} rows"),
        ("speedup_vs_reference", ours / ref, "target >= 5"),
    ]

    if spec.kind == "binary":
        progress("AUC cost: paired bootstrap over gemeenten")
        yh = y[hold].astype(np.float64)
        score = {k: m.predict_proba(Xh)[:, 1] for k, m in fitted.items()}
        auc = {k: roc_auc(yh, s) for k, s in score.items()}
        boot = paired_bootstrap(
            yh,
            spec.groups(frame[hold]),
            score,
            kind="binary",
            n_boot=n_boot,
            random_state=settings.random_state,
        )
        lo, hi = interval(boot["reference"] - boot["project"])
        out += [
            ("project_holdout_auc", auc["project"], ""),
            ("reference_holdout_auc", auc["reference"], ""),
            (
                "auc_cost",
                auc["reference"] - auc["project"],
                f"95% CI [{lo:.4f}, {hi:.4f}]; target <= 0.005",
            ),
        ]

    progress("area profiles: exact and sampled")
    model = fitted["project"]
    hframe = frame[hold].reset_index(drop=True)
    t0 = time.perf_counter()
    exact, n_exact, _ = profiles(task, model, hframe, feats, replace(settings, max_per_area=None))
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    sampled, n_sampled, _ = profiles(task, model, hframe, feats, settings)
    t_sampled = time.perf_counter() - t0
    sv = E.explain(model, Xh[pick], feats, n_jobs=settings.n_jobs)
    err = profile_error(
        exact, sampled, feats, sd=sv.values.std(axis=0), min_count=settings.min_count
    )
    out += [
        ("profiles_exact_seconds", t_exact, f"{n_exact:,} units explained"),
        (
            "profiles_sampled_seconds",
            t_sampled,
            f"{n_sampled:,} units explained (max {settings.max_per_area} per buurt)",
        ),
        ("profiles_speedup", t_exact / t_sampled, ""),
        ("profiles_areas_compared", err["areas"], "areas with n >= min_count"),
        ("profiles_top3_agreement", err["top3_agreement"], "target >= 0.95"),
        ("profiles_mae_over_sd_mean", err["mae_over_sd_mean"], "mean over features"),
        ("profiles_mae_over_sd_max", err["mae_over_sd_max"], "worst feature; target <= 0.05"),
    ]
    table = pd.DataFrame(out, columns=["metric", "value", "note"])
    table.insert(0, "task", task)
    return table


def markdown(table: pd.DataFrame) -> str:
    lines = ["| task | metric | value | note |", "|---|---|---|---|"]
    for r in table.itertuples(index=False):
        lines.append(f"| {r.task} | {r.metric} | {r.value:,.4g} | {r.note} |")
    return "\n".join(lines) + "\n"
