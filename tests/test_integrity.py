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
from typing import Any

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
    env = Env(root, data, uri, result.run_id)
    assert main(["predict", TASK, *env.args()]) == 0
    assert main(["publish", TASK, *env.args()]) == 0
    return env


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


# --------------------------------------------------------------------------- 2. ours only


def publish_args(env: Env, publish: Path) -> list[str]:
    return ["publish", TASK, *env.args()[:2], "--publish-dir", str(publish), *env.args()[6:]]


def test_publish_refuses_a_versions_dir_holding_what_it_did_not_write(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old code pruned every directory but the last two, whatever its name."""
    publish = tmp_path / "publish"
    vdir = tmp_path / "publish.d"
    (vdir / "0-notes").mkdir(parents=True)
    (vdir / "0-notes" / "mine.txt").write_text("not zicht's\n")
    for i in range(2):  # named like versions, but without the suite's manifest
        (vdir / f"20000101T000000Z-deadbee{i}").mkdir()
    code, err = run_cli(capsys, publish_args(env, publish))
    assert code == 2, err
    assert "publish.d: holds '0-notes', '20000101T000000Z-deadbee0'" in err
    assert "zicht did not write" in err and "fix: move" in err
    assert (vdir / "0-notes" / "mine.txt").read_text() == "not zicht's\n"
    assert (vdir / "20000101T000000Z-deadbee1").is_dir()
    assert not publish.exists()


def test_publish_prunes_only_its_own_old_versions(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import disclosure.publish as dp

    publish = tmp_path / "publish"
    for _ in range(3):
        assert run_cli(capsys, publish_args(env, publish))[0] == 0
    versions = sorted(p.name for p in dp.versions_dir(publish).iterdir())
    assert len(versions) == 2 and all(
        dp.is_suite_version(dp.versions_dir(publish) / v) for v in versions
    )


def test_a_partial_is_removed_only_when_its_builder_is_gone(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    import disclosure.publish as dp

    publish = tmp_path / "publish"
    vdir = tmp_path / "publish.d"
    vdir.mkdir()
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = {**dp.owner_record(), "pid": int(child.stdout)}
    ids = {k: f"20000101T00000{i}Z-0000000{i}" for i, k in enumerate(("dead", "live", "none"))}
    for vid in ids.values():
        (vdir / f"{vid}.partial").mkdir()
        (vdir / f"{vid}.partial" / "half.csv").write_text("a\n")
    (vdir / f"{ids['dead']}.owner").write_text(json.dumps(dead))
    (vdir / f"{ids['live']}.owner").write_text(json.dumps(dp.owner_record()))  # this process
    code, err = run_cli(capsys, publish_args(env, publish))
    assert code == 0, err
    assert not (vdir / f"{ids['dead']}.partial").exists()
    assert not (vdir / f"{ids['dead']}.owner").exists()
    assert (vdir / f"{ids['live']}.partial" / "half.csv").is_file()  # its builder still runs
    assert (vdir / f"{ids['none']}.partial" / "half.csv").is_file()  # owner unknown: stays


def test_disk_full_while_writing_the_geojson_is_exit_2(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GDAL reports a full disk as its own error (old code: exit 3, 'export failed')."""
    import errno

    import geopandas as gpd
    import pyogrio.errors

    import disclosure.publish as dp

    real_to_file, real_write = gpd.GeoDataFrame.to_file, dp._write_bytes

    def to_file(self: gpd.GeoDataFrame, filename: object, *args: object, **kwargs: object) -> None:
        if isinstance(filename, str | Path):
            raise pyogrio.errors.DataSourceError(f"{filename}: No space left on device")
        real_to_file(self, filename, *args, **kwargs)

    def write_bytes(data: bytes, path: Path) -> None:
        if path.suffix == ".geojson":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(data, path)

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", to_file)
    monkeypatch.setattr(dp, "_write_bytes", write_bytes)
    publish = tmp_path / "publish"
    code, err = run_cli(capsys, publish_args(env, publish))
    assert code == 2, err
    assert "disk full: no space left on device" in err and "fix: free space" in err
    assert not publish.exists() and not list((tmp_path / "publish.d").iterdir())


# --------------------------------------------------------------------------- 3. one writer


def test_a_held_data_lock_refuses_a_second_writer(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from experiments.zones import data_lock_path, exclusive

    data = own_copy(env, tmp_path, "world")
    with exclusive(data_lock_path(data), zone=data, option="--data-dir", command="run"):
        code, err = run_cli(capsys, ["features", TASK, "--data-dir", str(data)])
    assert code == 2, err
    assert f"{data}: another zicht command holds {data}" in err
    assert (
        "`zicht run`, pid" in err
        and "fix: wait for it to finish, or pass another --data-dir" in err
    )
    assert not (data / "features").exists()


def test_a_held_publish_lock_refuses_a_second_publisher(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from experiments.zones import exclusive, publish_lock_path

    publish = tmp_path / "publish"
    with exclusive(
        publish_lock_path(publish), zone=publish, option="--publish-dir", command="publish"
    ):
        code, err = run_cli(capsys, publish_args(env, publish))
    assert code == 2, err
    assert "another zicht command holds" in err and "pass another --publish-dir" in err
    assert not publish.exists()


def test_the_lock_of_a_killed_process_is_taken_over(env: Env, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from experiments.zones import data_lock_path, exclusive

    data = tmp_path / "data"
    data.mkdir()
    code = (
        "import sys, time; from pathlib import Path; from experiments.zones import "
        "data_lock_path, exclusive\n"
        f"d = Path({str(data)!r})\n"
        "with exclusive(data_lock_path(d), zone=d, option='--data-dir', command='run'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    repo = Path(__file__).resolve().parents[1]
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=repo
    ) as child:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(IntegrityError, match="another zicht command holds"):
            with exclusive(data_lock_path(data), zone=data, option="--data-dir", command="x"):
                pass
        child.send_signal(signal.SIGKILL)
        child.wait()
    with exclusive(data_lock_path(data), zone=data, option="--data-dir", command="x"):
        pass  # the kernel released the dead process's lock


def test_a_failed_command_releases_its_lock(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from experiments.zones import data_lock_path, exclusive

    data = own_copy(env, tmp_path, "world")
    bad = tmp_path / "cfg.yaml"
    bad.write_text("task: hennep\nfeatures: [shoe_size]\n")
    code, _ = run_cli(capsys, ["features", TASK, "--data-dir", str(data), "--config", str(bad)])
    assert code == 2
    with exclusive(data_lock_path(data), zone=data, option="--data-dir", command="x"):
        pass


def test_a_new_sqlite_store_is_created_once_by_concurrent_commands(tmp_path: Path) -> None:
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'new.db'}"
    code = f"from experiments.tracking import connect; connect({uri!r}, 'hennep'); print('ok')"
    repo = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "ok" in out, err[-2000:]


# --------------------------------------------------------------------------- 4. zones apart


def test_the_review_zone_cannot_be_the_public_zone(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    publish = env.root / "publish"
    version = publish.resolve()
    before = {p.name for p in version.rglob("*")}
    argv = ["report", TASK, "--data-dir", str(env.data), "--publish-dir", str(publish)]
    code, err = run_cli(capsys, [*argv, "--review-dir", str(publish), "--tracking-uri", env.uri])
    assert code == 2, err
    assert f"--review-dir {publish}" in err and "rule: the secure, review and public zones" in err
    assert {p.name for p in version.rglob("*")} == before


@pytest.mark.parametrize(
    ("command", "data", "review", "publish"),
    [
        ("features", "z/data", "z/data/review", "z/publish"),
        ("publish", "z/data", "z/review", "z/data/publish"),
        ("train", "z/data", "z/data", "z/publish"),
        ("predict", "z/data", "z/review", "z/review/pub"),
        ("audit", "z", "z/review", "z/publish"),
    ],
)
def test_nested_or_overlapping_zones_are_refused(
    env: Env,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    data: str,
    review: str,
    publish: str,
) -> None:
    argv = {
        "features": ["features", TASK],
        "publish": ["publish", TASK],
        "train": ["train", TASK, "--model", "tree"],
        "predict": ["predict", TASK],
        "audit": ["audit", "artifacts"],
    }[command]
    zones = ["--data-dir", str(tmp_path / data), "--review-dir", str(tmp_path / review)]
    zones += ["--publish-dir", str(tmp_path / publish), "--tracking-uri", env.uri]
    code, err = run_cli(capsys, [*argv, *zones])
    assert code == 2, err
    assert "rule: the secure, review and public zones are separate directories" in err
    assert "fix: pass three separate directories" in err
    assert not (tmp_path / "z").exists()


def test_the_store_cannot_live_in_the_public_zone(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'publish' / 'mlflow.db'}"
    argv = ["train", TASK, "--data-dir", str(env.data), "--publish-dir", str(tmp_path / "publish")]
    code, err = run_cli(capsys, [*argv, "--review-dir", str(tmp_path / "r"), "--tracking-uri", uri])
    assert code == 2, err
    assert "the MLflow store lies inside --publish-dir" in err
    assert not (tmp_path / "publish").exists()


# --------------------------------------------------------------------------- 5. no vacuous pass


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "artifacts"],
        ["verify", "--run-id", "0" * 32],
        ["predict", TASK],
        ["explain", TASK],
        ["report", TASK],
        ["ui"],
    ],
    ids=["audit", "verify", "predict", "explain", "report", "ui"],
)
def test_read_only_commands_never_create_a_store(
    env: Env,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    def no_exec(*_a: object) -> None:
        raise RuntimeError("the test stops zicht ui before it starts a server")

    monkeypatch.setattr(os, "execve", no_exec)
    typo = tmp_path / "mlfow.db"
    zones = ["--data-dir", str(env.data), "--publish-dir", str(tmp_path / "p")]
    zones += ["--review-dir", str(tmp_path / "r"), "--tracking-uri", f"sqlite:///{typo}"]
    code, err = run_cli(capsys, [*argv, *zones])
    assert code == 2, err
    assert f"no MLflow store at {typo}" in err and "never creates one" in err
    assert not typo.exists()


def test_audit_refuses_a_store_without_zicht_experiments(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("someone-else")
    zones = ["--data-dir", str(env.data), "--publish-dir", str(tmp_path / "p")]
    zones += ["--review-dir", str(tmp_path / "r"), "--tracking-uri", uri]
    code, err = run_cli(capsys, ["audit", "artifacts", *zones])
    assert code == 2, err
    assert "holds no zicht experiment" in err and "fix: pass the --tracking-uri" in err


# --------------------------------------------------------------------------- 6. exit codes


@pytest.mark.parametrize("kind", ["directory", "binary"])
def test_a_config_that_is_not_a_yaml_file_is_exit_2(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path = tmp_path / "cfg"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(bytes(range(256)) * 4)
    code, err = run_cli(capsys, ["train", TASK, "--config", str(path), *env.args()])
    assert code == 2, err
    assert str(path) in err and "rule:" in err and "fix: pass a YAML file" in err


def test_explaining_a_bench_run_is_exit_2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    client = MlflowClient(tracking_uri=env.uri)
    exp = client.get_experiment_by_name(f"zicht/{TASK}")
    assert exp is not None
    tags = {k: v for k, v in client.get_run(env.run_id).data.tags.items() if k.startswith("zicht.")}
    run = client.create_run(exp.experiment_id, tags={**tags, "zicht.kind": "bench"})
    client.set_terminated(run.info.run_id, "FINISHED")
    code, err = run_cli(capsys, ["explain", TASK, "--run-id", run.info.run_id, *env.args()])
    assert code == 2, err
    assert "a bench run (tag zicht.kind) has no fitted model" in err and "fix: pick a train" in err


def test_a_write_refused_by_the_os_is_exit_2(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only secure zone (simulated: root may write anywhere) fails with the OS's reason."""
    import errno

    import features.tables as ft

    data = own_copy(env, tmp_path, "world")

    def read_only(*_a: object, **_k: object) -> None:
        target = data / "features" / "hennep.parquet"
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))

    monkeypatch.setattr(ft, "write_feature_table", read_only)
    code, err = run_cli(capsys, ["features", TASK, "--data-dir", str(data)])
    assert code == 2, err
    assert "hennep.parquet: not writable: Read-only file system" in err and "fix: pass a" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_data_dir_is_exit_2(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = own_copy(env, tmp_path, "world")
    data.chmod(0o555)
    try:
        code, err = run_cli(capsys, ["features", TASK, "--data-dir", str(data)])
    finally:
        data.chmod(0o755)
    assert code == 2, err
    assert str(data) in err and "not writable" in err and "fix: pass a --data-dir" in err


def test_zicht_run_does_not_reuse_stages_on_an_edited_world(
    tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hostile tester's first case: every cannabis farm deleted from a generated world,
    and `zicht run` reused every stage. Now it stops at the world, before any stage."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run.root, copy, symlinks=True)
    run = type(tiny_run)(copy, "")
    delete_all_farms(run.data / "world")
    before = store_state(run.store)
    code, err = run_cli(
        capsys, ["run", "--scale", "tiny", "--models", "lightgbm,logistic", *run.args]
    )
    assert code == 2, err
    assert "cannabis_farms.parquet: column *: changed since the world was generated" in err
    assert store_state(run.store) == before
