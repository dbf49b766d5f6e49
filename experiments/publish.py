"""``zicht publish``: predictions → roll-up → disclosure control → the public zone.

The file edge of the publication: it reads the predictions, the world's areas (names,
polygons) and, for branch_turnover, the establishments and inhabitants of the publication
year; refuses predictions from another world; runs the pure roll-up
(:mod:`reports.rollup`) and the disclosure core (``protect`` then ``audit``, which must
pass); and hands the releases to :func:`disclosure.publish.publish`, the only writer under
``PUBLISH``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from disclosure.publish import PublishRefused, ReleaseMeta, TaskRelease, task_release
from disclosure.publish import publish as write_release
from disclosure.settings import DisclosureRefused, RuleSettings
from experiments.train import world_identity
from microdata.extract import AreasFileError
from microdata.extract import read_areas as read_extract_areas
from reports.rollup import Rollup, RollupError, level_tables, roll_up_binary, roll_up_turnover

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")


class PublishInputError(ValueError):
    """Missing or stale inputs (exit 2); the message names the file and the fix."""


def fingerprint_from_mlflow(tracking_uri: str) -> Callable[[str], str | None]:
    """run id → the run's ``zicht.data_fingerprint`` tag (None if the run is unknown)."""

    def lookup(run_id: str) -> str | None:
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(tracking_uri)
        try:
            run = MlflowClient().get_run(run_id)
        except mlflow.exceptions.MlflowException:
            return None
        return run.data.tags.get("zicht.data_fingerprint")

    return lookup


def read_predictions(task: str, data_dir: Path) -> pd.DataFrame:
    """``DATA/predictions/<task>.parquet``; PublishInputError with the fix when missing."""
    path = Path(data_dir) / "predictions" / f"{task}.parquet"
    if not path.is_file():
        raise PublishInputError(f"{path}: no predictions for {task}; run `zicht predict {task}`")
    frame = pd.read_parquet(path)
    for col in ("run_id", "year"):
        if col not in frame.columns or frame[col].nunique() != 1:
            raise PublishInputError(
                f"{path}: column {col} must hold exactly one value (one champion run, one "
                f"publication year); rerun `zicht predict {task}`"
            )
    return frame


def check_fingerprint(
    task: str, predictions: pd.DataFrame, fingerprint: str, lookup: Callable[[str], str | None]
) -> str:
    """The predictions' run id, after checking that run was trained on the current world."""
    run_id = str(predictions["run_id"].iloc[0])
    theirs = lookup(run_id)
    if theirs != fingerprint:
        seen = "is not in the MLflow store" if theirs is None else f"was trained on {theirs[:16]}"
        raise PublishInputError(
            f"predictions/{task}.parquet: run {run_id} {seen}, not on the current world "
            f"{fingerprint[:16]} (rule: data fingerprint); retrain and rerun "
            f"`zicht train {task}` and `zicht predict {task}`"
        )
    return run_id


def read_areas(world_dir: Path) -> gpd.GeoDataFrame:
    """The world's areas with names, parents and polygons (EPSG:28992)."""
    path = Path(world_dir) / "areas.parquet"
    if not path.is_file():
        raise PublishInputError(f"{path}: missing; run `zicht generate` or pass --data-dir")
    cols = ["area_code", "level", "area_name", "parent_code", "riec_code", "gemeente_code"]
    try:
        areas = read_extract_areas(path, [*cols, "wijk_code"])
    except AreasFileError as exc:
        raise PublishInputError(str(exc)) from None
    for col in [*cols, "wijk_code"]:  # dictionary-encoded strings: plain objects
        if isinstance(areas[col].dtype, pd.CategoricalDtype):
            areas[col] = areas[col].astype(object)
    return areas


def turnover_inputs(
    world_dir: Path, areas: pd.DataFrame, year: int
) -> tuple[pd.DataFrame, pd.Series, dict[str, str]]:
    """Active establishments of *year* with turnover and area codes; inhabitants; branch names.

    The same population as the feature builders' cells (``features.builders._cell_turnover``):
    founded by *year* and not closed by it; a missing turnover counts as 0.
    """
    world_dir = Path(world_dir)
    est = pd.read_parquet(
        world_dir / "establishments.parquet",
        columns=["establishment_id", "buurt_code", "sbi", "founded_year", "closed_year"],
    )
    closed = est["closed_year"].to_numpy(np.float64, na_value=np.inf)
    est = est[(est["founded_year"].to_numpy() <= year) & (closed > year)]
    tv = pd.read_parquet(world_dir / "turnover.parquet", filters=[("year", "==", year)])
    est = est.merge(tv[["establishment_id", "turnover"]], on="establishment_id", how="left")
    b = areas[areas["level"] == "buurt"].set_index("area_code")
    codes = est["buurt_code"].astype(str)
    units = pd.DataFrame(
        {
            "buurt_code": codes.to_numpy(),
            "wijk_code": b["wijk_code"].astype(str).reindex(codes).to_numpy(),
            "gemeente_code": b["gemeente_code"].astype(str).reindex(codes).to_numpy(),
            "riec_code": b["riec_code"].astype(str).reindex(codes).to_numpy(),
            "sbi": est["sbi"].astype(str).to_numpy(),
            "turnover": est["turnover"].to_numpy(np.float64),
        }
    )
    stats = pd.read_parquet(
        world_dir / "area_stats.parquet",
        columns=["area_code", "year", "inhabitants"],
        filters=[("year", "==", year)],
    )
    inhabitants = stats.set_index(stats["area_code"].astype(str))["inhabitants"]
    br = pd.read_parquet(world_dir / "branches.parquet", columns=["sbi", "branch_name"])
    return units, inhabitants, dict(zip(br["sbi"].astype(str), br["branch_name"], strict=True))


