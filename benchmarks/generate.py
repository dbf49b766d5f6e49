"""Benchmark: wall time and peak memory of `zicht generate` per scale, against the budgets.

Each scale runs in a fresh subprocess (the real CLI), on a quiet machine, one at a time.
Peak memory is the peak resident set size of the process tree, polled every 0.1 s.
Ratios are measured / budget (the foundation issue's targets): below 1 is within budget.

    .venv/bin/python benchmarks/generate.py tiny region national [--seed 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _measure import measure as run_measured

BUDGET_S = {"tiny": 10.0, "region": 90.0, "national": 900.0}
BUDGET_GIB = {"tiny": 12.0, "region": 12.0, "national": 12.0}


def measure(scale: str, seed: int, data_dir: Path) -> tuple[float, float]:
    return run_measured(
        [
            sys.executable,
            "-m",
            "experiments.cli",
            "generate",
            "--scale",
            scale,
            "--seed",
            str(seed),
            "--data-dir",
            str(data_dir),
            "--overwrite",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("scales", nargs="*", default=["tiny", "region"], choices=list(BUDGET_S))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, default=None, help="keep the worlds under DIR/<scale>")
    args = ap.parse_args()
    rows = []
    for scale in args.scales:
        base = args.keep or Path(tempfile.mkdtemp(prefix="zicht-bench-"))
        data = base / scale if args.keep else base
        wall, gib = measure(scale, args.seed, data)
        size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 2**30
        rows.append((scale, wall, BUDGET_S[scale], gib, BUDGET_GIB[scale], size))
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(
        "| scale | wall s | budget s | time ratio | peak GiB | budget GiB | mem ratio | disk GiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scale, wall, bs, gib, bg, size in rows:
        print(
            f"| {scale} | {wall:.1f} | {bs:.0f} | {wall / bs:.2f} | {gib:.2f} | {bg:.0f} | "
            f"{gib / bg:.2f} | {size:.2f} |"
        )


if __name__ == "__main__":
    main()
