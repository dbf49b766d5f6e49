"""The MLflow edge: experiments, tags, metrics, artifacts, models, and the champion alias.

Names follow CONTRACT.md: experiment ``zicht/<task>``; tags ``zicht.task``, ``zicht.model``,
``zicht.kind``, ``zicht.scale``, ``zicht.seed``, ``zicht.data_fingerprint``,
``zicht.protocol``; registered model ``zicht-<task>`` with alias ``champion``. Artifacts hold
no unit-level rows: the model is logged with a signature built from the feature catalogue,
never with an input example.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from experiments.zones import store_creation_lock

log = logging.getLogger(__name__)

PRIMARY = {"hennep": "roc_auc", "jonge_aanwas": "roc_auc", "branch_turnover": "r2_log"}
COMPETING_KINDS = ("train", "tune")
#: MLflow's description of an experiment, run or (via its API) registered model
NOTE = "mlflow.note.content"
#: the run name's mark of the champion (removed when the alias moves on)
CHAMPION_MARK = " ★ champion"

#: ``zicht.role`` of a run: what it is in the comparison (``champion`` moves with the alias)
ROLES = ("champion", "challenger", "baseline", "main model", "benchmark", "trial")

#: ``zicht.purpose``: what a run of each kind (and role) is for, in one line
PURPOSE = {
    "train": "competes for champion: CV, hold-out and the final fit of one model",
    "tune": "competes for champion: the refit of the best parameters of an Optuna study",
    "trial": "one Optuna trial (CV only); never competes",
    "bench": "the leaderboard: every model on identical folds, paired bootstrap intervals",
    "baseline": "a baseline of the benchmark, on the folds of the main model; never competes",
    "main model": "the main model's row of the leaderboard (its train run competes)",
}

#: The run-table search that lists champions and baselines side by side (MLflow's search has
#: no IN for tags, so it excludes the other roles)
SIDE_BY_SIDE = " AND ".join(
    f"tags.zicht.role != '{r}'" for r in ("challenger", "trial", "benchmark", "main model")
)

TASK_ABOUT = {
    "hennep": "Dismantled cannabis farms: the unit is a dwelling, the label a farm dismantled "
    "there in year *t*. Areas are ranked by expected farms per 1,000 dwellings.",
    "jonge_aanwas": "Youth drawn into drug crime: the unit is a person aged 8–23, the label a "
    "first drug-offence suspicion within 3 years. Scores roll up per area and age group.",
    "branch_turnover": "Branches with remarkable turnover: the unit is an area × branch cell, "
    "the label log(1 + turnover per inhabitant); cells far above their expected turnover are "
    "flagged.",
}


class TrackingError(RuntimeError):
    """The MLflow store cannot be reached or used; the message names the URI and the fix."""


def experiment_name(task: str) -> str:
    return f"zicht/{task}"


def registered_name(task: str) -> str:
    return f"zicht-{task}"


#: seconds to wait for an HTTP tracking server's port before giving up (MLflow itself
#: retries a refused connection for minutes)
PROBE_TIMEOUT_S = 5.0


def probe_server(tracking_uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """For an ``http(s)://`` store, fail fast with :class:`TrackingError` when nothing
    listens on its host and port; other stores (sqlite, files) are left to MLflow."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise TrackingError(
            f"MLflow store {tracking_uri!r}: cannot be reached ({exc.strerror or exc}; rule: "
            f"the tracking server answers on {parts.hostname}:{port} within {timeout:.0f} s); "
            "fix: start the server, or pass another --tracking-uri / MLFLOW_TRACKING_URI "
            "(default sqlite:///mlflow.db)"
        ) from None


