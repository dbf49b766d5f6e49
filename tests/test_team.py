"""A team's setup against a real PostgreSQL: ``zicht server`` and parallel ``zicht tune``.

The session's ``team_server`` (conftest.py) runs ``zicht server`` on a local cluster of its
own in a temporary directory. The train, verify and audit tests run on both stores, the
server and a SQLite file: every command behaves the same with either. Everything runs on the
tiny world with the small models (``tree``, two folds) of the fastest task, branch_turnover;
each analyst has a DATA of their own (world and feature table shared read-only by links).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from experiments.cli import main

pytestmark = pytest.mark.postgres

TASK = "branch_turnover"
TAGS = (
    "zicht.task",
    "zicht.model",
    "zicht.kind",
    "zicht.scale",
    "zicht.seed",
    "zicht.data_fingerprint",
    "zicht.protocol",
)
METRICS = ("r2_log", "rmse_log", "mae_log", "oracle_r2_log", "holdout_r2_log", "fit_seconds")


@pytest.fixture(scope="module")
def features(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA with the tiny world (linked) and the branch_turnover feature table."""
    data = tmp_path_factory.mktemp("team")
    for part in ("world", "truth"):
        (data / part).symlink_to(tiny_data / part)
    assert main(["features", TASK, "--data-dir", str(data)]) == 0
    return data


def analyst(features: Path, where: Path) -> Path:
    """A DATA directory of one analyst: the shared world and features, linked."""
    where.mkdir(parents=True, exist_ok=True)
    for part in ("world", "truth", "features"):
        (where / part).symlink_to(features / part)
    return where


def zicht(args: list[str], *, cwd: Path, new_session: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_RUN_ID", None)
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )


def runs_of(client: MlflowClient, query: str = "") -> list[Any]:
    exp = client.get_experiment_by_name(f"zicht/{TASK}")
    return client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time ASC"])


# --------------------------------------------------------------------------- train


@dataclass(frozen=True)
class Store:
    """The tracking store of one parametrisation: a SQLite file, or the team's server."""

    uri: str
    artifacts: Path  # where the store keeps its artifacts (secure zone)

    @property
    def server(self) -> bool:
        return self.uri.startswith("http")


