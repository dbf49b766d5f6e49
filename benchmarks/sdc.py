"""Benchmark: our disclosure core against tau-ARGUS (MOD) and ACRO on a ~40k-cell table.

The anchors (acro, pytauargus) need pandas <= 2.3.3, so they live in their own virtual
environment, ``.bench-venv/`` (gitignored). This script creates it on first use:

    .tools/bin/uv venv .bench-venv --python .venv/bin/python   # or `uv` on the PATH
    uv pip install --python .bench-venv/bin/python -r benchmarks/sdc-anchors.txt

(without uv: ``python -m venv`` and pip). Anchor results are cached per units fingerprint in
``.bench-venv/cache/``; ``--rerun-anchors`` measures them again. ``--no-anchors`` measures
ours only. The same benchmark is ``zicht bench sdc``. Writes OUT_DIR/sdc.{csv,md}.

    .venv/bin/python benchmarks/sdc.py                  # 1M units, with the anchors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from disclosure.bench import anchors_venv, run_sdc_bench


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--units", type=int, default=1_000_000)
    ap.add_argument("--gemeenten", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--anchors-python",
        default=None,
        help="the anchors' Python (default: .bench-venv/bin/python, created on first use)",
    )
    ap.add_argument("--no-anchors", action="store_true", help="measure ours only")
    ap.add_argument("--rerun-anchors", action="store_true", help="ignore cached anchor results")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    python = None if args.no_anchors else args.anchors_python or anchors_venv()
    table = run_sdc_bench(
        n_units=args.units,
        n_gemeenten=args.gemeenten,
        random_state=args.seed,
        anchors_python=python,
        out_dir=args.out_dir,
        rerun_anchors=args.rerun_anchors,
    )
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