def artifact_root(tracking_uri: str) -> str | None:
    """Where the artifacts of a new experiment go: beside a SQLite store (``mlruns/`` in the
    directory of the ``.db`` file), never into the current directory as MLflow's default
    would put them. None (MLflow decides) for a server or a file store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///").split("?")[0])
    return (db.resolve().parent / "mlruns").as_uri()


def _experiment(tracking_uri: str, name: str) -> Any:
    """``mlflow.set_experiment`` that creates a missing experiment with its artifacts beside
    the store (:func:`artifact_root`)."""
    client = MlflowClient()
    if client.get_experiment_by_name(name) is None:
        try:
            client.create_experiment(name, artifact_location=artifact_root(tracking_uri))
        except mlflow.exceptions.MlflowException:
            if client.get_experiment_by_name(name) is None:  # not a lost race: a real error
                raise
    return mlflow.set_experiment(name)


def connect(tracking_uri: str, task: str) -> str:
    """Point MLflow at *tracking_uri* and make sure ``zicht/<task>`` exists; its id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    probe_server(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        run_id = os.environ.get("MLFLOW_RUN_ID")
        if run_id:  # inside `mlflow run`: log to its run, in its experiment
            return MlflowClient().get_run(run_id).info.experiment_id
        # a new SQLite store is created (migrated) by one process at a time
        with store_creation_lock(tracking_uri):
            exp = _experiment(tracking_uri, experiment_name(task))
        for key, value in experiment_tags(task).items():
            if exp.tags.get(key) != value:
                MlflowClient().set_experiment_tag(exp.experiment_id, key, value)
    except Exception as exc:
        raise TrackingError(
            f"MLflow store {tracking_uri!r} cannot be used ({type(exc).__name__}: {exc}); "
            "check --tracking-uri / MLFLOW_TRACKING_URI"
        ) from exc
    return exp.experiment_id


def experiment_tags(task: str) -> dict[str, str]:
    """The experiment's description, and its kind for the UI: model training (its run
    table), not GenAI (traces), which MLflow 3's UI otherwise opens on."""
    return {NOTE: experiment_description(task), "mlflow.experimentKind": "custom_model_development"}


def experiment_description(task: str) -> str:
    """The experiment's description (Markdown): what the task is and how to read its runs."""
    metric = PRIMARY[task]
    return (
        f"**{task}**. {TASK_ABOUT.get(task, '')}\n\n"
        "**How to read the runs.** Every run is tagged `zicht.kind` (train, tune, trial, bench), "
        "`zicht.model` and `zicht.role`: **champion** (its model holds alias `champion` of "
        f"registered model `{registered_name(task)}`; its name ends in ★ champion), "
        "**challenger** (a train or tune run that competes but is not champion), **baseline** "
        "and **main model** (rows of a benchmark), **trial** (an Optuna trial). "
        f"The champion is the best `{metric}` among finished train and tune runs with the same "
        "`zicht.data_fingerprint` and `zicht.protocol`.\n\n"
        f"**Metrics.** `{metric}` and every other metric is the mean over the gemeente-grouped "
        "folds of the training years (param `n_folds`); `fold_<metric>` holds the folds as "
        "steps 0, 1, … (open its chart: the run table shows only the last step); "
        "`holdout_<metric>` is the last "
        "complete year, scored by the model fitted on earlier years. Durations are real: "
        "runs open before their work.\n\n"
        "**Champions and baselines side by side**: search `"
        + SIDE_BY_SIDE
        + f"` and add the columns `{metric}`, `holdout_{metric}` and `fit_seconds` "
        "(docs/models.md, section MLflow)."
    )


def role_for(kind: str, model: str) -> str:
    """The ``zicht.role`` a new run of *kind* starts with (``champion`` is given later)."""
    if kind in COMPETING_KINDS:
        return "challenger"
    if kind == "trial":
        return "trial"
    if kind == "bench":
        return (
            "benchmark" if "," in model else ("main model" if model == "lightgbm" else "baseline")
        )
    return kind


def run_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """*tags* with ``zicht.role`` and ``zicht.purpose`` filled in from kind and model."""
    out = dict(tags)
    kind, model = out.get("zicht.kind", ""), out.get("zicht.model", "")
    role = out.setdefault("zicht.role", role_for(kind, model))
    out.setdefault("zicht.purpose", PURPOSE.get(role, PURPOSE.get(kind, kind)))
    return out


def run_description(tags: Mapping[str, str], *, detail: str = "") -> str:
    """A run's description (Markdown) from its tags: model, kind, role, purpose and world."""
    t = run_tags(tags)
    task, model, kind = t.get("zicht.task", "?"), t.get("zicht.model", "?"), t.get("zicht.kind")
    lines = [
        f"**{model}** · {kind} — {t['zicht.purpose']}.",
        "",
        f"Task `{task}`; world {t.get('zicht.scale', '?')} (seed {t.get('zicht.seed', '–')}, "
        f"data fingerprint `{t.get('zicht.data_fingerprint', '?')[:12]}`); protocol "
        f"`{t.get('zicht.protocol', '?')}`.",
    ]
    if detail:
        lines += ["", detail]
    if kind in COMPETING_KINDS:
        lines += [
            "",
            "Metrics are means over gemeente-grouped folds (`fold_*`: the folds as steps); "
            "`holdout_*`: the last complete year. Rerun and compare: `zicht verify --run-id` "
            "with this run's id.",
        ]
    return "\n".join(lines)


@contextmanager
def child_run(run_name: str, *, tags: Mapping[str, str], detail: str = "") -> Iterator[Any]:
    """A nested run, opened *before* its work so that its duration is the work's.

    An exception (KeyboardInterrupt too) ends it FAILED; the parent run decides its own end.
    """
    full = run_tags(tags)
    with mlflow.start_run(
        run_name=run_name,
        nested=True,
        tags=full,
        description=run_description(full, detail=detail),
    ) as active:
        yield active


def record_child(
    run_name: str,
    *,
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
    start_ms: int,
    end_ms: int,
    folds: Sequence[Mapping[str, float]] = (),
    detail: str = "",
) -> str:
    """A finished nested run under the active run that records work already timed
    elsewhere (from *start_ms* to *end_ms*): a second view of one evaluation, never a
    second evaluation. *folds*: per-fold metrics, logged as steps of ``fold_<metric>``.
    Returns its id."""
    from mlflow.entities import Metric

    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("record_child: no active parent run")
    client = MlflowClient()
    full = run_tags(tags)
    child = client.create_run(
        parent.info.experiment_id,
        start_time=start_ms,
        tags={
            **full,
            "mlflow.parentRunId": parent.info.run_id,
            NOTE: run_description(full, detail=detail),
        },
        run_name=run_name,
    )
    rid = child.info.run_id
    logged = [Metric(k, float(v), end_ms, 0) for k, v in metrics.items()]
    logged += [
        Metric(f"fold_{k}", float(v), end_ms, step)
        for step, fold in enumerate(folds)
        for k, v in fold.items()
    ]
    client.log_batch(rid, metrics=logged)
    client.set_terminated(rid, "FINISHED", end_time=end_ms)
    return rid


@contextmanager
def run(task: str, *, run_name: str, tags: Mapping[str, str]) -> Iterator[mlflow.ActiveRun]:
    """Start a run, or continue the one ``mlflow run`` opened (``MLFLOW_RUN_ID``).

    Open it before the long work. A run that raises is ended as FAILED, and one interrupted
    by SIGINT or SIGTERM (turned into KeyboardInterrupt while the run is open) as KILLED,
    never FINISHED. A SIGKILL ends nothing, so a run of our own gets tags ``zicht.pid`` and
    ``zicht.host``, and every tracked command first sweeps such runs whose process is gone to
    KILLED (:func:`sweep_stale_runs`). The run ``mlflow run`` opened is its launcher's to end:
    it gets no pid tag and is never swept.
    """
    run_id = os.environ.get("MLFLOW_RUN_ID")
    sweep_stale_runs()
    owner = {} if run_id else owner_tags()
    tags = {**run_tags(tags), NOTE: run_description(tags)}
    with _sigterm_interrupts():
        # our own run is created with its tags: a run is never seen RUNNING without its owner
        active = (
            mlflow.start_run(run_id=run_id)
            if run_id
            else mlflow.start_run(run_name=run_name, tags={**tags, **owner})
        )
        try:
            if run_id:
                mlflow.set_tags(tags)
            yield active
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise
        except BaseException:
            mlflow.end_run("FAILED")
            raise
        else:
            if not run_id:
                mlflow.end_run("FINISHED")


def owner_tags() -> dict[str, str]:
    """``zicht.pid`` and ``zicht.host`` of this process: who keeps the run alive."""
    return {"zicht.pid": str(os.getpid()), "zicht.host": socket.gethostname()}


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While open, SIGTERM raises KeyboardInterrupt (as SIGINT does), so the run ends KILLED.

    Only the main thread can install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def process_alive(pid: int) -> bool:
    """Whether process *pid* of this host still runs (a zombie, dead but not yet reaped, as
    the orphans of a killed command may stay in a container, does not)."""
    import psutil

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def sweep_stale_runs(client: MlflowClient | None = None) -> list[str]:
    """End as KILLED every RUNNING run of this host whose ``zicht.pid`` is gone (SIGKILL, power
    loss), and the RUNNING runs nested in them; returns their ids. The run of ``MLFLOW_RUN_ID``
    is never touched. Uses the current tracking URI.
    """
    client = client or MlflowClient()
    host, keep = socket.gethostname(), os.environ.get("MLFLOW_RUN_ID")
    experiments = [e.experiment_id for e in client.search_experiments(max_results=10_000)]
    if not experiments:
        return []
    running = client.search_runs(
        experiments, filter_string="attributes.status = 'RUNNING'", max_results=10_000
    )
    dead: list[str] = []
    for r in running:
        tags = r.data.tags
        pid = tags.get("zicht.pid", "")
        if r.info.run_id == keep or tags.get("zicht.host") != host or not pid.isdigit():
            continue
        if not process_alive(int(pid)):
            dead.append(r.info.run_id)
    nested = [
        r.info.run_id
        for r in running
        if r.data.tags.get("mlflow.parentRunId") in dead and r.info.run_id != keep
    ]
    swept = [*dead, *(n for n in nested if n not in dead)]
    for run_id in swept:
        client.set_terminated(run_id, "KILLED")
        log.warning("run %s was left RUNNING by a process that is gone: marked KILLED", run_id)
    return swept


def signature(features: list[str], kind: str) -> ModelSignature:
    """Model signature from the feature names (float32 inputs) — no data involved."""
    inputs = Schema([ColSpec("float", f) for f in features])
    outputs = Schema([ColSpec("double", "probability" if kind == "binary" else "prediction")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_table(df: pd.DataFrame, path: str) -> None:
    """Log an aggregate table (CSV) as an artifact at *path*."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / Path(path).name
        df.to_csv(target, index=False)
        mlflow.log_artifact(
            str(target), artifact_path=str(Path(path).parent) if "/" in path else None
        )


def requirements() -> list[str]:
    """Pinned requirements of a logged model (skips MLflow's slow inference subprocess)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("lightgbm", "scikit-learn", "numpy", "scipy", "skops")]


def log_model(model: Any, model_name: str, features: list[str], kind: str) -> str:
    """Log the fitted estimator; returns its model URI."""
    sig = signature(features, kind)
    if model_name == "lightgbm":
        info = mlflow.lightgbm.log_model(
            model, name="model", signature=sig, pip_requirements=requirements()
        )
    else:
        info = log_sklearn(model, "model", signature=sig)
    return info.model_uri


#: Modules whose types may be loaded back from a skops file (our own and well-known ones).
TRUSTED_PREFIXES = ("numpy.", "scipy.", "sklearn.", "lightgbm.", "models.")


def log_sklearn(model: Any, name: str, **kwargs: Any) -> Any:
    """``mlflow.sklearn.log_model`` with skops trust limited to :data:`TRUSTED_PREFIXES`."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=sio.dumps(model))
    trusted = [t for t in untrusted if t.startswith(TRUSTED_PREFIXES)]
    return mlflow.sklearn.log_model(
        model, name=name, skops_trusted_types=trusted, pip_requirements=requirements(), **kwargs
    )


def registered_description(task: str) -> str:
    """The registered model's description (Markdown)."""
    metric = PRIMARY[task]
    return (
        f"Models of task `{task}` ({experiment_name(task)}). {TASK_ABOUT.get(task, '')}\n\n"
        "Every `zicht train` and `zicht tune` run (and the main model of `zicht bench models`) "
        "registers a version; alias **`champion`** points at the version of the best finished "
        f"run by `{metric}` among runs on the same data fingerprint and protocol (ties: the "
        "earlier run). `zicht predict`, `zicht explain` and `zicht publish` use "
        f"`models:/{registered_name(task)}@champion` and refuse it for another world. Versions "
        "hold no input example: the signature comes from the feature catalogue."
    )


def register(model_uri: str, task: str, *, description: str = "") -> str:
    """Register *model_uri* as a new version of ``zicht-<task>``; returns the version.

    The registered model and the version get descriptions (the version's: *description*).
    """
    name = registered_name(task)
    mv = mlflow.register_model(model_uri, name)
    client = MlflowClient()
    if (client.get_registered_model(name).description or "") != registered_description(task):
        client.update_registered_model(name, description=registered_description(task))
    if description:
        client.update_model_version(name, str(mv.version), description=description)
    return str(mv.version)


def comparable_filter(fingerprint: str, protocol: str, kind: str | None = None) -> str:
    """The runs that compete with each other: same world and protocol, finished."""
    where = (
        f"tags.`zicht.data_fingerprint` = '{fingerprint}' and "
        f"tags.`zicht.protocol` = '{protocol}' and attributes.status = 'FINISHED'"
    )
    return where + (f" and tags.`zicht.kind` = '{kind}'" if kind else "")


def choose_champion(task: str, *, fingerprint: str, protocol: str) -> str | None:
    """Point alias ``champion`` at the best comparable run's model version.

    Comparable: same data fingerprint and protocol, kind train or tune (tune *trials* never
    compete). Best: highest primary metric; ties go to the earlier run. Returns the run id.

    The store ranks: one query per competing kind, ordered by the metric (runs without it
    come last) and then by start time, a few rows each. Fetching every comparable run
    instead took 10 s at 2,000 runs (benchmarks/results/tracking_load.md).
    """
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment_name(task))
    if exp is None:
        return None
    metric = PRIMARY[task]
    scored = []
    for kind in COMPETING_KINDS:
        top = client.search_runs(
            [exp.experiment_id],
            filter_string=comparable_filter(fingerprint, protocol, kind),
            order_by=[f"metrics.`{metric}` DESC", "attributes.start_time ASC"],
            max_results=5,
        )
        scored += [
            (r.data.metrics[metric], -r.info.start_time, r) for r in top if metric in r.data.metrics
        ][:1]
    if not scored:
        return None
    best = max(scored, key=lambda s: (s[0], s[1]))[2]
    versions = client.search_model_versions(
        f"name = '{registered_name(task)}' and run_id = '{best.info.run_id}'"
    )
    if not versions:
        return None
    client.set_registered_model_alias(registered_name(task), "champion", versions[0].version)
    mark_champion(client, exp.experiment_id, best.info.run_id)
    return best.info.run_id


def mark_champion(client: MlflowClient, experiment_id: str, run_id: str) -> None:
    """Make the run table say which run is the champion: run *run_id* gets
    ``zicht.role=champion`` and a name ending in ★ champion; a former champion goes back to
    ``challenger`` and its plain name."""
    former = client.search_runs(
        [experiment_id], filter_string="tags.`zicht.role` = 'champion'", max_results=10_000
    )
    for r in former:
        if r.info.run_id == run_id:
            continue
        client.set_tag(r.info.run_id, "zicht.role", "challenger")
        name = r.info.run_name or ""
        if name.endswith(CHAMPION_MARK):
            client.update_run(r.info.run_id, name=name.removesuffix(CHAMPION_MARK))
    run = client.get_run(run_id)
    client.set_tag(run_id, "zicht.role", "champion")
    name = run.info.run_name or ""
    if not name.endswith(CHAMPION_MARK):
        client.update_run(run_id, name=name + CHAMPION_MARK)
