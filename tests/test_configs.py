"""Every shipped experiment config is valid and runs end to end on the tiny world."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from experiments.cli import main
from experiments.config import TASKS, load_config
from features.catalogue import TASK_FEATURES
from features.guard import check_selection
from features.tables import META

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "configs").glob("*.yaml"))


def test_every_task_ships_a_config() -> None:
    assert {load_config(p).task for p in CONFIGS} == set(TASKS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_runs_end_to_end(
    path: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(path)
    check_selection(cfg.features)
    (tmp_path / "world").symlink_to(tiny_data / "world")
    code = main(["features", cfg.task, "--config", str(path), "--data-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    table = pq.read_table(tmp_path / "features" / f"{cfg.task}.parquet")
    assert table.column_names == list(META[cfg.task]) + list(cfg.features)
    years = sorted(set(table.column("year").to_pylist()))
    assert years[0] == 2017 and len(years) >= 6
    assert set(cfg.features) <= set(TASK_FEATURES[cfg.task])
    assert not list((tmp_path / "features").glob(".*")), "temporary files left behind"
