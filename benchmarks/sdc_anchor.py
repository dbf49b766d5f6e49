"""One anchor job of the SDC benchmark, run in the anchors' own Python (see disclosure/bench.py).

    ANCHOR_PY benchmarks/sdc_anchor.py {tau,acro,tau_turnover} UNITS.csv OUT.json [MOD(...)]

``tau``: tau-ARGUS (pytauargus) protects buurt x band over buurt > wijk > gemeente with
FREQ(10,15)|NK(1,50) and MOD, then audits its pattern. ``tau_turnover``: the same on the
turnover table of a world (wijk x branch over wijk > gemeente > riec). ``acro``: ACRO's
primary checks (threshold 10, NK n=1 k=0.5) on the same cells, one crosstab per level.
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


def run_tau_turnover(units: pd.DataFrame, suppress: str = "MOD(1)") -> dict:
    """tau-ARGUS on the turnover table: wijk x branch over wijk > gemeente > riec (> NL),
    FREQ(10,15)|NK(1,50); status counts per level (codes: Total, RIEC, GM, WK)."""
    import pytauargus

    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        res = pytauargus.protect(
            units[["riec", "gemeente", "wijk", "band", "value"]],
            ["wijk", "band"],
            response="value",
            safety_rules="FREQ(10,15)|NK(1,50)",
            suppress=suppress,
            hrc={"wijk": "wijk > gemeente > riec"},
            hierleadstring="@",
            workdir=work,
        )
        protect_s = time.perf_counter() - start
        table = res.tables[0].dataframe()
        rows = res.engine.audit(0)
    level = (
        table["wijk"]
        .astype(str)
        .str[:2]
        .map({"To": "nederland", "RI": "riec", "GM": "gemeente", "WK": "wijk"})
    )
    table = table.assign(level=level)[table["status"] != "E"]
    counts = table.groupby(["level", "status"]).size()
    return {
        "protect_s": protect_s,
        "status": {f"{lv}|{st}": int(k) for (lv, st), k in counts.items()},
        "audit_unsafe": sum(bool(r["unsafe"]) for r in rows),
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
    if job == "tau_turnover":
        result = run_tau_turnover(units, *sys.argv[4:5])
    else:
        result = run_tau(units) if job == "tau" else run_acro(units)
    with open(out_json, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
