"""``zicht train``: one tracked run — CV, temporal hold-out and the final fit — per task.

Wires the pure pieces (feature table, evaluation, truth alignment) to the MLflow edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from experiments import tracking
from experiments.config import ExperimentConfig
from experiments.plan import RowCaps
from experiments.truth import oracle_for
from features.catalogue import catalogue_frame
from features.guard import check_selection
from features.tables import META, check_feature_table
from microdata.integrity import HashCache
from microdata.io import data_fingerprint, generator_manifest, world_hash_cache
from models.evaluation import (
    Evaluation,
    FeatureRows,
    FitModels,
    Protocol,
    evaluate,
    protocol_for,
)
from models.tasks import TaskSpec, get_task

#: The row caps of ``zicht train``, ``tune`` and ``bench models`` (``zicht run`` follows the
#: plan of its scale, experiments/plan.py); evaluation always scores every unit:
#: the baselines fit on a seeded uniform sample of at most this many rows;
BASELINE_MAX_ROWS = 2_000_000
#: LightGBM fits a binary task on every positive and a sample of the negatives, at most this
#: many rows, with the sampling's log-odds correction (models.evaluation.negative_sample);
LIGHTGBM_MAX_FIT_ROWS = 4_000_000
#: and a feature table with more rows than this is streamed from Parquet, never held whole.
STREAM_ROWS = 5_000_000


class ParquetRows:
    """The features of a Parquet feature table, read row group by row group (float32).

    ``take`` reads only the row groups that hold the requested rows; ``chunks`` streams every
    row group once. Nothing bigger than one row group (1M rows) is converted at a time.
    """

    def __init__(self, path: Path, features: list[str]) -> None:
        self.file = pq.ParquetFile(path)
        self.features = features
        sizes = [self.file.metadata.row_group(i).num_rows for i in range(self.file.num_row_groups)]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def _group(self, i: int) -> np.ndarray:
        table = self.file.read_row_group(i, columns=self.features)
        out = np.empty((table.num_rows, len(self.features)), dtype=np.float32)
        for j, name in enumerate(self.features):
            out[:, j] = table.column(name).to_numpy()  # nulls become NaN
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), len(self.features)), dtype=np.float32)
        bounds = np.searchsorted(rows, self.offsets)
        for i in range(self.file.num_row_groups):
            a, b = bounds[i], bounds[i + 1]
            if a < b:
                out[a:b] = self._group(i)[rows[a:b] - self.offsets[i]]
        return out

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        for i in range(self.file.num_row_groups):
            yield int(self.offsets[i]), self._group(i)


class TrainInputError(ValueError):
    """The inputs of a training run are missing or inconsistent (exit 2)."""


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    champion_run_id: str | None
    protocol: str


def world_identity(world_dir: Path) -> tuple[str, str, str]:
    """(data fingerprint, scale, seed) of the world; a real extract is scale ``real``.

    Refuses (:class:`~microdata.integrity.IntegrityError`, exit 2) a generated world whose
    files differ from its manifest; hashes are cached in ``DATA/.zicht`` (an extract's are
    not cached: nothing is written beside it).
    """
    cache = world_hash_cache(world_dir)
    doc = generator_manifest(world_dir)
    if doc:  # the generator's world; anything else (no or a foreign manifest) is an extract
        return data_fingerprint(world_dir, cache=cache), str(doc["scale"]), str(doc["seed"])
    return data_fingerprint(world_dir, cache=cache), "real", ""


def load_features(
    path: Path, task: str, features: tuple[str, ...], *, meta_only: bool = False
) -> pd.DataFrame:
    """The feature table (or only its meta columns, area codes as categoricals)."""
    if not path.exists():
        raise TrainInputError(f"{path}: no feature table; run `zicht features {task}` first")
    have = set(pq.read_schema(path).names)
    missing = [f for f in (*META[task], *features) if f not in have]
    if missing:
        raise TrainInputError(
            f"{path}: lacks column(s) {missing[:5]} that the config needs; "
            f"rebuild it with `zicht features {task} --config <the same config>`"
        )
    if meta_only:
        codes = [c for c in META[task] if c.endswith("_code") or c == "age_group"]
        table = pq.read_table(path, columns=list(META[task]), read_dictionary=codes)
        return table.to_pandas(self_destruct=True)
    return pq.read_table(path, columns=[*META[task], *features]).to_pandas()


@dataclass
class Prepared:
    """Everything a run needs before fitting: the data, the protocol and the oracle."""

    task: TaskSpec
    features: list[str]
    frame: pd.DataFrame
    protocol: Protocol
    oracle: np.ndarray | None
    anomalous: np.ndarray | None
    area_km2: dict[str, float]
    fingerprint: str
    scale: str
    seed: str
    config: ExperimentConfig | None = None
    rows: FeatureRows | None = None  # the features, streamed, when *frame* holds meta only
    fit_models: FitModels | None = None  # LightGBM's fits on a Dask cluster (--cluster)

    def tags(self, model_name: str, kind: str) -> dict[str, str]:
        cluster = self.fit_models is not None and model_name == "lightgbm"
        return {
            **({"zicht.fit": "lightgbm.dask"} if cluster else {}),
            "zicht.task": self.task.name,
            "zicht.model": model_name,
            "zicht.kind": kind,
            "zicht.scale": self.scale,
            "zicht.seed": self.seed,
            "zicht.data_fingerprint": self.fingerprint,
            "zicht.protocol": self.protocol.hash(),
        }

    def model_params(self, model_name: str, params: dict[str, Any] | None = None) -> dict:
        """The config's parameters of *model_name*, with *params* (a trial's) on top."""
        if self.config is None:
            return dict(params or {})
        return self.config.model_params(model_name, params)

    def in_memory(self, command: str) -> pd.DataFrame:
        """The whole feature table; refused for a table too large to hold (streamed)."""
        if self.rows is not None:
            raise TrainInputError(
                f"{command} reads the whole feature table of {self.task.name}, which has more "
                f"than {STREAM_ROWS:,} rows here; run it on the region world "
                "(`zicht generate --scale region`) and carry the parameters over in a config"
            )
        return self.frame

    def evaluate(
        self,
        model_name: str,
        params: dict[str, Any] | None = None,
        n_jobs: int = 2,
        progress: Callable[[str], None] | None = None,
        caps: RowCaps | None = None,
    ) -> Evaluation:
        """Evaluate *model_name* with the config's parameters and *params* on top, its fits
        on at most the rows *caps* allow (default: :func:`standalone_caps`); on a cluster
        LightGBM fits every row. *progress* hears each fit start."""
        cluster = self.fit_models if model_name == "lightgbm" else None
        max_train_rows, max_fit_rows = (caps or standalone_caps()).for_model(model_name)
        if cluster is not None:
            max_fit_rows = None
        return evaluate(
            self.frame,
            self.task,
            self.features,
            model_name=model_name,
            protocol=self.protocol,
            params=self.model_params(model_name, params),
            oracle=self.oracle,
            anomalous=self.anomalous,
            area_km2=self.area_km2,
            random_state=int(self.seed or 0),
            n_jobs=n_jobs,
            max_train_rows=max_train_rows,
            max_fit_rows=max_fit_rows,
            rows=self.rows,
            fit_models=cluster,
            progress=progress,
        )


def standalone_caps() -> RowCaps:
    """The row caps of ``zicht train``, ``tune`` and ``bench models``: at most
    :data:`LIGHTGBM_MAX_FIT_ROWS` rows for LightGBM, :data:`BASELINE_MAX_ROWS` for the
    baselines (both bind only at national scale)."""
    return RowCaps(lightgbm_max_fit_rows=LIGHTGBM_MAX_FIT_ROWS, baseline_max_rows=BASELINE_MAX_ROWS)


def prepare(
    cfg: ExperimentConfig,
    *,
    data_dir: Path,
    tracking_uri: str,
    n_folds: int = 5,
    world_dir: Path | None = None,
    client: Any = None,
) -> Prepared:
    """Check the config, connect to MLflow (fail fast), read features, protocol and oracle.

    *world_dir* is the world or extract the features were built from (default DATA/world);
    with a Dask *client*, LightGBM fits on the cluster (:class:`models.dask_fit.DaskFit`).
    """
    task = get_task(cfg.task)
    check_selection(cfg.features)
    world_dir = Path(world_dir) if world_dir is not None else data_dir / "world"
    fingerprint, scale, seed = world_identity(world_dir)
    path = data_dir / "features" / f"{cfg.task}.parquet"
    if path.exists():  # as `zicht features` wrote it, from this world, within the catalogue
        cache = HashCache(data_dir / ".zicht")
        check_feature_table(path, cfg.task, cfg.features, fingerprint=fingerprint, cache=cache)
    tracking.connect(tracking_uri, cfg.task)  # fail fast, before minutes of fitting
    stream = path.exists() and pq.read_metadata(path).num_rows > STREAM_ROWS
    frame = load_features(path, cfg.task, cfg.features, meta_only=stream)
    rows = ParquetRows(path, list(cfg.features)) if stream else None
    if stream and not np.isfinite(frame[task.label].to_numpy(np.float64)).all():
        raise TrainInputError(f"{path}: column label: unlabelled rows cannot be streamed")
    protocol = protocol_for(sorted(frame["year"].unique().tolist()), cfg.task, n_folds=n_folds)
    oracle, anomalous = oracle_for(cfg.task, frame, world_dir) if scale != "real" else (None, None)
    areas = pd.read_parquet(
        world_dir / "areas.parquet", columns=["area_code", "level", "land_area_km2"]
    )
    buurt = areas[areas["level"] == "buurt"]
    km2 = dict(
        zip(buurt["area_code"].astype(str), buurt["land_area_km2"].astype(float), strict=True)
    )
    fit_models = None
    if client is not None:
        from models.dask_fit import DaskFit

        fit_models = DaskFit(client, path, list(cfg.features), task, protocol.train_years)
    return Prepared(
        task,
        list(cfg.features),
        frame,
        protocol,
        oracle,
        anomalous,
        km2,
        fingerprint,
        scale,
        seed,
        cfg,
        rows,
        fit_models,
    )


def log_evaluation(prep: Prepared, ev: Evaluation, model_name: str) -> None:
    """Log params, metrics, tables, plots and the model of *ev* into the active run."""
    protocol, features = prep.protocol, prep.features
    mlflow.log_params(
        {
            "model": model_name,
            "n_features": len(features),
            "n_folds": protocol.n_folds,
            "train_years": ",".join(map(str, protocol.train_years)),
            "holdout_year": protocol.holdout_year,
            "window": protocol.window,
            "min_count": protocol.min_count,
            "n_train": ev.extra["n_train"],
            "n_holdout": ev.extra["n_holdout"],
            **fit_params(ev),
            **{k: v for k, v in ev.extra.items() if k.startswith("anomaly_k")},
            **{f"model.{k}": v for k, v in ev.model.get_params().items() if _plain(v)},
        }
    )
    log_metrics(ev)
    tracking.log_table(catalogue_frame(features), "features/catalogue.csv")
    if prep.config is not None:
        import yaml

        mlflow.log_text(
            yaml.safe_dump(prep.config.model_dump(mode="json"), sort_keys=False),
            "config/experiment.yaml",
        )
    tracking.log_table(
        pd.DataFrame(ev.fold_metrics).assign(fold=range(len(ev.fold_metrics))), "metrics/folds.csv"
    )
    if ev.calibrator is not None:
        cal = ev.calibrator
        tracking.log_table(
            pd.DataFrame(
                {"mean_score": cal.bin_score_, "event_rate": cal.bin_rate_, "units": cal.bin_count_}
            ),
            "metrics/calibration_bins.csv",
        )
        tracking.log_sklearn(cal, "calibrator")
    _log_curves(ev.extra.get("curves", {}), f"{prep.task.name} ({model_name}, out of fold)")
    uri = tracking.log_model(ev.model, model_name, features, prep.task.kind)
    tracking.register(uri, prep.task.name, description=version_description(prep, ev, model_name))


def log_metrics(ev: Evaluation) -> None:
    """The metrics of *ev* into the active run: each the mean over the folds, and the folds
    themselves as steps 0..n-1 of ``fold_<metric>``."""
    mlflow.log_metrics(finite(ev.metrics))
    for step, fm in enumerate(ev.fold_metrics):
        mlflow.log_metrics({f"fold_{k}": v for k, v in finite(fm).items()}, step=step)


def version_description(prep: Prepared, ev: Evaluation, model_name: str) -> str:
    """A registered model version's description: which run, how good, on which world."""
    active = mlflow.active_run()
    metric = tracking.PRIMARY[prep.task.name]
    cv, hold = ev.metrics.get(metric, math.nan), ev.metrics.get(f"holdout_{metric}", math.nan)
    where = f"run `{active.info.run_name}` ({active.info.run_id})" if active else "a run"
    return (
        f"{model_name} from {where}: {metric} {cv:.4f} cross-validated, {hold:.4f} on the "
        f"hold-out year {prep.protocol.holdout_year}; {prep.scale} world, data fingerprint "
        f"`{prep.fingerprint[:12]}`, protocol `{prep.protocol.hash()}`."
    )