def read_profiles(task: str, data_dir: Path) -> pd.DataFrame | None:
    """SHAP area driver profiles, when ``zicht explain`` has written them."""
    path = Path(data_dir) / "explain" / f"{task}_profiles.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def control(rollup: Rollup, settings: RuleSettings) -> pd.DataFrame:
    """protect() then audit(); the status frame, or PublishRefused if the audit fails."""
    from disclosure.audit import audit
    from disclosure.suppress import protect

    try:
        protection = protect(rollup.cells, rollup.relations, settings)
    except DisclosureRefused as exc:
        raise PublishRefused(f"{rollup.task}: {exc}") from exc
    result = audit(rollup.cells, rollup.relations, protection.status, settings)
    failed = result[~result["ok"].astype(bool)]
    if len(failed):
        raise PublishRefused(
            f"{rollup.task}: the audit finds {len(failed)} suppressed cell(s) recomputable "
            f"beyond the required protection (e.g. {failed['cell_id'].iloc[0]}); nothing was "
            "published"
        )
    return protection.status


def release_for(
    task: str,
    predictions: pd.DataFrame,
    *,
    world_dir: Path,
    areas: gpd.GeoDataFrame,
    settings: RuleSettings,
    run_id: str,
    profiles: pd.DataFrame | None = None,
) -> TaskRelease:
    """Roll up, control and assemble one task's release (no writing)."""
    branch_names = None
    try:
        if task == "branch_turnover":
            year = int(predictions["year"].iloc[0])
            units, inhabitants, branch_names = turnover_inputs(world_dir, areas, year)
            rollup = roll_up_turnover(predictions, establishments=units, inhabitants=inhabitants)
        else:
            rollup = roll_up_binary(predictions, task=task, profiles=profiles)
    except RollupError as exc:
        raise PublishInputError(str(exc)) from exc
    status = control(rollup, settings)
    tables = level_tables(rollup, status, areas=areas, branch_names=branch_names)
    return task_release(rollup, tables, status, geometry=areas, run_id=run_id)


def git_commit() -> str:
    """The code's commit (``unknown`` outside a git checkout)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def zicht_version() -> str:
    try:
        return metadata.version("zicht")
    except metadata.PackageNotFoundError:
        return "unknown"


def publish_tasks(
    tasks: Sequence[str],
    *,
    data_dir: Path,
    publish_dir: Path,
    tracking_uri: str,
    settings: RuleSettings | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    run_fingerprint: Callable[[str], str | None] | None = None,
    world_dir: Path | None = None,
) -> Path:
    """Publish *tasks* (all or nothing); returns the new version directory. *world_dir* is
    the world or extract the predictions come from (default DATA/world).

    Raises :class:`PublishInputError` (exit 2) for missing or stale inputs and
    :class:`~disclosure.publish.PublishRefused` (exit 3) when disclosure control or the
    export check refuses.
    """
    settings = settings or RuleSettings()
    data_dir = Path(data_dir)
    world_dir = Path(world_dir) if world_dir is not None else data_dir / "world"
    if not (world_dir / "areas.parquet").is_file():
        raise PublishInputError(f"{world_dir}: no world here; run `zicht generate` first")
    fingerprint, _, _ = world_identity(world_dir)
    lookup = run_fingerprint or fingerprint_from_mlflow(tracking_uri)
    # read and check every input first: a refusal costs no roll-up
    inputs = {}
    for task in tasks:
        preds = read_predictions(task, data_dir)
        inputs[task] = (preds, check_fingerprint(task, preds, fingerprint, lookup))
    areas = read_areas(world_dir)
    releases = []
    for task, (preds, run_id) in inputs.items():
        progress(f"roll-up and disclosure control {task}")
        releases.append(
            release_for(
                task,
                preds,
                world_dir=world_dir,
                areas=areas,
                settings=settings,
                run_id=run_id,
                profiles=read_profiles(task, data_dir) if task == "jonge_aanwas" else None,
            )
        )
    meta = ReleaseMeta(
        data_fingerprint=fingerprint, git_commit=git_commit(), zicht_version=zicht_version()
    )
    return write_release(
        releases, publish_dir=Path(publish_dir), settings=settings, meta=meta, progress=progress
    )
