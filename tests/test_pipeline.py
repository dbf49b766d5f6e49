"""`zicht run` end to end on the tiny world: every stage, every zone, then full reuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from experiments.cli import main


def test_zicht_run_makes_every_zone_and_then_reuses_it(
    tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, pub, review = tiny_run.data, tiny_run.publish, tiny_run.review
    store, args = tiny_run.store, tiny_run.args
    out = tiny_run.out  # the first run, made by the session fixture (conftest.py)
    assert "15 stages ran, 0 reused" in out and "review/index.html" in out
    # the public zone: a link to a complete version with the three tasks
    assert pub.is_symlink()
    manifest = json.loads((pub / "manifest.json").read_text())
    for task in ("hennep", "jonge_aanwas", "branch_turnover"):
        assert (pub / task / "ledger.csv").exists() and (pub / task / "schema.json").exists()
        assert (review / task / "index.html").exists()
        assert (data / "explain" / f"{task}_profiles.parquet").exists()
        assert task in manifest["runs"]
    assert (review / "index.html").exists()
    # the experiments: a champion per task, explained
    mlflow.set_tracking_uri(store)
    client = MlflowClient()
    for task in ("hennep", "jonge_aanwas", "branch_turnover"):
        version = client.get_model_version_by_alias(f"zicht-{task}", "champion")
        assert client.get_run(str(version.run_id)).data.tags.get("zicht.explained") == "true"
    # nothing changed: every stage is reused, and says so
    assert main(["run", "--scale", "tiny", "--models", "lightgbm,logistic", *args]) == 0
    again = capsys.readouterr().out
    assert "0 stages ran, 15 reused" in again and "reusing the benchmark" in again
    # the stage table: every stage that ran has its wall time and its own peak memory
    assert "| stage | task | action | seconds | peak GiB |" in out
    ran = [line for line in out.splitlines() if line.startswith("| ") and "| ran |" in line]
    assert len(ran) == 15 and all(float(line.split("|")[5]) > 0 for line in ran)
    # zicht bench scale writes the table with its ratios to the budget
    results = tmp_path / "results"
    bench = ["bench", "scale", "--scale", "tiny", "--reuse", "--models", "lightgbm,logistic"]
    assert main([*bench, "--out", str(results), *args]) == 0
    capsys.readouterr()
    md = (results / "scale_tiny.md").read_text()
    assert "| wall time | 90 min |" in md and "| peak memory | 16 GiB |" in md
    assert md.count("| reused |") == 15
    # another seed is another world: it reruns from the start (in a copy of the zones, so the
    # shared tiny_run stays the seed-7 run that later tests, e.g. test_repro, read)
    copy = tmp_path / "zones"
    shutil.copytree(tiny_run.root, copy, symlinks=True)
    args = type(tiny_run)(copy, "").args
    assert main(["run", "--scale", "tiny", "--seed", "8", "--models", "lightgbm", *args]) == 0
    assert "15 stages ran, 0 reused" in capsys.readouterr().out
