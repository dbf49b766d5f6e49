"""Roll-up of unit predictions to area scores: the cell table, its relations, the level tables.

Pure core (DataFrames in, DataFrames out; no files). For each task it builds

- a **grid**: one row per level × area × breakdown with ``n`` and the true totals of every
  additive basis (secure zone only; never exported as such);
- the **cell table** and **relations** of ``docs/design/publish_interfaces.md`` (sections 2
  and 4), the input of the disclosure core;
- after disclosure control, the contract's **level tables** (:func:`level_tables`), where
  every measure derived from a suppressed basis is empty.

Every level is aggregated from the units themselves with vectorised group-bys on
categorical codes, so levels add up exactly to the national total and national scale
(8M dwellings, 14k buurten) is a handful of group-bys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from microdata.vocab import AREA_CODE_COLUMN, AREA_LEVELS

LEVELS = AREA_LEVELS
#: column of a unit frame that holds the code of its area at each level
LEVEL_CODE = {**AREA_CODE_COLUMN, "nederland": "nl_code"}
#: (child level, parent level) pairs whose cells are linked by "parent = sum of children"
HIERARCHY = (
    ("buurt", "wijk"),
    ("wijk", "gemeente"),
    ("gemeente", "riec"),
    ("riec", "nederland"),
    ("gemeente", "nederland"),
)
NL = "NL"
TOTAL = "total"
AGE_GROUPS = ("8-12", "13-19", "20-23")
#: share of units above the national top-decile score counts as "elevated"
TOP_DECILE = 0.9
N_DRIVERS = 3
#: the only reason the public zone gives for a suppressed cell: which primary rule fired
#: (threshold, dominance, group) or that it is a complement is itself a disclosure; the
#: reasons stay in the secure zone's ledger
SUPPRESSED_REASON = "suppressed"


class RollupError(ValueError):
    """Predictions or world tables that cannot be rolled up (names the column and the fix)."""


@dataclass(frozen=True)
class Basis:
    """An additive basis: a sum (with contributors, for dominance) or a count of units."""

    name: str
    kind: str  # "sum" | "count"
    upper: str  # "n" (the total cannot exceed the units) or "inf"
    #: each contributor knows its own contribution (a business its turnover; nobody knows a
    #: model's probability for them): a cell of one contributor is known to that contributor
    own_value_known: bool = False


@dataclass(frozen=True)
class Rollup:
    """A task's roll-up: grid (true totals, secure), cells and relations for the disclosure
    core, and the schema of the level tables."""

    task: str
    breakdown: str | None  # "age_group", "branch" or None
    levels: tuple[str, ...]
    bases: tuple[Basis, ...]
    grid: pd.DataFrame
    cells: pd.DataFrame
    relations: pd.DataFrame
    schema: dict[str, Any] = field(default_factory=dict)
    #: the secondary suppression method (:func:`disclosure.suppress.protect`): ``witness``
    #: (least information lost) for the turnover table; ``greedy`` for the binary tasks,
    #: whose driver bases hold tens of thousands of unsafe cells (one LP per cell and side)
    suppression: str = "greedy"


# --------------------------------------------------------------------------- aggregation


def _with_nl(units: pd.DataFrame) -> pd.DataFrame:
    units = units.copy()
    units["nl_code"] = NL
    for col in LEVEL_CODE.values():
        if col in units.columns:
            units[col] = units[col].astype("category")
    return units


def aggregate(
    units: pd.DataFrame,
    *,
    levels: tuple[str, ...],
    breakdown: str | None,
    sums: tuple[str, ...] = (),
    top: str | None = None,
) -> pd.DataFrame:
    """Group *units* to every level (× breakdown value and ``total``).

    Returns one row per ``level, area_code, breakdown`` with ``n``, the sum of each column in
    *sums*, and for column *top* its largest and second-largest single contributor
    (``<top>__top1``, ``<top>__top2``; NaN where there is none). Ancestor codes of each area
    are carried as ``parent_<level>`` columns for the relations.

    >>> u = pd.DataFrame({"buurt_code": ["B1", "B1", "B2"], "wijk_code": ["W1"] * 3,
    ...                   "gemeente_code": ["G"] * 3, "riec_code": ["R"] * 3, "x": [1., 2., 4.]})
    >>> g = aggregate(u, levels=("wijk", "nederland"), breakdown=None, sums=("x",), top="x")
    >>> g[["level", "area_code", "n", "x", "x__top1", "x__top2"]].to_dict("records")[0]
    {'level': 'wijk', 'area_code': 'W1', 'n': 3, 'x': 7.0, 'x__top1': 4.0, 'x__top2': 2.0}
    """
    units = _with_nl(units)
    if top is not None:
        # one global descending sort: the rank within any grouping is then its cumcount
        units = units.sort_values(top, ascending=False, kind="stable", na_position="last")
    frames = []
    modes: list[str | None] = [None] if breakdown is None else [breakdown, None]
    for level in levels:
        code = LEVEL_CODE[level]
        for mode in modes:
            keys = [code] if mode is None else [code, mode]
            grouped = units.groupby(keys, observed=True, sort=True)
            out = grouped.size().rename("n").to_frame()
            for col in sums:
                out[col] = grouped[col].sum(min_count=0).astype(np.float64)
            if top is not None:
                rank = grouped.cumcount().to_numpy()
                v = units[top].to_numpy(np.float64)
                ranked = pd.DataFrame(
                    {
                        "t1": np.where(rank == 0, v, np.nan),
                        "t2": np.where(rank == 1, v, np.nan),
                    },
                    index=units.index,
                )
                tops = ranked.groupby([units[k] for k in keys], observed=True, sort=True).max()
                out[f"{top}__top1"] = tops["t1"].to_numpy()
                out[f"{top}__top2"] = tops["t2"].to_numpy()
            out = out.reset_index().rename(columns={code: "area_code"})
            out["area_code"] = out["area_code"].astype(str)
            out["breakdown"] = TOTAL if mode is None else out.pop(mode).astype(str)
            out.insert(0, "level", level)
            frames.append(out)
    grid = pd.concat(frames, ignore_index=True)
    return _add_parents(grid, units, levels)


def _add_parents(grid: pd.DataFrame, units: pd.DataFrame, levels: tuple[str, ...]) -> pd.DataFrame:
    """``parent_<level>``: the code of each area's ancestor at that level (from the units)."""
    for child, parent in HIERARCHY:
        if child not in levels or parent not in levels:
            continue
        pairs = (
            units[[LEVEL_CODE[child], LEVEL_CODE[parent]]]
            .drop_duplicates()
            .astype(str)
            .set_index(LEVEL_CODE[child])[LEVEL_CODE[parent]]
        )
        if not pairs.index.is_unique:
            dup = pairs.index[pairs.index.duplicated()][0]
            raise RollupError(
                f"area {dup} lies in more than one {parent}; the {LEVEL_CODE[child]} → "
                f"{LEVEL_CODE[parent]} columns of the predictions must nest (rule: hierarchy)"
            )
        col = f"parent_{parent}"
        if col not in grid.columns:
            grid[col] = pd.Series(pd.NA, index=grid.index, dtype=object)
        mask = grid["level"] == child
        grid.loc[mask, col] = grid.loc[mask, "area_code"].map(pairs).to_numpy()
    return grid


