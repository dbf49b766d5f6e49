"""What a data scientist sees in MLflow: descriptions, roles, the champion marked, real
durations, folds as steps, and the documented side-by-side search; and the live stage line.

The end-to-end checks read the session's tiny ``zicht run`` (``tiny_run``, conftest.py).
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from experiments import tracking
from experiments.progress import StageLine

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def _runs(client: MlflowClient, task: str) -> list[Any]:
    exp = client.get_experiment_by_name(f"zicht/{task}")
    assert exp is not None
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_descriptions_roles_and_the_champion_on_a_tiny_run(tiny_run: Any) -> None:
    mlflow.set_tracking_uri(tiny_run.store)
    client = MlflowClient()
    for task in TASKS:
        exp = client.get_experiment_by_name(f"zicht/{task}")
        assert "How to read the runs" in exp.tags[tracking.NOTE]
        assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
        model = client.get_registered_model(f"zicht-{task}")
        assert "alias **`champion`**" in model.description
        version = client.get_model_version_by_alias(f"zicht-{task}", "champion")
        assert version.run_id in version.description  # which run it came from
        runs = _runs(client, task)
        for r in runs:
            tags = r.data.tags
            assert tags[tracking.NOTE].startswith(f"**{tags['zicht.model']}** · ")
            assert tags["zicht.role"] in tracking.ROLES and tags["zicht.purpose"]
        champions = [r for r in runs if r.data.tags["zicht.role"] == "champion"]
        assert [r.info.run_id for r in champions] == [version.run_id]
        assert champions[0].info.run_name == "lightgbm-train" + tracking.CHAMPION_MARK
        roles = {r.info.run_name: r.data.tags["zicht.role"] for r in runs}
        assert roles["bench-logistic"] == "baseline" and roles["bench-lightgbm"] == "main model"
        assert roles[f"bench-{task}"] == "benchmark"
        # the bench row of the main model says whose evaluation it repeats
        row = next(r for r in runs if r.info.run_name == "bench-lightgbm")
        assert version.run_id in row.data.tags[tracking.NOTE]


def test_durations_are_real_and_folds_are_steps_on_a_tiny_run(tiny_run: Any) -> None:
    mlflow.set_tracking_uri(tiny_run.store)
    client = MlflowClient()
    timed = 0
    for task in TASKS:
        for r in _runs(client, task):
            fit = r.data.metrics.get("fit_seconds")
            if fit is None:
                continue
            timed += 1
            seconds = (r.info.end_time - r.info.start_time) / 1000
            # a run opened after its work would last milliseconds, less than its fits
            assert seconds >= fit, (task, r.info.run_name, seconds, fit)
            metric = tracking.PRIMARY[task]
            folds = client.get_metric_history(r.info.run_id, f"fold_{metric}")
            assert sorted(m.step for m in folds) == list(range(5)), r.info.run_name
            mean = np.mean([m.value for m in folds])
            assert np.isclose(r.data.metrics[metric], mean), r.info.run_name
    assert timed == 3 * 3  # per task: lightgbm-train, bench-lightgbm, bench-logistic


def test_the_documented_search_lists_the_champion_and_its_baselines(tiny_run: Any) -> None:
    text = DOCS.read_text()
    assert tracking.SIDE_BY_SIDE in text  # the run-table search, as the UI takes it
    block = re.search(r"<!-- side-by-side search.*?```python\n(.*?)```", text, re.S)
    assert block, "docs/models.md lost its side-by-side search"
    code = block.group(1).replace('"sqlite:///mlflow.db"', repr(tiny_run.store))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOCS), "exec"), {})
    lines = out.getvalue().splitlines()
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == ["champion", "baseline"], out.getvalue()
    assert [r[1] for r in rows] == ["lightgbm", "logistic"]
    assert "metrics.roc_auc" in lines[0] and "metrics.holdout_roc_auc" in lines[0]


def test_the_champion_mark_moves_with_the_alias(tmp_path: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'm.db'}")
    client = MlflowClient()
    exp = client.create_experiment("zicht/hennep")
    old = client.create_run(exp, run_name="lightgbm-train", tags={"zicht.role": "challenger"})
    new = client.create_run(exp, run_name="histgb-train", tags={"zicht.role": "challenger"})
    tracking.mark_champion(client, exp, old.info.run_id)
    got = client.get_run(old.info.run_id)
    assert got.info.run_name == "lightgbm-train ★ champion"
    assert got.data.tags["zicht.role"] == "champion"
    tracking.mark_champion(client, exp, new.info.run_id)
    assert client.get_run(old.info.run_id).info.run_name == "lightgbm-train"
    assert client.get_run(old.info.run_id).data.tags["zicht.role"] == "challenger"
    assert client.get_run(new.info.run_id).info.run_name == "histgb-train ★ champion"
    tracking.mark_champion(client, exp, new.info.run_id)  # idempotent: one mark, not two
    assert client.get_run(new.info.run_id).info.run_name == "histgb-train ★ champion"


def test_run_roles_and_descriptions_follow_kind_and_model() -> None:
    assert tracking.role_for("train", "lightgbm") == "challenger"
    assert tracking.role_for("tune", "histgb") == "challenger"
    assert tracking.role_for("bench", "lightgbm,tree") == "benchmark"
    assert tracking.role_for("bench", "tree") == "baseline"
    assert tracking.role_for("bench", "lightgbm") == "main model"
    assert tracking.role_for("trial", "lightgbm") == "trial"
    text = tracking.run_description({"zicht.kind": "train", "zicht.model": "lightgbm"})
    assert text.startswith("**lightgbm** · train — competes for champion")
    assert "fold_*" in text


def test_the_stage_line_in_a_log_file_says_elapsed_next_and_keeps_beating() -> None:
    from rich.console import Console

    log = io.StringIO()
    console = Console(file=io.StringIO(), force_terminal=False)
    with StageLine(3, "zicht run", console=console, stream=log, heartbeat_s=0.2) as line:
        line("features hennep (next: bench hennep)")
        line("bench hennep (next: the end)")
        line.detail("lightgbm: fit fold 2/5 (next: fold 3)")
        time.sleep(0.5)
    lines = log.getvalue().splitlines()
    stamp = r"^\[\d\d:\d\d:\d\d\] zicht run "
    assert all(re.match(stamp, x) for x in lines), lines
    assert lines[1].endswith("1/3 features hennep (next: bench hennep)")
    assert lines[3].endswith(
        "2/3 bench hennep (next: the end) · lightgbm: fit fold 2/5 (next: fold 3)"
    )
    beats = [x for x in lines if "still running: bench hennep" in x]
    assert beats and "in this step)" in beats[0]
    assert lines[-1].split(" ", 1)[1].startswith("zicht run 2/3 done in")


def test_a_tiny_run_logs_its_stages_with_what_comes_next(tiny_run: Any) -> None:
    err = tiny_run.err  # stderr of the session's tiny run: not a terminal, so a log
    assert re.search(
        r"\] zicht run \(tiny, seed 7\) 3/15 bench hennep \(next: explain hennep\)", err
    )
    assert "· lightgbm: fit fold 1/5 (next: fold 2)" in err
    assert "report (next: the end)" in err
    assert re.search(r"zicht run \(tiny, seed 7\) 15/15 done in ", err)


@pytest.mark.parametrize("seconds", [0.4, 59.6, 61, 3725])
def test_durations_read_as_words(seconds: float) -> None:
    from experiments.progress import clock, duration

    words = duration(seconds)
    assert words.endswith(" s") and (" min " in words) == (round(seconds) >= 60)
    assert re.fullmatch(r"\d\d:\d\d:\d\d", clock(seconds))
