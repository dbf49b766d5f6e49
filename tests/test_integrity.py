"""Integrity (issue 15): tamper-evident inputs, one writer at a time, zones apart, nothing
deleted that the suite did not write, no vacuous passes, exit codes as documented.

Every refusal is exit 2 with a message that names the file, the rule and the fix, and
leaves the MLflow store as it was. One module-scoped DATA (a copy of the tiny world, hennep
features and a cheap tree champion) serves the cases; a case that edits something edits its
own copy.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from experiments.cli import main
from experiments.config import default_config_path, load_config
from experiments.train import train
from microdata.integrity import HashCache, IntegrityError, sha256_file
from microdata.io import data_fingerprint

TASK = "hennep"


@dataclass(frozen=True)
class Env:
    root: Path
    data: Path
    uri: str
    run_id: str

    def args(self, data: Path | None = None) -> list[str]:
        return [
            "--data-dir",
            str(data or self.data),
            "--publish-dir",
            str(self.root / "publish"),
            "--review-dir",
            str(self.root / "review"),
            "--tracking-uri",
            self.uri,
        ]


@pytest.fixture(scope="module")
def env(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    root = tmp_path_factory.mktemp("integrity")
    data = root / "data"
    for part in ("world", "truth"):
        shutil.copytree(tiny_data / part, data / part)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert main(["features", TASK, "--data-dir", str(data), "--tracking-uri", uri]) == 0
    cfg = load_config(default_config_path(TASK))
    result = train(cfg, model_name="tree", data_dir=data, tracking_uri=uri, n_folds=2)
    return Env(root, data, uri, result.run_id)


def own_copy(env: Env, tmp: Path, *parts: str) -> Path:
    """A DATA dir of the test's own with copies of *parts* of the module's DATA."""
    data = tmp / "data"
    for part in parts:
        shutil.copytree(env.data / part, data / part)
    return data


def store_state(uri: str) -> dict[str, str]:
    client = MlflowClient(tracking_uri=uri)
    exps = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs(
        [e.experiment_id for e in exps], run_view_type=ViewType.ALL, max_results=10_000
    )
    return {r.info.run_id: r.info.status for r in runs}


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    return code, " ".join(err.split())


def delete_all_farms(world: Path) -> None:
    path = world / "cannabis_farms.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 0), path)


# --------------------------------------------------------------------------- 1. inputs


def test_validate_checks_every_file_against_the_manifest(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = own_copy(env, tmp_path, "world")
    delete_all_farms(data / "world")
    code, err = run_cli(capsys, ["world", "validate", "--data-dir", str(data)])
    assert code == 2, err
    assert "cannabis_farms.parquet: *: SHA-256 as in manifest.json: changed" in err
    assert "fix: regenerate the world with `zicht generate --overwrite`" in err
    # a file added after generation is named too
    (data / "world" / "extra.parquet").write_bytes(b"x")
    code, err = run_cli(capsys, ["world", "validate", "--data-dir", str(data)])
    assert code == 2 and "extra.parquet: *: listed in manifest.json" in err


def test_the_fingerprint_covers_the_files_not_only_the_manifest(env: Env, tmp_path: Path) -> None:
    data = own_copy(env, tmp_path, "world")
    world = data / "world"
    manifest_hash = sha256_file(world / "manifest.json")
    assert data_fingerprint(world) == manifest_hash  # unchanged: the contract's value
    delete_all_farms(world)
    assert (world / "manifest.json").read_bytes()  # the manifest itself is untouched
    with pytest.raises(IntegrityError, match=r"cannabis_farms\.parquet.*changed"):
        data_fingerprint(world)


def test_the_hash_cache_is_not_fooled_by_a_restored_mtime(env: Env, tmp_path: Path) -> None:
    data = own_copy(env, tmp_path, "world")
    world = data / "world"
    cache = HashCache(data / ".zicht")
    assert data_fingerprint(world, cache=cache)
    assert (data / ".zicht" / "hashes.json").is_file()
    path = world / "dwellings.parquet"
    st = path.stat()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime
    with pytest.raises(IntegrityError, match=r"dwellings\.parquet"):
        data_fingerprint(world, cache=HashCache(data / ".zicht"))


def test_features_write_a_stamp_with_hash_and_config(env: Env) -> None:
    stamp = json.loads((env.data / "features" / f"{TASK}.stamp.json").read_text())
    assert stamp["sha256"] == sha256_file(env.data / "features" / f"{TASK}.parquet")
    assert stamp["config"]["task"] == TASK and stamp["features"] == stamp["config"]["features"]
    assert stamp["world_fingerprint"] == data_fingerprint(env.data / "world")


def _edit_table(path: Path, column: str, values: np.ndarray) -> None:
    t = pq.read_table(path)
    i = t.schema.get_field_index(column)
    pq.write_table(t.set_column(i, column, pa.array(values.astype(np.float32))), path)


def _restamp(path: Path) -> None:
    """A hand-made stamp for an edited table: the guard and the catalogue must still hold."""
    stamp = path.with_name(f"{path.stem}.stamp.json")
    doc = json.loads(stamp.read_text())
    doc["sha256"] = sha256_file(path)
    stamp.write_text(json.dumps(doc))


def commands(env: Env) -> dict[str, list[str]]:
    return {
        "train": ["train", TASK, "--model", "tree", "--folds", "2"],
        "tune": ["tune", TASK, "--trials", "1", "--model", "tree"],
        "bench": ["bench", "models", TASK, "--models", "tree"],
        "predict": ["predict", TASK],
        "explain": ["explain", TASK],
        "verify": ["verify", "--run-id", env.run_id],
    }


@pytest.mark.parametrize("command", ["train", "tune", "bench", "predict", "explain", "verify"])
def test_an_edited_feature_table_is_refused_everywhere(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The hostile tester's case: a feature set to the label (AUC 1.0 on the old code)."""
    data = own_copy(env, tmp_path, "world", "truth", "features")
    path = data / "features" / f"{TASK}.parquet"
    label = pq.read_table(path, columns=["label"]).column("label").to_numpy()
    _edit_table(path, "vacant", label)
    before = store_state(env.uri)
    code, err = run_cli(capsys, [*commands(env)[command], *env.args(data)])
    assert code == 2, err
    assert f"{TASK}.parquet: column *: SHA-256 as in {TASK}.stamp.json" in err
    assert f"fix: rebuild it with `zicht features {TASK}`" in err
    assert store_state(env.uri) == before
    assert not (data / "predictions").exists() and not (data / "explain").exists()


