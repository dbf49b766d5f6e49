"""The turnover table of a world under disclosure control: cells published per level.

Builds the branch_turnover cell table of a world's publication year exactly as ``zicht
publish`` does (the cells do not depend on the model: expected turnover is not a basis),
protects it with the greedy method (before issue 17) and the least-cost witness method, with
our rules and with tau-ARGUS's (FREQ(10,15): 15 % for threshold cells, no unit floor), and,
when the anchors' environment exists (``.bench-venv``, see benchmarks/sdc.py), runs
tau-ARGUS MOD on the same establishments (with and without its singleton options).

    .venv/bin/python benchmarks/sdc_turnover.py --world-dir _region/world --year 2025

Writes OUT_DIR/sdc_turnover.md (aggregate counts only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/features.py would shadow
# the features package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pandas as pd  # noqa: E402

from disclosure.audit import audit  # noqa: E402
from disclosure.bench import ANCHOR_SCRIPT, anchors_venv  # noqa: E402
from disclosure.settings import RuleSettings  # noqa: E402
from disclosure.suppress import protect  # noqa: E402
from experiments.publish import read_areas, turnover_inputs  # noqa: E402
from reports.rollup import roll_up_turnover  # noqa: E402

LEVELS = ("wijk", "gemeente", "riec", "nederland")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--world-dir", type=Path, required=True)
    ap.add_argument("--year", type=int, required=True)
    ap.add_argument("--no-anchors", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    units, inhabitants, _ = turnover_inputs(args.world_dir, read_areas(args.world_dir), args.year)
    preds = pd.DataFrame(columns=["level", "area_code", "sbi", "expected_log", "flag"])
    r = roll_up_turnover(preds, establishments=units, inhabitants=inhabitants)
    rows = []
    ours = RuleSettings()
    tau_rules = RuleSettings(protection_share=0.15, margin_units=0.0)
    for label, settings, method in (
        ("greedy (before #17), our rules", ours, "greedy"),
        ("witness, our rules", ours, "witness"),
        ("witness, tau-ARGUS's rules", tau_rules, "witness"),
    ):
        start = time.perf_counter()
        p = protect(r.cells, r.relations, settings, method=method)
        seconds = time.perf_counter() - start
        failing = int((~audit(r.cells, r.relations, p.status, settings)["ok"]).sum())
        st = r.cells[["cell_id", "level"]].merge(p.status, on="cell_id")
        row = {"method": label, "seconds": round(seconds, 1), "under protection": failing}
        for level in LEVELS:
            lv = st[st["level"] == level]
            row[level] = f"{int((lv['status'] == 'published').sum())}/{len(lv)}"
        row["suppressed"] = int((st["status"] != "published").sum())
        rows.append(row)
        print(row, flush=True)
    python = None if args.no_anchors else anchors_venv(create=False)
    if python:
        frame = units.rename(
            columns={"wijk_code": "wijk", "gemeente_code": "gemeente", "riec_code": "riec"}
        ).rename(columns={"sbi": "band", "turnover": "value"})
        frame["value"] = frame["value"].fillna(0.0)
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "units.csv"
            frame[["riec", "gemeente", "wijk", "band", "value"]].to_csv(csv, index=False)
            for label, spec in (
                ("tau-ARGUS MOD", "MOD(1)"),
                ("tau-ARGUS MOD, singleton options", "MOD(1,5,1,1,0)"),
            ):
                out = Path(tmp) / "tau.json"
                subprocess.run(
                    [python, str(ANCHOR_SCRIPT), "tau_turnover", str(csv), str(out), spec],
                    check=True,
                    cwd=tmp,
                    capture_output=True,
                )
                res = json.loads(out.read_text())
                counts = res["status"]
                row = {
                    "method": label,
                    "seconds": round(res["protect_s"], 1),
                    "under protection": res["audit_unsafe"],
                }
                for level in LEVELS:
                    mine = {k.split("|")[1]: v for k, v in counts.items() if k.startswith(level)}
                    row[level] = f"{mine.get('S', 0)}/{sum(mine.values())}"
                row["suppressed"] = sum(v for k, v in counts.items() if k[-1] in "UM")
                rows.append(row)
                print(row, flush=True)
    table = pd.DataFrame(rows)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    head = "| " + " | ".join(table.columns) + " |\n" + "|---" * len(table.columns) + "|\n"
    body = "".join("| " + " | ".join(str(v) for v in row) + " |\n" for row in table.values)
    note = (
        f"\n- world {args.world_dir} (turnover of {args.year}), {len(r.cells)} cells; "
        "published/cells per level; 'under protection': cells the own audit finds "
        "recoverable within their protection.\n"
    )
    (args.out_dir / "sdc_turnover.md").write_text(head + body + note, encoding="utf-8")


if __name__ == "__main__":
    main()