# --------------------------------------------------------------------------- cells


def cell_ids(grid: pd.DataFrame, basis: str) -> pd.Series:
    """``level|area_code|breakdown|basis`` for each grid row."""
    return grid["level"] + "|" + grid["area_code"] + "|" + grid["breakdown"] + "|" + basis


def build_cells(grid: pd.DataFrame, bases: tuple[Basis, ...]) -> pd.DataFrame:
    """The cell table (one row per grid row × basis) of publish_interfaces.md section 2."""
    frames = []
    for b in bases:
        if b.name not in grid.columns:
            continue
        present = grid[b.name].notna()
        g = grid[present]
        top1 = g.get(f"{b.name}__top1", pd.Series(np.nan, index=g.index))
        top2 = g.get(f"{b.name}__top2", pd.Series(np.nan, index=g.index))
        frames.append(
            pd.DataFrame(
                {
                    "cell_id": cell_ids(g, b.name).to_numpy(),
                    "level": g["level"].to_numpy(),
                    "area_code": g["area_code"].to_numpy(),
                    "breakdown": g["breakdown"].to_numpy(),
                    "basis": b.name,
                    "kind": b.kind,
                    "n": g["n"].to_numpy(np.int64),
                    "value": g[b.name].to_numpy(np.float64),
                    "top1": top1.to_numpy(np.float64) if b.kind == "sum" else np.nan,
                    "top2": top2.to_numpy(np.float64) if b.kind == "sum" else np.nan,
                    "upper": g["n"].to_numpy(np.float64) if b.upper == "n" else np.inf,
                    # one unit adds at most 1 to a count or a sum of probabilities; for other
                    # sums the disclosure core takes the largest contributor (NaN here)
                    "unit_max": 1.0 if b.upper == "n" else np.nan,
                    "contributors": (g["contributors"] if "contributors" in g else g["n"]).to_numpy(
                        np.int64
                    ),
                    "intent": True,
                    "own_value_known": b.own_value_known,
                }
            )
        )
    cells = pd.concat(frames, ignore_index=True)
    if not cells["cell_id"].is_unique:
        raise RollupError("cell ids are not unique: one area appears twice in a level")
    return cells


def build_relations(
    grid: pd.DataFrame, bases: tuple[Basis, ...], *, breakdown: bool
) -> pd.DataFrame:
    """Relations ``relation_id, cell_id, role``: parent = Σ children (each hierarchy step, per
    breakdown value) and, where the task has a breakdown, ``total`` = Σ breakdown values."""
    frames = []
    for b in bases:
        if b.name not in grid.columns:
            continue
        g = grid[grid[b.name].notna()]
        ids = cell_ids(g, b.name)
        for child, parent in HIERARCHY:
            kids = g[g["level"] == child]
            col = f"parent_{parent}"
            if kids.empty or col not in g.columns:
                continue
            total = parent + "|" + kids[col].astype(str) + "|" + kids["breakdown"] + "|" + b.name
            rel = total + "<" + child
            frames.append(_members(rel, ids[kids.index], total))
        if breakdown:
            parts = g[g["breakdown"] != TOTAL]
            key = parts["level"] + "|" + parts["area_code"] + "|" + TOTAL + "|" + b.name
            rel = key + "<breakdown"
            frames.append(_members(rel, ids[parts.index], key))
    return pd.concat(frames, ignore_index=True) if frames else _empty_relations()


def _members(relation: pd.Series, parts: pd.Series, total: pd.Series) -> pd.DataFrame:
    """Rows of relations: every part, and each relation's total once."""
    p = pd.DataFrame(
        {"relation_id": relation.to_numpy(), "cell_id": parts.to_numpy(), "role": "part"}
    )
    t = pd.DataFrame({"relation_id": relation.to_numpy(), "cell_id": total.to_numpy()})
    t = t.drop_duplicates("relation_id").assign(role="total")
    return pd.concat([t, p], ignore_index=True)


# --------------------------------------------------------------------------- tasks


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RollupError(
            f"{what}: lacks column(s) {missing}; rebuild it with the current code "
            "(`zicht predict TASK` for predictions, `zicht generate` for the world)"
        )


