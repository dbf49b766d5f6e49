"""Benchmark of the world, not of a model: how much of the planted signal can a main-effects
logistic regression reach at all, and how much can a tree ensemble reach?

With the truth files we can fit both model families to the *true* probabilities instead of
the drawn labels (each unit counts as a positive with weight p and a negative with weight
1 − p): the population limit of each family, free of label noise. Half of the gemeenten fit,
the other half are scored, and every AUC is the *expected* AUC against the truth (the same
weights), next to the oracle's on the same half. A world whose logistic ceiling is close to
the oracle makes "LightGBM beats logistic" unprovable at any sample size; this is the check
behind generator 1.1's hennep process (docs/world.md §8). Diagnostic only: no model of the
suite reads the truth. Writes ``benchmarks/results/world_ceiling_<scale>.md``.

    .venv/bin/python benchmarks/world_ceiling.py --data-dir DATA [TASK ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/features.py would shadow
# the project's `features` package: drop the folder before importing the project.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score

from experiments.config import default_config_path, load_config
from experiments.train import prepare
from models.estimators import make_estimator

TASKS = ("hennep", "jonge_aanwas")
RESULTS = Path(__file__).resolve().parent / "results"


def expected_auc(score: np.ndarray, p: np.ndarray) -> float:
    """The AUC that *score* has in expectation over labels drawn with probabilities *p*."""
    n = len(score)
    labels = np.r_[np.ones(n), np.zeros(n)]
    return float(roc_auc_score(labels, np.r_[score, score], sample_weight=np.r_[p, 1 - p]))


def ceilings(data_dir: Path, task: str, store: str) -> dict[str, float]:
    cfg = load_config(default_config_path(task))
    prep = prepare(cfg, data_dir=data_dir, tracking_uri=store)
    frame = prep.frame
    if prep.oracle is None:
        raise SystemExit(f"{data_dir}: no truth files; this benchmark needs a generated world")
    p = np.asarray(prep.oracle, dtype=np.float64)
    use = np.isin(frame["year"].to_numpy(), prep.protocol.train_years) & np.isfinite(p)
    use &= np.isfinite(frame[prep.task.label].to_numpy(np.float64))
    X = frame.loc[use, prep.features].to_numpy(np.float32)
    p = p[use]
    groups = prep.task.groups(frame)[use]
    gemeenten = np.unique(groups)
    fit_half = np.isin(
        groups, np.random.default_rng(0).permutation(gemeenten)[: len(gemeenten) // 2]
    )
    score_half = ~fit_half
    out = {"units": float(len(p)), "oracle": expected_auc(p[score_half], p[score_half])}

    t0 = time.perf_counter()
    logistic = make_estimator("logistic", "binary")
    n = int(fit_half.sum())
    logistic.fit(
        np.r_[X[fit_half], X[fit_half]],
        np.r_[np.ones(n), np.zeros(n)],
        logisticregression__sample_weight=np.r_[p[fit_half], 1 - p[fit_half]],
    )
    s = logistic.predict_proba(X[score_half])[:, 1]
    out["logistic"], out["logistic_s"] = expected_auc(s, p[score_half]), time.perf_counter() - t0

    t0 = time.perf_counter()
    # a large, lightly regularised ensemble on soft labels (cross-entropy accepts p in [0, 1])
    trees = lgb.LGBMRegressor(
        objective="cross_entropy",
        n_estimators=600,
        learning_rate=0.05,
        num_leaves=63,
        min_child_samples=50,
        n_jobs=2,
        random_state=0,
        verbose=-1,
    )
    trees.fit(X[fit_half], p[fit_half], categorical_feature=prep.task.categorical(prep.features))
    s = trees.predict(X[score_half])
    out["lightgbm"], out["lightgbm_s"] = expected_auc(s, p[score_half]), time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--data-dir", type=Path, required=True)
    args = ap.parse_args()
    lines = [
        "| task | units (training years) | oracle | logistic ceiling (ratio) | "
        "LightGBM ceiling (ratio) | gap LightGBM − logistic |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for task in args.tasks:
            r = ceilings(args.data_dir, task, store)
            lines.append(
                f"| {task} | {int(r['units']):,} | {r['oracle']:.4f} | {r['logistic']:.4f} "
                f"({r['logistic'] / r['oracle']:.3f}) | {r['lightgbm']:.4f} "
                f"({r['lightgbm'] / r['oracle']:.3f}) | {r['lightgbm'] - r['logistic']:+.4f} |"
            )
            print(lines[-1], flush=True)
        manifest = json.loads((args.data_dir / "world" / "manifest.json").read_text())
        scale, seed = manifest.get("scale", "?"), manifest.get("seed", "?")
    md = (
        f"# World ceilings ({scale}, seed {seed})\n\n"
        "Expected AUC against the truth on the half of the gemeenten that did not fit, for "
        "each model family fitted to the true probabilities (`benchmarks/world_ceiling.py`). "
        "The ceiling is the population limit of the family; finite samples reach less.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"world_ceiling_{scale}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
