"""Benchmark: feature building on extract-style ids against the generator's dense ids.

Generates a world (default tiny, seed 7), writes the same world as an extract whose ids are
what real registers use (16-digit BAG-like dwelling and establishment ids, 9-digit person
and household numbers offset by 1e8; see ``microdata.variants``), and runs
``zicht features TASK`` for the three tasks on both, each in a fresh subprocess, *repeats*
times. Reports the median wall time and the peak resident memory per task and the ratios
(goal: at most 1.2x), as markdown, to ``benchmarks/results/extract_ids.md`` by default.

Before the ids were factorised at read time, the builders allocated arrays as long as the
largest id: the 16-digit extract needed some 10**15 array slots and failed with MemoryError.

    .venv/bin/python benchmarks/extract_ids.py [--scale tiny] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _measure import measure

from microdata.io import write_world
from microdata.scales import get_scale
from microdata.variants import write_variant

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")
EXTRACT_IDS = {
    "ids": {"dwelling": "bag16", "establishment": "bag16", "person": "rin9", "household": "rin9"}
}


def features(data_dir: Path, task: str, repeats: int) -> tuple[float, float]:
    """(median wall seconds, max peak GiB) of ``zicht features TASK`` on *data_dir*."""
    # the console script, not `python -m`: benchmarks/features.py must not shadow the package
    zicht = str(Path(sys.executable).parent / "zicht")
    cmd = [zicht, "features", task, "--data-dir", str(data_dir)]
    runs = [measure(cmd) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "extract_ids.md"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="extract-ids-") as tmp:
        base, extract = Path(tmp) / "generated", Path(tmp) / "extract"
        write_world(base, get_scale(args.scale), seed=args.seed)
        write_variant(base / "world", extract / "world", EXTRACT_IDS)
        rows = []
        for task in TASKS:
            w0, m0 = features(base, task, args.repeats)
            w1, m1 = features(extract, task, args.repeats)
            rows.append((task, w0, w1, m0, m1))
    lines = [
        f"# Features on extract-style ids ({args.scale} world, seed {args.seed})",
        "",
        "`zicht features TASK` on the generated world (dense ids 0..n-1) and on the same world",
        "as an extract: dwelling and establishment ids of 16 digits (0363010000000017 ...),",
        "person and household numbers of 9 digits (offset 1e8). Median wall time of "
        f"{args.repeats} runs, each a fresh subprocess; peak resident memory of the process.",
        "Goal: both ratios at most 1.2. Command: "
        f"`.venv/bin/python benchmarks/extract_ids.py --scale {args.scale} "
        f"--repeats {args.repeats}`.",
        "",
        "| task | wall s, generated | wall s, extract | time ratio | peak GiB, generated "
        "| peak GiB, extract | memory ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for task, w0, w1, m0, m1 in rows:
        ratios = f"{w1 / w0:.2f} | {m0:.3f} | {m1:.3f} | {m1 / m0:.2f}"
        lines.append(f"| {task} | {w0:.2f} | {w1:.2f} | {ratios} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
