"""A run killed during training is never marked FINISHED.

``zicht train`` opens its MLflow run before the fit. SIGTERM (like SIGINT) ends the run KILLED;
SIGKILL ends nothing, so the next tracked command sweeps runs whose process is gone to KILLED.
The training runs in a subprocess on the shared tiny world (hennep: LightGBM takes tens of
seconds there), into a store of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from experiments import tracking
from experiments.cli import main

REPO = Path(__file__).resolve().parents[1]


def _start_training(tiny_run: Any, store: str, cwd: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "experiments.cli", "train", "hennep", "--model", "lightgbm"]
    cmd += ["--data-dir", str(tiny_run.data), "--tracking-uri", store]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_RUN_ID", None)
    with (cwd / "train.err").open("w") as err:  # the child keeps its own handle
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)


def _wait_running(
    child: subprocess.Popen[bytes], client: MlflowClient, log: Path, timeout: float = 300
) -> Run:
    """The child's run, once it exists and is RUNNING (fails if the child ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            err = log.read_text()[-2000:]
            pytest.fail(f"training ended (exit {child.returncode}) before its run was seen: {err}")
        exp = client.get_experiment_by_name("zicht/hennep")
        if exp is not None:
            runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
            if runs:
                return runs[0]
        time.sleep(0.2)
    child.kill()
    pytest.fail("no RUNNING run appeared")


def _versions(client: MlflowClient, run_id: str) -> list[Any]:
    return list(client.search_model_versions(f"run_id = '{run_id}'"))


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def test_sigterm_during_the_fit_ends_the_run_killed(
    tiny_run: Any, store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = MlflowClient(store)
    child = _start_training(tiny_run, store, tmp_path)
    run = _wait_running(child, client, tmp_path / "train.err")
    assert run.data.tags["zicht.pid"] == str(child.pid)
    assert run.data.tags["zicht.host"] == socket.gethostname()
    time.sleep(1.0)  # well inside the fit (tens of seconds on the tiny world)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=120) != 0
    status = client.get_run(run.info.run_id).info.status
    assert status in ("KILLED", "FAILED"), status  # FINISHED would mean the fit had ended
    assert status == "KILLED"  # SIGTERM is an interruption, not a failure
    assert _versions(client, run.info.run_id) == []
    assert "fit_seconds" not in client.get_run(run.info.run_id).data.metrics
    # a killed run cannot be verified: exit 2, naming its status
    capsys.readouterr()
    assert (
        main(["verify", "--run-id", run.info.run_id, *tiny_run.args[:2], "--tracking-uri", store])
        == 2
    )
    assert "KILLED" in capsys.readouterr().err


def test_sigkill_during_the_fit_is_swept_to_killed_by_the_next_tracked_command(
    tiny_run: Any, store: str, tmp_path: Path
) -> None:
    client = MlflowClient(store)
    child = _start_training(tiny_run, store, tmp_path)
    run = _wait_running(child, client, tmp_path / "train.err")
    time.sleep(1.0)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)  # reaped: its pid is gone
    run_id = run.info.run_id
    assert client.get_run(run_id).info.status == "RUNNING"  # nothing could run on SIGKILL
    # the next tracked command (any tracking.run) sweeps it before opening its own run
    tracking.connect(store, "hennep")
    with tracking.run("hennep", run_name="next", tags={"zicht.kind": "train"}) as active:
        assert client.get_run(run_id).info.status == "KILLED"
        assert active.info.run_id != run_id
    assert client.get_run(active.info.run_id).info.status == "FINISHED"
    assert _versions(client, run_id) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_touches_only_dead_runs_of_this_host(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(store)
    exp = tracking.connect(store, "hennep")
    host, dead = socket.gethostname(), str(_dead_pid())

    def running(**tags: str) -> str:
        return client.create_run(exp, tags=tags).info.run_id

    gone = running(**{"zicht.pid": dead, "zicht.host": host})
    nested = running(**{"mlflow.parentRunId": gone})  # a bench model or a tune trial
    alive = running(**{"zicht.pid": str(os.getpid()), "zicht.host": host})
    elsewhere = running(**{"zicht.pid": dead, "zicht.host": host + "-other"})
    untagged = running()
    outer = running(**{"zicht.pid": dead, "zicht.host": host})
    monkeypatch.setenv("MLFLOW_RUN_ID", outer)  # inside `mlflow run`: its run is not ours
    assert sorted(tracking.sweep_stale_runs(client)) == sorted([gone, nested])
    status = {r: client.get_run(r).info.status for r in (alive, elsewhere, untagged, outer)}
    assert set(status.values()) == {"RUNNING"}, status
    assert tracking.sweep_stale_runs(client) == []  # idempotent


def test_an_exception_in_the_run_ends_it_failed(store: str) -> None:
    client = MlflowClient(store)
    tracking.connect(store, "hennep")
    before = signal.getsignal(signal.SIGTERM)
    with (
        pytest.raises(RuntimeError),
        tracking.run("hennep", run_name="boom", tags={"zicht.kind": "train"}) as active,
    ):
        raise RuntimeError("boom")
    assert client.get_run(active.info.run_id).info.status == "FAILED"
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
