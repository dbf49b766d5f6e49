"""Optuna search spaces per model of the zoo (pure: a trial in, parameters out)."""

from __future__ import annotations

from typing import Any

import optuna


def suggest(trial: optuna.Trial, model: str) -> dict[str, Any]:
    """Hyper-parameters for *model*; leaf sizes never go below the zoo's ``min_count``."""
    if model == "lightgbm":
        return {
            "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "n_estimators": trial.suggest_int("n_estimators", 100, 500, step=50),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 1000, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 200.0, log=True),
        }
    if model == "tree":
        return {"max_depth": trial.suggest_int("max_depth", 2, 12)}
    if model == "logistic":
        return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}
    if model == "histgb":
        return {
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 7, 63, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "max_iter": trial.suggest_int("max_iter", 100, 500, step=50),
        }
    raise ValueError(f"no search space for model {model!r}")
