"""``zicht tune``: an Optuna study; each trial a nested MLflow run, the best refitted once.

Seeded TPE, median pruning on the folds (a trial reports its running CV mean after each
fold). Nested runs are opened by hand (``optuna_integration.MLflowCallback`` is deprecated in
Optuna 5). The parent run is the refit of the best parameters (``zicht.kind=tune``) and
competes for champion; trials (``zicht.kind=trial``) never do. With ``--storage`` the study
lives in a database, so it resumes and several workers can share it.

Parallel workers (``--workers K``, a PostgreSQL ``--storage``):

* This process creates the storage's schema and the study, and opens the parent run, before
  any worker starts (concurrent schema creation races). Then K worker processes (spawned, one
  thread each) share the study; each trial is a run nested in the parent through
  ``mlflow.parentRunId``.
* ``--trials N`` is the number of trials this command finishes (completed or pruned), shared
  out through a counter: a worker claims a trial before it asks Optuna for one, so K workers
  run exactly N, never N + K - 1.
* A worker killed mid-trial (SIGKILL, the OOM killer) is noticed at once: its trial is
  failed, queued again with the same parameters (Optuna's
  ``RetryHeartbeatStaleTrialCallback``, formerly ``RetryFailedTrialCallback``), its claim is
  given back and a new worker takes its place (at most K times). Its nested run is marked
  KILLED (:func:`experiments.tracking.sweep_stale_runs`).
* A whole command killed leaves RUNNING trials; the next ``zicht tune`` on the same study
  (resume) fails and requeues those of dead processes on this host at once, and Optuna's
  heartbeat (every :data:`HEARTBEAT_S` s) those of other hosts after :data:`GRACE_S` s.
  The grace is far above the beat, so a slow but live trial is never failed under its
  worker, the usual cause of "Trial … has already finished" errors.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
from optuna.trial import TrialState

from experiments import tracking
from experiments.config import ExperimentConfig
from experiments.train import (
    Prepared,
    TrainInputError,
    TrainResult,
    finite,
    log_evaluation,
    prepare,
)
from models.evaluation import cv_scores
from models.search import suggest

#: seconds between a running trial's heartbeats, and of silence before it counts as dead
HEARTBEAT_S = 10
GRACE_S = 120
#: how often one trial is queued again after its worker died
MAX_RETRY = 3
#: seconds the first workers wait for each other to be loaded before they start
START_TIMEOUT_S = 300
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class TuneWorkerError(RuntimeError):
    """A tuning worker failed (not killed): the study stays resumable (exit 1)."""


def study_storage(url: str, *, create: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeats and requeueing of dead trials. *create* False
    skips the schema check (the parent created it before the workers started)."""
    with warnings.catch_warnings():  # heartbeat and retry are "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY
            ),
            skip_table_creation=not create,
        )


def sampler_seed(seed: int, n_before: int, worker: int) -> int:
    """The TPE seed of *worker* on a study that had *n_before* trials: the run's seed for a
    fresh single-process study (as ever), else one derived from all three, so that workers
    and resumed studies do not replay the same random start-up trials."""
    if n_before == 0 and worker == 0:
        return seed
    return int(np.random.SeedSequence([seed, n_before, worker]).generate_state(1)[0])


def make_study(
    name: str, storage: optuna.storages.BaseStorage | None, seed: int
) -> optuna.study.Study:
    return optuna.create_study(
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        storage=storage,
        load_if_exists=True,
    )


def fail_orphaned_trials(study: optuna.study.Study) -> list[int]:
    """Fail the RUNNING trials whose worker process (``zicht.pid`` on this host) is gone, and
    queue each again (up to :data:`MAX_RETRY` times); returns their numbers."""
    host, gone = socket.gethostname(), []
    storage = study._storage
    retry = storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = str(t.user_attrs.get("zicht.pid", ""))
        if t.user_attrs.get("zicht.host") != host or not pid.isdigit():
            continue
        if tracking.process_alive(int(pid)):
            continue
        try:
            if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        gone.append(t.number)
        if retry is not None:
            retry(study, storage.get_trial(t._trial_id))
    return gone


