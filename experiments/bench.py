"""``zicht bench models``: every model on identical folds, with paired bootstrap intervals.

One parent run (``zicht.kind=bench``) per task holds the leaderboard (CSV and Markdown);
each model is a nested run with its metrics. The main model is also logged as a full
``train`` run (model, calibration, plots) that competes for champion, so a benchmark leaves
a champion without refitting. Intervals are 95% paired bootstrap intervals
over gemeenten on the out-of-fold predictions of the training years: the model's primary
metric, the model minus the best baseline, the main model minus every baseline (so "above
tree and above logistic" is a claim with its own interval), and the model over the oracle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from experiments import tracking
from experiments.config import default_config_path, load_config
from experiments.plan import RowCaps
from experiments.train import Prepared, finite, fit_params, log_evaluation, log_metrics, prepare
from models.bootstrap import interval, paired_bootstrap
from models.evaluation import Evaluation
from models.tasks import get_task

MAIN = "lightgbm"


def _fmt(v: float, lo: float | None = None, hi: float | None = None) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.4f}" if lo is None else f"{v:.4f} [{lo:.4f}, {hi:.4f}]"


def bench_models(
    task_name: str,
    models: list[str],
    *,
    data_dir: Path,
    tracking_uri: str,
    n_boot: int = 200,
    n_jobs: int = 2,
    progress: Callable[[str], None] = lambda _m: None,
    world_dir: Path | None = None,
    client: Any = None,
    detail: Callable[[str], None] | None = None,
    caps: RowCaps | None = None,
    n_folds: int = 5,
) -> pd.DataFrame:
    """Run the benchmark of *task_name*; returns the leaderboard (also logged). With a
    Dask *client*, LightGBM fits on the cluster; the baselines fit here. *progress* hears
    each model as it starts, *detail* (default: *progress*) each fit inside it.

    *caps* bound the rows each model's fits see (default: the standalone caps of
    ``experiments.train``); ``zicht run`` passes its plan's (experiments/plan.py).
    """
    detail = detail or progress
    task = get_task(task_name)
    cfg = load_config(default_config_path(task_name))
    prep = prepare(
        cfg,
        data_dir=data_dir,
        tracking_uri=tracking_uri,
        world_dir=world_dir,
        client=client,
        n_folds=n_folds,
    )
    frame, oracle = prep.frame, prep.oracle
    metric = tracking.PRIMARY[task_name]
    tags = prep.tags(",".join(models), "bench")
    results = {}
    with tracking.run(task_name, run_name=f"bench-{task_name}", tags=tags):
        for i, name in enumerate(models):
            after = models[i + 1] if i + 1 < len(models) else "paired bootstrap"
            progress(f"{task_name}: {name} (next: {after})")
            results[name] = _bench_one(
                prep, name, tags, n_jobs, lambda m, name=name: detail(f"{name}: {m}"), caps
            )
        any_ev = next(iter(results.values()))
        mask = any_ev.extra["train_mask"]
        y, groups = any_ev.extra["y"][mask].astype(np.float64), any_ev.extra["groups"][mask]
        preds = {name: ev.extra["oof"][mask] for name, ev in results.items()}
        keep_rows = np.isfinite(np.asarray(frame[task.label], dtype=np.float64))
        if oracle is not None:
            preds["oracle"] = np.asarray(oracle)[keep_rows][mask]
        progress(f"{task_name}: paired bootstrap over gemeenten")
        boot = paired_bootstrap(y, groups, preds, kind=task.kind, n_boot=n_boot)
        baselines = [m for m in models if m != MAIN]
        best = max(baselines, key=lambda m: results[m].metrics[metric]) if baselines else None
        rows = []
        for name, ev in results.items():
            lo, hi = interval(boot[name])
            row = {
                "model": name,
                metric: ev.metrics[metric],
                f"{metric}_lo": lo,
                f"{metric}_hi": hi,
                f"holdout_{metric}": ev.metrics.get(f"holdout_{metric}", float("nan")),
                "fit_seconds": ev.metrics["fit_seconds"],
            }
            if best is not None and name != best:
                d = boot[name] - boot[best]
                row.update(
                    {
                        "vs_best_baseline": float(np.nanmean(d)),
                        "vs_best_baseline_lo": interval(d)[0],
                        "vs_best_baseline_hi": interval(d)[1],
                        "best_baseline": best,
                    }
                )
            if name == MAIN:  # the main model against every baseline, not only the best
                for b in baselines:
                    d = boot[name] - boot[b]
                    row.update(
                        {
                            f"minus_{b}": float(np.nanmean(d)),
                            f"minus_{b}_lo": interval(d)[0],
                            f"minus_{b}_hi": interval(d)[1],
                        }
                    )
            if "oracle" in boot:
                r = (
                    boot[name] / boot["oracle"]
                    if task.kind == "binary"
                    else boot[name] - boot["oracle"]
                )
                row.update(
                    {
                        "vs_oracle": float(np.nanmean(r)),
                        "vs_oracle_lo": interval(r)[0],
                        "vs_oracle_hi": interval(r)[1],
                    }
                )
            for key in (
                "anomaly_precision_at_k",
                "anomaly_recall_at_k",
                "anomaly_recall_at_k_front",
                "anomaly_recall_at_k_spike",
                "oracle_ratio_8_12",
                "oracle_ratio_13_19",
                "oracle_ratio_20_23",
            ):
                if key in ev.metrics:
                    row[key] = ev.metrics[key]
            rows.append(row)
        board = pd.DataFrame(rows)
        tracking.log_table(board, "leaderboard/leaderboard.csv")
        md = leaderboard_markdown(board, metric, task.kind)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "leaderboard.md"
            p.write_text(md)
            mlflow.log_artifact(str(p), artifact_path="leaderboard")
    tracking.choose_champion(task_name, fingerprint=prep.fingerprint, protocol=prep.protocol.hash())
    return board


def _now_ms() -> int:
    return int(time.time() * 1000)


def _bench_one(
    prep: Prepared,
    name: str,
    tags: dict[str, str],
    n_jobs: int,
    progress: Callable[[str], None] | None = None,
    caps: RowCaps | None = None,
) -> Evaluation:
    """Evaluate one model (its fits within *caps*) inside its own nested run, opened before
    the work.

    The main model's evaluation runs inside its ``train`` run (model, plots, per-fold
    steps; it competes for champion); its leaderboard row is then recorded as a
    ``bench-<model>`` run with the same start and end, saying that it repeats that run.
    """
    row_tags = {**tags, "zicht.model": name}
    if name != MAIN:
        with tracking.child_run(
            f"bench-{name}",
            tags=row_tags,
            detail=f"Baseline {name} on the same folds as {MAIN}; its metrics are the "
            "leaderboard's row (the leaderboard itself is on the parent run).",
        ):
            ev = prep.evaluate(name, n_jobs=n_jobs, progress=progress, caps=caps)
            mlflow.log_params({"n_folds": prep.protocol.n_folds, **fit_params(ev)})
            log_metrics(ev)
        return ev
    start = _now_ms()
    with tracking.child_run(
        f"{name}-train",
        tags=prep.tags(name, "train"),
        detail=f"Logged by `zicht bench models`: the benchmark's {name} evaluation, with the "
        "model, calibration and plots; it competes for champion like a `zicht train` run.",
    ) as train_run:
        ev = prep.evaluate(name, n_jobs=n_jobs, progress=progress, caps=caps)
        end = _now_ms()
        log_evaluation(prep, ev, name)
    tracking.record_child(
        f"bench-{name}",
        tags=row_tags,
        metrics=finite(ev.metrics),
        folds=[finite(f) for f in ev.fold_metrics],
        start_ms=start,
        end_ms=end,
        detail=f"The same evaluation as run `{name}-train` ({train_run.info.run_id}), which "
        "holds the model, the plots and the champion candidacy: this run repeats its metrics "
        "as the leaderboard's row, which is why the two show identical numbers.",
    )
    return ev


def leaderboard_markdown(board: pd.DataFrame, metric: str, kind: str) -> str:
    oracle_name = "ratio to oracle" if kind == "binary" else "minus oracle R²"
    lines = [
        f"| model | {metric} (95% CI) | minus best baseline (95% CI) | {oracle_name} (95% CI) | "
        f"holdout {metric} | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in board.iterrows():
        diff = (
            _fmt(r["vs_best_baseline"], r["vs_best_baseline_lo"], r["vs_best_baseline_hi"])
            if "vs_best_baseline" in r and pd.notna(r.get("vs_best_baseline"))
            else "–"
        )
        orc = (
            _fmt(r["vs_oracle"], r["vs_oracle_lo"], r["vs_oracle_hi"]) if "vs_oracle" in r else "–"
        )
        lines.append(
            f"| {r['model']} | {_fmt(r[metric], r[f'{metric}_lo'], r[f'{metric}_hi'])} | {diff} | "
            f"{orc} | {_fmt(r[f'holdout_{metric}'])} | {r['fit_seconds']:.1f} |"
        )
    main = board[board["model"] == MAIN]
    pairs = [m for m in board["model"] if m != MAIN and f"minus_{m}" in board.columns]
    if len(main) and pairs:
        r = main.iloc[0]
        lines += [
            "",
            f"| {MAIN} minus | {metric} difference (95% CI) | interval excludes 0 |",
            "|---|---|---|",
        ]
        for b in pairs:
            lo, hi = r[f"minus_{b}_lo"], r[f"minus_{b}_hi"]
            sig = "yes" if (lo > 0 or hi < 0) else "no"
            lines.append(f"| {b} | {_fmt(r[f'minus_{b}'], lo, hi)} | {sig} |")
    return "\n".join(lines) + "\n"
