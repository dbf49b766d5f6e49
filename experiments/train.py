"""``zicht train``: one tracked run — CV, temporal hold-out and the final fit — per task.

Wires the pure pieces (feature table, evaluation, truth alignment) to the MLflow edge.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from experiments import tracking
from experiments.config import ExperimentConfig
from experiments.truth import oracle_for
from features.catalogue import catalogue_frame
from features.guard import check_selection
from features.tables import META
from microdata.io import data_fingerprint
from models.evaluation import Evaluation, Protocol, evaluate, protocol_for
from models.tasks import TaskSpec, get_task

#: The national plan: LightGBM trains on every unit of the training years; the baselines fit
#: on a seeded uniform sample of at most this many rows (evaluation still uses every unit).
BASELINE_MAX_ROWS = 2_000_000


class TrainInputError(ValueError):
    """The inputs of a training run are missing or inconsistent (exit 2)."""


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    metrics: dict[str, float]
    champion_run_id: str | None
    protocol: str


def world_identity(world_dir: Path) -> tuple[str, str, str]:
    """(data fingerprint, scale, seed) of the world; a real extract is scale ``real``."""
    manifest = world_dir / "manifest.json"
    if manifest.exists():
        doc = json.loads(manifest.read_text())
        return data_fingerprint(world_dir), str(doc["scale"]), str(doc["seed"])
    return data_fingerprint(world_dir), "real", ""


def load_features(path: Path, task: str, features: tuple[str, ...]) -> pd.DataFrame:
    if not path.exists():
        raise TrainInputError(f"{path}: no feature table; run `zicht features {task}` first")
    have = set(pq.read_schema(path).names)
    missing = [f for f in (*META[task], *features) if f not in have]
    if missing:
        raise TrainInputError(
            f"{path}: lacks column(s) {missing[:5]} that the config needs; "
            f"rebuild it with `zicht features {task} --config <the same config>`"
        )
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

    def tags(self, model_name: str, kind: str) -> dict[str, str]:
        return {
            "zicht.task": self.task.name,
            "zicht.model": model_name,
            "zicht.kind": kind,
            "zicht.scale": self.scale,
            "zicht.seed": self.seed,
            "zicht.data_fingerprint": self.fingerprint,
            "zicht.protocol": self.protocol.hash(),
        }

    def evaluate(
        self, model_name: str, params: dict[str, Any] | None = None, n_jobs: int = 2
    ) -> Evaluation:
        """Evaluate *model_name*; baselines fit on at most :data:`BASELINE_MAX_ROWS` rows."""
        return evaluate(
            self.frame,
            self.task,
            self.features,
            model_name=model_name,
            protocol=self.protocol,
            params=params,
            oracle=self.oracle,
            anomalous=self.anomalous,
            area_km2=self.area_km2,
            random_state=int(self.seed or 0),
            n_jobs=n_jobs,
            max_train_rows=None if model_name == "lightgbm" else BASELINE_MAX_ROWS,
        )


def prepare(
    cfg: ExperimentConfig, *, data_dir: Path, tracking_uri: str, n_folds: int = 5
) -> Prepared:
    """Check the config, connect to MLflow (fail fast), read features, protocol and oracle."""
    task = get_task(cfg.task)
    check_selection(cfg.features)
    world_dir = data_dir / "world"
    tracking.connect(tracking_uri, cfg.task)  # fail fast, before minutes of fitting
    fingerprint, scale, seed = world_identity(world_dir)
    frame = load_features(data_dir / "features" / f"{cfg.task}.parquet", cfg.task, cfg.features)
    protocol = protocol_for(sorted(frame["year"].unique().tolist()), cfg.task, n_folds=n_folds)
    oracle, anomalous = oracle_for(cfg.task, frame, data_dir) if scale != "real" else (None, None)
    areas = pd.read_parquet(
        world_dir / "areas.parquet", columns=["area_code", "level", "land_area_km2"]
    )
    buurt = areas[areas["level"] == "buurt"]
    km2 = dict(
        zip(buurt["area_code"].astype(str), buurt["land_area_km2"].astype(float), strict=True)
    )
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
            "n_fit_rows": ev.extra["n_fit_rows"],
            **({"anomaly_k": ev.extra["anomaly_k"]} if "anomaly_k" in ev.extra else {}),
            **{f"model.{k}": v for k, v in ev.model.get_params().items() if _plain(v)},
        }
    )
    mlflow.log_metrics(finite(ev.metrics))
    for step, fm in enumerate(ev.fold_metrics):
        mlflow.log_metrics({f"fold_{k}": v for k, v in finite(fm).items()}, step=step)
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
    tracking.register(uri, prep.task.name)


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
) -> TrainResult:
    """Evaluate and fit *model_name* on the task of *cfg*, and log one run."""
    progress("reading features")
    prep = prepare(cfg, data_dir=data_dir, tracking_uri=tracking_uri, n_folds=n_folds)
    progress("cross-validation, hold-out and final fit")
    ev = prep.evaluate(model_name, n_jobs=n_jobs)
    progress("logging to MLflow")
    with tracking.run(
        cfg.task, run_name=f"{model_name}-train", tags=prep.tags(model_name, "train")
    ) as active:
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
