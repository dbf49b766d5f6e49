"""The heavy stages on a Dask cluster give the single-machine answers (issue 23).

One ``LocalCluster`` (two worker processes, one thread each) started here serves every
test of the module; the tiny world is copied into a data directory of its own. LightGBM
trains with 60 trees (a config of the test) to keep the module within a few minutes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from mlflow.tracking import MlflowClient

from experiments.cli import main
from experiments.config import default_config_path
from features.tables import check_feature_table, stamp_path, write_feature_table

pytestmark = [pytest.mark.dask, pytest.mark.xdist_group("dask")]
TASK = "jonge_aanwas"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def zones(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A data directory with a copy of the tiny world; features and a single-machine
    champion of jonge_aanwas (60 trees) in a store of its own."""
    root = tmp_path_factory.mktemp("dask")
    data = root / "data"
    for part in ("world", "truth"):
        shutil.copytree(tiny_data / part, data / part)
    cfg = yaml.safe_load(default_config_path(TASK).read_text())
    cfg["params"] = {"lightgbm": {**cfg.get("params", {}).get("lightgbm", {}), "n_estimators": 60}}
    config = root / "small.yaml"
    config.write_text(yaml.safe_dump(cfg))
    store = f"sqlite:///{root / 'single.db'}"
    args = ["--data-dir", str(data), "--tracking-uri", store]
    assert main(["features", TASK, "--config", str(config), *args]) == 0
    assert main(["train", TASK, "--config", str(config), *args]) == 0
    return {"root": root, "data": data, "config": config, "store": store}


