"""The SDC benchmark: our disclosure core against tau-ARGUS (MOD) and ACRO on one table.

A seeded synthetic population of ~1M units (establishments with a skewed turnover) in
gemeente > wijk > buurt, crossed with a 5-band breakdown, rolled up to ~40k cells. Ours runs
in-process; the anchors run in their own Python (``anchors_python``: a virtual environment
with ``acro==1.0.2`` and ``pytauargus==0.6.0``, which need pandas <= 2.3.3 and so cannot share
the project's lock), one subprocess per job, in a temporary directory.

:func:`anchors_venv` creates that environment on first use in ``.bench-venv/`` (gitignored)
from ``benchmarks/sdc-anchors.txt``, with uv (``.tools/bin/uv``, else ``uv`` on the PATH,
else ``python -m venv`` and pip). Anchor results are cached in ``.bench-venv/cache/`` per
table size, seed and anchor code, because tau-ARGUS's audit alone takes minutes at 1M units.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from disclosure.audit import audit
from disclosure.primary import CELL_COLUMNS, primary
from disclosure.settings import RuleSettings
from disclosure.suppress import protect

BANDS = ("A", "B", "C", "D", "E")
ROOT = Path(__file__).resolve().parents[1]
ANCHOR_SCRIPT = ROOT / "benchmarks" / "sdc_anchor.py"
ANCHOR_REQUIREMENTS = ROOT / "benchmarks" / "sdc-anchors.txt"
ANCHOR_VENV = ROOT / ".bench-venv"


def anchors_venv(venv: Path = ANCHOR_VENV, *, create: bool = True) -> str | None:
    """The anchors' Python, creating *venv* from ``benchmarks/sdc-anchors.txt`` if needed.

    Returns None when the environment is missing and *create* is False, or when it cannot
    be created (no registry reachable, no Python 3.11); the reason goes to stderr.
    """
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = ANCHOR_REQUIREMENTS.read_text(encoding="utf-8")
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return str(python)
    if not create:
        return None
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    uv = ROOT / ".tools" / "bin" / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd:
        steps = [
            [uv_cmd, "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(venv)],
            [
                uv_cmd,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(python),
                "-r",
                str(ANCHOR_REQUIREMENTS),
            ],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(ANCHOR_REQUIREMENTS)],
        ]
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"sdc bench: cannot create {venv}: {done.stderr.strip()[-500:]}", file=sys.stderr)
            return None
    stamp.write_text(wanted, encoding="utf-8")
    return str(python)


def synthetic_units(
    n_units: int = 1_000_000, *, n_gemeenten: int = 120, random_state: int = 7
) -> pd.DataFrame:
    """Units with ``gemeente, wijk, buurt, band, value`` (string codes; seeded).

    Area sizes are log-normal, so many buurt x band cells hold under 10 units; turnover is
    log-normal with a heavy tail, so some cells have a dominant contributor.
    """
    rng = np.random.default_rng(random_state)
    wijk_per_gm = rng.integers(2, 14, n_gemeenten)
    n_wijk = int(wijk_per_gm.sum())
    buurt_per_wk = rng.integers(2, 12, n_wijk)
    n_buurt = int(buurt_per_wk.sum())
    wijk_gm = np.repeat(np.arange(n_gemeenten), wijk_per_gm)
    buurt_wk = np.repeat(np.arange(n_wijk), buurt_per_wk)
    size = rng.lognormal(0.0, 1.0, n_buurt)
    buurt = rng.choice(n_buurt, n_units, p=size / size.sum())
    band = rng.choice(len(BANDS), n_units, p=[0.35, 0.3, 0.2, 0.1, 0.05])
    value = np.round(rng.lognormal(3.0, 1.3, n_units), 0) + 1.0
    wijk = buurt_wk[buurt]
    gm = wijk_gm[wijk]
    return pd.DataFrame(
        {
            "gemeente": np.char.add("GM", np.char.zfill(gm.astype(str), 4)),
            "wijk": np.char.add("WK", np.char.zfill(wijk.astype(str), 6)),
            "buurt": np.char.add("BU", np.char.zfill(buurt.astype(str), 8)),
            "band": np.asarray(BANDS)[band],
            "value": value,
        }
    )


def cell_table(units: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cells (every area level incl. NL x every band and ``total``) and their relations."""
    units = units.assign(nederland="NL")
    levels = ("nederland", "gemeente", "wijk", "buurt")
    ranked = units.sort_values("value", ascending=False, kind="stable")
    frames = []
    for level in levels:
        for by_band in (True, False):
            keys = [level, "band"] if by_band else [level]
            g = ranked.groupby(keys, sort=True)["value"]
            second = ranked.loc[g.nth(1).index].groupby(keys)["value"].first()
            f = g.agg(n="size", value="sum", top1="first")
            f = f.join(second.rename("top2")).reset_index()
            f["breakdown"] = f["band"] if by_band else "total"
            f = f.rename(columns={level: "area_code"}).assign(level=level)
            frames.append(f.drop(columns=["band"], errors="ignore"))
    cells = pd.concat(frames, ignore_index=True)
    cells["top2"] = cells["top2"].fillna(0.0)
    cells["basis"] = "turnover_sum"
    cells["kind"] = "sum"
    cells["upper"] = np.inf
    cells["intent"] = True
    cells["cell_id"] = cells["level"] + "|" + cells["area_code"] + "|" + cells["breakdown"]
    parent = {"gemeente": "nederland", "wijk": "gemeente", "buurt": "wijk"}
    links = units[list(levels)].drop_duplicates()
    rel = []
    for child, par in parent.items():
        pairs = links[[par, child]].drop_duplicates()
        present = cells.loc[cells["level"] == child, ["area_code", "breakdown"]]
        pairs = present.merge(pairs, left_on="area_code", right_on=child)
        rid = "area|" + par + "|" + pairs[par] + "|" + pairs["breakdown"]
        rel.append(
            pd.DataFrame(
                {
                    "relation_id": rid,
                    "cell_id": (child + "|" + pairs["area_code"] + "|" + pairs["breakdown"]),
                    "role": "part",
                }
            )
        )
        tot = pd.DataFrame({"relation_id": rid.unique()})
        tot["cell_id"] = tot["relation_id"].str.removeprefix("area|")
        rel.append(tot.assign(role="total"))
    banded = cells[cells["breakdown"] != "total"]
    rid = "band|" + banded["level"] + "|" + banded["area_code"]
    rel.append(pd.DataFrame({"relation_id": rid, "cell_id": banded["cell_id"], "role": "part"}))
    tot = pd.DataFrame({"relation_id": rid.unique()})
    tot["cell_id"] = tot["relation_id"].str.removeprefix("band|") + "|total"
    rel.append(tot.assign(role="total"))
    return cells[list(CELL_COLUMNS)], pd.concat(rel, ignore_index=True)


