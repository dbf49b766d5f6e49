"""Evaluation: K-fold grouped by gemeente over the training years, plus a temporal hold-out.

* **CV**: the training years (all reference years before the hold-out year) are split into
  ``n_folds`` folds by gemeente, so neighbouring areas never sit on both sides. Out-of-fold
  predictions give the CV metrics (means over folds; per-fold values are kept).
* **Hold-out**: a model fitted on the training years only predicts the last complete year.
  That model is also the *final* model: ``predict`` scores the publication year with a
  model that never saw it.
* **Calibration**: a separate monotone (isotonic) map from the booster's score to a
  probability, fitted on the out-of-fold predictions and applied to the hold-out; the
  classifier itself is never class-reweighted.
* **Turnover**: expected turnover is out of fold (cross-fitted), so an anomalous cell never
  teaches the model its own anomaly; deviation = realised / expected; a cell is flagged when
  the robust z of its log deviation exceeds 3 (one-sided), z taken within the cells of its
  size class (establishments in t - 1) and year. Against the planted truth the k
  highest z per evaluation (k = the planted anomalous cell-years) give precision and recall
  at k, and the recall of each kind of anomaly (one-year spikes, multi-year fronts) among
  those same k cells.

* **Scale**: the feature matrix is never built whole. Fits read only their rows, scoring
  streams over row chunks (:class:`FeatureRows`: an in-memory frame, or a Parquet file at
  national scale). When a binary task has more training rows than ``max_fit_rows``, the
  main model fits on every positive and a seeded sample of the negatives, and the sampling
  rate's log-odds offset is added to the fitted booster: it then predicts the log-odds of
  the full population (:func:`negative_sample`, :func:`shift_raw_score`).

Pure: DataFrames and arrays in, a result object out. Oracle values come in as arrays
aligned with the rows (the experiments layer reads the truth).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from typing import Protocol as TypingProtocol

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GroupKFold

from models import curves as C
from models import metrics as M
from models.calibration import BinnedIsotonicCalibrator
from models.estimators import fit_kwargs, make_estimator
from models.tasks import TaskSpec

FLAG_Z = 3.0


@dataclass(frozen=True)
class Protocol:
    """The evaluation settings; their hash is the ``zicht.protocol`` tag."""

    task: str
    train_years: tuple[int, ...]
    holdout_year: int
    n_folds: int = 5
    window: int = 3
    min_count: int = 10

    def hash(self) -> str:
        doc = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]


@dataclass
class Evaluation:
    """What a training run produced (unit-level arrays stay in memory, never in artifacts)."""

    metrics: dict[str, float]
    fold_metrics: list[dict[str, float]]
    model: BaseEstimator
    calibrator: BinnedIsotonicCalibrator | None
    fit_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def protocol_for(
    years: list[int], task: str, *, n_folds: int = 5, window: int = 3, min_count: int = 10
) -> Protocol:
    years = sorted(years)
    if len(years) < 2:
        raise ValueError(f"{task}: need at least two reference years, got {years}")
    return Protocol(task, tuple(years[:-1]), years[-1], n_folds, window, min_count)


def fold_ids(groups: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold number of every row; a gemeente's rows share one fold (deterministic).

    Groups are factorised in sorted order first: GroupKFold then sees small integers (the
    same folds as on the names, without sorting millions of strings).
    """
    codes = pd.factorize(np.asarray(groups), sort=True)[0]
    folds = np.full(len(codes), -1, dtype=np.int64)
    for k, (_, test) in enumerate(GroupKFold(n_splits=n_folds).split(codes, groups=codes)):
        folds[test] = k
    return folds


class FeatureRows(TypingProtocol):
    """Where the feature matrix comes from: fits read a subset, scoring streams chunks.

    Row positions are those of the evaluation's meta frame (after dropping unlabelled rows).
    """

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The float32 features of the sorted row positions *rows*."""
        ...

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 features) of consecutive chunks covering every row."""
        ...


