"""Run a command in a subprocess and measure wall time and peak RSS of its process tree."""

from __future__ import annotations

import subprocess
import time

import psutil


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak GiB) of *cmd*; raises SystemExit if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(
                c.memory_info().rss for c in ps.children(recursive=True)
            )
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit {proc.returncode}")
    return wall, peak / 2**30
