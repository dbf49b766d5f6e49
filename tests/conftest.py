"""Shared fixtures: worlds are generated once per session into temporary directories."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Two xdist workers share two cores, and LightGBM's OpenMP threads spin while they wait at a
# barrier: on a machine this busy a spinning thread burns the core the other worker needs
# (a 100-tree fit: 6.7 CPU s spinning, 2.3 CPU s sleeping, same model). Set before anything
# loads libgomp; subprocesses (zicht commands, Dask workers) inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from hypothesis import HealthCheck, settings

from microdata.io import write_world
from microdata.scales import get_scale

# In CI, property tests are derandomized: the same examples every run.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

#: session fixtures that take minutes to build: every test using one runs on the same xdist
#: worker (``--dist loadgroup``), so each is built once per run, not once per worker
_EXPENSIVE = ("tiny_run", "region_data", "team_server")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group every test of an expensive fixture, and put the group into its node id.

    pytest-xdist 3.8 groups a worker's tests by appending ``@group`` to ``item._nodeid``,
    which pytest 9.2 no longer reads (a node id is ``item._id``, a ``NodeId``): its
    ``--dist loadgroup`` silently spread a group over both workers, so ``tiny_run`` was built
    twice. The suffix is set here, the way xdist's scheduler expects it, when xdist has not.
    """
    for item in items:
        used = [f for f in _EXPENSIVE if f in getattr(item, "fixturenames", ())]
        if used:
            item.add_marker(pytest.mark.xdist_group(used[0]))
    if not getattr(config.option, "loadgroup", False):  # set on xdist's workers only
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
        if names and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(names))}")


@pytest.fixture(scope="session", autouse=True)
def _run_outside_the_repo(tmp_path_factory: pytest.TempPathFactory) -> None:
    """MLflow puts artifacts under ./mlruns of the working directory: keep tests out of the repo."""
    os.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny world (seed 7): DATA directory with world/ and truth/."""
    data = tmp_path_factory.mktemp("tiny")
    write_world(data, get_scale("tiny"), seed=7)
    return data


@pytest.fixture(scope="session")
def region_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A region-scale world (seed 7), for the difficulty and base-rate checks."""
    data = tmp_path_factory.mktemp("region")
    write_world(data, get_scale("region"), seed=7)
    return data


@dataclass(frozen=True)
class TinyRun:
    """The zones of one tiny ``zicht run`` (LightGBM and logistic), and what it printed
    (*out*) and logged (*err*: its stage lines, as a log file would hold them)."""

    root: Path
    out: str
    err: str = ""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def publish(self) -> Path:
        return self.root / "publish"

    @property
    def review(self) -> Path:
        return self.root / "review"

    @property
    def store(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def args(self) -> list[str]:
        return [
            "--data-dir",
            str(self.data),
            "--publish-dir",
            str(self.publish),
            "--review-dir",
            str(self.review),
            "--tracking-uri",
            self.store,
        ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """One end-to-end ``zicht run --scale tiny`` per session (a few minutes), shared.

    test_pipeline reruns into the same zones (full reuse: nothing changes) and runs another
    seed in a copy; other users only read them, and anything they plant goes into copies.
    """
    from experiments.cli import main

    root = tmp_path_factory.mktemp("tiny_run")
    run = TinyRun(root, "")
    buffer, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(errors):
        code = main(["run", "--scale", "tiny", "--models", "lightgbm,logistic", *run.args])
    assert code == 0, buffer.getvalue() + errors.getvalue()
    return TinyRun(root, buffer.getvalue(), errors.getvalue())


@dataclass(frozen=True)
class TeamServer:
    """A running ``zicht server`` on its own local PostgreSQL cluster (see docs/team.md)."""

    root: Path  # a temporary directory that user postgres can reach when the tests run as root
    data: Path  # the server's secure zone: DATA/.zicht/pg, DATA/.zicht/pgpass, DATA/mlartifacts
    uri: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]

    @property
    def cluster(self) -> Any:
        from experiments.server import LocalCluster

        return LocalCluster.in_zone(self.data)

    def database(self, name: str) -> str:
        """A fresh database *name* in the cluster (for one test's Optuna study); its URL."""
        self.cluster.create_databases((name,))
        return self.cluster.url(name)


@pytest.fixture(scope="session")
def team_server() -> Iterator[TeamServer]:
    """``zicht server`` with a local cluster of its own in a temporary directory, for the
    session; stopped (SIGTERM) at the end, which must stop PostgreSQL too. Never skipped:
    without PostgreSQL it fails with the fix (`make test` installs Debian's package)."""
    from experiments.server import ServerError, free_port, pg_bin

    try:
        pg_bin()
    except ServerError as exc:
        pytest.fail(str(exc))
    # not under pytest's 0700 tmp: as root, PostgreSQL runs as user postgres, who must reach it
    root = Path(tempfile.mkdtemp(prefix="zicht-pg-"))
    root.chmod(0o755)
    data, port = root / "data", free_port()
    cmd = [sys.executable, "-m", "experiments.cli", "server", "--data-dir", str(data)]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with (root / "server.out").open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root
        )
    server = TeamServer(root, data, f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 300  # first start: initdb and MLflow's schema (a minute)
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"zicht server did not come up: {(root / 'server.out').read_text()}")
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            time.sleep(1)
    saved = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(server.cluster.pgpass)  # the Optuna URLs carry no password
    try:
        yield server
    finally:
        if saved is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = saved
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        stopped = not server.cluster.running()
        out = (root / "server.out").read_text()
        shutil.rmtree(root, ignore_errors=True)
        assert code == 0 and stopped, f"zicht server did not stop cleanly (exit {code}): {out}"


def _stamped(path: Path, manifest: dict[str, Any]) -> bytes:
    """*path*'s bytes with the version's id and creation time replaced by placeholders."""
    data = path.read_bytes()
    for key in ("version", "created_at"):
        data = data.replace(str(manifest[key]).encode(), f"<{key}>".encode())
    return data


def _same_publication(one: Path, two: Path) -> None:
    """Two public versions hold the same files with the same bytes, except what differs by
    nature: the manifest (creation time, version, run ids), and the version id and its time
    as the README and the dashboard state them (compared with those two blanked)."""
    import json

    m1 = json.loads((one / "manifest.json").read_text())
    m2 = json.loads((two / "manifest.json").read_text())
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for rel in files:
        if rel.name == "manifest.json":
            continue
        a, b = (one / rel).read_bytes(), (two / rel).read_bytes()
        if a != b:
            assert _stamped(one / rel, m1) == _stamped(two / rel, m2), (
                f"{rel} differs beyond the version and its time"
            )


@pytest.fixture
def same_publication() -> Any:
    """:func:`_same_publication`, for tests that compare two versions of the public zone."""
    return _same_publication