class FitModels(TypingProtocol):
    """Fits the fold models and the final model on every training row (*fit_idx*: row
    positions of the training years; *folds*, *groups*: every row's fold and gemeente)."""

    def __call__(
        self,
        est: BaseEstimator,
        *,
        fit_idx: np.ndarray,
        folds: np.ndarray,
        groups: np.ndarray,
        categorical: list[int],
        n_folds: int,
    ) -> tuple[list[BaseEstimator], BaseEstimator]: ...


class FrameRows:
    """:class:`FeatureRows` over an in-memory frame (converted chunk by chunk)."""

    def __init__(self, frame: pd.DataFrame, features: list[str], chunk_rows: int = 1_000_000):
        self.frame, self.features, self.chunk_rows = frame, features, chunk_rows

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.frame.iloc[rows][self.features].to_numpy(np.float32)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, len(self.frame), self.chunk_rows):
            part = self.frame.iloc[start : start + self.chunk_rows]
            yield start, part[self.features].to_numpy(np.float32)


def negative_sample(
    y: np.ndarray, eligible: np.ndarray, max_rows: int, random_state: int
) -> tuple[np.ndarray, float]:
    """Every positive and a seeded sample of the negatives among *eligible* rows, so that at
    most *max_rows* are kept; returns (keep mask, negative sampling rate r).

    On the sample the odds of an event are the population's odds ÷ r, so the sample's
    log-odds are the population's minus log r. Adding ``log r`` to the fitted booster's raw
    score (:func:`shift_raw_score`) makes it predict the population's log-odds (r = 1 when
    nothing is dropped).
    """
    keep = eligible.copy()
    pos = eligible & (y == 1)
    neg = np.flatnonzero(eligible & (y != 1))
    n_keep = max_rows - int(pos.sum())
    if eligible.sum() <= max_rows or n_keep >= len(neg):
        return keep, 1.0
    if n_keep <= 0:
        raise ValueError(f"max_fit_rows={max_rows} leaves no room for negatives")
    keep[neg] = False
    keep[np.random.default_rng(random_state).choice(neg, size=n_keep, replace=False)] = True
    return keep, n_keep / len(neg)


def _score(model: BaseEstimator, X: np.ndarray, kind: str) -> np.ndarray:
    if kind == "binary":
        return model.predict_proba(X)[:, 1]
    return model.predict(X)


def _fit(
    est: BaseEstimator,
    X: np.ndarray,
    y: np.ndarray,
    name: str,
    cat: list[int],
    offset: float = 0.0,
) -> BaseEstimator:
    """Fit *est*; a non-zero *offset* (log-odds) is added to the fitted booster's raw score."""
    est = est.fit(X, y, **fit_kwargs(name, cat))
    if offset:
        if name != "lightgbm":
            raise ValueError(f"a sampling offset needs LightGBM, not {name}")
        shift_raw_score(est.booster_, offset)
    return est


def shift_raw_score(booster: Any, offset: float) -> None:
    """Add *offset* to every leaf of the first tree: the booster's raw score (log-odds) moves
    by exactly *offset* for every row, and its trees' SHAP values do not change (only the
    expected value moves). The model stays one self-contained LightGBM file.

    Why not ``init_score``: LightGBM then skips boosting from the average, and a
    regularised booster (300 trees at learning rate 0.03) does not travel the whole way
    from 0 to the log-odds of rare events.
    """
    n_leaves = booster.dump_model(num_iteration=1)["tree_info"][0]["num_leaves"]
    for leaf in range(n_leaves):
        booster.set_leaf_output(0, leaf, booster.get_leaf_output(0, leaf) + offset)


