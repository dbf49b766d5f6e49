"""Benchmark: our disclosure core against tau-ARGUS (MOD) and ACRO on a ~40k-cell table.

The anchors need pandas <= 2.3.3, so they live in their own virtual environment:

    uv venv .venv-sdc --python python3.11
    uv pip install --python .venv-sdc/bin/python -r benchmarks/sdc-anchors.txt
    .venv/bin/python benchmarks/sdc.py --anchors-python .venv-sdc/bin/python

Without ``--anchors-python`` only ours is measured. Writes benchmarks/results/sdc.{csv,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from disclosure.bench import run_sdc_bench


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--units", type=int, default=1_000_000)
    ap.add_argument("--gemeenten", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--anchors-python", default=None)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    table = run_sdc_bench(
        n_units=args.units,
        n_gemeenten=args.gemeenten,
        random_state=args.seed,
        anchors_python=args.anchors_python,
        out_dir=args.out_dir,
    )
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