def elevated(score: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """True where the score is above the national top-decile threshold (per group if given)."""
    score = np.asarray(score, dtype=np.float64)
    out = np.zeros(len(score), dtype=bool)
    keys = [None] if groups is None else list(pd.unique(groups))
    for key in keys:
        m = np.ones(len(score), bool) if key is None else np.asarray(groups == key)
        if m.any():
            out[m] = score[m] > np.quantile(score[m], TOP_DECILE)
    return out


_BINARY_BASES = (Basis("risk_sum", "sum", "n"), Basis("elevated_count", "count", "n"))


def roll_up_binary(
    predictions: pd.DataFrame,
    *,
    task: str,
    profiles: pd.DataFrame | None = None,
    population: pd.DataFrame | None = None,
) -> Rollup:
    """hennep (per dwelling) or jonge_aanwas (per person, by age group) predictions → Rollup.

    ``risk_sum`` sums the calibrated probabilities (top contributor: the largest single
    probability); ``elevated_count`` counts units whose score is above the national
    top-decile threshold (for jonge_aanwas: of their age group, so the pooled threshold does
    not simply pick the oldest group).

    *population* (``buurt_code, wijk_code, gemeente_code, riec_code, <breakdown>,
    residents``) makes the published ``n`` every resident rather than the modelled units
    (whose number can be sensitive: jonge_aanwas leaves out youths with an earlier
    suspicion). Every area with residents gets a row; the modelled units become each cell's
    ``contributors`` (the threshold rule counts them), and the measures are per resident.
    """
    breakdown = "age_group" if task == "jonge_aanwas" else None
    need = ("buurt_code", "wijk_code", "gemeente_code", "riec_code", "score", "probability")
    _require(predictions, need + ((breakdown,) if breakdown else ()), f"predictions of {task}")
    units = predictions[[c for c in need if c != "score"] + ([breakdown] if breakdown else [])]
    units = units.assign(
        probability=predictions["probability"].to_numpy(np.float64),
        elevated_count=elevated(
            predictions["score"].to_numpy(),
            predictions[breakdown].to_numpy() if breakdown else None,
        ).astype(np.float64),
    ).rename(columns={"probability": "risk_sum"})
    grid = aggregate(
        units,
        levels=LEVELS,
        breakdown=breakdown,
        sums=("risk_sum", "elevated_count"),
        top="risk_sum",
    )
    if population is not None:
        grid = _with_population(grid, population, breakdown)
    bases = _BINARY_BASES
    driver_bases: tuple[Basis, ...] = ()
    if task == "jonge_aanwas":
        grid, driver_bases = _attach_profiles(grid, profiles)
        if population is not None:  # areas with residents but no modelled unit count 0
            for b in driver_bases:
                grid[b.name] = grid[b.name].fillna(0.0)
    cells = build_cells(grid, bases)
    relations = build_relations(grid, bases, breakdown=breakdown is not None)
    if driver_bases:
        dcells, drel = _driver_cells(grid, driver_bases)
        cells = pd.concat([cells, dcells], ignore_index=True)
        relations = pd.concat([relations, drel], ignore_index=True)
    return Rollup(
        task=task,
        breakdown=breakdown,
        levels=LEVELS,
        bases=bases + driver_bases,
        grid=grid,
        cells=cells,
        relations=relations,
        schema=_schema(task, profiles_used=profiles is not None),
    )


def _with_population(
    grid: pd.DataFrame, population: pd.DataFrame, breakdown: str | None
) -> pd.DataFrame:
    """Every area × breakdown with residents; ``n`` = residents, ``contributors`` = units."""
    cols = ("buurt_code", "wijk_code", "gemeente_code", "riec_code", "residents")
    _require(population, cols + ((breakdown,) if breakdown else ()), "population (residents)")
    people = aggregate(population, levels=LEVELS, breakdown=breakdown, sums=("residents",))
    keys = ["level", "area_code", "breakdown"]
    units = grid.drop(columns=_parent_cols(grid))
    merged = people.drop(columns="n").merge(units, on=keys, how="left", validate="1:1")
    lost = ~grid.set_index(keys).index.isin(merged.set_index(keys).index)
    if lost.any():
        row = grid[lost].iloc[0]
        raise RollupError(
            f"predictions: {row['level']} {row['area_code']} {row['breakdown']} has units but "
            "no residents in the population; fix: build both from the same world and year"
        )
    merged["n"] = merged["n"].fillna(0).astype(np.int64)
    for col in ("risk_sum", "elevated_count"):
        merged[col] = merged[col].fillna(0.0)
    over = merged["n"] > merged["residents"]
    if over.any():
        row = merged[over].iloc[0]
        raise RollupError(
            f"predictions: {row['level']} {row['area_code']} {row['breakdown']} has "
            f"{int(row['n'])} units but {int(row['residents'])} residents; fix: build the "
            "population from the same world and publication year as the predictions"
        )
    merged["contributors"] = merged.pop("n")
    merged["n"] = merged.pop("residents").astype(np.int64)
    return merged


def _attach_profiles(
    grid: pd.DataFrame, profiles: pd.DataFrame | None
) -> tuple[pd.DataFrame, tuple[Basis, ...]]:
    """Join the SHAP area driver profiles (section 5) onto the jonge_aanwas grid."""
    for k in range(1, N_DRIVERS + 1):
        grid[f"driver_{k}"] = pd.Series(pd.NA, index=grid.index, dtype=object)
        grid[f"driver_count_{k}"] = np.nan
        grid[f"driver_national_{k}"] = np.nan
    if profiles is None:
        return grid, ()
    cols = ["level", "area_code", "age_group", "n"] + [
        f"{p}_{k}"
        for k in range(1, N_DRIVERS + 1)
        for p in ("driver", "driver_count", "driver_national")
    ]
    _require(profiles, tuple(cols), "area driver profiles (DATA/explain/jonge_aanwas_profiles)")
    prof = profiles[cols].rename(columns={"age_group": "breakdown", "n": "profile_n"})
    prof = prof.astype({"level": str, "area_code": str, "breakdown": str})
    keys = ["level", "area_code", "breakdown"]
    merged = grid.drop(columns=cols[4:]).merge(prof, on=keys, how="left")
    units = merged["contributors"] if "contributors" in merged else merged["n"]
    bad = merged["profile_n"].notna() & (merged["profile_n"] != units)
    if bad.any():
        row = merged[bad].iloc[0]
        raise RollupError(
            f"area driver profiles: n={int(row['profile_n'])} for {row['level']} "
            f"{row['area_code']} {row['breakdown']} but the predictions have "
            f"{int(units[bad].iloc[0])} units; "
            "rerun `zicht explain jonge_aanwas` on the champion that made the predictions"
        )
    merged = merged.drop(columns="profile_n")
    for k in range(1, N_DRIVERS + 1):
        empty = merged[f"driver_{k}"].isna() | (merged[f"driver_{k}"].astype(str) == "")
        merged.loc[empty, [f"driver_count_{k}", f"driver_national_{k}"]] = np.nan
        merged[f"driver_{k}"] = merged[f"driver_{k}"].where(~empty, pd.NA)
    names = sorted(
        {str(v) for k in range(1, N_DRIVERS + 1) for v in merged[f"driver_{k}"].dropna()}
    )
    counts = [f"count__{f}" for f in names]
    _require(profiles, tuple(counts), "area driver profiles (DATA/explain/jonge_aanwas_profiles)")
    full = profiles[["level", "area_code", "age_group", *counts]].rename(
        columns={"age_group": "breakdown", **{c: f"driver_count:{c[7:]}" for c in counts}}
    )
    full = full.astype({"level": str, "area_code": str, "breakdown": str})
    merged = merged.merge(full, on=keys, how="left")
    return merged, tuple(Basis(f"driver_count:{f}", "count", "n") for f in names)


def _driver_cells(
    grid: pd.DataFrame, bases: tuple[Basis, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cells and relations of the driver-count bases.

    The profiles carry every feature's indicator count for every area, so each driver basis
    has a complete cell per area and group, and its hierarchy and breakdown relations are
    complete. Only the counts of an area's own top drivers are meant for publication
    (``intent``); the others stay unknown to an attacker, and the audit treats them so.
    """
    cells = build_cells(grid, bases)
    top = {
        (lvl, code, brk, str(name))
        for k in range(1, N_DRIVERS + 1)
        for lvl, code, brk, name in grid[["level", "area_code", "breakdown", f"driver_{k}"]]
        .dropna()
        .itertuples(index=False)
    }
    basis_feature = cells["basis"].str.slice(len("driver_count:"))
    # an area's own top drivers, and the national cell of every driver basis: the tables
    # show each published driver's prevalence against NL
    own = np.array(
        [
            (lvl, code, brk, f) in top
            for lvl, code, brk, f in zip(
                cells["level"], cells["area_code"], cells["breakdown"], basis_feature, strict=True
            )
        ],
        dtype=bool,
    )
    cells["intent"] = own | (cells["level"] == "nederland").to_numpy()
    return cells, build_relations(grid, bases, breakdown=True)


def _parent_cols(grid: pd.DataFrame) -> list[str]:
    return [c for c in grid.columns if c.startswith("parent_")]


def _empty_relations() -> pd.DataFrame:
    return pd.DataFrame({"relation_id": [], "cell_id": [], "role": []}, dtype=object)


def roll_up_turnover(
    predictions: pd.DataFrame,
    *,
    establishments: pd.DataFrame,
    inhabitants: pd.Series,
) -> Rollup:
    """branch_turnover cell predictions + the establishments behind them → Rollup.

    Parameters
    ----------
    predictions
        One row per modelled cell: ``level`` (wijk, gemeente), ``area_code``, ``sbi``,
        ``expected_log`` (log(1 + expected turnover per inhabitant)) and ``flag``.
    establishments
        Active establishments of the publication year: ``buurt_code``, ``wijk_code``,
        ``gemeente_code``, ``riec_code``, ``sbi``, ``turnover`` (euro; missing counts as 0).
        They are the contributors of ``turnover_sum`` (dominance uses the largest two).
    inhabitants
        Inhabitants in the publication year, indexed by wijk and gemeente code.
    """
    _require(predictions, ("level", "area_code", "sbi", "expected_log", "flag"), "predictions")
    _require(
        establishments,
        ("buurt_code", "wijk_code", "gemeente_code", "riec_code", "sbi", "turnover"),
        "establishments",
    )
    levels = ("wijk", "gemeente", "riec", "nederland")
    units = establishments[["wijk_code", "gemeente_code", "riec_code", "sbi"]].assign(
        turnover_sum=establishments["turnover"].fillna(0).to_numpy(np.float64)
    )
    grid = aggregate(
        units, levels=levels, breakdown="sbi", sums=("turnover_sum",), top="turnover_sum"
    )
    # inhabitants of an area (the same for every branch); riec and NL add up their gemeenten
    inh = inhabitants.astype(np.float64)
    gem = units[["gemeente_code", "riec_code"]].drop_duplicates().astype(str)
    gem_inh = inh.reindex(gem["gemeente_code"]).fillna(0).to_numpy()
    riec_inh = pd.Series(gem_inh, index=gem["riec_code"].to_numpy()).groupby(level=0).sum()
    area_inh = pd.concat([inh, riec_inh, pd.Series({NL: gem_inh.sum()})])
    area_inh = area_inh[~area_inh.index.duplicated()]
    grid["inhabitants"] = grid["area_code"].map(area_inh).fillna(0).to_numpy()
    # expected turnover of modelled cells, added up for branch totals, riec and NL
    p = predictions.astype({"level": str, "area_code": str, "sbi": str})
    p = p[p["level"].isin(["wijk", "gemeente"])]
    modelled = grid.merge(
        p[["level", "area_code", "sbi", "expected_log", "flag"]].rename(
            columns={"sbi": "breakdown"}
        ),
        on=["level", "area_code", "breakdown"],
        how="left",
    )
    per_inh = np.expm1(modelled["expected_log"].to_numpy(np.float64))
    exp = modelled.assign(e=per_inh * modelled["inhabitants"].to_numpy())
    exp = exp[exp["level"].isin(["wijk", "gemeente"]) & (exp["breakdown"] != TOTAL)]
    gem = exp[exp["level"] == "gemeente"].assign(riec=lambda f: f["parent_riec"].astype(str))
    pieces = [
        exp[["level", "area_code", "breakdown", "e"]],
        exp.groupby(["level", "area_code"])["e"].sum().reset_index().assign(breakdown=TOTAL),
        gem.groupby(["riec", "breakdown"])["e"].sum().reset_index(),
        gem.groupby("riec")["e"].sum().reset_index().assign(breakdown=TOTAL),
        gem.groupby("breakdown")["e"].sum().reset_index().assign(area_code=NL),
        pd.DataFrame({"area_code": [NL], "breakdown": [TOTAL], "e": [gem["e"].sum()]}),
    ]
    pieces[2:4] = [
        f.rename(columns={"riec": "area_code"}).assign(level="riec") for f in pieces[2:4]
    ]
    pieces[4:6] = [f.assign(level="nederland") for f in pieces[4:6]]
    expected = pd.concat(pieces, ignore_index=True).rename(columns={"e": "expected_turnover"})
    modelled = modelled.merge(expected, on=["level", "area_code", "breakdown"], how="left")
    modelled["flag"] = modelled["flag"].astype("boolean")
    bases = (Basis("turnover_sum", "sum", "inf", own_value_known=True),)
    cells = build_cells(modelled, bases)
    relations = build_relations(modelled, bases, breakdown=True)
    return Rollup(
        task="branch_turnover",
        breakdown="branch",
        levels=levels,
        bases=bases,
        grid=modelled,
        cells=cells,
        relations=relations,
        schema=_schema("branch_turnover", profiles_used=False),
        suppression="witness",
    )


# --------------------------------------------------------------------------- level tables


def status_columns(rollup: Rollup) -> dict[str, tuple[str, str]]:
    """Basis (or driver slot) → its (status, reason) column names in the level tables."""
    if len(rollup.bases) == 1:
        return {rollup.bases[0].name: ("status", "reason")}
    out = {b.name: (f"status_{b.name}", f"reason_{b.name}") for b in _core_bases(rollup)}
    if rollup.task == "jonge_aanwas":
        for k in range(1, N_DRIVERS + 1):
            out[f"driver_{k}"] = (f"status_driver_{k}", f"reason_driver_{k}")
    return out


def _core_bases(rollup: Rollup) -> tuple[Basis, ...]:
    return tuple(b for b in rollup.bases if not b.name.startswith("driver_count:"))


def level_tables(
    rollup: Rollup,
    status: pd.DataFrame,
    *,
    areas: pd.DataFrame,
    branch_names: Mapping[str, str] | None = None,
    year: int | None = None,
) -> dict[str, pd.DataFrame]:
    """The contract's level tables, with every measure of a suppressed basis empty.

    Parameters
    ----------
    rollup
        From :func:`roll_up_binary` or :func:`roll_up_turnover`.
    status
        ``cell_id, status, reason`` from the disclosure core (one row per cell).
    areas
        ``area_code, area_name, parent_code`` of the world's areas (RIEC regions have no
        parent in the world; their parent here is ``NL``).
    branch_names
        SBI code → branch name (branch_turnover).
    year
        The publication year, written as column ``year`` of every row (after
        ``parent_code``).
    """
    grid = rollup.grid.copy()
    st = status.set_index("cell_id")
    missing_cells = ~rollup.cells["cell_id"].isin(st.index)
    if missing_cells.any():
        raise RollupError(
            f"status lacks {int(missing_cells.sum())} cell(s), e.g. "
            f"{rollup.cells['cell_id'][missing_cells].iloc[0]}: every cell needs a decision"
        )
    published: dict[str, np.ndarray] = {}
    for b in _core_bases(rollup):
        ids = cell_ids(grid, b.name)
        s = ids.map(st["status"]).fillna("suppressed")
        r = ids.map(st["reason"]).fillna("not_released")
        scol, rcol = status_columns(rollup)[b.name]
        grid[scol], grid[rcol] = s.to_numpy(), r.fillna("").to_numpy()
        published[b.name] = (s == "published").to_numpy()
    if rollup.task == "jonge_aanwas":
        # a driver slot says something only where the area's risk is published (n large
        # enough): elsewhere every slot reads "suppressed", whether or not a driver exists
        risk_ok = published["risk_sum"]
        for k in range(1, N_DRIVERS + 1):
            name = grid[f"driver_{k}"]
            has = name.notna().to_numpy() & risk_ok
            ids = grid["level"] + "|" + grid["area_code"] + "|" + grid["breakdown"]
            # driver_national_k is the pooled national share: the NL cell of the total
            nl_ids = "nederland|NL|" + TOTAL + "|driver_count:" + name.astype(str)
            ids = ids + "|driver_count:" + name.astype(str)
            s = ids.map(st["status"]).fillna("suppressed").to_numpy(object)
            r = ids.map(st["reason"]).fillna("").to_numpy(object)
            scol, rcol = status_columns(rollup)[f"driver_{k}"]
            grid[scol] = np.where(has, s, np.where(risk_ok, "", "suppressed"))
            grid[rcol] = np.where(has, r, np.where(risk_ok, "", SUPPRESSED_REASON))
            grid[f"_show_driver_{k}"] = has
            published[f"driver_{k}"] = has & (s == "published")
            published[f"driver_nl_{k}"] = has & (nl_ids.map(st["status"]) == "published").to_numpy()
    measures = _measures(rollup, grid, published)
    names = areas.set_index(areas["area_code"].astype(str))
    area_name = grid["area_code"].map(names["area_name"]).where(grid["level"] != "nederland")
    parent = grid["area_code"].map(names["parent_code"])
    parent = parent.where(parent.notna() & (parent.astype(str) != ""), NL)
    base = pd.DataFrame(
        {
            "area_code": grid["area_code"],
            "area_name": area_name.fillna("Nederland").astype(str),
            "level": grid["level"],
            "parent_code": parent.where(grid["level"] != "nederland", "").astype(str),
        }
    )
    if year is not None:
        base["year"] = np.int64(year)
    if rollup.breakdown == "age_group":
        base["age_group"] = grid["breakdown"]
    elif rollup.breakdown == "branch":
        base["branch"] = grid["breakdown"]
        bn = dict(branch_names or {})
        base["branch_name"] = [
            bn.get(c, "Alle branches" if c == TOTAL else "") for c in grid["breakdown"]
        ]
    base["n"] = grid["n"].astype(np.int64)
    table = pd.concat([base, measures], axis=1)
    for scol, rcol in status_columns(rollup).values():
        table[scol], table[rcol] = grid[scol].astype(str), grid[rcol].astype(str)
    if rollup.breakdown == "age_group":
        rank = {v: f"{i}" for i, v in enumerate((*AGE_GROUPS, TOTAL))}
        table["_b"] = grid["breakdown"].map(rank).fillna("9")
    else:  # branches in code order, the branch total last
        table["_b"] = np.where(grid["breakdown"] == TOTAL, "~", grid["breakdown"])
    out = {}
    for level in rollup.levels:
        t = table[table["level"] == level].sort_values(["area_code", "_b"], kind="stable")
        out[level] = t.drop(columns="_b").reset_index(drop=True)
    return out


def _measures(rollup: Rollup, grid: pd.DataFrame, published: dict[str, np.ndarray]) -> pd.DataFrame:
    """Measures from the bases; NaN (empty) where their basis is not published."""
    n = grid["n"].to_numpy(np.float64)
    m = pd.DataFrame(index=grid.index)
    if rollup.task in ("hennep", "jonge_aanwas"):
        ok, oke = published["risk_sum"], published["elevated_count"]
        risk_mean = grid["risk_sum"].to_numpy() / n
        nl = pd.Series(
            risk_mean[grid["level"] == "nederland"],
            index=grid["breakdown"][grid["level"] == "nederland"],
        )
        nl_mean = grid["breakdown"].map(nl).to_numpy(np.float64)
        m["risk_mean"] = np.where(ok, risk_mean, np.nan)
        if rollup.task == "hennep":
            m["expected_per_1000"] = np.where(ok, 1000 * risk_mean, np.nan)
        m["elevated_share"] = np.where(oke, grid["elevated_count"].to_numpy() / n, np.nan)
        m["index"] = np.where(ok, 100 * risk_mean / nl_mean, np.nan)
        if rollup.task == "jonge_aanwas":
            names = grid[[f"driver_{k}" for k in range(1, N_DRIVERS + 1)]]
            joined = names.apply(lambda r: ";".join(str(v) for v in r if pd.notna(v)), axis=1)
            m["top_drivers"] = joined.where(ok, "").astype(str) if len(grid) else ""
            for k in range(1, N_DRIVERS + 1):
                pk, nk = published[f"driver_{k}"], published[f"driver_nl_{k}"]
                m[f"driver_{k}"] = names[f"driver_{k}"].where(grid[f"_show_driver_{k}"], pd.NA)
                m[f"driver_prevalence_{k}"] = np.where(
                    pk, grid[f"driver_count_{k}"].to_numpy(np.float64) / n, np.nan
                )
                # the national share of the same units as n (NL total row of the grid), so a
                # published share and its NL cell agree whatever n counts
                nl_row = grid[(grid["level"] == "nederland") & (grid["breakdown"] == TOTAL)]
                nl_share = {
                    c.removeprefix("driver_count:"): float(nl_row[c].iloc[0] / nl_row["n"].iloc[0])
                    for c in grid.columns
                    if c.startswith("driver_count:") and len(nl_row) and nl_row["n"].iloc[0] > 0
                }
                share = names[f"driver_{k}"].map(nl_share).to_numpy(np.float64, na_value=np.nan)
                m[f"driver_prevalence_nl_{k}"] = np.where(nk, share, np.nan)
    else:
        ok = published["turnover_sum"]
        inh = grid["inhabitants"].to_numpy(np.float64)
        has = ok & (inh > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            real = grid["turnover_sum"].to_numpy(np.float64) / inh
            exp = grid["expected_turnover"].to_numpy(np.float64) / inh
            ratio = grid["turnover_sum"].to_numpy(np.float64) / grid["expected_turnover"].to_numpy(
                np.float64
            )
        m["inhabitants"] = inh.astype(np.int64)
        m["turnover_per_inhabitant"] = np.where(has, real, np.nan)
        m["expected_per_inhabitant"] = np.where(has & np.isfinite(exp), exp, np.nan)
        m["deviation_ratio"] = np.where(has & np.isfinite(ratio), ratio, np.nan)
        m["flag"] = pd.array(grid["flag"].to_numpy(), dtype="boolean")
        m.loc[~has, "flag"] = pd.NA
    for col in m.columns:
        digits = precision(col)
        if digits is not None:
            m[col] = m[col].round(digits)
    return m


#: decimals every published figure is rounded to (stated per measure in schema.json): no
#: full-precision mean or share that, times ``n``, gives its basis back to the last unit
PRECISION = {
    "n": 0,
    "inhabitants": 0,
    "risk_mean": 5,
    "expected_per_1000": 2,
    "elevated_share": 3,
    "index": 1,
    "driver_prevalence": 3,
    "driver_prevalence_nl": 3,
    "turnover_per_inhabitant": 0,
    "expected_per_inhabitant": 0,
    "deviation_ratio": 3,
}


def precision(measure: str) -> int | None:
    """Decimals of a published measure (``driver_prevalence_2`` → that of its family)."""
    if measure in PRECISION:
        return PRECISION[measure]
    family = measure.rstrip("0123456789").rstrip("_")
    return PRECISION.get(family)


# --------------------------------------------------------------------------- schema

#: every column of the public tables: Dutch label, and what it holds in English and Dutch
#: (measures take their English text from the schema's measures)
COLUMN_DOCS: dict[str, tuple[str, str, str]] = {
    "area_code": (
        "gebiedscode",
        "CBS code of the area: RIEC01..RIEC10, GM (gemeente), WK (wijk), BU (buurt), or NL",
        "CBS-code van het gebied: RIEC01..RIEC10, GM (gemeente), WK (wijk), BU (buurt) of NL",
    ),
    "area_name": ("gebiedsnaam", "name of the area", "naam van het gebied"),
    "level": (
        "niveau",
        "level of the area: buurt, wijk, gemeente, riec or nederland",
        "niveau van het gebied: buurt, wijk, gemeente, riec of nederland",
    ),
    "parent_code": (
        "bovenliggend gebied",
        "code of the area one level up (empty for NL)",
        "code van het gebied een niveau hoger (leeg voor NL)",
    ),
    "year": (
        "jaar",
        "publication year: the year the figures are about",
        "publicatiejaar: het jaar waarover de cijfers gaan",
    ),
    "age_group": (
        "leeftijdsgroep",
        "age group 8-12, 13-19, 20-23, or total",
        "leeftijdsgroep 8-12, 13-19, 20-23, of total (alle)",
    ),
    "branch": (
        "branche (SBI)",
        "branch as SBI code, or total (all branches)",
        "branche als SBI-code, of total (alle branches)",
    ),
    "branch_name": ("branchenaam", "name of the branch", "naam van de branche"),
    "status": (
        "status",
        "published, or suppressed (the measures of this row are then empty)",
        "published (gepubliceerd), of suppressed (onderdrukt: de maten van deze rij zijn leeg)",
    ),
    "reason": (
        "reden",
        "empty when published, 'suppressed' when suppressed (which rule fired is not said)",
        "leeg als gepubliceerd, 'suppressed' als onderdrukt (welke regel gold wordt niet gezegd)",
    ),
}

#: Dutch label and text of every measure
MEASURE_NL: dict[str, tuple[str, str]] = {
    "n": ("aantal", "aantal eenheden (zie de beschrijving per taak); altijd gepubliceerd"),
    "inhabitants": ("inwoners", "inwoners van het gebied (kerncijfer); altijd gepubliceerd"),
    "risk_mean": ("gemiddeld risico", "gemiddelde gekalibreerde kans per eenheid"),
    "expected_per_1000": (
        "verwacht per 1.000 woningen",
        "verwacht aantal opgerolde hennepkwekerijen per 1.000 woningen",
    ),
    "elevated_share": (
        "aandeel verhoogd risico",
        "aandeel eenheden met een score boven de landelijke 10%-grens",
    ),
    "index": ("index (NL = 100)", "100 × gemiddeld risico ÷ landelijk gemiddeld risico"),
    "top_drivers": (
        "belangrijkste factoren",
        "tot 3 factoren (namen uit de catalogus) met de grootste positieve SHAP-bijdrage",
    ),
    "driver": ("factor", "de factor van het gebied op deze plaats"),
    "driver_prevalence": ("aandeel met factor", "aandeel eenheden met de indicator van de factor"),
    "driver_prevalence_nl": (
        "aandeel met factor in NL",
        "landelijk aandeel eenheden met de indicator van de factor",
    ),
    "turnover_per_inhabitant": (
        "omzet per inwoner",
        "gerealiseerde omzet ÷ inwoners, in euro; leeg zonder inwoners",
    ),
    "expected_per_inhabitant": (
        "verwachte omzet per inwoner",
        "door het model verwachte omzet ÷ inwoners, in euro",
    ),
    "deviation_ratio": ("afwijkingsratio", "gerealiseerde ÷ verwachte omzet"),
    "flag": (
        "signaal",
        "robuuste z-score van de log-afwijking boven 3 (eenzijdig): opvallend hoge omzet",
    ),
}


def column_doc(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Dutch label, English and Dutch text, type and precision of one public column."""
    measures = schema.get("measures", {})
    family = name.rstrip("0123456789").rstrip("_")
    base = name
    for prefix in ("status", "reason"):
        if name == prefix or name.startswith(prefix + "_"):
            base = prefix
    if base in COLUMN_DOCS:
        label, en, nl = COLUMN_DOCS[base]
        if base != name:
            basis = name.removeprefix(base + "_")
            label, en, nl = f"{label} ({basis})", f"{en}; for basis {basis}", f"{nl}; basis {basis}"
        kind = "integer" if name == "year" else "text"
        return {"label_nl": label, "description": en, "description_nl": nl, "type": kind}
    spec = measures.get(name, {})
    label, nl = MEASURE_NL.get(name, MEASURE_NL.get(family, (name, "")))
    if family != name and family in ("driver", "driver_prevalence", "driver_prevalence_nl"):
        k = name.removeprefix(family + "_")
        label, nl = f"{label} {k}", f"{nl} (factor {k})"
    kind = "number"
    if name == "flag":
        kind = "boolean"
    elif family in ("driver", "top_drivers"):
        kind = "text"
    elif name in ("n", "inhabitants"):
        kind = "integer"
    doc = {
        "label_nl": label,
        "description": spec.get("description", ""),
        "description_nl": nl,
        "type": kind,
    }
    digits = precision(name)
    if digits is not None:
        doc["precision"] = digits
    return doc


def _measure(
    kind: str, basis: str | None, weight: str | None, status: str, text: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": kind, "status": status, "description": text}
    if basis is not None:
        spec["basis"] = {"kind": kind, "basis": basis, "weight": weight}
    return spec


def _schema(task: str, *, profiles_used: bool) -> dict[str, Any]:
    """schema.json content: per measure its kind, additive basis, weight and status column."""
    if task == "branch_turnover":
        st = "status"
        measures = {
            "n": _measure("count", None, None, "always published", "active establishments"),
            "inhabitants": _measure(
                "count", None, None, "always published", "inhabitants of the area (key figure)"
            ),
            "turnover_per_inhabitant": _measure(
                "ratio",
                "turnover_sum",
                "inhabitants",
                st,
                "realised turnover ÷ inhabitants, euro; empty without inhabitants",
            ),
            "expected_per_inhabitant": _measure(
                "derived",
                "turnover_sum",
                "inhabitants",
                st,
                "model-expected turnover ÷ inhabitants (champion, out of sample); riec, NL "
                "and branch totals add up the expected turnover of their modelled cells",
            ),
            "deviation_ratio": _measure(
                "derived", "turnover_sum", None, st, "realised ÷ expected turnover"
            ),
            "flag": _measure(
                "derived",
                "turnover_sum",
                None,
                st,
                "robust z of the log deviation > 3 (one-sided); only for modelled cells "
                "(wijk × branch, gemeente × branch), empty for totals, riec and NL",
            ),
        }
        notes = [
            "branch_turnover has no buurt level (buurten are too small for turnover): "
            "buurt.csv is not written; areas.geojson carries wijk polygons with the wijk "
            "table's columns for the branch total rows.",
            "maps: map_gemeente.png shows the deviation_ratio of the branch total per "
            "gemeente, map_buurt.png the same per wijk (there is no buurt level).",
        ]
    else:
        s1, s2 = "status_risk_sum", "status_elevated_count"
        measures = {
            "n": _measure(
                "count",
                None,
                None,
                "always published",
                "residents of the age group (alive, registered in a household), "
                "per age group and total; youths with an earlier drug suspicion included"
                if task == "jonge_aanwas"
                else "dwellings",
            ),
            "risk_mean": _measure(
                "mean",
                "risk_sum",
                "n",
                s1,
                "expected first drug-offence suspicions in the follow-up window per resident "
                "(a resident with an earlier suspicion counts 0)"
                if task == "jonge_aanwas"
                else "mean calibrated probability of the label",
            ),
            "elevated_share": _measure(
                "share",
                "elevated_count",
                "n",
                s2,
                "share of units whose score is above the national top-decile threshold"
                + (" of their age group" if task == "jonge_aanwas" else ""),
            ),
            "index": _measure(
                "derived", "risk_sum", "n", s1, "100 × risk_mean ÷ national risk_mean (NL = 100)"
            ),
        }
        if task == "hennep":
            measures["expected_per_1000"] = _measure(
                "derived", "risk_sum", "n", s1, "expected dismantled farms per 1,000 dwellings"
            )
        notes = []
        if task == "jonge_aanwas":
            measures["top_drivers"] = _measure(
                "derived",
                "risk_sum",
                None,
                s1,
                "up to 3 catalogue names (largest positive mean SHAP in the area), ';'-joined",
            )
            for k in range(1, N_DRIVERS + 1):
                sk = f"status_driver_{k}"
                measures[f"driver_{k}"] = _measure(
                    "derived", f"driver_count:<driver_{k}>", None, sk, f"the area's driver {k}"
                )
                measures[f"driver_prevalence_{k}"] = _measure(
                    "share",
                    f"driver_count:<driver_{k}>",
                    "n",
                    sk,
                    f"share of units with driver {k}'s indicator",
                )
                measures[f"driver_prevalence_nl_{k}"] = _measure(
                    "share",
                    f"driver_count:<driver_{k}>",
                    "n",
                    sk,
                    f"national share of units with driver {k}'s indicator",
                )
            if not profiles_used:
                notes.append(
                    "no area driver profiles were available (run `zicht explain jonge_aanwas`): "
                    "top_drivers and driver_* columns are empty"
                )
    for name, spec in measures.items():
        digits = precision(name)
        if digits is not None:
            spec["precision"] = digits
    notes.append(
        "every measure with a 'precision' is rounded to that many decimals; the disclosure "
        "audit treats the published figures as exact, so it is conservative about rounding"
    )
    notes.append(
        "a suppressed cell's reason is always 'suppressed': which rule fired is itself a "
        "statement about the units in the cell"
    )
    return {"task": task, "measures": measures, "notes": notes}