def evaluate(
    frame: pd.DataFrame,
    task: TaskSpec,
    features: list[str],
    *,
    model_name: str,
    protocol: Protocol,
    params: dict[str, Any] | None = None,
    oracle: np.ndarray | None = None,
    anomalous: np.ndarray | None = None,
    area_km2: dict[str, float] | None = None,
    random_state: int = 0,
    n_jobs: int = 2,
    max_train_rows: int | None = None,
    max_fit_rows: int | None = None,
    rows: FeatureRows | None = None,
    fit_models: FitModels | None = None,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Cross-validate, hold out the last year, and fit the final model.

    *progress*, when given, hears each step as it starts (``fit fold 2/5 (next: fold 3)``).

    *frame* holds the meta columns (year, label, area codes) and, unless *rows* supplies
    them (a Parquet file at national scale), the features. Two national-scale plans cap
    the rows a fit sees; evaluation always scores every unit:

    * *max_train_rows*: a seeded uniform sample (the baselines; keeps the base rate);
    * *max_fit_rows*: every positive and a sample of the negatives, corrected by the
      log-odds offset of :func:`negative_sample` (LightGBM on a binary task only).

    *fit_models* replaces the in-process fits (the fold models and the final model), e.g.
    :class:`models.dask_fit.DaskFit` on a Dask cluster; it fits every training row, so it
    takes no sampling plan.
    """
    est, cat = _estimator(task, features, model_name, protocol, params, random_state, n_jobs)
    y_all = frame[task.label].to_numpy()
    keep = np.isfinite(y_all.astype(np.float64))
    if not keep.all():
        if rows is not None:
            raise ValueError("unlabelled rows must be dropped before streaming features")
        frame = frame[keep].reset_index(drop=True)
        if oracle is not None:
            oracle = np.asarray(oracle)[keep]
        if anomalous is not None:
            anomalous = np.asarray(anomalous)[keep]
    source: FeatureRows = rows if rows is not None else FrameRows(frame, features)
    y = frame[task.label].to_numpy()
    years = frame["year"].to_numpy()
    hold = years == protocol.holdout_year
    groups = task.groups(frame)
    train, folds = _train_folds(frame, task, protocol, groups)
    offset = 0.0
    fit_rows = _fit_rows(y, max_train_rows, random_state)
    if max_fit_rows is not None and task.kind == "binary" and model_name == "lightgbm":
        fit_rows, rate = negative_sample(y, train & fit_rows, max_fit_rows, random_state)
        offset = float(np.log(rate))

    # the fits: every fold model and the final model read one shared subset of rows
    t0 = time.perf_counter()
    fit_idx = np.flatnonzero(train & fit_rows)
    say = progress or (lambda _m: None)
    n = protocol.n_folds
    if fit_models is not None:
        if len(fit_idx) != int(train.sum()) or offset:
            raise ValueError("fit_models fits every training row: pass no sampling plan")
        say(f"{n} folds and the final fit on the cluster (next: scoring)")
        models, final = fit_models(
            est,
            fit_idx=fit_idx,
            folds=folds,
            groups=groups,
            categorical=cat,
            n_folds=n,
        )
    else:
        X_fit, y_fit, f_fit = source.take(fit_idx), y[fit_idx], folds[fit_idx]
        models = []
        for k in range(n):
            say(f"fit fold {k + 1}/{n} (next: {f'fold {k + 2}' if k + 1 < n else 'final fit'})")
            models.append(
                _fit(clone(est), X_fit[f_fit != k], y_fit[f_fit != k], model_name, cat, offset)
            )
        # the final model: all training years; it also predicts the hold-out year
        say("final fit on every training year (next: scoring)")
        final = _fit(clone(est), X_fit, y_fit, model_name, cat, offset)
        del X_fit
    fit_seconds = time.perf_counter() - t0

    # one streaming pass: out-of-fold scores for the training years, the final model's
    # scores for the hold-out year
    say("scoring and metrics")
    oof = np.full(len(frame), np.nan)
    raw_hold = np.full(len(frame), np.nan)
    for start, X in source.chunks():
        sl = slice(start, start + len(X))
        f, h = folds[sl], hold[sl]
        for k in range(protocol.n_folds):
            m = f == k
            if m.any():
                oof[sl][m] = _score(models[k], X[m], task.kind)
        if h.any():
            raw_hold[sl][h] = _score(final, X[h], task.kind)
        del X

    # the metrics: each score is sorted once (models.metrics.Ranked), and folds, age groups,
    # curves and the calibration map read subsets of that order
    cols = _metric_columns(frame, area_km2) if task.kind == "binary" else {}
    train_rows = np.flatnonzero(train)
    ranked_oof = (
        M.Ranked.of(y[train], oof[train], positions=train_rows) if task.kind == "binary" else None
    )
    ranked_oracle = (
        M.Ranked.of(y, np.asarray(oracle, dtype=np.float64))
        if task.kind == "binary" and oracle is not None
        else None
    )
    fold_metrics = []
    for k in range(protocol.n_folds):
        in_fold = folds == k
        if ranked_oof is None:
            fold_metrics.append(_regression(in_fold, y, oof, oracle))
            continue
        fold_metrics.append(_binary(ranked_oof.subset(in_fold), cols, ranked_oracle, in_fold))
    metrics = {k: float(np.nanmean([f[k] for f in fold_metrics])) for k in fold_metrics[0]}

    # binned curves for the plots (aggregates only), and the calibration map, from OOF scores
    calibrator = None
    curves: dict[str, pd.DataFrame] = {}
    if ranked_oof is not None:
        mc = protocol.min_count
        curves = {
            "calibration": C.calibration_bins(ranked_oof, min_count=mc),
            "capture": C.capture_curve(ranked_oof, min_count=mc),
            "roc_pr": C.roc_pr_points(ranked_oof, min_count=mc),
        }
        calibrator = BinnedIsotonicCalibrator(min_count=protocol.min_count).fit_ranked(ranked_oof)

    extra: dict[str, Any] = {
        "n_train": int(train.sum()),
        "n_holdout": int(hold.sum()),
        "curves": curves,
        "n_fit_rows": len(fit_idx),
        "max_fit_rows": max_fit_rows,
        "max_train_rows": max_train_rows,
        "negative_sampling_rate": float(np.exp(offset)),
    }
    if hold.any():
        pred = raw_hold[hold]
        if calibrator is not None:
            pred = calibrator.predict(pred)
        if ranked_oof is None:
            full = np.full(len(frame), np.nan)
            full[hold] = pred
            hm = _regression(hold, y, full, oracle)
        else:
            hold_ranked = M.Ranked.of(y[hold], pred, positions=np.flatnonzero(hold))
            hm = _binary(hold_ranked, cols, ranked_oracle, hold)
        metrics.update({f"holdout_{k}": v for k, v in hm.items()})
        if task.kind == "binary":
            extra["holdout_expected_events"] = float(pred.sum())
            extra["holdout_observed_events"] = float(y[hold].sum())
    if task.kind == "regression" and anomalous is not None:
        kinds = anomaly_labels(anomalous)
        metrics.update(_anomaly_metrics(frame, train, y, oof, kinds))
        if hold.any():
            hm = _anomaly_metrics(frame, hold, y, raw_hold, kinds)
            metrics.update({f"holdout_{k}": v for k, v in hm.items()})
        extra["anomaly_k"] = int((kinds[train] != "").sum())
        extra.update(
            {
                f"anomaly_k_{kind}": int((kinds[train] == kind).sum())
                for kind in sorted(set(kinds[kinds != ""]) - {ANOMALOUS})
            }
        )
    metrics["fit_seconds"] = fit_seconds
    # in memory only (never logged): what a benchmark needs for paired bootstrap intervals
    extra["oof"], extra["train_mask"], extra["groups"], extra["y"] = oof, train, groups, y
    return Evaluation(metrics, fold_metrics, final, calibrator, fit_seconds, extra)


def _estimator(
    task: TaskSpec,
    features: list[str],
    model_name: str,
    protocol: Protocol,
    params: dict[str, Any] | None,
    random_state: int,
    n_jobs: int,
) -> tuple[BaseEstimator, list[int]]:
    cat = task.categorical(features)
    est = make_estimator(
        model_name,
        task.kind,
        params=params,
        categorical=cat,
        min_count=protocol.min_count,
        random_state=random_state,
        n_jobs=n_jobs,
    )
    return est, cat


def _train_folds(
    frame: pd.DataFrame, task: TaskSpec, protocol: Protocol, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the training years, and their gemeente-grouped fold (-1 elsewhere)."""
    train = np.isin(frame["year"].to_numpy(), protocol.train_years)
    folds = np.full(len(frame), -1)
    groups = task.groups(frame) if groups is None else groups
    folds[train] = fold_ids(groups[train], protocol.n_folds)
    return train, folds


def _fit_rows(y: np.ndarray, max_rows: int | None, random_state: int) -> np.ndarray:
    """Which rows fits may use: all, or a seeded uniform sample of *max_rows* (a uniform
    sample keeps the base rate, so the fitted probabilities stay calibrated)."""
    n = len(y)
    keep = np.ones(n, dtype=bool)
    if max_rows is not None and n > max_rows:
        keep[:] = False
        keep[np.random.default_rng(random_state).choice(n, size=max_rows, replace=False)] = True
    return keep


def cv_scores(
    frame: pd.DataFrame,
    task: TaskSpec,
    features: list[str],
    *,
    model_name: str,
    protocol: Protocol,
    params: dict[str, Any] | None = None,
    report: Any = None,
    random_state: int = 0,
    n_jobs: int = 2,
) -> list[float]:
    """The primary metric per fold (same folds as :func:`evaluate`); *report(fold, value)* is
    called after each fold with the running mean, so a tuner can prune a poor trial early."""
    est, cat = _estimator(task, features, model_name, protocol, params, random_state, n_jobs)
    frame = frame[np.isfinite(frame[task.label].to_numpy(np.float64))].reset_index(drop=True)
    X = frame[features].to_numpy(np.float32)
    y = frame[task.label].to_numpy()
    train, folds = _train_folds(frame, task, protocol)
    scores: list[float] = []
    for k in range(protocol.n_folds):
        tr, te = train & (folds != k), folds == k
        m = _fit(clone(est), X[tr], y[tr], model_name, cat)
        pred = _score(m, X[te], task.kind)
        value = (
            M.Ranked.of(y[te], np.clip(pred, M.EPS, 1 - M.EPS)).roc_auc()
            if task.kind == "binary"
            else M.regression_metrics(y[te], pred)["r2_log"]
        )
        scores.append(float(value))
        if report is not None:
            report(k, float(np.mean(scores)))
    return scores


def _regression(
    mask: np.ndarray, y: np.ndarray, pred: np.ndarray, oracle: np.ndarray | None
) -> dict[str, float]:
    """Regression metrics of the rows in *mask*."""
    o = None if oracle is None else np.asarray(oracle, dtype=np.float64)[mask]
    return M.regression_metrics(y[mask], pred[mask], oracle=o)


def _binary(
    ranked: M.Ranked,
    cols: dict[str, Any],
    oracle: M.Ranked | None,
    mask: np.ndarray,
) -> dict[str, float]:
    """Classification metrics of the rows in *mask*, whose scores *ranked* holds already
    sorted and clipped (its positions are the frame's rows); *oracle* ranks every row."""
    ranked = ranked.clipped(M.EPS, 1 - M.EPS)
    o = None if oracle is None else oracle.subset(mask)
    out = M.ranked_metrics(ranked, areas=cols.get("buurt_code"), oracle=o)
    if "age_group" in cols:
        codes, names = cols["age_group"]
        for group, suffix in (("8-12", "8_12"), ("13-19", "13_19"), ("20-23", "20_23")):
            g = codes == (names.index(group) if group in names else -2)
            sub_ranked = ranked.subset(g)
            if not len(sub_ranked):  # no unit of the group here: its metrics are undefined
                out[f"roc_auc_{suffix}"] = float("nan")
                continue
            sub = M.ranked_metrics(sub_ranked, oracle=None if o is None else o.subset(g))
            out[f"roc_auc_{suffix}"] = sub["roc_auc"]
            if "oracle_ratio" in sub:
                out[f"oracle_ratio_{suffix}"] = sub["oracle_ratio"]
    return out


def _metric_columns(frame: pd.DataFrame, area_km2: dict[str, float] | None) -> dict[str, Any]:
    """The columns metrics group by, as integer codes made once (not once per fold): the
    buurt with its land area (:class:`models.metrics.AreaCodes`), the age group."""
    cols: dict[str, Any] = {}
    if "buurt_code" in frame and area_km2 is not None:
        cols["buurt_code"] = M.AreaCodes.of(frame["buurt_code"], area_km2)
    if "age_group" in frame:
        codes, names = pd.factorize(frame["age_group"])
        cols["age_group"] = (codes, [str(n) for n in names])
    return cols


#: the meta column with each cell's establishments in t - 1 (its size class for the flag)
SIZE_COLUMN = "prior_establishments"


def deviation_flags(
    label: np.ndarray, expected: np.ndarray, *, establishments: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deviation ratio (realised ÷ expected per inhabitant), its robust z, and the flag (z > 3).

    With *establishments* (each cell's establishments in t - 1), the robust z is taken within
    size classes (:func:`models.metrics.size_classes`, small classes merged): a cell of one
    business deviates by chance far more than a cell of forty, and one z for all would flag
    the small cells' noise and miss a doubled turnover in a large cell. A cell that had no
    establishment in t - 1 gets no z and no flag.
    """
    realised = np.expm1(np.asarray(label, dtype=np.float64))
    exp = np.expm1(np.asarray(expected, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = realised / np.maximum(exp, M.EPS)
        log_dev = np.log(np.maximum(ratio, M.EPS))
    if establishments is None:
        z = M.robust_z(log_dev)
    else:
        # a cell without a business in t - 1 has nothing its turnover could be expected from
        # (the model expects about none): no z, never flagged
        known = np.asarray(establishments) > 0
        z = np.full(len(log_dev), np.nan)
        classes = M.size_classes(np.asarray(establishments)[known])
        z[known] = M.robust_z_within(log_dev[known], M.merged_classes(classes))
    return ratio, z, z > FLAG_Z


#: the kind label of an anomalous row when the truth does not say which kind it is
ANOMALOUS = "anomalous"


def anomaly_labels(anomalous: np.ndarray) -> np.ndarray:
    """Per row the kind of planted anomaly (``"spike"``, ``"front"``), ``""`` where none.

    *anomalous* is either those labels (missing values mean none) or booleans, from a truth
    that does not record kinds; those become :data:`ANOMALOUS`.
    """
    a = np.asarray(anomalous)
    if a.dtype == bool:
        return np.where(a, ANOMALOUS, "").astype(object)
    return np.array(["" if pd.isna(v) else str(v) for v in a], dtype=object)


def _anomaly_metrics(
    frame: pd.DataFrame, rows: np.ndarray, y: np.ndarray, pred: np.ndarray, kinds: np.ndarray
) -> dict[str, float]:
    """Precision and recall at k of the robust z (per year) of the *rows*, k = their planted
    anomalies, and the recall of each kind among the same k (``anomaly_recall_at_k_<kind>``)."""
    z = np.full(len(frame), np.nan)
    years = frame["year"].to_numpy()
    size = frame[SIZE_COLUMN].to_numpy() if SIZE_COLUMN in frame else None
    for yr in np.unique(years[rows]):
        m = rows & (years == yr)
        _, z[m], _ = deviation_flags(
            y[m], pred[m], establishments=None if size is None else size[m]
        )
    kinds = kinds[rows]
    truth = kinds != ""
    k = int(truth.sum())
    precision, recall = M.anomaly_at_k(truth, z[rows], k)
    out = {"anomaly_precision_at_k": precision, "anomaly_recall_at_k": recall}
    for kind in sorted(set(kinds[truth]) - {ANOMALOUS}):
        out[f"anomaly_recall_at_k_{kind}"] = M.anomaly_at_k(truth, z[rows], k, among=kinds == kind)[
            1
        ]
    return out
