"""Benchmark: wall time and peak memory of `zicht features TASK` for the three tasks.

Runs the real CLI in a fresh subprocess per task on an existing world (generate it first)
and reports the figures as ratios to the feature-builder budgets (national: all three
tasks within 15 minutes and 12 GiB; region: under a minute).

    .venv/bin/python benchmarks/features.py --data-dir DATA [--budget-s 900]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _measure import measure

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=900.0, help="budget for all tasks together")
    ap.add_argument("--budget-gib", type=float, default=12.0)
    args = ap.parse_args()
    rows, total = [], 0.0
    for task in TASKS:
        wall, gib = measure(
            [
                sys.executable,
                "-m",
                "experiments.cli",
                "features",
                task,
                "--data-dir",
                str(args.data_dir),
            ]
        )
        total += wall
        rows.append((task, wall, gib))
    print("| task | wall s | peak GiB | mem ratio |")
    print("|---|---|---|---|")
    for task, wall, gib in rows:
        print(f"| {task} | {wall:.1f} | {gib:.2f} | {gib / args.budget_gib:.2f} |")
    print(
        f"| all | {total:.1f} (ratio {total / args.budget_s:.2f} to {args.budget_s:.0f} s) | "
        f"{max(r[2] for r in rows):.2f} | |"
    )


if __name__ == "__main__":
    main()
