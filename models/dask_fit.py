"""LightGBM on every row of the training years, on a Dask cluster (``lightgbm.dask``).

:class:`DaskFit` plugs into :func:`models.evaluation.evaluate` (its ``fit_models``): the
same protocol, the same gemeente-grouped folds, the same out-of-fold scoring and metrics;
only the fits move to the cluster. Each row group of the feature table is read by one
worker, which keeps the rows of the training years (labelled) with their fold; the client
sends no unit rows, only the small map from gemeente to fold. There is no negative
down-sampling: every training row is used.

**Not the single-machine trees.** ``lightgbm.dask`` trains data-parallel
(``tree_learner="data"``): every worker finds bin boundaries for its share of the features
on its own rows and the histograms are summed over the network, so the trees differ from
one process's. Each worker gets its row groups as one chunk in a fixed order; which worker
becomes which rank is chosen by ``lightgbm.dask`` (through a set of task keys), so two fits
may differ slightly too. ``tests/test_distributed.py`` bounds the difference of the metrics
on the tiny world and ``docs/distributed.md`` states it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator

from features.tables import META
from models.tasks import TaskSpec

#: a message lightgbm 4.7's dask module warns with on every fit: the sklearn estimators carry
#: ``n_jobs`` in their parameters and ``lightgbm.dask`` replaces it by each worker's threads
_N_JOBS_IGNORED = "Parameter n_jobs will be ignored"


class DaskFitError(ValueError):
    """The cluster saw other training rows than the evaluation (a changed table, exit 2)."""


def read_training_part(
    path: str,
    row_group: int,
    features: Sequence[str],
    task: TaskSpec,
    train_years: Sequence[int],
    fold_of: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """On a worker: (X float32, y, fold) of the labelled training-year rows of one row group,
    in file order. A gemeente missing from *fold_of* is refused (the client's folds were
    made from another table)."""
    meta = [c for c in ("year", task.label, "gemeente_code", "area_code") if c in META[task.name]]
    frame = pq.ParquetFile(path).read_row_group(row_group, columns=[*meta, *features]).to_pandas()
    y_all = frame[task.label].to_numpy()
    keep = np.isin(frame["year"].to_numpy(), list(train_years)) & np.isfinite(
        y_all.astype(np.float64)
    )
    frame = frame[keep]
    groups = task.groups(frame)
    fold = np.array([fold_of.get(g, -1) for g in groups], dtype=np.int64)
    if (fold < 0).any():
        raise DaskFitError(
            f"{path}: column gemeente_code: every training gemeente has a fold (rule: the "
            f"cluster reads the table the evaluation read): {sorted(set(groups[fold < 0]))[:3]} "
            "has none; fix: rerun the command (the table changed while it ran)"
        )
    return frame[list(features)].to_numpy(np.float32), y_all[keep], fold


def _counts(part: tuple[np.ndarray, np.ndarray, np.ndarray], n_folds: int) -> np.ndarray:
    return np.bincount(part[2], minlength=n_folds)


def _select(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], k: int, what: int
) -> np.ndarray:
    """Rows of *parts* (in order) outside fold *k* (k = -1: every row); *what*: 0 = X, 1 = y."""
    return np.concatenate([part[what] if k < 0 else part[what][part[2] != k] for part in parts])


@dataclass
class DaskFit:
    """``fit_models`` for :func:`models.evaluation.evaluate`: the fold models and the final
    model fitted with ``lightgbm.dask`` on the feature table at *path*.

    *workers* restricts which workers hold training rows (default: all, sorted by address);
    row group *i* goes to worker ``i mod len(workers)``.
    """

    client: Any
    path: Path
    features: list[str]
    task: TaskSpec
    train_years: tuple[int, ...]
    workers: Sequence[str] | None = None
    n_jobs: int = 2

    def __call__(
        self,
        est: BaseEstimator,
        *,
        fit_idx: np.ndarray,
        folds: np.ndarray,
        groups: np.ndarray,
        categorical: Sequence[int],
        n_folds: int,
    ) -> tuple[list[BaseEstimator], BaseEstimator]:
        import dask.array as da

        client = self.client
        fold_of = {str(g): int(f) for g, f in zip(groups[fit_idx], folds[fit_idx], strict=True)}
        workers = list(self.workers or sorted(client.scheduler_info()["workers"]))
        n_groups = pq.ParquetFile(self.path).num_row_groups
        parts = [
            client.submit(
                read_training_part,
                str(self.path),
                i,
                self.features,
                self.task,
                self.train_years,
                fold_of,
                workers=[workers[i % len(workers)]],
                allow_other_workers=False,
                pure=False,
            )
            for i in range(n_groups)
        ]
        counts = np.array(client.gather([client.submit(_counts, p, n_folds) for p in parts]))
        expect = np.bincount(folds[fit_idx], minlength=n_folds)
        if counts.shape != (n_groups, n_folds) or not np.array_equal(counts.sum(axis=0), expect):
            raise DaskFitError(
                f"{self.path}: column *: the cluster read "
                f"{int(counts.sum()):,} training rows per fold {counts.sum(axis=0).tolist()}, "
                f"the evaluation {len(fit_idx):,} {expect.tolist()} (rule: workers read the "
                "table the client read); fix: rerun the command (the table changed while it ran)"
            )
        p = len(self.features)
        # the label as the feature table stores it: int8 for 0/1, float32 for turnover
        y_dtype = np.dtype(np.int8 if self.task.kind == "binary" else np.float32)

        def fit(k: int) -> BaseEstimator:
            # one chunk per worker (its row groups in order), so that LightGBM's data-parallel
            # ranks see the same rows in the same order on every run
            X_parts, y_parts = [], []
            for w, worker in enumerate(workers):
                mine = list(range(w, n_groups, len(workers)))
                n = int(sum(counts[i].sum() - (counts[i, k] if k >= 0 else 0) for i in mine))
                if n == 0:
                    continue
                where = {"workers": [worker], "allow_other_workers": False, "pure": False}
                x = client.submit(_select, [parts[i] for i in mine], k, 0, **where)
                y = client.submit(_select, [parts[i] for i in mine], k, 1, **where)
                X_parts.append(da.from_delayed(x, shape=(n, p), dtype=np.float32))
                y_parts.append(da.from_delayed(y, shape=(n,), dtype=y_dtype))
            model = dask_estimator(est, client)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_N_JOBS_IGNORED)
                kwargs = {"categorical_feature": list(categorical)} if categorical else {}
                model.fit(da.concatenate(X_parts), da.concatenate(y_parts), **kwargs)
            local = model.to_local()
            local.set_params(n_jobs=self.n_jobs)
            return local

        try:
            models = [fit(k) for k in range(n_folds)]
            final = fit(-1)
        finally:
            client.cancel(parts)
        return models, final


def dask_estimator(est: BaseEstimator, client: Any) -> BaseEstimator:
    """The ``lightgbm.dask`` twin of a zoo LightGBM estimator: the same parameters (the
    worker's threads replace ``n_jobs``)."""
    import lightgbm as lgb
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    if not isinstance(est, lgb.LGBMModel):
        raise TypeError(f"lightgbm.dask fits LightGBM only, not {type(est).__name__}")
    params = {k: v for k, v in est.get_params().items() if k != "n_jobs"}
    cls = DaskLGBMClassifier if isinstance(est, lgb.LGBMClassifier) else DaskLGBMRegressor
    return cls(client=client, **params)
