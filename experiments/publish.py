"""``zicht publish``: predictions → roll-up → disclosure control → the public zone.

The file edge of the publication: it reads the predictions, the world's areas (names,
polygons) and, for branch_turnover, the establishments and inhabitants of the publication
year; refuses predictions from another world; runs the pure roll-up
(:mod:`reports.rollup`) and the disclosure core (``protect`` then ``audit``, which must
pass); and hands the releases to :func:`disclosure.publish.publish`, the only writer under
``PUBLISH``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from disclosure.publish import (
    SOURCE_CBS,
    SOURCE_SYNTHETIC,
    PublishRefused,
    ReleaseMeta,
    TaskRelease,
    current_version,
    public_status,
    secure_ledger,
    task_release,
    versions_dir,
)
from disclosure.publish import publish as write_release
from disclosure.settings import DisclosureRefused, RuleSettings
from disclosure.versions import PriorRelease, control_release
from experiments.files import write_parquet_atomic
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


def residents(world_dir: Path, year: int) -> pd.DataFrame:
    """Residents aged 8-23 per buurt and age group in the publication *year* (secure zone).

    The jonge-aanwas population leaves out youths with an earlier drug suspicion, so its size
    per area is a sensitive count: wherever someone knows how many youths live there, it
    tells how many have a suspicion on record. The published ``n`` is therefore every
    resident of the age group (alive and registered in a household at the end of
    *year* - 1, aged 8-23 in *year*, as in the population of the feature builders without
    the suspicion filter); the modelled units are only the threshold rule's contributors.
    Returns ``buurt_code, wijk_code, gemeente_code, riec_code, age_group, residents``.
    """
    from features import builders as b
    from features.tables import load_world

    w = load_world(world_dir)
    snap = b.Snapshot(w, year - 1)
    ids = np.flatnonzero((snap.hh >= 0) & ~snap.dead & (snap.age >= 8) & (snap.age <= 23))
    frame = pd.DataFrame(b.area_codes(w, snap.person_buurt[ids]))
    frame["age_group"] = b.age_groups(snap.age[ids])
    frame = frame[frame["buurt_code"].notna()]
    keys = ["buurt_code", "wijk_code", "gemeente_code", "riec_code", "age_group"]
    return frame.groupby(keys, observed=True).size().rename("residents").reset_index()


def read_profiles(task: str, data_dir: Path, run_id: str) -> pd.DataFrame | None:
    """SHAP area driver profiles, when ``zicht explain`` has written them; refused (exit 2)
    when they explain another run than the one that made the predictions."""
    path = Path(data_dir) / "explain" / f"{task}_profiles.parquet"
    if not path.is_file():
        return None
    profiles = pd.read_parquet(path)
    theirs = sorted(set(profiles["run_id"].astype(str))) if "run_id" in profiles else ["?"]
    if theirs != [run_id]:
        raise PublishInputError(
            f"{path}: explains run {', '.join(theirs)}, but the predictions come from run "
            f"{run_id} (rule: drivers, predictions and champion are one run); fix: "
            f"`zicht explain {task}` (the champion) and publish again"
        )
    return profiles


def champion_from_mlflow(tracking_uri: str) -> Callable[[str], str | None]:
    """task → the run id of its registered champion (None when there is none)."""

    def lookup(task: str) -> str | None:
        from experiments.predict import PredictError, champion_run

        try:
            return str(champion_run(task, tracking_uri).info.run_id)
        except PredictError:
            return None

    return lookup


def check_champion(task: str, run_id: str, champion: Callable[[str], str | None]) -> None:
    """The predictions must come from the current champion (exit 2 otherwise)."""
    theirs = champion(task)
    if theirs != run_id:
        now = "there is no champion" if theirs is None else f"the champion is run {theirs}"
        raise PublishInputError(
            f"predictions/{task}.parquet: made by run {run_id}, but {now} (rule: drivers, "
            f"predictions and champion are one run); fix: `zicht predict {task}` and "
            f"`zicht explain {task}`, then publish again"
        )


def control(
    rollup: Rollup,
    settings: RuleSettings,
    prior: Sequence[pd.DataFrame] = (),
    releases: Sequence[PriorRelease] = (),
) -> pd.DataFrame:
    """protect() then audit() over this release and every earlier one still public
    (:func:`disclosure.versions.control_release`: *prior* states make cells known or sticky,
    *releases* add their relations to one joint LP); the status frame, or PublishRefused if
    the audit fails."""
    try:
        done = control_release(
            rollup.cells,
            rollup.relations,
            settings,
            prior_states=prior,
            prior_releases=releases,
            method=rollup.suppression,
        )
    except DisclosureRefused as exc:
        raise PublishRefused(f"{rollup.task}: {exc}") from exc
    failed = done.audit[~done.audit["ok"].astype(bool)]
    if len(failed):
        raise PublishRefused(
            f"{rollup.task}: the audit finds {len(failed)} suppressed cell(s) recomputable "
            f"beyond the required protection (e.g. {failed['cell_id'].iloc[0]}); nothing was "
            "published"
        )
    return done.status


@dataclass(frozen=True)
class SecureState:
    """What the secure zone keeps of one task's release: the ledger with true values (the
    reviewer report's counts), and the full cell table with decisions plus the relations
    (the next release's joint LP)."""

    ledger: pd.DataFrame
    cells: pd.DataFrame
    relations: pd.DataFrame

    def write(self, directory: Path, task: str) -> None:
        write_parquet_atomic(self.ledger, directory / f"{task}.parquet")
        write_parquet_atomic(self.cells, directory / f"{task}.cells.parquet")
        write_parquet_atomic(self.relations, directory / f"{task}.relations.parquet")


def release_states_dir(data_dir: Path) -> Path:
    """``DATA/disclosure/releases``: per published version, each task's cell decisions and
    true values (secure zone), so the next release is audited against what is public."""
    return Path(data_dir) / "disclosure" / "releases"


def prior_states(
    task: str,
    cells: pd.DataFrame,
    *,
    publish_dir: Path,
    data_dir: Path,
    fingerprint: str,
    run_id: str,
) -> list[pd.DataFrame]:
    """What each version of *task* still in ``PUBLISH.d/`` told the public.

    From the version's secure state when this data dir published it (exact values); else
    from its public ledger, conservatively: a published cell counts as the same variable as
    ours when the version was made from the same world and, for the model's own bases
    (``risk_sum``, ``elevated_count``), by the same run.
    """
    vdir = versions_dir(Path(publish_dir))
    if not vdir.is_dir():
        return []
    out = []
    value = cells.set_index("cell_id")["value"]
    for version in sorted(p for p in vdir.iterdir() if p.is_dir()):
        if version.name.endswith(".partial") or not (version / "manifest.json").is_file():
            continue
        try:
            doc = json.loads((version / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if task not in doc.get("tasks", {}):
            continue
        state = release_states_dir(data_dir) / version.name / f"{task}.parquet"
        if state.is_file():
            out.append(pd.read_parquet(state, columns=["cell_id", "value", "status"]))
            continue
        ledger_path = version / task / "ledger.csv"
        if doc.get("data_fingerprint") != fingerprint or not ledger_path.is_file():
            continue  # another world: other variables
        led = pd.read_csv(ledger_path, dtype=str, keep_default_na=False)
        ids = led["level"] + "|" + led["area_code"] + "|" + led["breakdown"] + "|" + led["basis"]
        same_run = doc.get("runs", {}).get(task) == run_id
        model_basis = led["basis"].isin(["risk_sum", "elevated_count"]).to_numpy()
        shared = same_run | ~model_basis
        out.append(
            pd.DataFrame(
                {
                    "cell_id": ids.to_numpy(),
                    "value": np.where(shared, ids.map(value).to_numpy(np.float64), np.nan),
                    "status": led["status"].to_numpy(),
                }
            )
        )
    return out


def prior_releases(task: str, *, publish_dir: Path, data_dir: Path) -> list[PriorRelease]:
    """The full states (cells with decisions, relations) of every version of *task* still in
    ``PUBLISH.d/`` that this data dir published with the current code; versions without
    them count through :func:`prior_states` alone."""
    vdir = versions_dir(Path(publish_dir))
    if not vdir.is_dir():
        return []
    out = []
    for version in sorted(p for p in vdir.iterdir() if p.is_dir()):
        if version.name.endswith(".partial") or not (version / "manifest.json").is_file():
            continue
        base = release_states_dir(data_dir) / version.name
        cells, rels = base / f"{task}.cells.parquet", base / f"{task}.relations.parquet"
        if cells.is_file() and rels.is_file():
            out.append(PriorRelease(version.name, pd.read_parquet(cells), pd.read_parquet(rels)))
    return out


def release_for(
    task: str,
    predictions: pd.DataFrame,
    *,
    world_dir: Path,
    areas: gpd.GeoDataFrame,
    settings: RuleSettings,
    run_id: str,
    profiles: pd.DataFrame | None = None,
    prior_frames: Callable[[pd.DataFrame], Sequence[pd.DataFrame]] | None = None,
    releases: Sequence[PriorRelease] = (),
) -> tuple[TaskRelease, SecureState]:
    """Roll up, control and assemble one task's release (no writing).

    Returns the public release and its secure state (every cell's decision, primary reasons
    and true value; for the secure zone only). *prior_frames* gives, for the cell table,
    the states of earlier releases still public (see :func:`prior_states`); *releases* their
    full cell tables and relations (see :func:`prior_releases`), for the joint LP.
    """
    branch_names = None
    try:
        if task == "branch_turnover":
            year = int(predictions["year"].iloc[0])
            units, inhabitants, branch_names = turnover_inputs(world_dir, areas, year)
            rollup = roll_up_turnover(predictions, establishments=units, inhabitants=inhabitants)
        elif task == "jonge_aanwas":
            year = int(predictions["year"].iloc[0])
            rollup = roll_up_binary(
                predictions,
                task=task,
                profiles=profiles,
                population=residents(world_dir, year),
            )
        else:
            rollup = roll_up_binary(predictions, task=task, profiles=profiles)
    except RollupError as exc:
        raise PublishInputError(str(exc)) from exc
    prior = prior_frames(rollup.cells) if prior_frames else ()
    status = control(rollup, settings, prior, releases)
    public = public_status(status)
    year = int(predictions["year"].iloc[0]) if "year" in predictions and len(predictions) else None
    tables = level_tables(rollup, public, areas=areas, branch_names=branch_names, year=year)
    release = task_release(rollup, tables, public, geometry=areas, run_id=run_id, year=year)
    led = secure_ledger(rollup, status).merge(
        rollup.cells[["cell_id", "value"]], on="cell_id", how="left", validate="1:1"
    )
    cells = rollup.cells.merge(status[["cell_id", "status"]], on="cell_id", validate="1:1")
    return release, SecureState(led, cells, rollup.relations)


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
    champion: Callable[[str], str | None] | None = None,
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
    fingerprint, scale, _ = world_identity(world_dir)
    lookup = run_fingerprint or fingerprint_from_mlflow(tracking_uri)
    champion_of = champion or champion_from_mlflow(tracking_uri)
    # read and check every input first: a refusal costs no roll-up
    inputs = {}
    for task in tasks:
        preds = read_predictions(task, data_dir)
        run_id = check_fingerprint(task, preds, fingerprint, lookup)
        check_champion(task, run_id, champion_of)
        profiles = read_profiles(task, data_dir, run_id) if task == "jonge_aanwas" else None
        inputs[task] = (preds, run_id, profiles)
    areas = read_areas(world_dir)
    releases, states = [], {}
    for task, (preds, run_id, profiles) in inputs.items():
        progress(f"roll-up and disclosure control {task}")
        release, states[task] = release_for(
            task,
            preds,
            world_dir=world_dir,
            areas=areas,
            settings=settings,
            run_id=run_id,
            profiles=profiles,
            prior_frames=partial(
                _prior_for,
                task,
                publish_dir=Path(publish_dir),
                data_dir=data_dir,
                fingerprint=fingerprint,
                run_id=run_id,
            ),
            releases=prior_releases(task, publish_dir=Path(publish_dir), data_dir=data_dir),
        )
        releases.append(release)
    meta = ReleaseMeta(
        data_fingerprint=fingerprint,
        git_commit=git_commit(),
        zicht_version=zicht_version(),
        source=SOURCE_CBS if scale == "real" else SOURCE_SYNTHETIC,
    )
    old = current_version(Path(publish_dir))

    keep = partial(_keep_states, data_dir, states, old.name if old is not None else None)

    return write_release(
        releases,
        publish_dir=Path(publish_dir),
        settings=settings,
        meta=meta,
        progress=progress,
        on_version=keep,
    )


def _keep_states(
    data_dir: Path, states: dict[str, SecureState], old: str | None, version_id: str
) -> None:
    """Before the swap: the new version's secure states (tasks carried over keep theirs)."""
    target = release_states_dir(data_dir) / version_id
    for task, state in states.items():
        state.write(target, task)
    if old is not None:
        for path in (release_states_dir(data_dir) / old).glob("*.parquet"):
            if path.name.split(".")[0] not in states:
                write_parquet_atomic(pd.read_parquet(path), target / path.name)


def _prior_for(task: str, cells: pd.DataFrame, **kwargs: Any) -> list[pd.DataFrame]:
    return prior_states(task, cells, **kwargs)