def test_feature_tables_are_the_single_machine_tables(
    zones: dict, client: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte for byte: same rows, order, values, dtypes and row groups, so the same stamp."""
    from features.partitioned import write_partitioned

    data: Path = zones["data"]
    world = data / "world"
    for task in ("hennep", "branch_turnover"):
        feats = yaml.safe_load(default_config_path(task).read_text())["features"]
        one = write_feature_table(world, zones["root"] / "single" / f"{task}.parquet", task, feats)
        # two gemeenten per partition: each year is built from three partitions
        many = write_partitioned(
            client,
            world,
            zones["root"] / "cluster" / f"{task}.parquet",
            task,
            feats,
            gemeenten_per_partition=2,
        )
        assert sha(one) == sha(many), task
        assert json.loads(stamp_path(one).read_text()) == json.loads(stamp_path(many).read_text())
    # the command, with the scheduler from the environment: the same table as without it
    single = data / "features" / f"{TASK}.parquet"
    kept = zones["root"] / "kept.parquet"
    shutil.copy(single, kept)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", client.scheduler.address)  # type: ignore[attr-defined]
    args = ["--data-dir", str(data), "--tracking-uri", zones["store"]]
    assert main(["features", TASK, "--config", str(zones["config"]), *args]) == 0
    assert sha(single) == sha(kept)
    feats = yaml.safe_load(Path(zones["config"]).read_text())["features"]
    check_feature_table(single, TASK, feats)  # the stamp and the catalogue checks hold


def test_scoring_and_shap_match_and_publish_the_same_files(
    zones: dict, client: object, same_publication: Callable[[Path, Path], None]
) -> None:
    """Same champion: predictions equal (within 1e-6, in fact exactly), exact SHAP additivity
    for every unit, the same profiles and the same published files."""
    from experiments.distributed import explain_table
    from experiments.explain import explain_run
    from experiments.predict import predict
    from experiments.publish import publish_tasks

    data: Path = zones["data"]
    store: str = zones["store"]
    out = {}
    for name, c in (("single", None), ("cluster", client)):
        pred = pd.read_parquet(predict(TASK, data_dir=data, tracking_uri=store, client=c))
        if c is None:
            res = explain_run(TASK, data_dir=data, tracking_uri=store)
        else:  # slices of 1,500 units: the publication year in four tasks
            res = explain_table(c, TASK, data_dir=data, tracking_uri=store, max_rows=1500)
            assert res.additivity < 1e-9  # type: ignore[attr-defined]
            assert res.profile_rows == len(pred)  # every unit explained
        prof = pd.read_parquet(res.profiles_path)
        version = publish_tasks(
            [TASK], data_dir=data, publish_dir=zones["root"] / f"publish_{name}", tracking_uri=store
        )
        out[name] = (pred, res.importance, prof, Path(version))
    (p1, i1, f1, v1), (p2, i2, f2, v2) = out["single"], out["cluster"]
    pd.testing.assert_frame_equal(p1, p2)
    assert np.abs(p1["probability"] - p2["probability"]).max() <= 1e-6
    pd.testing.assert_frame_equal(i1, i2)
    pd.testing.assert_frame_equal(f1, f2, check_exact=False, rtol=1e-9, atol=1e-12)
    same_publication(v1, v2)


def test_distributed_training_keeps_protocol_and_folds_within_a_tolerance(
    zones: dict, client: object
) -> None:
    """lightgbm.dask on every training row: the same protocol hash, folds and rows; its
    trees are not the single machine's (data-parallel bins), so the metrics agree within a
    tolerance (docs/distributed.md); the run says it was fitted on the cluster."""
    store = f"sqlite:///{zones['root'] / 'cluster.db'}"
    args = ["--data-dir", str(zones["data"]), "--tracking-uri", store]
    address = client.scheduler.address  # type: ignore[attr-defined]
    assert main(["train", TASK, "--config", str(zones["config"]), "--cluster", address, *args]) == 0
    runs = {}
    for uri in (zones["store"], store):
        ml = MlflowClient(uri)
        exp = ml.get_experiment_by_name(f"zicht/{TASK}")
        run = next(
            r
            for r in ml.search_runs([exp.experiment_id])
            if r.data.tags.get("zicht.kind") == "train"
        )
        runs[uri] = run
    one, dist = runs[zones["store"]], runs[store]
    assert dist.data.tags["zicht.fit"] == "lightgbm.dask" and "zicht.fit" not in one.data.tags
    assert dist.data.tags["zicht.protocol"] == one.data.tags["zicht.protocol"]
    for key in ("n_train", "n_holdout", "n_folds", "train_years", "holdout_year"):
        assert dist.data.params[key] == one.data.params[key], key
    assert dist.data.params["n_fit_rows"] == dist.data.params["n_train"]  # every row
    m1, m2 = one.data.metrics, dist.data.metrics
    for key, tol in (("roc_auc", 0.02), ("holdout_roc_auc", 0.03), ("brier", 0.003)):
        assert abs(m1[key] - m2[key]) <= tol, (key, m1[key], m2[key])
    # the champion of that store was explained on the cluster (exact SHAP, every unit)
    prof = pd.read_parquet(zones["data"] / "explain" / f"{TASK}_profiles.parquet")
    assert set(prof["run_id"]) == {dist.info.run_id}


def test_a_cluster_that_cannot_be_used_is_bad_input(
    zones: dict, client: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from experiments import distributed

    with pytest.raises(distributed.ClusterError, match="reachable from worker"):
        distributed.check_workers(client, "test", [zones["root"] / "not-mounted"])
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT", 1)
    args = ["--data-dir", str(zones["data"]), "--tracking-uri", zones["store"]]
    capsys.readouterr()
    assert main(["predict", TASK, "--cluster", "tcp://127.0.0.1:9", *args]) == 2
    err = capsys.readouterr().err
    assert "tcp://127.0.0.1:9" in err and "DASK_SCHEDULER_ADDRESS" in err


def test_every_row_group_holds_one_year(zones: dict) -> None:
    """Slices of the publication year follow the table's row groups and cover its rows."""
    from experiments.distributed import year_slices

    path = zones["data"] / "features" / f"{TASK}.parquet"
    years = pq.read_table(path, columns=["year"])["year"].to_numpy()
    for year in np.unique(years):
        parts = year_slices(path, int(year), 1000)
        sizes = [p.stop - p.start for p in parts]
        assert sum(sizes) == (years == year).sum()
        assert [p.offset for p in parts] == [sum(sizes[:i]) for i in range(len(sizes))]
