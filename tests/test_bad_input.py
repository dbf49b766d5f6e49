"""The bad-input catalogue (docs/errors.md): every case goes through the ``zicht`` command and

* exits 2 (bad input or usage);
* says what is wrong in words a user can act on: the file (where there is one), the column
  (where there is one), the rule and the fix, checked as concrete substrings;
* leaves nothing half-written: the public zone (link target, every file and checksum, no
  ``*.partial``), the MLflow store (runs and their status, registered versions and aliases)
  and the secure zone's outputs (features, predictions) are as they were before.

One module-scoped DATA (a copy of the tiny world, hennep features, a cheap tree champion,
its predictions and one publication) serves every case; a case that corrupts the world
corrupts its own copy.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

import disclosure.publish as dp
from experiments.cli import main
from experiments.config import default_config_path, load_config
from experiments.train import train

TASK = "hennep"


@dataclass(frozen=True)
class Shared:
    """The module's zones: DATA with a champion's predictions, PUBLISH with one version."""

    data: Path
    publish: Path
    review: Path
    uri: str


@pytest.fixture(scope="module")
def shared(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Shared:
    root = tmp_path_factory.mktemp("bad_input")
    data = root / "data"
    for part in ("world", "truth"):
        shutil.copytree(tiny_data / part, data / part)
    env = Shared(data, root / "publish", root / "review", f"sqlite:///{root / 'mlflow.db'}")
    zones = ["--data-dir", str(data), "--publish-dir", str(env.publish)]
    zones += ["--tracking-uri", env.uri]
    assert main(["features", TASK, *zones]) == 0
    # the API, not `zicht train`: the command would also explain the new champion (SHAP)
    cfg = load_config(default_config_path(TASK))
    train(cfg, model_name="tree", data_dir=data, tracking_uri=env.uri, n_folds=2)
    assert main(["predict", TASK, *zones]) == 0
    assert main(["publish", TASK, *zones]) == 0
    assert env.publish.is_symlink()
    return env


# --------------------------------------------------------------------------- the snapshot


def _tree(root: Path) -> dict[str, str]:
    """Every entry under *root*: files by SHA-256, links by target, directories as ``dir``."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def snapshot(env: Shared, *extra: Path) -> dict[str, Any]:
    """What a failed command must leave untouched: the publish link and its versions, the
    MLflow store, the secure zone's outputs (and *extra* directories)."""
    link = os.readlink(env.publish) if env.publish.is_symlink() else None
    client = MlflowClient(tracking_uri=env.uri)
    exps = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs(
        [e.experiment_id for e in exps], run_view_type=ViewType.ALL, max_results=10_000
    )
    models = {
        m.name: (sorted(m.aliases.items()), len(client.search_model_versions(f"name='{m.name}'")))
        for m in client.search_registered_models()
    }
    return {
        "publish link": link,
        "publish versions": _tree(dp.versions_dir(env.publish)),
        "review": _tree(env.review),
        "experiments": sorted(e.name for e in exps),
        "runs": {r.info.run_id: r.info.status for r in runs},
        "registered models": models,
        "secure outputs": {
            d: _tree(env.data / d) for d in ("features", "predictions", "explain", "world")
        },
        # a case's own DATA: its files (an empty features/ dir made on the way is no output,
        # nor is .zicht/, the suite's bookkeeping: hash cache and locks)
        "extra": {
            str(p): {
                k: v for k, v in _tree(p).items() if v != "dir" and not k.startswith(".zicht/")
            }
            for p in extra
        },
    }


# --------------------------------------------------------------------------- case setups


@dataclass(frozen=True)
class Ctx:
    """What a case's setup may use: the shared zones, a scratch dir and monkeypatch."""

    env: Shared
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def world_copy(self) -> Path:
        """A DATA dir of the case's own with a copy of the world; returns the DATA dir."""
        data = self.tmp / "data"
        shutil.copytree(self.env.data / "world", data / "world")
        return data

    def config(self, features: list[str]) -> Path:
        path = self.tmp / "cfg.yaml"
        path.write_text(yaml.safe_dump({"task": TASK, "features": features}))
        return path


def _edit(data: Path, table: str, change: Callable[[pa.Table], pa.Table]) -> None:
    path = data / "world" / f"{table}.parquet"
    pq.write_table(change(pq.read_table(path)), path)