FIT_PARAMS = ("max_fit_rows", "max_train_rows", "n_fit_rows", "negative_sampling_rate")


def fit_params(ev: Evaluation) -> dict[str, Any]:
    """What the fits saw: the row caps they ran under (``zicht verify`` reruns with them) and
    the rows and negative sampling rate that followed."""
    return {k: ev.extra[k] for k in FIT_PARAMS}


def finite(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics MLflow can store: finite floats only (an oracle metric without truth is left out)."""
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, float | int) and math.isfinite(v)
    }


def train(
    cfg: ExperimentConfig,
    *,
    model_name: str,
    data_dir: Path,
    tracking_uri: str,
    n_folds: int = 5,
    n_jobs: int = 2,
    progress: Callable[[str], None] = lambda _m: None,
    client: Any = None,
    detail: Callable[[str], None] | None = None,
) -> TrainResult:
    """Evaluate and fit *model_name* on the task of *cfg*, and log one run; *progress* hears
    each step, *detail* each fit inside it.

    The run is opened before the fit, so a run killed while fitting ends KILLED or FAILED
    (or is swept to KILLED by the next tracked command), never FINISHED.
    """
    progress("reading features")
    prep = prepare(
        cfg, data_dir=data_dir, tracking_uri=tracking_uri, n_folds=n_folds, client=client
    )
    with tracking.run(
        cfg.task, run_name=f"{model_name}-train", tags=prep.tags(model_name, "train")
    ) as active:
        progress("cross-validation, hold-out and final fit (next: logging to MLflow)")
        ev = prep.evaluate(model_name, n_jobs=n_jobs, progress=detail)
        progress("logging to MLflow")
        log_evaluation(prep, ev, model_name)
        run_id = active.info.run_id
    champion = tracking.choose_champion(
        cfg.task, fingerprint=prep.fingerprint, protocol=prep.protocol.hash()
    )
    return TrainResult(run_id, finite(ev.metrics), champion, prep.protocol.hash())


def _log_curves(curves: dict[str, pd.DataFrame], title: str) -> None:
    """Binned curve tables and their plots (every mark >= min_count units)."""
    import tempfile

    from reports import plots

    draw = {
        "calibration": plots.calibration_plot,
        "capture": plots.capture_plot,
        "roc_pr": plots.roc_pr_plot,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in curves.items():
            tracking.log_table(table, f"plots/{name}.csv")
            png = draw[name](table, Path(tmp) / f"{name}.png", title=title)
            mlflow.log_artifact(str(png), artifact_path="plots")


def _plain(v: object) -> bool:
    return isinstance(v, str | int | float | bool) and v is not None
