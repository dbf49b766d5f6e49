"""One anchor job of the SDC benchmark, run in the anchors' own Python (see disclosure/bench.py).

    ANCHOR_PY benchmarks/sdc_anchor.py {tau,acro} UNITS.csv OUT.json

``tau``: tau-ARGUS (pytauargus) protects buurt x band over buurt > wijk > gemeente with
FREQ(10,15)|NK(1,50) and MOD, then audits its pattern. ``acro``: ACRO's primary checks
(threshold 10, NK n=1 k=0.5) on the same cells, one crosstab per level.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import pandas as pd


def run_tau(units: pd.DataFrame) -> dict:
    import pytauargus

    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        res = pytauargus.protect(
            units[["gemeente", "wijk", "buurt", "band", "value"]],
            ["buurt", "band"],
            response="value",
            safety_rules="FREQ(10,15)|NK(1,50)",
            suppress="MOD(1)",
            hrc={"buurt": "buurt > wijk > gemeente"},
            hierleadstring="@",
            workdir=work,
        )
        protect_s = time.perf_counter() - start
        table = res.tables[0]
        status = pd.Series(table.status()).value_counts().to_dict()
        start = time.perf_counter()
        rows = res.engine.audit(0)
        audit_s = time.perf_counter() - start
    return {
        "cells": table.n_cells,
        "status": {str(k): int(v) for k, v in status.items()},
        "protect_s": protect_s,
        "audit_s": audit_s,
        "audited": len(rows),
        "audit_unsafe": sum(bool(r["unsafe"]) for r in rows),
        "audit_sample": [str(r) for r in rows[:3]],
    }


def run_acro(units: pd.DataFrame) -> dict:
    import acro
    from acro import sdcchecks

    acr = acro.ACRO(suppress=False)
    acr.config.update(
        safe_threshold=10,
        safe_nk_n=1,
        safe_nk_k=0.5,
        safe_pratio_p=0.0,
        zeros_are_disclosive=False,
    )
    acr.sdc_checks = sdcchecks.SDCChecks(acr.config)
    out = []
    start = time.perf_counter()
    for level in ("gemeente", "wijk", "buurt"):
        acr.crosstab(
            units[level], units["band"], values=units["value"], aggfunc="sum", margins=True
        )
        outcome = acr.results.get_index(-1).outcome
        for area, row in outcome.iterrows():
            for band, flag in row.items():
                out.append([level, str(area), str(band), str(flag)])
    return {"acro_s": time.perf_counter() - start, "cells": out}


def main() -> None:
    job, units_csv, out_json = sys.argv[1:4]
    units = pd.read_csv(units_csv, dtype={"band": str})
    result = run_tau(units) if job == "tau" else run_acro(units)
    with open(out_json, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
