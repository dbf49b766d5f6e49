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


def _config_with_params(tmp_path: Path, task: str, params: dict) -> Path:
    import yaml

    cfg = load_config(CONFIGS[[load_config(p).task for p in CONFIGS].index(task)])
    path = tmp_path / f"{task}_params.yaml"
    doc = {"task": task, "features": list(cfg.features), "params": params}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"lightgbm": {"class_weight": "balanced"}}, "never class-reweighted"),
        ({"lightgbm": {"scale_pos_weight": 20}}, "never class-reweighted"),
        ({"histgb": {"n_jobs": 8}}, "not a parameter a config may set"),
        ({"lightgbm": {"num_leafs": 7}}, "choose from"),
        ({"xgboost": {"max_depth": 3}}, "unknown model 'xgboost'"),
        ({"tree": {"max_depth": [3, 4]}}, "expected a number"),
    ],
)
def test_config_params_are_checked(
    params: dict, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config may set model parameters, but never class reweighting, never what the zoo
    fixes (threads, determinism, seed, objective, leaf floor), and only names it knows; the
    message names the file and the field, and `zicht train` exits 2."""
    from experiments.config import ConfigError

    path = _config_with_params(tmp_path, "hennep", params)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "params" in str(err.value)
    assert needle in str(err.value)
    code = main(["train", "hennep", "--config", str(path), "--data-dir", str(tmp_path)])
    assert code == 2 and needle in capsys.readouterr().err


def test_config_params_layer_over_defaults_and_under_trials() -> None:
    cfg = load_config(CONFIGS[0]).model_copy(update={"params": {"tree": {"max_depth": 3}}})
    assert cfg.model_params("tree") == {"max_depth": 3}
    assert cfg.model_params("tree", {"max_depth": 5}) == {"max_depth": 5}
    assert cfg.model_params("logistic") == {}