def _set(t: pa.Table, name: str, values: list[Any] | pa.ChunkedArray) -> pa.Table:
    arr = (
        values
        if isinstance(values, pa.ChunkedArray)
        else pa.array(values, t.schema.field(name).type)
    )
    return t.set_column(t.schema.get_field_index(name), name, arr)


def _first(t: pa.Table, name: str, value: Any) -> pa.Table:
    """*t* with the first value of column *name* replaced by *value*."""
    return _set(t, name, [value, *t.column(name).to_pylist()[1:]])


def validate(data: Path) -> list[str]:
    return ["world", "validate", "--data-dir", str(data)]


def features(data: Path) -> list[str]:
    return ["features", TASK, "--data-dir", str(data)]


def missing_file(c: Ctx) -> list[str]:
    data = c.world_copy()
    (data / "world" / "dwellings.parquet").unlink()
    return validate(data)


def missing_file_features(c: Ctx) -> list[str]:
    data = c.world_copy()
    (data / "world" / "dwellings.parquet").unlink()
    return features(data)


def no_world(c: Ctx) -> list[str]:
    return features(c.tmp / "nothing")


def wrong_dtype(c: Ctx) -> list[str]:
    data = c.world_copy()
    _edit(data, "dwellings", lambda t: _set(t, "surface_m2", t["surface_m2"].cast(pa.string())))
    return validate(data)


def wrong_dtype_features(c: Ctx) -> list[str]:
    wrong_dtype(c)
    return features(c.tmp / "data")


def missing_column(c: Ctx) -> list[str]:
    data = c.world_copy()
    _edit(data, "dwellings", lambda t: t.drop(["buurt_code"]))
    return validate(data)


def missing_column_features(c: Ctx) -> list[str]:
    missing_column(c)
    return features(c.tmp / "data")


def unknown_area(c: Ctx) -> list[str]:
    data = c.world_copy()
    _edit(data, "dwellings", lambda t: _first(t, "buurt_code", "BU99999999"))
    return validate(data)


def unknown_area_features(c: Ctx) -> list[str]:
    unknown_area(c)
    return features(c.tmp / "data")


def orphan_area(c: Ctx) -> list[str]:
    data = c.world_copy()

    def change(t: pa.Table) -> pa.Table:
        parents = t.column("parent_code").to_pylist()
        parents[t.column("level").to_pylist().index("buurt")] = "WK999999"
        return _set(t, "parent_code", parents)

    _edit(data, "areas", change)
    return validate(data)


def negative_turnover(c: Ctx) -> list[str]:
    data = c.world_copy()
    _edit(data, "turnover", lambda t: _first(t, "turnover", -5))
    return validate(data)