def test_protected_codes_in_a_binary_feature_are_refused_even_when_restamped(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """herkomst codes (0..3) written into a 0/1 feature, with a stamp forged to match."""
    data = own_copy(env, tmp_path, "world", "truth", "features")
    path = data / "features" / f"{TASK}.parquet"
    rows = pq.read_metadata(path).num_rows
    _edit_table(path, "vacant", np.arange(rows) % 4)
    _restamp(path)
    before = store_state(env.uri)
    code, err = run_cli(capsys, [*commands(env)["train"], *env.args(data)])
    assert code == 2, err
    assert "hennep.parquet: column vacant: in {0, 1}" in err and "features/catalogue.py" in err
    assert store_state(env.uri) == before


def test_a_protected_column_in_a_restamped_table_is_refused(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = own_copy(env, tmp_path, "world", "truth", "features")
    path = data / "features" / f"{TASK}.parquet"
    t = pq.read_table(path)
    pq.write_table(t.append_column("herkomst", pa.array(np.zeros(t.num_rows, np.int8))), path)
    _restamp(path)
    code, err = run_cli(capsys, [*commands(env)["predict"], *env.args(data)])
    assert code == 2, err
    assert "hennep.parquet" in err and "'herkomst'" in err and "protected" in err
    assert not (data / "predictions").exists()


def test_a_table_without_stamp_is_refused(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = own_copy(env, tmp_path, "world", "truth", "features")
    (data / "features" / f"{TASK}.stamp.json").unlink()
    code, err = run_cli(capsys, [*commands(env)["train"], *env.args(data)])
    assert code == 2, err
    assert "hennep.stamp.json is missing" in err and "fix: rebuild it" in err


def test_an_edited_world_stops_training_before_the_store_is_touched(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = own_copy(env, tmp_path, "world", "truth", "features")
    delete_all_farms(data / "world")
    before = store_state(env.uri)
    code, err = run_cli(capsys, [*commands(env)["train"], *env.args(data)])
    assert code == 2, err
    assert "cannabis_farms.parquet: column *: changed since the world was generated" in err
    assert "fix: regenerate the world" in err
    assert store_state(env.uri) == before