@pytest.fixture(scope="module", params=["sqlite", "server"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The same tests on both stores: every command behaves the same with either."""
    if request.param == "server":
        server = request.getfixturevalue("team_server")
        return Store(server.uri, server.data / "mlartifacts")
    root = tmp_path_factory.mktemp("sqlite_store")
    return Store(f"sqlite:///{root / 'mlflow.db'}", root / "mlruns")


@pytest.fixture(scope="module")
def two_trains(store: Store, features: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """Two analysts run `zicht train` at the same moment against the store."""
    root = tmp_path_factory.mktemp("trains")
    procs = []
    for who in ("ann", "bob"):
        data = analyst(features, root / who)
        args = ["train", TASK, "--model", "tree", "--folds", "2", "--data-dir", str(data)]
        procs.append(zicht([*args, "--tracking-uri", store.uri], cwd=root))
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    return [out for out, _ in outs]


def test_two_trains_at_once_log_the_contract_and_one_champion(
    store: Store, two_trains: list, tmp_path: Path
) -> None:
    client = MlflowClient(store.uri)
    runs = runs_of(client, "tags.`zicht.kind` = 'train'")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        assert all(r.data.tags.get(t) for t in TAGS), r.data.tags
        assert all(m in r.data.metrics for m in METRICS)
        # a server's artifacts go through it into its secure zone, never by path
        assert r.info.artifact_uri.startswith("mlflow-artifacts:") == store.server
    # the same world, seed, model and protocol: equal scores, so the tie goes to the earlier
    assert runs[0].data.metrics["r2_log"] == runs[1].data.metrics["r2_log"]
    champion = client.get_model_version_by_alias(f"zicht-{TASK}", "champion")
    assert champion.run_id == runs[0].info.run_id
    versions = client.search_model_versions(f"name = 'zicht-{TASK}'")
    assert sorted(v.run_id for v in versions) == sorted(r.info.run_id for r in runs)
    stored = list(store.artifacts.rglob("MLmodel"))
    assert len(stored) >= 2, f"the models are not in {store.artifacts}"
    got = mlflow.artifacts.download_artifacts(
        run_id=champion.run_id,
        artifact_path="metrics",
        dst_path=str(tmp_path),
        tracking_uri=store.uri,
    )
    assert any(Path(got).iterdir())


# --------------------------------------------------------------------------- tune


def tune_args(data: Path, server: Any, storage: str, trials: int) -> list[str]:
    return [
        "tune",
        TASK,
        "--model",
        "tree",
        "--trials",
        str(trials),
        "--workers",
        "2",
        "--storage",
        storage,
        "--data-dir",
        str(data),
        "--tracking-uri",
        server.uri,
    ]


def trials_of(storage: str, states: tuple[TrialState, ...] | None = None) -> list[Any]:
    """The trials of the one study in *storage* (its connections closed again)."""
    rdb = optuna.storages.RDBStorage(storage)
    try:
        names = optuna.get_all_study_names(rdb)
        if not names:
            return []
        study = optuna.load_study(study_name=names[0], storage=rdb)
        return study.get_trials(deepcopy=True, states=states)
    finally:
        rdb.engine.dispose()


@dataclass(frozen=True)
class TuneServer:
    """The tune tests' MLflow store: a second ``zicht server`` on a fresh database of the
    team's cluster. The trials these tests kill stay out of the store the train, verify and
    audit tests read, whichever order the tests run in."""

    uri: str
    team: Any

    def database(self, name: str) -> str:
        return str(self.team.database(name))


@pytest.fixture(scope="module")
def tune_server(team_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TuneServer]:
    from experiments.server import free_port

    root = tmp_path_factory.mktemp("tune_server")
    port = free_port()
    db = team_server.database("mlflow_tune")
    args = ["server", "--db", db, "--port", str(port), "--data-dir", str(root / "data")]
    proc = zicht(args, cwd=root)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        try:
            MlflowClient(uri).search_experiments()
            break
        except Exception:
            time.sleep(1)
    yield TuneServer(uri, team_server)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)


def trial_runs(client: MlflowClient, parent: str) -> list[Any]:
    return runs_of(client, f"tags.mlflow.parentRunId = '{parent}'")


def parent_runs(client: MlflowClient) -> list[Any]:
    return runs_of(client, "tags.`zicht.kind` = 'tune'")


def test_two_workers_share_one_study(tune_server: Any, features: Path, tmp_path: Path) -> None:
    storage = tune_server.database("optuna_two")
    data = analyst(features, tmp_path / "data")
    proc = zicht(tune_args(data, tune_server, storage, trials=6), cwd=tmp_path)
    _out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert "already finished" not in err and "UpdateFinishedTrialError" not in err
    trials = trials_of(storage)
    assert len(trials) == 6 and all(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials
    )
    assert sorted(t.number for t in trials) == list(range(6))
    client = MlflowClient(tune_server.uri)
    parent = parent_runs(client)[-1]
    assert parent.info.status == "FINISHED" and parent.data.params["workers"] == "2"
    assert "best.max_depth" in parent.data.params and "r2_log" in parent.data.metrics
    nested = trial_runs(client, parent.info.run_id)
    # one nested run per trial, none twice, each with the contract's tags
    assert sorted(int(r.data.tags["optuna.trial"]) for r in nested) == list(range(6))
    assert all(r.info.status == "FINISHED" and r.data.tags["zicht.kind"] == "trial" for r in nested)
    pruned = {str(t.number) for t in trials if t.state == TrialState.PRUNED}
    assert pruned == {r.data.tags["optuna.trial"] for r in nested if "optuna.state" in r.data.tags}
    assert all(all(r.data.tags.get(t) for t in TAGS) for r in nested)
    # two worker processes ran them, neither of them the command itself
    pids = {r.data.tags["zicht.pid"] for r in nested}
    assert len(pids) == 2 and parent.data.tags["zicht.pid"] not in pids
    # the trials never compete for champion; their refit may
    champion = client.get_model_version_by_alias(f"zicht-{TASK}", "champion")
    assert champion.run_id not in {r.info.run_id for r in nested}


def _kill_mid_trial(
    storage: str, proc: subprocess.Popen[str], client: MlflowClient, *, group: bool
) -> Any:
    """SIGKILL a worker (or, *group*, the whole command) inside a trial whose nested run is
    open; the trial. The worker is stopped (SIGSTOP) first, so that the trial cannot end
    while we look; caught between two trials or before its run opened, it is let go."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"tune ended before a trial was killed: {proc.communicate()[1][-3000:]}")
        for t in trials_of(storage, (TrialState.RUNNING,)):
            pid = int(t.user_attrs.get("zicht.pid", 0))
            if not pid:
                continue
            target, send = (proc.pid, os.killpg) if group else (pid, os.kill)
            send(target, signal.SIGSTOP)
            still = [r for r in trials_of(storage, (TrialState.RUNNING,)) if r.number == t.number]
            query = f"tags.`optuna.trial` = '{t.number}' and attributes.status = 'RUNNING'"
            if still and [
                r for r in runs_of(client, query) if r.data.tags["zicht.pid"] == str(pid)
            ]:
                send(target, signal.SIGKILL)
                return still[0]
            send(target, signal.SIGCONT)
        time.sleep(0.5)
    proc.kill()
    pytest.fail("no trial was seen running")


def test_a_killed_worker_is_replaced_and_a_killed_study_resumes(
    tune_server: Any, features: Path, tmp_path: Path
) -> None:
    storage = tune_server.database("optuna_kill")
    data = analyst(features, tmp_path / "data")
    client = MlflowClient(tune_server.uri)

    # 1. one worker is SIGKILLed mid-trial: its trial fails, is queued again and run
    proc = zicht(tune_args(data, tune_server, storage, trials=4), cwd=tmp_path)
    victim = _kill_mid_trial(storage, proc, client, group=False)
    _out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert "already finished" not in err
    trials = trials_of(storage)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert [t.number for t in failed] == [victim.number] and len(finished) == 4
    (retry,) = [t for t in finished if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.params == victim.params
    parent = parent_runs(client)[-1]
    assert parent.data.params["requeued_trials"] == "1"
    nested = {r.data.tags["optuna.trial"]: r for r in trial_runs(client, parent.info.run_id)}
    assert nested[str(victim.number)].info.status == "KILLED"
    assert sum(r.info.status == "FINISHED" for r in nested.values()) == 4

    # 2. the whole command is SIGKILLed mid-trial; running it again resumes the study (four
    # trials asked for: time enough to catch one running on a fast machine)
    proc = zicht(tune_args(data, tune_server, storage, trials=4), cwd=tmp_path, new_session=True)
    orphan = _kill_mid_trial(storage, proc, client, group=True)
    proc.communicate(timeout=60)  # reaps it and closes its pipes
    proc = zicht(tune_args(data, tune_server, storage, trials=1), cwd=tmp_path)
    _out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    trials = trials_of(storage)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    by_number = {t.number: t for t in trials}
    assert by_number[orphan.number].state == TrialState.FAIL
    assert any(t.system_attrs.get("failed_trial") == orphan.number for t in trials)
    pid = orphan.user_attrs["zicht.pid"]
    query = f"tags.`optuna.trial` = '{orphan.number}' and tags.`zicht.pid` = '{pid}'"
    assert [r.info.status for r in runs_of(client, query)] == ["KILLED"]
    killed_parent = parent_runs(client)[-2]
    assert killed_parent.info.status == "KILLED"  # swept: its process is gone
    assert parent_runs(client)[-1].info.status == "FINISHED"


def test_parallel_workers_refuse_sqlite(features: Path, tmp_path: Path) -> None:
    args = ["tune", TASK, "--trials", "2", "--workers", "2", "--data-dir", str(features)]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert main([*args, "--storage", storage, "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 2
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "optuna.db").exists()


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "command",
    [
        ["train", TASK, "--model", "tree"],
        ["tune", TASK, "--trials", "1", "--model", "tree"],
        ["predict", TASK],
        ["explain", TASK],
        ["verify", "--run-id", "0" * 32],
        ["audit", "artifacts"],
    ],
)
def test_an_unreachable_server_exits_2_within_5_s(
    command: list[str], features: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from experiments.server import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    code = main([*command, "--data-dir", str(features), "--tracking-uri", uri])
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2, err
    assert took < 5.0, f"{took:.1f} s"
    assert "cannot be reached" in err and uri in " ".join(err.split())


# --------------------------------------------------------------------------- the server


def test_a_server_on_an_existing_database(team_server: Any, tmp_path: Path) -> None:
    """--db: another server on a database of the running cluster; stopping it leaves that
    PostgreSQL alone. A database that does not exist: exit 2 before anything starts."""
    from experiments.server import free_port

    db = team_server.database("mlflow_db2")
    port = free_port()
    args = ["server", "--db", db, "--port", str(port), "--data-dir", str(tmp_path / "data")]
    proc = zicht(args, cwd=tmp_path)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        try:
            MlflowClient(uri).search_experiments()
            break
        except Exception:
            time.sleep(1)
    client = MlflowClient(uri)
    exp = client.create_experiment("zicht/probe")
    run = client.create_run(exp)
    client.log_text(run.info.run_id, "aggregate", "note.txt")
    client.set_terminated(run.info.run_id)
    assert list((tmp_path / "data" / "mlartifacts").rglob("note.txt"))
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert team_server.cluster.running()  # not ours to stop
    bad = db.rsplit("/", 1)[0] + "/no_such_db"
    start = time.monotonic()
    code = main(["server", "--db", bad, "--port", str(port), "--data-dir", str(tmp_path / "d2")])
    assert code == 2 and time.monotonic() - start < 10


# --------------------------------------------------------------------------- audit, verify


def test_verify_reruns_a_run_of_the_store(
    store: Store, features: Path, two_trains: list, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runs_of(MlflowClient(store.uri), "tags.`zicht.kind` = 'train'")[0]
    args = ["verify", "--run-id", run.info.run_id, "--data-dir", str(features)]
    code = main([*args, "--tracking-uri", store.uri])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "OK: all" in out.out


def test_audit_scans_the_store(
    store: Store,
    features: Path,
    two_trains: list,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["audit", "artifacts", "--data-dir", str(features), "--tracking-uri", store.uri]
    args += ["--review-dir", str(tmp_path / "review"), "--publish-dir", str(tmp_path / "publish")]
    client = MlflowClient(store.uri)
    exp = client.get_experiment_by_name(f"zicht/{TASK}")
    # a run that logged nothing (a trial killed at once): nothing to scan, and no failure
    # (a tracking server answers 404 to downloading its empty artifact root)
    empty = client.create_run(exp.experiment_id, tags={"zicht.kind": "trial"})
    client.set_terminated(empty.info.run_id, "KILLED")
    try:
        assert main(args) == 0, capsys.readouterr().err
    finally:
        client.delete_run(empty.info.run_id)
    clean = capsys.readouterr().out
    assert "audit: clean" in clean
    # plant a unit-level table in a run of the store: the audit finds it there
    run = client.create_run(exp.experiment_id, tags={"zicht.kind": "bench"})
    rows = "\n".join(f"{1000 + i},{i % 7}" for i in range(400))
    client.log_text(run.info.run_id, f"establishment_id,turnover\n{rows}\n", "leak/units.csv")
    client.set_terminated(run.info.run_id)
    try:
        assert main(args) == 4
        assert "units.csv" in capsys.readouterr().out
    finally:
        client.delete_run(run.info.run_id)