@dataclass(frozen=True)
class Objective:
    """One trial: suggest, cross-validate with fold pruning, log a nested run. Picklable, so
    that spawned workers run the same objective as a single process."""

    prep: Prepared
    model_name: str
    tags: dict[str, str]
    parent_run_id: str
    n_jobs: int

    def __call__(self, trial: optuna.Trial) -> float:
        metric = tracking.PRIMARY[self.prep.task.name]
        owner = tracking.owner_tags()
        for k, v in owner.items():  # who runs it: a dead worker's trial is failed at once
            trial.set_user_attr(k, v)
        params = suggest(trial, self.model_name)
        tags = {**self.tags, **owner, "zicht.kind": "trial", "optuna.trial": str(trial.number)}
        mlflow.start_run(  # nested in the parent: open in this process, or named by its id
            run_name=f"trial-{trial.number}",
            parent_run_id=self.parent_run_id,
            nested=mlflow.active_run() is not None,
            tags=tags,
        )
        try:
            value = self._evaluate(trial, params, metric)
        except optuna.TrialPruned:  # stopped on purpose: a finished run, tagged pruned
            mlflow.set_tag("optuna.state", "pruned")
            mlflow.end_run("FINISHED")
            raise
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise
        except BaseException:
            mlflow.end_run("FAILED")
            raise
        mlflow.end_run("FINISHED")
        return value

    def _evaluate(self, trial: optuna.Trial, params: dict[str, Any], metric: str) -> float:
        """CV of *params* in the trial's run, reporting each fold's running mean to Optuna."""
        prep = self.prep
        mlflow.log_params(params)

        def report(fold: int, value: float) -> None:
            trial.report(value, fold)
            mlflow.log_metric(f"cv_{metric}", value, step=fold)
            if trial.should_prune():
                raise optuna.TrialPruned()

        scores = cv_scores(
            prep.in_memory("zicht tune"),
            prep.task,
            prep.features,
            model_name=self.model_name,
            protocol=prep.protocol,
            params=prep.model_params(self.model_name, params),
            report=report,
            random_state=int(prep.seed or 0),
            n_jobs=self.n_jobs,
        )
        value = float(sum(scores) / len(scores))
        mlflow.log_metric(metric, value)
        return value


# --------------------------------------------------------------------------- workers


class Claims:
    """The trials this command still has to run, shared by the workers: a worker claims one
    before it asks Optuna for a trial and clears its claim when the trial ends; a dead
    worker's claim goes back to the pool."""

    def __init__(self, ctx: Any, trials: int, workers: int) -> None:
        self.lock = ctx.Lock()
        self.left = ctx.Value("i", trials, lock=False)
        self.held = ctx.Array("i", workers, lock=False)
        self.done = ctx.Value("i", 0, lock=False)

    def claim(self, worker: int) -> bool:
        with self.lock:
            if self.left.value <= 0:
                return False
            self.left.value -= 1
            self.held[worker] = 1
            return True

    def finish(self, worker: int) -> None:
        with self.lock:
            self.held[worker] = 0
            self.done.value += 1

    def give_back(self, worker: int) -> None:
        with self.lock:
            if self.held[worker]:
                self.held[worker] = 0
                self.left.value += 1

    @property
    def remaining(self) -> int:
        with self.lock:
            return int(self.left.value)


def _worker(
    index: int,
    objective: Objective,
    *,
    storage_url: str,
    study_name: str,
    seed: int,
    tracking_uri: str,
    claims: Claims,
    start: Any = None,
) -> None:
    """One worker process: claim, run one trial, repeat while claims are left. The first
    workers wait for each other at *start* (a barrier) once loaded, so that none has taken
    every trial before the others have even imported their libraries."""
    os.environ.pop("MLFLOW_RUN_ID", None)  # never resume the parent's `mlflow run` run
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tracking.connect(tracking_uri, objective.prep.task.name)
    storage = study_storage(storage_url, create=False)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        n_before = len(study.get_trials(deepcopy=False))
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, n_before, index + 1))
        study.pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        if start is not None:
            try:
                start.wait(timeout=START_TIMEOUT_S)
            except threading.BrokenBarrierError:
                pass  # a worker died while loading: the others go ahead
        while claims.claim(index):
            study.optimize(objective, n_trials=1)
            claims.finish(index)
    finally:
        storage.engine.dispose()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Spawned workers inherit the environment at start: one OpenMP/BLAS thread each."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update({n: "1" for n in names})
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def run_workers(
    study: optuna.study.Study,
    objective: Objective,
    *,
    workers: int,
    trials: int,
    storage_url: str,
    seed: int,
    tracking_uri: str,
    progress: Callable[[str], None],
    poll_s: float = 0.2,
) -> int:
    """Run *trials* trials of *study* in *workers* processes; returns how many were
    requeued after a worker was killed. Raises :class:`TuneWorkerError` when a worker fails."""
    ctx = mp.get_context("spawn")  # no forked MLflow/SQLAlchemy state in the workers
    claims = Claims(ctx, trials, workers)
    together = ctx.Barrier(workers)

    def start(i: int, barrier: Any = None) -> Any:
        p = ctx.Process(
            target=_worker,
            args=(i, objective),
            kwargs=dict(
                storage_url=storage_url,
                study_name=study.study_name,
                seed=seed,
                tracking_uri=tracking_uri,
                claims=claims,
                start=barrier,
            ),
            name=f"zicht-tune-worker-{i}",
        )
        with _one_thread():
            p.start()
        return p

    procs = [start(i, together) for i in range(workers)]
    running, restarts, requeued, shown = set(range(workers)), 0, 0, 0
    try:
        while running:
            time.sleep(poll_s)
            for i in sorted(running):
                code = procs[i].exitcode
                if code is None:
                    continue
                if code > 0:
                    raise TuneWorkerError(
                        f"tune worker {i} failed (exit {code}; its traceback is above); the "
                        f"study {study.study_name!r} keeps its finished trials: run the same "
                        "command again to resume"
                    )
                if code < 0:  # killed by a signal
                    requeued += len(fail_orphaned_trials(study))
                    tracking.sweep_stale_runs()
                    claims.give_back(i)
                    if claims.remaining > 0 and restarts < workers:
                        restarts += 1
                        progress(
                            f"worker {i} was killed (signal {-code}): its trial is queued again"
                        )
                        procs[i] = start(i)
                        continue
                running.discard(i)
            while shown < claims.done.value:
                shown += 1
                progress(f"trial {shown}/{trials} finished")
        if claims.remaining > 0:
            raise TuneWorkerError(
                f"{claims.remaining} of {trials} trials were not run: workers kept being killed "
                f"({restarts} replaced); run the same command again to resume the study"
            )
    finally:
        for p in procs:
            if p.exitcode is None:
                p.terminate()
        for p in procs:
            p.join(timeout=30)
        fail_orphaned_trials(study)  # the trials of workers stopped above, queued again
        tracking.sweep_stale_runs()
    return requeued


