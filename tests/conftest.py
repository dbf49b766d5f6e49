"""Shared fixtures: worlds are generated once per session into temporary directories."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

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
