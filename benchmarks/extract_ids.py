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
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from microdata.io import write_world
from microdata.scales import get_scale
from microdata.variants import write_variant

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")
EXTRACT_IDS = {
    "ids": {"dwelling": "bag16", "establishment": "bag16", "person": "rin9", "household": "rin9"}
}


def run_once(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak GiB) of *cmd*, from the kernel's accounting of the child
    (``wait4``): CPU time and maximum resident set size are exact and, unlike wall time,
    hardly disturbed by other work on a shared machine."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20  # KiB -> GiB


def features(data_dir: Path, task: str, repeats: int) -> tuple[float, float, float]:
    """Median wall s, median CPU s and max peak GiB of ``zicht features TASK`` on *data_dir*."""
    # the console script, not `python -m`: benchmarks/features.py must not shadow the package
    zicht = str(Path(sys.executable).parent / "zicht")
    cmd = [zicht, "features", task, "--data-dir", str(data_dir)]
    runs = [run_once(cmd) for _ in range(repeats)]
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        max(r[2] for r in runs),
    )


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
        for task in TASKS:  # alternate, so that a busy spell hits both alike
            g = features(base, task, args.repeats)
            e = features(extract, task, args.repeats)
            rows.append((task, g, e))
    lines = [
        f"# Features on extract-style ids ({args.scale} world, seed {args.seed})",
        "",
        "`zicht features TASK` on the generated world (dense ids 0..n-1) and on the same world",
        "as an extract: dwelling and establishment ids of 16 digits (0363010000000017 ...),",
        "person and household numbers of 9 digits (offset 1e8). Each run is a fresh "
        f"subprocess; median of {args.repeats} runs for time, the largest peak for memory. "
        "CPU time (user + system) and peak resident memory come from the kernel's accounting "
        "of the process (`wait4`); wall time is shown too but depends on what else the "
        "machine is doing. Goal: ratios at most 1.2.",
        "",
        f"Command: `.venv/bin/python benchmarks/extract_ids.py --scale {args.scale} "
        f"--repeats {args.repeats}`.",
        "",
        "Before the reader factorised the ids (commit bc802e9), `zicht features hennep` on this "
        "extract failed with `MemoryError: Unable to allocate 764. MiB for an array with shape "
        "(100204080,)` under a 6 GB address-space limit: the builders allocated arrays as long "
        "as the largest person id, and the 16-digit dwelling ids would have needed some 10**15 "
        "slots.",
        "",
        "| task | CPU s, generated | CPU s, extract | CPU ratio | wall s, generated "
        "| wall s, extract | peak GiB, generated | peak GiB, extract | memory ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, (w0, c0, m0), (w1, c1, m1) in rows:
        cells = [f"{c0:.2f}", f"{c1:.2f}", f"{c1 / c0:.2f}", f"{w0:.2f}", f"{w1:.2f}"]
        cells += [f"{m0:.3f}", f"{m1:.3f}", f"{m1 / m0:.2f}"]
        lines.append(f"| {task} | {' | '.join(cells)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