def duplicate_ids(c: Ctx) -> list[str]:
    data = c.world_copy()
    _edit(data, "dwellings", lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    return validate(data)


def duplicate_ids_features(c: Ctx) -> list[str]:
    duplicate_ids(c)
    return features(c.tmp / "data")


def empty_buurt(c: Ctx) -> list[str]:
    """A buurt of areas.parquet with no key-figure rows at all in area_stats."""
    data = c.world_copy()
    areas = pq.read_table(data / "world" / "areas.parquet", columns=["area_code", "level"])
    assert {"area_code": EMPTY, "level": "buurt"} in areas.to_pylist()
    _edit(data, "area_stats", lambda t: t.filter(pc.not_equal(t["area_code"], EMPTY)))
    return validate(data)


def null_feature_input(c: Ctx) -> list[str]:
    """NaN where the schema says not-nullable, in a column a feature is built from.
    (Features themselves may be missing: the catalogue's feature columns are nullable.)"""
    data = c.world_copy()
    _edit(data, "dwellings", lambda t: _first(t, "surface_m2", None))
    return features(data)


def null_feature_input_validate(c: Ctx) -> list[str]:
    null_feature_input(c)
    return validate(c.tmp / "data")


def config_unknown_feature(c: Ctx) -> list[str]:
    return ["train", TASK, "--model", "tree", "--config", str(c.config(["vacant", "shoe_size"]))]


def config_protected_feature(c: Ctx) -> list[str]:
    return ["train", TASK, "--model", "tree", "--config", str(c.config(["vacant", "herkomst"]))]


def relabelled_herkomst(c: Ctx) -> list[str]:
    """An undeclared, innocently named column of persons.parquet that is origin relabelled."""
    data = c.world_copy()
    path = data / "world" / "persons.parquet"
    t = pq.read_table(path)
    origin = t.column("herkomst").to_pylist()
    code = {k: i * 7 + 3 for i, k in enumerate(sorted(set(origin)))}
    groep = pa.array(np.array([code[o] for o in origin], dtype=np.int32))
    pq.write_table(t.append_column("groep", groep), path)
    return features(data)


def unknown_task(c: Ctx) -> list[str]:
    return ["features", "hennnep"]


def unknown_model(c: Ctx) -> list[str]:
    return ["train", TASK, "--model", "xgboost"]


def unreachable_tracking(c: Ctx) -> list[str]:
    return ["train", TASK, "--model", "tree", "--tracking-uri", "http://127.0.0.1:9"]


def publish_not_writable(c: Ctx) -> list[str]:
    """A publish dir whose parent is a regular file: no user, root included, can write it."""
    (c.tmp / "afile").write_text("not a directory\n")
    return ["publish", TASK, "--publish-dir", str(c.tmp / "afile" / "publish")]


def unknown_run(c: Ctx) -> list[str]:
    return ["explain", TASK, "--run-id", "deadbeef" * 4]


def corrupt_parquet(c: Ctx) -> list[str]:
    data = c.world_copy()
    path = data / "world" / "dwellings.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return features(data)


def corrupt_parquet_validate(c: Ctx) -> list[str]:
    corrupt_parquet(c)
    return validate(c.tmp / "data")


def other_generator(c: Ctx) -> list[str]:
    data = c.world_copy()
    manifest = data / "world" / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["generator_version"] = "0.9.0"
    manifest.write_text(json.dumps(doc, sort_keys=True))
    return features(data)


def other_generator_validate(c: Ctx) -> list[str]:
    other_generator(c)
    return validate(c.tmp / "data")


def scale_misspelt(c: Ctx) -> list[str]:
    return ["generate", "--scale", "tinny", "--data-dir", str(c.tmp / "new")]


def disk_full(c: Ctx) -> list[str]:
    """The disk fills up after the tables, while the maps are written."""

    def no_space(data: bytes, path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    c.monkeypatch.setattr(dp, "_write_bytes", no_space)
    return ["publish", TASK]


def extract_in_world(c: Ctx) -> list[str]:
    """A real extract (the world's tables, no manifest) where `zicht generate` would write."""
    data = c.world_copy()
    (data / "world" / "manifest.json").unlink()
    return ["generate", "--scale", "tiny", "--overwrite", "--data-dir", str(data)]


def extract_in_world_run(c: Ctx) -> list[str]:
    extract_in_world(c)
    return ["run", "--scale", "tiny", "--data-dir", str(c.tmp / "data")]


def unknown_sbi_features(c: Ctx) -> list[str]:
    """An SBI code outside branches.parquet: refused, not coded as a missing branch."""
    data = c.world_copy()
    _edit(data, "establishments", lambda t: _first(t, "sbi", "99999"))
    return ["features", "branch_turnover", "--data-dir", str(data)]


def unknown_sbi_validate(c: Ctx) -> list[str]:
    unknown_sbi_features(c)
    return validate(c.tmp / "data")


def invalid_extract_run(c: Ctx) -> list[str]:
    """`zicht run --world-dir` on an extract that does not validate: nothing runs."""
    extract = c.tmp / "extract"
    shutil.copytree(c.env.data / "world", extract)
    (extract / "manifest.json").unlink()
    path = extract / "turnover.parquet"
    pq.write_table(_first(pq.read_table(path), "turnover", -5), path)
    return ["run", "--world-dir", str(extract), "--data-dir", str(c.tmp / "data")]


EMPTY = "BU02350000"  # a buurt of the tiny world (seed 7; checked in the test)

#: (case, setup, what the message must contain). The publish dir, the review dir and the
#: MLflow store are the shared ones unless the setup names its own; so is DATA.
CASES: list[tuple[str, Callable[[Ctx], list[str]], list[str]]] = [
    (
        "missing world file",
        missing_file,
        ["dwellings.parquet", "file present", "is missing", "fix: export the dwellings"],
    ),
    (
        "missing world file (features)",
        missing_file_features,
        ["dwellings.parquet", "missing", "zicht generate", "zicht world validate"],
    ),
    ("no world at all", no_world, ["nothing/world", "no world here", "zicht generate"]),
    (
        "wrong dtype",
        wrong_dtype,
        ["dwellings.parquet: surface_m2: type int", "found string", "fix: cast 'surface_m2'"],
    ),
    (
        "wrong dtype (features)",
        wrong_dtype_features,
        ["dwellings.parquet: column surface_m2: type int", "fix: cast 'surface_m2' to int"],
    ),
    (
        "missing column",
        missing_column,
        ["dwellings.parquet: buurt_code: column present", "fix: add column 'buurt_code'"],
    ),
    (
        "missing column (features)",
        missing_column_features,
        ["dwellings.parquet: column buurt_code: column present", "fix: add column 'buurt_code'"],
    ),
    (
        "unknown area code",
        unknown_area,
        [
            "dwellings.parquet: buurt_code: references areas.area_code",
            "'BU99999999'",
            "fix: add them to areas.parquet or correct 'buurt_code'",
        ],
    ),
    (
        "unknown area code (features)",
        unknown_area_features,
        ["hennep.parquet: column buurt_code", "do not fit together", "fix: run `zicht world"],
    ),
    (
        "child area without parent",
        orphan_area,
        ["areas.parquet: parent_code: parent exists", "WK999999", "fix: add the parent areas"],
    ),
    (
        "negative turnover",
        negative_turnover,
        ["turnover.parquet: turnover: >= 0", "-5", "fix: make every value of 'turnover'"],
    ),
    (
        "duplicate ids",
        duplicate_ids,
        ["dwellings.parquet: dwelling_id: unique key", "fix: remove the duplicate rows"],
    ),
    (
        "duplicate ids (features)",
        duplicate_ids_features,
        ["hennep.parquet: column dwelling_id", "duplicate", "fix: run `zicht world validate`"],
    ),
    (
        "empty buurt",
        empty_buurt,
        [
            "area_stats.parquet: area_code: every buurt has key figures each year",
            EMPTY,
            "fix: add their rows",
        ],
    ),
    (
        "NaN in a feature's input",
        null_feature_input,
        ["dwellings.parquet: column surface_m2: not null", "fix: fill or drop"],
    ),
    (
        "NaN in a feature's input (validate)",
        null_feature_input_validate,
        ["dwellings.parquet: surface_m2: not null", "fix: fill or drop the empty values"],
    ),
    (
        "config names an unknown feature",
        config_unknown_feature,
        ["cfg.yaml: features:", "'shoe_size'", "rule: features are catalogue names", "fix:"],
    ),
    (
        "config names a protected feature",
        config_protected_feature,
        ["cfg.yaml: features:", "'herkomst'", "protected attribute", "fix: remove it"],
    ),
    (
        "relabelled copy of herkomst",
        relabelled_herkomst,
        [
            "persons.parquet: column groep: undeclared copy of persons.herkomst",
            "rule: no protected attribute",
            "fix: drop the column",
        ],
    ),
    (
        "unknown task",
        unknown_task,
        ["'hennnep' is not one of", "'hennep', 'jonge_aanwas', 'branch_turnover'", "for help"],
    ),
    (
        "unknown model",
        unknown_model,
        ["--model", "'xgboost' is not one of", "'lightgbm', 'tree', 'logistic', 'histgb'"],
    ),
    (
        "tracking URI unreachable",
        unreachable_tracking,
        ["http://127.0.0.1:9", "cannot be reached", "rule: the tracking server answers", "fix:"],
    ),
    (
        "publish dir not writable",
        publish_not_writable,
        ["afile/publish", "not writable", "nothing was published", "fix: pass a --publish-dir"],
    ),
    (
        "run id does not exist",
        unknown_run,
        ["--run-id 'deadbeef", "does not exist", "rule: the run is in the", "fix: pick a run"],
    ),
    (
        "corrupt Parquet",
        corrupt_parquet,
        ["dwellings.parquet: column *: readable Parquet", "fix: re-export the file"],
    ),
    (
        "corrupt Parquet (validate)",
        corrupt_parquet_validate,
        ["dwellings.parquet: *: readable Parquet", "fix: re-export the file"],
    ),
    (
        "world from another generator version",
        other_generator,
        [
            "manifest.json: column generator_version",
            "generator 0.9.0",
            "fix: regenerate it with `zicht generate --overwrite`",
        ],
    ),
    (
        "world from another generator version (validate)",
        other_generator_validate,
        ["manifest.json: generator_version: major version", "zicht generate --overwrite"],
    ),
    (
        "--scale misspelt",
        scale_misspelt,
        ["--scale", "'tinny' is not one of 'tiny', 'region', 'national'"],
    ),
    (
        "an extract where the world would be generated",
        extract_in_world,
        ["data/world: holds", "no manifest.json of zicht generate", "left as it is"]
        + ["fix: to run on these files", "zicht run --world-dir", "another --data-dir"],
    ),
    (
        "an extract where the world would be generated (run)",
        extract_in_world_run,
        ["data/world: holds", "left as it is", "zicht run --world-dir"],
    ),
    (
        "an SBI code not in branches.parquet (features)",
        unknown_sbi_features,
        ["establishments.parquet: column sbi: references branches.sbi", "'99999'"]
        + ["fix: add them to branches.parquet"],
    ),
    (
        "an SBI code not in branches.parquet (validate)",
        unknown_sbi_validate,
        ["establishments.parquet: sbi: references branches.sbi", "'99999'"]
        + ["fix: add them to branches.parquet or correct 'sbi'"],
    ),
    (
        "zicht run --world-dir on an extract that does not validate",
        invalid_extract_run,
        ["extract: 1 problem(s)", "nothing was run", "turnover.parquet: turnover: >= 0"]
        + ["fix: make every value of 'turnover'", "zicht world validate --world-dir"],
    ),
    (
        "disk full during publish",
        disk_full,
        ["publish: disk full: no space left on device", "old version stays", "fix: free space"],
    ),
]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [pytest.param(s, e, id=name) for name, s, e in CASES],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(
    shared: Shared,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setup: Callable[[Ctx], list[str]],
    expected: list[str],
) -> None:
    argv = setup(Ctx(shared, tmp_path, monkeypatch))
    defaults = {
        "--data-dir": str(shared.data),
        "--publish-dir": str(shared.publish),
        "--review-dir": str(shared.review),
        "--tracking-uri": shared.uri,
    }
    argv += [x for opt, val in defaults.items() if opt not in argv for x in (opt, val)]
    own = tmp_path / "data"
    before = snapshot(shared, own)
    capsys.readouterr()
    start = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}, not 2: {err}"
    assert "unexpected failure" not in err and "Traceback" not in err
    message = " ".join(err.split())  # rich or click may wrap a long line
    for part in expected:
        assert " ".join(part.split()) in message, f"{part!r} not in: {err}"
    assert seconds < 60, f"{seconds:.0f} s: bad input should fail fast"
    after = snapshot(shared, own)
    for key in before:
        assert after[key] == before[key], f"{key} changed"
    if own.exists():  # nothing derived from a bad world, not even a temporary file
        assert not (own / "features").exists() or not any((own / "features").iterdir())
    assert not list(dp.versions_dir(shared.publish).glob("*.partial"))


def test_a_failed_publish_leaves_the_old_version_and_the_next_one_works(
    shared: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a disk-full publish the link still points at the old, complete version (its
    manifest checks out), and the next publish succeeds and swaps the link."""
    old = dp.current_version(shared.publish)
    assert old is not None
    zones = ["--data-dir", str(shared.data), "--publish-dir", str(shared.publish)]
    zones += ["--tracking-uri", shared.uri]

    def no_space(data: bytes, path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    with monkeypatch.context() as m:
        m.setattr(dp, "_write_bytes", no_space)
        assert main(["publish", TASK, *zones]) == 2
    assert dp.current_version(shared.publish) == old
    assert dp.verify_version(old) == []
    assert main(["publish", TASK, *zones]) == 0
    new = dp.current_version(shared.publish)
    assert new is not None and new != old and dp.verify_version(new) == []
    assert not list(dp.versions_dir(shared.publish).glob("*.partial"))