# --------------------------------------------------------------------------- the command


def check_storage(storage: str | None, workers: int) -> None:
    if workers > 1 and (storage is None or storage.startswith("sqlite")):
        raise TrainInputError(
            f"--workers {workers} --storage {storage or '(none)'}: parallel workers share one "
            "study in a database server (rule: SQLite locks the whole file on every write and "
            "Optuna's parallel workers fail on it); fix: --storage postgresql://USER@HOST:PORT/"
            "DB (`zicht server` prints one), or --workers 1"
        )


def tune(
    cfg: ExperimentConfig,
    *,
    model_name: str,
    trials: int,
    data_dir: Path,
    tracking_uri: str,
    storage: str | None = None,
    workers: int = 1,
    n_folds: int = 5,
    n_jobs: int = 2,
    progress: Callable[[str], None] = lambda _m: None,
) -> TrainResult:
    """Run *trials* trials of the study of (task, model, protocol), in this process or in
    *workers* processes, then refit the best parameters once in the parent run."""
    check_storage(storage, workers)
    prep = prepare(cfg, data_dir=data_dir, tracking_uri=tracking_uri, n_folds=n_folds)
    prep.in_memory("zicht tune")  # refuse a streamed (national) table before the study
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = study_storage(storage) if storage else None  # the schema, before any worker
    try:
        return _tune(
            cfg,
            prep,
            rdb,
            model_name=model_name,
            trials=trials,
            storage=storage,
            workers=workers,
            n_jobs=n_jobs,
            tracking_uri=tracking_uri,
            progress=progress,
        )
    finally:
        if rdb is not None:
            rdb.engine.dispose()


def _tune(
    cfg: ExperimentConfig,
    prep: Prepared,
    rdb: optuna.storages.RDBStorage | None,
    *,
    model_name: str,
    trials: int,
    storage: str | None,
    workers: int,
    n_jobs: int,
    tracking_uri: str,
    progress: Callable[[str], None],
) -> TrainResult:
    seed = int(prep.seed or 0)
    name = f"zicht-{cfg.task}-{model_name}-{prep.protocol.hash()}"
    study = make_study(name, rdb, seed)
    if rdb is not None:
        if fail_orphaned_trials(study):
            progress("trials of a killed earlier run are queued again")
        n_before = len(study.get_trials(deepcopy=False))
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, n_before, 0))
    metric = tracking.PRIMARY[cfg.task]
    tags = prep.tags(model_name, "tune")
    with tracking.run(cfg.task, run_name=f"{model_name}-tune", tags=tags) as parent:
        run_id = parent.info.run_id
        objective = Objective(prep, model_name, tags, run_id, 1 if workers > 1 else n_jobs)
        if workers > 1:
            assert storage is not None
            requeued = run_workers(
                study,
                objective,
                workers=workers,
                trials=trials,
                storage_url=storage,
                seed=seed,
                tracking_uri=tracking_uri,
                progress=progress,
            )
            mlflow.log_params({"workers": workers, "requeued_trials": requeued})
        else:

            def shown(_study: optuna.study.Study, t: optuna.trial.FrozenTrial) -> None:
                value = "pruned" if t.value is None else f"{metric} {t.value:.4f}"
                progress(f"trial {t.number}: {value}")

            study.optimize(objective, n_trials=trials, callbacks=[shown])
        best = study.best_trial.params
        mlflow.log_params({f"best.{k}": v for k, v in best.items()})
        mlflow.log_metric(f"best_trial_cv_{metric}", study.best_value)
        progress("refitting the best parameters")
        ev = prep.evaluate(model_name, params=best, n_jobs=n_jobs)
        log_evaluation(prep, ev, model_name)
    champion = tracking.choose_champion(
        cfg.task, fingerprint=prep.fingerprint, protocol=prep.protocol.hash()
    )
    return TrainResult(run_id, finite(ev.metrics), champion, prep.protocol.hash())
