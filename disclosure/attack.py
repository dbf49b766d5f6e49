"""An intruder with only the public zone: what can be recomputed from every version at once?

This is the check that ``zicht audit release`` runs and that the tests run on real releases.
It shares no code with :mod:`disclosure.audit` (which works on the secure cell table and the
true values): it reads what anyone can read under ``PUBLISH.d/`` (the level tables, their
``schema.json`` and the manifest) and rebuilds the attacker's linear program from that alone:

- every area × breakdown row of every level table is a cell; its additive bases are
  unknowns bounded by ``[0, n]`` (counts and sums of probabilities) or ``[0, inf)``
  (turnover in euro);
- a published measure pins its basis to the interval its rounding leaves, e.g.
  ``risk_sum in n × [risk_mean ± half a unit of the stated precision]``;
- parent = Σ children along ``parent_code`` and ``total`` = Σ breakdown values;
- a cell in two versions is one quantity when the versions come from the same world and the
  basis does not depend on the model (driver counts, turnover) or both versions were made by
  the same run (``risk_sum``, ``elevated_count``).

For every cell whose basis is not published, HiGHS (through ``scipy.optimize.linprog``)
gives the tightest interval; a *finding* is an interval narrower than one unit (a count
pinned to one integer, a sum known to within one unit's maximum contribution).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linprog

LEVEL_ORDER = ("buurt", "wijk", "gemeente", "riec", "nederland")
MODEL_BASES = ("risk_sum", "elevated_count")
COLUMNS = (
    "version",
    "task",
    "basis",
    "level",
    "area_code",
    "breakdown",
    "n",
    "lower",
    "upper",
    "exact",
)
#: skip the LPs of cells that feasible points already show to be no finding (see _solve);
#: False solves every cell's two LPs (the reference the tests compare with)
_SCREEN = True


@dataclass(frozen=True)
class Version:
    """One version of the public zone as an attacker reads it."""

    name: str
    fingerprint: str
    runs: dict[str, str]
    tables: dict[str, dict[str, pd.DataFrame]]  # task -> level -> table
    schemas: dict[str, dict]


def read_versions(publish_dir: Path, extra: Iterable[Path] = ()) -> list[Version]:
    """Every complete version under ``<PUBLISH>.d/`` (and any *extra* version directory)."""
    publish_dir = Path(publish_dir)
    vdir = publish_dir.parent / f"{publish_dir.name}.d"
    dirs = sorted(p for p in vdir.iterdir() if p.is_dir()) if vdir.is_dir() else []
    out = []
    for d in [*dirs, *map(Path, extra)]:
        if d.name.endswith(".partial") or not (d / "manifest.json").is_file():
            continue
        doc = json.loads((d / "manifest.json").read_text())
        tables: dict[str, dict[str, pd.DataFrame]] = {}
        schemas = {}
        for task in doc.get("runs", {}):
            if not (d / task / "schema.json").is_file():
                continue
            schemas[task] = json.loads((d / task / "schema.json").read_text())
            tables[task] = {
                lv: pd.read_csv(d / task / f"{lv}.csv", keep_default_na=False, dtype=str)
                for lv in LEVEL_ORDER
                if (d / task / f"{lv}.csv").is_file()
            }
        out.append(
            Version(
                name=d.name,
                fingerprint=str(doc.get("data_fingerprint", "")),
                runs={k: str(v) for k, v in doc.get("runs", {}).items()},
                tables=tables,
                schemas=schemas,
            )
        )
    return out


def _num(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col.replace("", np.nan), errors="coerce").to_numpy(np.float64)


def _half_unit(schema: dict, measure: str) -> float:
    digits = schema.get("measures", {}).get(measure, {}).get("precision")
    return 0.0 if digits is None else 0.5 * 10.0 ** (-int(digits))


@dataclass
class _Cells:
    """Variables of one task × basis across versions: bounds, relations, who is a target."""

    keys: list[tuple[str, str, str, str]]  # version, level, area, breakdown
    lo: list[float]
    hi: list[float]
    n: list[float]
    published: list[bool]
    integer: bool
    index: dict[tuple[str, str, str, str], int]

    @classmethod
    def empty(cls, integer: bool) -> _Cells:
        return cls([], [], [], [], [], integer, {})

    def add(self, key, lo, hi, n, published) -> None:
        self.index[key] = len(self.keys)
        self.keys.append(key)
        self.lo.append(lo)
        self.hi.append(hi)
        self.n.append(n)
        self.published.append(published)


def _breakdown(table: pd.DataFrame) -> pd.Series:
    for col in ("age_group", "branch"):
        if col in table.columns:
            return table[col]
    return pd.Series("total", index=table.index)


def _basis_cells(version: Version, task: str, basis: str, into: _Cells) -> None:
    """Variables of *basis* in one version: the published interval or [0, bound]."""
    schema = version.schemas[task]
    for level, table in version.tables[task].items():
        n = _num(table["n"])
        brk = _breakdown(table).to_numpy()
        codes = table["area_code"].to_numpy()
        lo = np.zeros(len(table))
        hi = n.copy()
        pub = np.zeros(len(table), dtype=bool)
        if basis in ("risk_sum", "elevated_count"):
            measure = "risk_mean" if basis == "risk_sum" else "elevated_share"
            v = _num(table[measure])
            h = _half_unit(schema, measure)
            pub = np.isfinite(v)
            lo = np.where(pub, np.maximum((v - h) * n, 0.0), 0.0)
            hi = np.where(pub, np.minimum((v + h) * n, n), n)
        elif basis == "turnover_sum":
            inh = _num(table["inhabitants"])
            v = _num(table["turnover_per_inhabitant"])
            h = _half_unit(schema, "turnover_per_inhabitant")
            pub = np.isfinite(v) & (inh > 0)
            lo = np.where(pub, np.maximum((v - h) * inh, 0.0), 0.0)
            hi = np.where(pub, (v + h) * inh, np.inf)
        else:  # driver_count:<feature>
            feature = basis.split(":", 1)[1]
            h = _half_unit(schema, "driver_prevalence_1")
            for k in range(1, 4):
                if f"driver_{k}" not in table.columns:
                    continue
                named = (table[f"driver_{k}"] == feature).to_numpy()
                v = _num(table[f"driver_prevalence_{k}"])
                hit = named & np.isfinite(v)
                lo = np.where(hit, np.maximum((v - h) * n, 0.0), lo)
                hi = np.where(hit, np.minimum((v + h) * n, n), hi)
                pub |= hit
        for i in range(len(table)):
            into.add((version.name, level, codes[i], brk[i]), lo[i], hi[i], n[i], bool(pub[i]))
    if basis.startswith("driver_count:"):  # the national share shown beside each driver
        feature = basis.split(":", 1)[1]
        key = (version.name, "nederland", "NL", "total")
        if key in into.index:
            i = into.index[key]
            h = _half_unit(schema, "driver_prevalence_nl_1")
            for table in version.tables[task].values():
                for k in range(1, 4):
                    col = f"driver_prevalence_nl_{k}"
                    if col not in table.columns:
                        continue
                    v = _num(table.loc[table[f"driver_{k}"] == feature, col])
                    v = v[np.isfinite(v)]
                    if len(v):
                        n_nl = into.n[i]
                        into.lo[i] = max(into.lo[i], (v[0] - h) * n_nl)
                        into.hi[i] = min(into.hi[i], (v[0] + h) * n_nl)
                        into.published[i] = True


def _relations(versions: list[Version], task: str, cells: _Cells) -> list[list[tuple[int, float]]]:
    rows: list[list[tuple[int, float]]] = []
    for version in versions:
        if task not in version.tables:
            continue
        tabs = version.tables[task]
        for level, table in tabs.items():
            brk = _breakdown(table).to_numpy()
            codes = table["area_code"].to_numpy()
            # hierarchy: each row is a part of its parent's row (same breakdown)
            parents = table["parent_code"].to_numpy()
            up = LEVEL_ORDER[LEVEL_ORDER.index(level) + 1 :] if level != "nederland" else ()
            groups: dict[int, list[int]] = {}
            for i in range(len(table)):
                for parent_level in up:
                    pk = (version.name, parent_level, parents[i], brk[i])
                    if pk in cells.index:
                        groups.setdefault(cells.index[pk], []).append(
                            cells.index[(version.name, level, codes[i], brk[i])]
                        )
                        break
            for total, parts in groups.items():
                rows.append([(total, 1.0)] + [(p, -1.0) for p in parts])
            # breakdown: total = sum of the groups of one area
            if (brk != "total").any():
                for code in np.unique(codes):
                    tk = (version.name, level, code, "total")
                    if tk not in cells.index:
                        continue
                    parts = [
                        cells.index[(version.name, level, code, b)]
                        for b in brk[(codes == code) & (brk != "total")]
                    ]
                    if parts:
                        rows.append([(cells.index[tk], 1.0)] + [(p, -1.0) for p in parts])
    return rows


def _links(
    versions: list[Version], task: str, basis: str, cells: _Cells
) -> list[list[tuple[int, float]]]:
    """One quantity in two versions: same world and (data basis or same run)."""
    rows = []
    by_version = {v.name: v for v in versions}
    for key, i in cells.index.items():
        for other in versions:
            if other.name <= key[0]:
                continue
            mine = by_version[key[0]]
            same = mine.fingerprint == other.fingerprint and (
                basis not in MODEL_BASES or mine.runs.get(task) == other.runs.get(task)
            )
            j = cells.index.get((other.name, *key[1:]))
            if same and j is not None:
                rows.append([(i, 1.0), (j, -1.0)])
    return rows


def bases_of(versions: list[Version], task: str) -> list[str]:
    names = ["turnover_sum"] if task == "branch_turnover" else list(MODEL_BASES)
    drivers = set()
    for v in versions:
        for table in v.tables.get(task, {}).values():
            for k in range(1, 4):
                if f"driver_{k}" in table.columns:
                    drivers |= {x for x in table[f"driver_{k}"] if x}
    return names + [f"driver_count:{d}" for d in sorted(drivers)]


def attack(
    versions: list[Version],
    *,
    min_count: int = 10,
    group_share: float = 0.9,
    progress: Callable[[str], None] = lambda _m: None,
) -> pd.DataFrame:
    """The attacker's interval for every unpublished basis of every cell of every version.

    Returns ``version, task, basis, level, area_code, breakdown, n, lower, upper,
    recomputed, finding``: ``recomputed`` when the interval is narrower than one unit (a
    count pinned to one integer); ``finding`` when that happens to a cell with
    ``n < min_count``, or when a count is known to cover at least ``group_share`` of its
    units (group disclosure). Uses public files only.
    """
    out = []
    tasks = sorted({t for v in versions for t in v.tables})
    for task in tasks:
        for basis in bases_of(versions, task):
            progress(f"{task} {basis}")
            cells = _Cells.empty(integer=basis != "risk_sum" and basis != "turnover_sum")
            for version in versions:
                if task in version.tables:
                    _basis_cells(version, task, basis, cells)
            rows = _relations(versions, task, cells) + _links(versions, task, basis, cells)
            out.append(
                _solve(task, basis, cells, rows, min_count=min_count, group_share=group_share)
            )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=list(COLUMNS))


def _solve(
    task: str,
    basis: str,
    cells: _Cells,
    rows: list[list[tuple[int, float]]],
    *,
    min_count: int,
    group_share: float,
) -> pd.DataFrame:
    """The attacker's interval of every unpublished cell of one basis.

    Two LPs (min and max) per cell would be exact for every cell but cost minutes per basis
    on a tiny two-version release. Every LP's optimum is also a *feasible point*: values the
    public files allow for every cell at once. The spread of the feasible points seen so far
    is an inner bound of each cell's interval, so a cell whose seen spread is already at least
    one unit, and whose smallest seen count is already below the group share of its ``n``,
    can be neither pinned nor a group disclosure: its LPs are not solved (``exact`` False,
    ``lower``/``upper`` the seen spread, which the true interval contains). Every other cell,
    every possible finding among them, gets its two exact LPs. Findings are therefore exactly
    those of the all-LP attack (tests/test_release_attack.py compares both).
    """
    m = len(cells.keys)
    lo, hi = np.array(cells.lo, dtype=float), np.array(cells.hi, dtype=float)
    r_idx = [r for r, row in enumerate(rows) for _ in row]
    c_idx = [c for row in rows for c, _ in row]
    vals = [v for row in rows for _, v in row]
    a = sp.csr_matrix((vals, (r_idx, c_idx)), shape=(len(rows), m)) if rows else None
    b = np.zeros(len(rows)) if rows else None
    pub = np.array(cells.published, dtype=bool)
    n = np.asarray(cells.n, dtype=float)
    # only cells whose value the release keeps back: published ones are intervals by design
    targets = np.flatnonzero(~pub)
    bounds = list(zip(lo, np.where(np.isfinite(hi), hi, None), strict=True))
    seen_lo, seen_hi = np.full(m, np.inf), np.full(m, -np.inf)

    def lp(c: np.ndarray) -> tuple[int, float]:
        sol = linprog(c, A_eq=a, b_eq=b, bounds=bounds, method="highs")
        if sol.status == 0:
            np.minimum(seen_lo, sol.x, out=seen_lo)
            np.maximum(seen_hi, sol.x, out=seen_hi)
        return int(sol.status), float(sol.fun) if sol.status == 0 else math.nan

    def settled(t: int) -> bool:
        if not screen:
            return False
        if cells.integer:
            wide = math.floor(seen_hi[t] + 1e-7) - math.ceil(seen_lo[t] - 1e-7) >= 1
            return wide and not (n[t] > 0 and seen_lo[t] >= group_share * n[t])
        return seen_hi[t] - seen_lo[t] >= 1.0 - 1e-9

    screen = _SCREEN
    if screen and len(targets):
        rng = np.random.default_rng(0)  # a few spread-out points before the cells' own LPs
        for _ in range(4):
            lp(rng.standard_normal(m))
    res = []
    # the smallest cells first: the ones that can be findings, and their optima spread the
    # seen points of the larger cells around them
    for t in targets[np.argsort(n[targets], kind="stable")]:
        version, level, area, brk = cells.keys[t]
        if settled(int(t)):
            row = (version, task, basis, level, area, brk, cells.n[t], seen_lo[t], seen_hi[t])
            res.append((int(t), *row, False))
            continue
        span = []
        for sign in (1.0, -1.0):
            c = np.zeros(m)
            c[t] = sign
            status, fun = lp(c)
            if status == 3:  # unbounded above
                span.append(math.inf)
            elif status == 0:
                span.append(sign * fun)
            else:  # pragma: no cover - the truth is feasible unless the files were edited
                raise RuntimeError(f"{task} {basis}: the public tables are inconsistent")
        lower, upper = span
        res.append((int(t), version, task, basis, level, area, brk, cells.n[t], lower, upper, True))
    res.sort(key=lambda r: r[0])  # the cells' order, whatever the order they were solved in
    frame = pd.DataFrame([r[1:] for r in res], columns=list(COLUMNS)).astype(
        {"n": float, "lower": float, "upper": float, "exact": bool}
    )
    width = frame["upper"] - frame["lower"]
    if cells.integer:
        pinned = np.floor(frame["upper"] + 1e-7) - np.ceil(frame["lower"] - 1e-7) < 1
    else:
        pinned = width < 1.0 - 1e-9
    frame["recomputed"] = pinned & (frame["n"] > 0)
    # a statement about a cell too small to publish, or that (nearly) all its units share
    # the counted attribute (group disclosure); a recomputed complement of a safe cell is not
    small = frame["n"] < min_count
    group = cells.integer & (frame["lower"] >= group_share * frame["n"]) & (frame["n"] > 0)
    frame["finding"] = (frame["recomputed"] & small) | group
    return frame
