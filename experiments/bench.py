"""``zicht bench models``: every model on identical folds, with paired bootstrap intervals.

One parent run (``zicht.kind=bench``) per task holds the leaderboard (CSV and Markdown);
each model is a nested run with its metrics. Intervals are 95% paired bootstrap intervals
over gemeenten on the out-of-fold predictions of the training years: the model's primary
metric, the model minus the best baseline, and the model over the oracle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from experiments import tracking
from experiments.config import default_config_path, load_config
from experiments.train import BASELINE_MAX_ROWS, load_features, world_identity
from experiments.truth import oracle_for
from models.bootstrap import interval, paired_bootstrap
from models.evaluation import evaluate, protocol_for
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
) -> pd.DataFrame:
    """Run the benchmark of *task_name*; returns the leaderboard (also logged)."""
    task = get_task(task_name)
    cfg = load_config(default_config_path(task_name))
    features = list(cfg.features)
    tracking.connect(tracking_uri, task_name)
    fingerprint, scale, seed = world_identity(data_dir / "world")
    frame = load_features(data_dir / "features" / f"{task_name}.parquet", task_name, cfg.features)
    protocol = protocol_for(sorted(frame["year"].unique().tolist()), task_name)
    oracle, anomalous = oracle_for(task_name, frame, data_dir) if scale != "real" else (None, None)
    areas = pd.read_parquet(
        data_dir / "world" / "areas.parquet", columns=["area_code", "level", "land_area_km2"]
    )
    buurt = areas[areas["level"] == "buurt"]
    km2 = dict(
        zip(buurt["area_code"].astype(str), buurt["land_area_km2"].astype(float), strict=True)
    )
    metric = tracking.PRIMARY[task_name]
    tags = {
        "zicht.task": task_name,
        "zicht.model": ",".join(models),
        "zicht.kind": "bench",
        "zicht.scale": scale,
        "zicht.seed": seed,
        "zicht.data_fingerprint": fingerprint,
        "zicht.protocol": protocol.hash(),
    }
    results = {}
    with tracking.run(task_name, run_name=f"bench-{task_name}", tags=tags):
        for name in models:
            progress(f"{task_name}: {name}")
            ev = evaluate(
                frame,
                task,
                features,
                model_name=name,
                protocol=protocol,
                oracle=oracle,
                anomalous=anomalous,
                area_km2=km2,
                random_state=int(seed or 0),
                n_jobs=n_jobs,
                max_train_rows=None if name == MAIN else BASELINE_MAX_ROWS,
            )
            results[name] = ev
            with mlflow.start_run(run_name=f"bench-{name}", nested=True):
                mlflow.set_tags({**tags, "zicht.model": name})
                mlflow.log_metrics(
                    {
                        k: v
                        for k, v in ev.metrics.items()
                        if isinstance(v, float) and math.isfinite(v)
                    }
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
    return board


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
    return "\n".join(lines) + "\n"