def _anchor_key(units: pd.DataFrame) -> str:
    """Size, a fingerprint of the units and of the anchor code and versions."""
    code = hashlib.sha256(pd.util.hash_pandas_object(units, index=False).to_numpy().tobytes())
    for path in (ANCHOR_SCRIPT, ANCHOR_REQUIREMENTS):
        code.update(path.read_bytes())
    return f"{len(units)}-{code.hexdigest()[:16]}"


def anchor_results(
    units: pd.DataFrame,
    python: str,
    *,
    key: str,
    cache_dir: Path | None = ANCHOR_VENV / "cache",
    rerun: bool = False,
) -> tuple[dict, dict]:
    """tau-ARGUS's and ACRO's results on *units*, from *cache_dir* unless *rerun*."""
    cached = {job: cache_dir / f"{job}-{key}.json" for job in ("tau", "acro")} if cache_dir else {}
    if cached and not rerun and all(p.exists() for p in cached.values()):
        tau, acro = (json.loads(cached[j].read_text(encoding="utf-8")) for j in ("tau", "acro"))
        return tau, acro
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        units_csv = work / "units.csv"
        units.to_csv(units_csv, index=False)
        tau = _anchor(python, "tau", units_csv, work)
        acro = _anchor(python, "acro", units_csv, work)
    for job, result in (("tau", tau), ("acro", acro)):
        if cached:
            cached[job].parent.mkdir(parents=True, exist_ok=True)
            result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            cached[job].write_text(json.dumps(result), encoding="utf-8")
    return tau, acro


