"""Reproducibility: the same seed gives the same public zone and metrics; `zicht verify`.

The first tiny `zicht run` is the session's shared ``tiny_run``; the second goes into fresh
zones and a fresh MLflow store. Every file of the publication has the same SHA-256 (the
manifest's ``created_at``, ``version``, ``published_at`` and run ids differ by nature and are
not files; the README and the dashboard state the version and its time, and match once those
two are blanked). Each task's champion has the same metrics (``fit_seconds`` aside) and verifies.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from experiments.cli import main
from experiments.verify import Check, compare_metrics

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")


@pytest.fixture(scope="module")
def second_run(tiny_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("tiny_run_again")
    again = type(tiny_run)(root, "")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", "--scale", "tiny", "--models", "lightgbm,logistic", *again.args]) == 0
    return again


def _champions(store: str) -> dict[str, Any]:
    mlflow.set_tracking_uri(store)
    client = MlflowClient(store)
    out = {}
    for task in TASKS:
        version = client.get_model_version_by_alias(f"zicht-{task}", "champion")
        out[task] = client.get_run(str(version.run_id))
    return out


def test_same_seed_same_publication_and_metrics(
    tiny_run: Any, second_run: Any, same_publication: Any
) -> None:
    first = json.loads((tiny_run.publish / "manifest.json").read_text())
    second = json.loads((second_run.publish / "manifest.json").read_text())
    assert len(first["files"]) >= 30 and set(first["files"]) == set(second["files"])
    same_publication(tiny_run.publish.resolve(), second_run.publish.resolve())
    for key in ("data_fingerprint", "rule_settings", "suppressed", "zicht_version"):
        assert first[key] == second[key], key
    one, two = _champions(tiny_run.store), _champions(second_run.store)
    for task in TASKS:
        m1 = {k: v for k, v in one[task].data.metrics.items() if k != "fit_seconds"}
        m2 = {k: v for k, v in two[task].data.metrics.items() if k != "fit_seconds"}
        assert m1 == m2, task
        assert one[task].data.params == two[task].data.params, task


def _count_runs(store: str) -> int:
    client = MlflowClient(store)
    exps = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(exps, max_results=10_000))


def test_verify_each_champion_matches_and_writes_nothing(
    tiny_run: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    champions = _champions(tiny_run.store)
    runs_before = _count_runs(tiny_run.store)
    for task, run in champions.items():
        capsys.readouterr()
        code = main(["verify", "--run-id", run.info.run_id, *tiny_run.args])
        out = capsys.readouterr()
        assert code == 0, out.out + out.err
        assert "OK: all" in out.out and "MISMATCH" not in out.out, task
        assert "fit_seconds" in out.out and "skipped: timing" in out.out
        after = MlflowClient(tiny_run.store).get_run(run.info.run_id)
        assert after.data.tags == run.data.tags and after.data.metrics == run.data.metrics
    assert _count_runs(tiny_run.store) == runs_before  # read-only


def test_verify_reports_a_tampered_metric(
    tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    shutil.copy(tiny_run.root / "mlflow.db", tmp_path / "mlflow.db")  # artifacts are shared
    run = _champions(store)["branch_turnover"]
    client = MlflowClient(store)
    client.log_metric(run.info.run_id, "r2_log", run.data.metrics["r2_log"] + 1e-6)
    args = ["--data-dir", str(tiny_run.data), "--tracking-uri", store]
    capsys.readouterr()
    assert main(["verify", "--run-id", run.info.run_id, *args]) == 1
    out = capsys.readouterr()
    assert "MISMATCH" in out.err and "r2_log" in out.err


def test_verify_refuses_another_world_and_an_unknown_run(
    tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _champions(tiny_run.store)["hennep"]
    other = tmp_path / "data" / "world"
    other.mkdir(parents=True)
    doc = json.loads((tiny_run.data / "world" / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**doc, "seed": 8}, sort_keys=True))
    args = ["--data-dir", str(tmp_path / "data"), "--tracking-uri", tiny_run.store]
    capsys.readouterr()
    assert main(["verify", "--run-id", run.info.run_id, *args]) == 2
    err = capsys.readouterr().err
    assert "zicht generate --scale tiny --seed 7 --overwrite" in err and "seed 8" in err
    assert main(["verify", "--run-id", "0123456789abcdef", *args]) == 2
    err = capsys.readouterr().err
    assert "0123456789abcdef" in err and "--tracking-uri" in err


def test_compare_metrics_rules() -> None:
    recorded = {"roc_auc": 0.8, "fit_seconds": 3.0, "fold_roc_auc": 0.7, "brier": 0.1}
    recomputed = {"roc_auc": 0.8 * (1 + 1e-12), "fit_seconds": 9.0, "log_loss": 0.3}
    history = {"fold_roc_auc": [(0, 0.6), (1, 0.7)]}
    checks = compare_metrics(
        recorded,
        recomputed,
        history=lambda name: history[name],
        folds=[{"roc_auc": 0.6, "fit_seconds": 1.0}, {"roc_auc": 0.71, "fit_seconds": 1.0}],
    )
    status = {c.item: c.status for c in checks}
    assert status["roc_auc"] == "match"  # within 1e-9 relative
    assert status["fit_seconds"] == "skipped: timing"
    assert status["fold_roc_auc step 0"] == "match"
    assert status["fold_roc_auc step 1"] == "MISMATCH"
    assert status["brier"] == "MISMATCH"  # recorded, not recomputed
    assert status["log_loss"] == "MISMATCH"  # recomputed, not recorded
    assert all(isinstance(c, Check) for c in checks)
