"""The estimator zoo behind one interface: ``make_estimator(name, kind, ...)``.

* ``lightgbm`` — the main model; deterministic (``deterministic=True``, fixed threads, seeded);
  a robust (Huber) loss for turnover;
* ``tree`` — a decision tree, as the original ZoO work used;
* ``logistic`` — scaled logistic regression (Huber regression for turnover), with median
  imputation and missing-value indicators;
* ``histgb`` — scikit-learn's HistGradientBoosting. It reads integer-coded categoricals as
  ordered codes, not natively: shap's TreeExplainer cannot read HistGB's categorical
  (bitset) splits (its additivity error reached 4 log-odds on the tiny world), and every
  model of the zoo must be explainable exactly.

Every tree-based model keeps at least ``min_count`` units per leaf, so no leaf (and no SHAP
value or plot built on one) describes fewer than ``min_count`` units. Probabilities are never
class-reweighted: no ``class_weight``, no ``is_unbalance``, no ``scale_pos_weight``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import lightgbm as lgb
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import HuberRegressor, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

Kind = Literal["binary", "regression"]
MODELS: tuple[str, ...] = ("lightgbm", "tree", "logistic", "histgb")

#: Defaults per model; a config or an Optuna trial overrides them.
DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    # regularised for rare events (a few per 10,000 units): small trees, large leaves
    "lightgbm": {
        "n_estimators": 300,
        "learning_rate": 0.03,
        "num_leaves": 15,
        "min_child_samples": 100,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "max_bin": 63,
    },
    "tree": {"max_depth": 6},
    "logistic": {"C": 1.0},
    # the same regularisation as LightGBM: without it, rare events make HistGB diverge
    "histgb": {
        "max_iter": 300,
        "learning_rate": 0.03,
        "max_leaf_nodes": 15,
        "l2_regularization": 1.0,
    },
}


#: Parameters a config (``params:``) or a trial may set per model, beyond :data:`DEFAULTS`.
TUNABLE: Mapping[str, frozenset[str]] = {
    "lightgbm": frozenset(
        {
            *DEFAULTS["lightgbm"],
            "max_depth",
            "reg_alpha",
            "min_split_gain",
            "min_child_weight",
            "path_smooth",
            "cat_smooth",
            "cat_l2",
            "min_data_per_group",
            "max_cat_threshold",
            "extra_trees",
        }
    ),
    "tree": frozenset({*DEFAULTS["tree"], "min_samples_split", "max_leaf_nodes", "ccp_alpha"}),
    "logistic": frozenset(DEFAULTS["logistic"]),
    "histgb": frozenset({*DEFAULTS["histgb"], "max_depth", "max_bins"}),
}
#: Never settable: probabilities are never class-reweighted.
REWEIGHTING = frozenset({"class_weight", "is_unbalance", "scale_pos_weight"})


def _check_model(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


def check_params(name: str, params: Mapping[str, Any]) -> None:
    """Refuse parameters *name* cannot take from a config: class reweighting, settings the
    zoo fixes (determinism, threads, seed, objective, leaf floor) and unknown names."""
    _check_model(name)
    for key, value in params.items():
        if key in REWEIGHTING:
            raise ValueError(
                f"{name}.{key}: probabilities are never class-reweighted; remove it "
                "(calibration is a separate monotone map fitted out of fold)"
            )
        if key not in TUNABLE[name]:
            raise ValueError(
                f"{name}.{key}: not a parameter a config may set (the zoo fixes determinism, "
                f"threads, seed, objective and the leaf floor); choose from "
                f"{', '.join(sorted(TUNABLE[name]))}"
            )
        if not isinstance(value, bool | int | float | str):
            raise ValueError(f"{name}.{key}: expected a number, text or true/false, got {value!r}")


def make_estimator(
    name: str,
    kind: Kind,
    *,
    params: Mapping[str, Any] | None = None,
    categorical: Sequence[int] = (),
    min_count: int = 10,
    random_state: int = 0,
    n_jobs: int = 2,
) -> BaseEstimator:
    """A fresh, unfitted estimator of the zoo.

    Parameters
    ----------
    name:
        ``lightgbm``, ``tree``, ``logistic`` or ``histgb``.
    kind:
        ``binary`` (a classifier with ``predict_proba``) or ``regression``.
    params:
        Overrides of :data:`DEFAULTS`.
    categorical:
        Column positions of integer-coded categorical features (LightGBM uses them
        natively; the others treat the codes as numbers).
    min_count:
        Smallest number of units in a leaf of a tree-based model.
    """
    _check_model(name)
    p = {**DEFAULTS[name], **(params or {})}
    if name == "lightgbm":
        common = dict(
            p,
            min_child_samples=max(int(p["min_child_samples"]), min_count),
            deterministic=True,
            force_row_wise=True,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=-1,
        )
        if kind == "binary":
            return lgb.LGBMClassifier(objective="binary", **common)
        return lgb.LGBMRegressor(objective="huber", alpha=1.0, **common)
    if name == "tree":
        tree_cls = DecisionTreeClassifier if kind == "binary" else DecisionTreeRegressor
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            tree_cls(min_samples_leaf=min_count, random_state=random_state, **p),
        )
    if name == "logistic":
        head = (
            LogisticRegression(max_iter=2000, **p)
            if kind == "binary"
            else HuberRegressor(max_iter=1000, alpha=1.0 / p["C"])
        )
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            head,
        )
    hgb_cls = HistGradientBoostingClassifier if kind == "binary" else HistGradientBoostingRegressor
    extra = {} if kind == "binary" else {"loss": "absolute_error"}
    return hgb_cls(
        min_samples_leaf=max(min_count, 100),
        categorical_features=None,  # see the module docstring: keeps SHAP exact
        random_state=random_state,
        early_stopping=False,
        **extra,
        **p,
    )


def fit_kwargs(name: str, categorical: Sequence[int]) -> dict[str, Any]:
    """Extra ``fit`` arguments (LightGBM takes its categorical columns at fit time)."""
    if name == "lightgbm" and categorical:
        return {"categorical_feature": list(categorical)}
    return {}