def _anchor(python: str, job: str, units_csv: Path, work: Path) -> dict:
    out = work / f"{job}.json"
    subprocess.run(
        [python, str(ANCHOR_SCRIPT), job, str(units_csv), str(out)],
        check=True,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result: dict = json.loads(out.read_text(encoding="utf-8"))
    return result


def _acro_agreement(cells: pd.DataFrame, unsafe: pd.Series, acro_cells: list) -> dict:
    """Compare primary decisions cell by cell; boundary cells (n == 10, top1 == value/2) apart."""
    theirs = pd.DataFrame(acro_cells, columns=["level", "area_code", "breakdown", "outcome"])
    theirs["breakdown"] = theirs["breakdown"].replace({"All": "total"})
    theirs = theirs[theirs["area_code"] != "All"]
    theirs["acro_unsafe"] = theirs["outcome"] != "ok"
    mine = cells.assign(unsafe=unsafe.to_numpy())
    both = mine.merge(theirs, on=["level", "area_code", "breakdown"], how="inner")
    differ = both["unsafe"] != both["acro_unsafe"]
    boundary = (both["n"] == 10) | (both["top1"] * 2 == both["value"])
    return {
        "compared": len(both),
        "differ": int(differ.sum()),
        "differ_at_boundary": int((differ & boundary).sum()),
        "differ_elsewhere": int((differ & ~boundary).sum()),
    }


def run_sdc_bench(
    *,
    n_units: int = 1_000_000,
    n_gemeenten: int = 120,
    random_state: int = 7,
    anchors_python: str | None = None,
    out_dir: Path | None = None,
    anchors_cache: Path | None = ANCHOR_VENV / "cache",
    rerun_anchors: bool = False,
) -> pd.DataFrame:
    """Run ours (and the anchors, if *anchors_python* is given) and return the ratio table.

    The anchors' results are reused from *anchors_cache* for the same size, seed and anchor
    code unless *rerun_anchors* (None: never cache).

    Returns
    -------
    DataFrame
        ``metric, ours, theirs, ratio, target`` (ratio = ours / theirs). When *out_dir* is
        given, also writes ``sdc.csv`` and ``sdc.md`` there (aggregate figures only).
    """
    settings = RuleSettings()
    units = synthetic_units(n_units, n_gemeenten=n_gemeenten, random_state=random_state)
    cells, relations = cell_table(units)
    start = time.perf_counter()
    prim = primary(cells, settings)
    primary_s = time.perf_counter() - start
    start = time.perf_counter()
    prot = protect(cells, relations, settings)
    protect_s = time.perf_counter() - start
    start = time.perf_counter()
    checked = audit(cells, relations, prot.status, settings)
    audit_s = time.perf_counter() - start
    secondary = int((prot.status["reason"] == "secondary").sum())
    # tau-ARGUS's own rules (FREQ(10,15): 15 % for threshold cells, no unit floor): the
    # like-for-like comparison of the suppression method itself
    tau_rules = RuleSettings(protection_share=0.15, margin_units=0.0)
    same = protect(cells, relations, tau_rules)
    same_ok = audit(cells, relations, same.status, tau_rules)["ok"]
    greedy = protect(cells, relations, settings, method="greedy")
    rows = [
        ("cells", len(cells), None, None),
        ("primary unsafe cells", int(prim["unsafe"].sum()), None, None),
        ("secondary suppressions, tau-ARGUS's rules", _secondary(same), None, 1.0),
        ("  cells under protection (own audit)", int((~same_ok).sum()), None, 0),
        ("secondary suppressions, our rules", secondary, None, None),
        ("  the same by the greedy method (before #17)", _secondary(greedy), None, None),
        ("cells under protection (own audit)", int((~checked["ok"]).sum()), None, 0),
        ("primary seconds", primary_s, None, 0.01),
        ("protection seconds", protect_s, None, None),
        ("audit seconds", audit_s, None, 0.05),
    ]
    if anchors_python:
        tau, acro = anchor_results(
            units,
            anchors_python,
            key=_anchor_key(units),
            cache_dir=anchors_cache,
            rerun=rerun_anchors,
        )
        agree = _acro_agreement(cells, prim["unsafe"], acro["cells"])
        tau_secondary = int(tau["status"].get("M", 0))
        theirs = {
            "cells": tau["cells"],
            "primary unsafe cells": int(tau["status"].get("U", 0)),
            "secondary suppressions, tau-ARGUS's rules": tau_secondary,
            "secondary suppressions, our rules": tau_secondary,
            "cells under protection (own audit)": tau["audit_unsafe"],
            "primary seconds": acro["acro_s"],
            "protection seconds": tau["protect_s"],
            "audit seconds": tau["audit_s"],
        }
        rows = [(m, o, theirs.get(m), t) for m, o, _, t in rows]
        rows += [
            ("ACRO cells compared", agree["compared"], None, None),
            ("ACRO primary decisions that differ", agree["differ"], None, None),
            (
                "  of which at a boundary (n == 10 or top1 == 50%)",
                agree["differ_at_boundary"],
                None,
                None,
            ),
            ("  of which elsewhere", agree["differ_elsewhere"], None, 0),
        ]
    table = pd.DataFrame(rows, columns=["metric", "ours", "theirs", "target"])
    ours = pd.to_numeric(table["ours"], errors="coerce")
    theirs_num = pd.to_numeric(table["theirs"], errors="coerce")
    table["ratio"] = (ours / theirs_num).where(theirs_num > 0)
    table = table[["metric", "ours", "theirs", "ratio", "target"]]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        notes = [
            f"{n_units:,} units, {n_gemeenten} gemeenten, seed {random_state}; ours measured "
            f"{time.strftime('%Y-%m-%dT%H:%M:%S')}. ratio = ours / theirs; target = the "
            "ratio (or count) to stay at or under.",
            "theirs: secondary suppressions, protection and audit seconds from tau-ARGUS "
            "(pytauargus, FREQ(10,15)|NK(1,50), MOD); primary seconds from ACRO.",
            "ours: the least-cost witness method (disclosure/suppress.py). 'tau-ARGUS's "
            "rules' protects threshold cells by 15 % of their value as FREQ(10,15) does; "
            "our rules ask 10 % but at least the largest contributor (margin_units), which "
            "tau-ARGUS cannot express, so that row compares a harder problem.",
        ]
        if anchors_python:
            notes.append(
                f"anchors measured {tau.get('measured_at', 'in this run')} "
                f"(tau-ARGUS) and {acro.get('measured_at', 'in this run')} (ACRO)."
            )
        md = _markdown(table) + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        for name, text in (("sdc.csv", table.to_csv(index=False)), ("sdc.md", md)):
            tmp_path = out_dir / f".{name}.tmp"
            tmp_path.write_text(text, encoding="utf-8")
            tmp_path.replace(out_dir / name)
    return table


def _secondary(protection) -> int:
    return int((protection.status["reason"] == "secondary").sum())


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|---" * len(table.columns) + "|"]
    for row in table.itertuples(index=False):
        cells = ["" if pd.isna(v) else f"{v:.3g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
