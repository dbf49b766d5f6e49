"""Benchmark: LightGBM's national-scale evaluation (CV, hold-out and final fit) per task.

In process, exactly what ``zicht train TASK`` computes before it logs: ``prepare`` (meta
columns, oracle, protocol; a table over 5M rows is streamed) and ``Prepared.evaluate``
(fits on at most 4M rows: every positive and a sample of the negatives, corrected; then one
streaming scoring pass and the metrics on every unit). Reports wall time per phase, the fits'
own seconds and the peak resident memory, as ratios to the budget of the national run
(90 minutes and 16 GiB for everything). Nothing is logged to MLflow.

    .venv/bin/python benchmarks/train.py --data-dir DATA [TASK ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/features.py would shadow
# the project's `features` package: drop the folder before importing the project.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from experiments.config import default_config_path, load_config
from experiments.resources import peak_gib, reset_peak
from experiments.train import prepare

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=90 * 60.0)
    ap.add_argument("--budget-gib", type=float, default=16.0)
    args = ap.parse_args()
    print(
        "| task | rows | fit rows | negative rate | prepare s | fits s | evaluate s | "
        "peak GiB | time ratio | memory ratio | roc_auc | oracle_ratio | holdout events exp/obs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            reset_peak()
            t0 = time.perf_counter()
            cfg = load_config(default_config_path(task))
            prep = prepare(cfg, data_dir=args.data_dir, tracking_uri=f"sqlite:///{tmp}/m.db")
            t1 = time.perf_counter()
            ev = prep.evaluate("lightgbm")
            t2 = time.perf_counter()
            m, x = ev.metrics, ev.extra
            primary = m.get("roc_auc", m.get("r2_log", float("nan")))
            ratio = m.get("oracle_ratio", float("nan"))
            events = (
                f"{x['holdout_expected_events']:.0f}/{x['holdout_observed_events']:.0f}"
                if "holdout_expected_events" in x
                else "–"
            )
            gib = peak_gib()
            print(
                f"| {task} | {len(prep.frame):,} | {x['n_fit_rows']:,} | "
                f"{x['negative_sampling_rate']:.4f} | {t1 - t0:.0f} | {ev.fit_seconds:.0f} | "
                f"{t2 - t1:.0f} | {gib:.2f} | {(t2 - t0) / args.budget_s:.2f} | "
                f"{gib / args.budget_gib:.2f} | {primary:.4f} | {ratio:.4f} | {events} |",
                flush=True,
            )
            del prep, ev


if __name__ == "__main__":
    main()
