"""``zicht predict``: the champion's predictions for the publication year (secure zone).

The publication year is the last year whose labels are complete: the hold-out year of the
champion's protocol. The champion was fitted on earlier years only. A champion trained on
another world (a different data fingerprint) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from experiments import tracking
from experiments.files import write_parquet_atomic
from experiments.train import world_identity
from features.tables import META, check_feature_table
from microdata.integrity import HashCache
from models.calibration import calibrator_from_bins
from models.evaluation import SIZE_COLUMN, deviation_flags
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


@dataclass(frozen=True)
class Scored:
    """A tracked model ready to score: its run, the fitted estimator and its features."""

    run: mlflow.entities.Run
    model: Any
    features: list[str]
    year: int  # the publication year: the run's hold-out year


def load_run_model(
    task: str,
    *,
    data_dir: Path,
    tracking_uri: str,
    run_id: str | None = None,
    world_dir: Path | None = None,
) -> Scored:
    """The champion of *task* (or run *run_id*), refused when it comes from another world
    than *world_dir* (default DATA/world)."""
    if run_id is None:
        run = champion_run(task, tracking_uri)
    else:
        tracking.connect(tracking_uri, task)
        try:
            run = MlflowClient().get_run(run_id)
        except mlflow.exceptions.MlflowException:
            raise PredictError(
                f"--run-id {run_id!r}: does not exist in {tracking_uri} (rule: the run is in the "
                f"MLflow store); fix: pick a run of zicht/{task} in `zicht ui`, or leave out "
                "--run-id for the champion"
            ) from None
        if run.data.tags.get("zicht.task") != task:
            raise PredictError(
                f"run {run_id} is a {run.data.tags.get('zicht.task', '?')} run, not {task}"
            )
        kind = run.data.tags.get("zicht.kind", "?")
        if kind not in tracking.COMPETING_KINDS:
            raise PredictError(
                f"--run-id {run_id!r}: a {kind} run (tag zicht.kind) has no fitted model (rule: "
                "only train and tune runs log one); fix: pick a train or tune run of "
                f"zicht/{task} in `zicht ui` (a benchmark logs its lightgbm as the nested run "
                "lightgbm-train), or leave out --run-id for the champion"
            )
    fingerprint, _, _ = world_identity(Path(world_dir) if world_dir else data_dir / "world")
    if run.data.tags.get("zicht.data_fingerprint") != fingerprint:
        raise PredictError(
            f"the {'champion' if run_id is None else 'run'} of {task} (run {run.info.run_id}) "
            f"was trained on world {run.data.tags.get('zicht.data_fingerprint', '?')[:16]}, "
            f"not on the current world {fingerprint[:16]}; retrain with `zicht train {task}` "
            "on this world"
        )
    rid = run.info.run_id
    local = Path(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="features"))
    features = pd.read_csv(local / "catalogue.csv")["feature"].tolist()
    loader = mlflow.lightgbm if run.data.tags.get("zicht.model") == "lightgbm" else mlflow.sklearn
    model = loader.load_model(f"runs:/{rid}/model")
    return Scored(run, model, features, int(run.data.params["holdout_year"]))


def checked_table(task: str, scored: Scored, data_dir: Path) -> Path:
    """The feature table of *task*, checked against its stamp, the world and the catalogue.

    The world is the one *scored*'s run was trained on: :func:`load_run_model` has already
    compared that run's fingerprint with the current world (``DATA/world`` or the
    ``--world-dir`` extract), so the table must carry the same fingerprint.
    """
    path = data_dir / "features" / f"{task}.parquet"
    if not path.exists():
        raise PredictError(f"{path}: no feature table; run `zicht features {task}` first")
    fingerprint = scored.run.data.tags.get("zicht.data_fingerprint", "")
    check_feature_table(
        path, task, scored.features, fingerprint=fingerprint, cache=HashCache(data_dir / ".zicht")
    )
    return path


def publication_frame(task: str, scored: Scored, data_dir: Path) -> pd.DataFrame:
    """Meta columns and the run's features of the publication year, from the feature table."""
    path = checked_table(task, scored, data_dir)
    return pd.read_parquet(
        path, columns=[*META[task], *scored.features], filters=[("year", "==", scored.year)]
    )


def score_rows(
    task: str, model: Any, frame: pd.DataFrame, features: list[str], calibrator: Any = None
) -> pd.DataFrame:
    """The meta columns (less the label) of *frame* and the model's output for its rows:
    ``score`` and the calibrated ``probability`` (binary), or the float64 ``expected_log``
    and ``realised_log`` (turnover, whose flags need every row: :func:`finish_predictions`).
    Row by row, so partitions of a cluster score the same values."""
    spec = get_task(task)
    X = frame[features].to_numpy(np.float32)
    out = frame[list(META[task])].drop(columns=["label"]).copy()
    if spec.kind == "binary":
        score = model.predict_proba(X)[:, 1]
        out["score"] = score.astype(np.float32)
        out["probability"] = calibrator.predict(score).astype(np.float32)
    else:
        out["expected_log"] = model.predict(X)
        if SIZE_COLUMN in frame:  # the size class of the flags' robust z
            out[SIZE_COLUMN] = frame[SIZE_COLUMN].to_numpy()
        out["realised_log"] = frame["label"].to_numpy(np.float32)
    return out


def finish_predictions(task: str, out: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """The prediction table from :func:`score_rows` of every row: turnover's deviation
    ratio, robust z (over all cells) and flag; the run id."""
    if get_task(task).kind == "regression":
        expected = out["expected_log"].to_numpy(np.float64)
        size = out.pop(SIZE_COLUMN).to_numpy() if SIZE_COLUMN in out else None
        ratio, z, flag = deviation_flags(
            out["realised_log"].to_numpy(), expected, establishments=size
        )
        out["expected_log"] = expected.astype(np.float32)
        out["deviation_ratio"] = ratio.astype(np.float32)
        out["robust_z"] = z.astype(np.float32)
        out["flag"] = flag
    out["run_id"] = run_id
    return out


def run_calibrator(task: str, scored: Scored) -> Any:
    """The calibration map logged with the run (binary tasks; None for turnover)."""
    if get_task(task).kind != "binary":
        return None
    rid = scored.run.info.run_id
    bins_dir = Path(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="metrics"))
    return calibrator_from_bins(pd.read_csv(bins_dir / "calibration_bins.csv"))


def predict(
    task: str,
    *,
    data_dir: Path,
    tracking_uri: str,
    world_dir: Path | None = None,
    client: Any = None,
) -> Path:
    """Write ``DATA/predictions/<task>.parquet`` for the publication year; returns its path.
    With a Dask *client* the row groups are scored on the cluster (the same values)."""
    scored = load_run_model(task, data_dir=data_dir, tracking_uri=tracking_uri, world_dir=world_dir)
    calibrator = run_calibrator(task, scored)
    if client is not None:
        from experiments.distributed import score_table

        out = score_table(client, task, scored, data_dir, calibrator)
    else:
        frame = publication_frame(task, scored, data_dir)
        out = score_rows(task, scored.model, frame, scored.features, calibrator)
    out = finish_predictions(task, out, scored.run.info.run_id)
    return write_parquet_atomic(out, data_dir / "predictions" / f"{task}.parquet")
