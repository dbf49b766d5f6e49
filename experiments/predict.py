"""``zicht predict``: the champion's predictions for the publication year (secure zone).

The publication year is the last year whose labels are complete: the hold-out year of the
champion's protocol. The champion was fitted on earlier years only. A champion trained on
another world (a different data fingerprint) is refused.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from experiments import tracking
from experiments.train import world_identity
from features.tables import META
from models.calibration import calibrator_from_bins
from models.evaluation import deviation_flags
from models.tasks import get_task


class PredictError(ValueError):
    """No usable champion, or a champion from another world (exit 2)."""


def champion_run(task: str, tracking_uri: str) -> mlflow.entities.Run:
    tracking.connect(tracking_uri, task)
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(tracking.registered_name(task), "champion")
    except mlflow.exceptions.MlflowException:
        raise PredictError(
            f"no champion for {task} in {tracking_uri}; run `zicht train {task}` first"
        ) from None
    return client.get_run(str(version.run_id))


def predict(task: str, *, data_dir: Path, tracking_uri: str) -> Path:
    """Write ``DATA/predictions/<task>.parquet`` for the publication year; returns its path."""
    spec = get_task(task)
    run = champion_run(task, tracking_uri)
    fingerprint, _, _ = world_identity(data_dir / "world")
    if run.data.tags.get("zicht.data_fingerprint") != fingerprint:
        raise PredictError(
            f"the champion of {task} (run {run.info.run_id}) was trained on world "
            f"{run.data.tags.get('zicht.data_fingerprint', '?')[:16]}, not on the current world "
            f"{fingerprint[:16]}; retrain with `zicht train {task}` on this world"
        )
    run_id = run.info.run_id
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="features"))
    features = pd.read_csv(local / "catalogue.csv")["feature"].tolist()
    year = int(run.data.params["holdout_year"])
    path = data_dir / "features" / f"{task}.parquet"
    if not path.exists():
        raise PredictError(f"{path}: no feature table; run `zicht features {task}` first")
    frame = pd.read_parquet(path, columns=[*META[task], *features], filters=[("year", "==", year)])
    version = MlflowClient().get_model_version_by_alias(tracking.registered_name(task), "champion")
    loader = mlflow.lightgbm if run.data.tags.get("zicht.model") == "lightgbm" else mlflow.sklearn
    model = loader.load_model(version.source)
    X = frame[features].to_numpy(np.float32)
    out = frame[list(META[task])].drop(columns=["label"]).copy()
    if spec.kind == "binary":
        score = model.predict_proba(X)[:, 1]
        bins_dir = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="metrics"))
        cal = calibrator_from_bins(pd.read_csv(bins_dir / "calibration_bins.csv"))
        out["score"] = score.astype(np.float32)
        out["probability"] = cal.predict(score).astype(np.float32)
    else:
        expected = model.predict(X)
        ratio, z, flag = deviation_flags(frame["label"].to_numpy(), expected)
        out["expected_log"] = expected.astype(np.float32)
        out["realised_log"] = frame["label"].to_numpy(np.float32)
        out["deviation_ratio"] = ratio.astype(np.float32)
        out["robust_z"] = z.astype(np.float32)
        out["flag"] = flag
    out["run_id"] = run_id
    target = data_dir / "predictions" / f"{task}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{task}.", dir=target.parent)
    os.close(fd)
    try:
        out.to_parquet(tmp, index=False)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
