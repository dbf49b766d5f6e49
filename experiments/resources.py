"""Peak memory and CPU time per stage, for ``zicht run``'s stage table and ``zicht bench scale``.

Linux keeps a process's resident-set high-water mark (``VmHWM``) and resets it when
``5`` is written to ``/proc/self/clear_refs``; that gives each stage its own peak without a
sampling thread. Elsewhere the process-lifetime peak (``ru_maxrss``) is the fallback, and
the table says so.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Start a new peak; False where the platform cannot (the peak is then cumulative)."""
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def peak_gib() -> float:
    """The resident-set peak since the last :func:`reset_peak` (GiB)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return rss / (2**30 if sys.platform == "darwin" else 2**20)


def cpu_seconds() -> float:
    """CPU seconds (user + system, every thread) of this process and its waited-for children
    so far: on a shared machine a stage's CPU time says what it costs when wall time cannot."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
