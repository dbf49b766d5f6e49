"""The attacker's view: intervals of suppressed cells by linear programming (HiGHS).

An attacker knows every published cell, ``n``, that values are non-negative and each cell's
``upper`` bound, and every relation (total = sum of parts). For each suppressed cell the
audit solves ``min x_c`` and ``max x_c`` over the polytope of unknown cells. The problem
splits into connected components of suppressed cells linked by relations; each component is
one HiGHS model solved repeatedly with warm starts, changing only the objective.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.sparse.csgraph import connected_components

from disclosure.primary import required_protection_unchecked, validate_cells
from disclosure.settings import DisclosureInputError, RuleSettings

try:  # HiGHS as vendored by scipy: one model per component, re-solved with warm starts
    from scipy.optimize._highspy import _core as _highs
except ImportError:  # pragma: no cover - older or newer scipy: fall back to linprog per LP
    _highs = None

RELATION_COLUMNS = ("relation_id", "cell_id", "role")


@dataclass(frozen=True)
class Linked:
    """A cell table's relations as a sparse incidence matrix (relations x cells).

    Entries are +1 for a relation's total and -1 for its parts, so ``matrix @ value == 0``.
    """

    cell_ids: np.ndarray
    matrix: sp.csr_matrix
    value: np.ndarray
    upper: np.ndarray


def link(cells: pd.DataFrame, relations: pd.DataFrame) -> Linked:
    """Check *relations* against *cells* and build the incidence matrix.

    Raises
    ------
    DisclosureInputError
        When a column is missing, a role is unknown, a relation lacks exactly one total or
        any part, a relation mixes bases, names an unknown cell, or does not add up.
    """
    validate_cells(cells)
    missing = [c for c in RELATION_COLUMNS if c not in relations.columns]
    if missing:
        raise DisclosureInputError(
            f"relations: missing columns {missing}. Fix: give relation_id, cell_id and role"
        )
    rel = relations.loc[:, list(RELATION_COLUMNS)]
    bad_role = ~rel["role"].isin(["total", "part"])
    if bad_role.any():
        raise DisclosureInputError(
            f"relations: column role must be 'total' or 'part' (relation "
            f"{rel.loc[bad_role, 'relation_id'].iloc[0]}). Fix: correct the roll-up relations"
        )
    if rel.duplicated(["relation_id", "cell_id"]).any():
        first = rel.loc[rel.duplicated(["relation_id", "cell_id"]), "relation_id"].iloc[0]
        raise DisclosureInputError(
            f"relations: a cell appears twice in relation {first}. Fix: list each cell once"
        )
    ids = pd.Index(cells["cell_id"])
    col = ids.get_indexer(rel["cell_id"])
    if (col < 0).any():
        unknown = rel.loc[col < 0, "cell_id"].iloc[0]
        raise DisclosureInputError(
            f"relations: column cell_id names {unknown!r}, which is not in the cell table. "
            "Fix: add the cell or drop the relation"
        )
    rel_codes, rel_names = pd.factorize(rel["relation_id"])
    is_total = (rel["role"] == "total").to_numpy()
    totals = np.bincount(rel_codes, weights=is_total, minlength=len(rel_names))
    parts = np.bincount(rel_codes, weights=~is_total, minlength=len(rel_names))
    bad = (totals != 1) | (parts < 1)
    if bad.any():
        raise DisclosureInputError(
            f"relations: relation {rel_names[np.flatnonzero(bad)[0]]} must have exactly one "
            "total and at least one part. Fix: correct the roll-up relations"
        )
    basis = cells["basis"].to_numpy()[col]
    n_basis = pd.Series(basis).groupby(rel_codes).nunique().to_numpy()
    if (n_basis > 1).any():
        raise DisclosureInputError(
            f"relations: relation {rel_names[np.flatnonzero(n_basis > 1)[0]]} mixes bases. "
            "Fix: relate cells of one additive basis only"
        )
    coef = np.where(is_total, 1.0, -1.0)
    matrix = sp.csr_matrix((coef, (rel_codes, col)), shape=(len(rel_names), len(cells)))
    value = cells["value"].to_numpy(dtype=float)
    gap = np.abs(matrix @ value)
    scale = abs(matrix) @ value
    off = gap > 1e-9 * np.maximum(scale, 1.0)
    if off.any():
        r = int(np.flatnonzero(off)[0])
        raise DisclosureInputError(
            f"relations: relation {rel_names[r]} does not add up (total - parts = "
            f"{(matrix @ value)[r]:.6g}). Fix: roll the parts up again"
        )
    return Linked(
        cell_ids=ids.to_numpy(),
        matrix=matrix,
        value=value,
        upper=cells["upper"].to_numpy(dtype=float),
    )


@dataclass(frozen=True)
class Components:
    """Connected components of unknown cells linked through relations.

    ``label[c]`` is the component of cell c (-1 for published cells). Only relations with an
    unknown cell take part; ``rows`` lists them.
    """

    label: np.ndarray
    count: int


def components(linked: Linked, unknown: np.ndarray) -> Components:
    """Label the connected components of the *unknown* cells."""
    u_idx = np.flatnonzero(unknown)
    sub = linked.matrix[:, u_idx]
    n_rows = sub.shape[0]
    pattern = abs(sub).astype(bool).astype(np.int8)
    graph = sp.bmat([[None, pattern], [pattern.T, None]], format="csr")
    count, lab = connected_components(graph, directed=False)
    label = np.full(len(unknown), -1, dtype=np.int64)
    label[u_idx] = lab[n_rows:]
    return Components(label=label, count=int(count))


def intervals(
    linked: Linked,
    unknown: np.ndarray,
    targets: Iterable[int],
    *,
    need: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's (lower, upper) for each target cell index (each must be unknown).

    With *need* = (req_lower, req_upper) per target, a side is not optimised when a feasible
    point already reaches it (the true values, or an optimum found for another cell of the
    component): that side's bound is then the witnessed value, which lies inside the exact
    interval and already meets the requirement. Enough to decide :func:`protection_ok`; the
    numbers are exact only for sides that fall short. Without *need* every bound is exact.
    """
    targets = np.asarray(list(targets), dtype=np.int64)
    lower = np.zeros(len(targets))
    upper = np.zeros(len(targets))
    if not len(targets):
        return lower, upper
    if not unknown[targets].all():
        raise ValueError("intervals: every target must be an unknown (suppressed) cell")
    comp = components(linked, unknown)
    known_value = np.where(unknown, 0.0, linked.value)
    rhs_all = -(linked.matrix @ known_value)
    # all unknown columns once, sorted by component: each component is a contiguous block
    u_idx = np.flatnonzero(unknown)
    lab_u = comp.label[u_idx]
    by_comp = np.argsort(lab_u, kind="stable")
    cols_sorted, lab_sorted = u_idx[by_comp], lab_u[by_comp]
    sub = linked.matrix.tocsc()[:, cols_sorted].tocsc()
    sub.sort_indices()
    tlab = comp.label[targets]
    if _highs is not None and need is not None:  # protect(): only pass/fail needed
        return _solve_batched(linked, sub, cols_sorted, lab_sorted, rhs_all, targets, tlab, need)
    # exact bounds (audit): one small model per component is faster than the joint one
    order = np.argsort(tlab, kind="stable")
    bounds = np.flatnonzero(np.diff(tlab[order])) + 1
    for group in np.split(order, bounds):
        a = int(np.searchsorted(lab_sorted, tlab[group[0]], side="left"))
        b = int(np.searchsorted(lab_sorted, tlab[group[0]], side="right"))
        cols = cols_sorted[a:b]
        p0, p1 = sub.indptr[a], sub.indptr[b]
        rows, local = np.unique(sub.indices[p0:p1], return_inverse=True)
        block = (sub.indptr[a : b + 1] - p0, local.astype(np.int32), sub.data[p0:p1])
        where = np.searchsorted(cols, targets[group])
        lo, hi = _solve_component(block, len(rows), rhs_all[rows], linked.upper[cols], where)
        lower[group], upper[group] = lo, hi
    return lower, upper


def _solve_batched(
    linked: Linked,
    sub: sp.csc_matrix,
    cols_sorted: np.ndarray,
    lab_sorted: np.ndarray,
    rhs_all: np.ndarray,
    targets: np.ndarray,
    tlab: np.ndarray,
    need: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """All components that hold a target in one block-diagonal HiGHS model.

    Components share no row, so minimising the sum of one target per component minimises
    each of them: one solve answers a target in every component at once, and the model is
    re-solved with warm starts, changing only the objective. A side whose witnessed extreme
    (true values, or any optimum found so far) already reaches *need* is not optimised.
    When the joint maximum is unbounded, the picked targets are maximised one by one.
    """
    keep = np.isin(lab_sorted, tlab)
    cols, clab = cols_sorted[keep], lab_sorted[keep]
    a = sub[:, np.flatnonzero(keep)].tocsc()
    rows, local = np.unique(a.indices, return_inverse=True)
    pos = np.full(len(linked.value), -1, dtype=np.int64)
    pos[cols] = np.arange(len(cols))
    tcol = pos[targets]
    ub = linked.upper[cols]
    lower = np.zeros(len(targets))
    upper = np.zeros(len(targets))
    free = np.diff(a.indptr)[tcol] == 0  # in no relation: only its own bounds
    upper[free] = ub[tcol[free]]
    seen_lo = linked.value[cols].astype(float)
    seen_hi = seen_lo.copy()
    reach = None
    if need is not None:
        v = linked.value[targets]
        reach = (v - need[0], v + need[1])
    n_rows, n_cols = len(rows), len(cols)
    lp = _highs.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n_cols, n_rows
    lp.a_matrix_.format_ = _highs.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = local.astype(np.int32)
    lp.a_matrix_.value_ = a.data.astype(float)
    lp.col_cost_ = np.zeros(n_cols)
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = np.where(np.isfinite(ub), ub, _highs.kHighsInf)
    lp.row_lower_ = rhs_all[rows].astype(float)
    lp.row_upper_ = rhs_all[rows].astype(float)
    solver = _highs._Highs()
    solver.setOptionValue("output_flag", False)
    solver.passModel(lp)
    optimal = _highs.HighsModelStatus.kOptimal
    unbounded = (
        _highs.HighsModelStatus.kUnbounded,
        _highs.HighsModelStatus.kUnboundedOrInfeasible,
    )

    def solve(picked_cols: np.ndarray, sign: float) -> np.ndarray | None:
        for j in picked_cols:
            solver.changeColCost(int(j), sign)
        solver.run()
        status = solver.getModelStatus()
        if status != optimal and status not in unbounded:
            solver.clearSolver()  # a warm start gone wrong (seen with sums in the 1e9s): cold
            solver.run()
            status = solver.getModelStatus()
        for j in picked_cols:
            solver.changeColCost(int(j), 0.0)
        if status == optimal:
            x = np.clip(np.asarray(solver.getSolution().col_value), 0.0, ub)
            np.minimum(seen_lo, x, out=seen_lo)
            np.maximum(seen_hi, x, out=seen_hi)
            return x
        if status in unbounded and sign < 0:
            return None
        raise RuntimeError(f"audit LP: {solver.modelStatusToString(status)}")  # pragma: no cover

    for side, sign, out in ((0, 1.0, lower), (1, -1.0, upper)):
        pending = np.flatnonzero(~free)
        while len(pending):
            if reach is not None:
                seen = (seen_lo if side == 0 else seen_hi)[tcol[pending]]
                done = seen <= reach[0][pending] if side == 0 else seen >= reach[1][pending]
                out[pending[done]] = seen[done]
                pending = pending[~done]
                if not len(pending):
                    break
            comps, first = np.unique(tlab[pending], return_index=True)
            if len(comps) < TAIL:  # few components left: small models beat the joint one
                _tail(
                    a,
                    local,
                    clab,
                    rhs_all[rows],
                    ub,
                    tcol,
                    tlab,
                    pending,
                    side,
                    out,
                    (seen_lo, seen_hi),
                    reach,
                )
                break
            picked = pending[first]
            pending = np.delete(pending, first)
            x = solve(tcol[picked], sign)
            if x is not None:
                out[picked] = x[tcol[picked]]
                continue
            for t in picked:  # some maximum is unbounded: find which, one at a time
                x = solve(tcol[t : t + 1], sign)
                out[t] = np.inf if x is None else x[tcol[t]]
    return lower, upper


TAIL = 16


def _tail(
    a: sp.csc_matrix,
    local: np.ndarray,
    clab: np.ndarray,
    rhs: np.ndarray,
    ub: np.ndarray,
    tcol: np.ndarray,
    tlab: np.ndarray,
    pending: np.ndarray,
    side: int,
    out: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    reach: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Exact *side* bounds of the *pending* targets, one small model per component.

    Columns are sorted by component (*clab*), so each block is a slice of column pointers.
    """
    for lab in np.unique(tlab[pending]):
        mine = pending[tlab[pending] == lab]
        lo_c = int(np.searchsorted(clab, lab, side="left"))
        hi_c = int(np.searchsorted(clab, lab, side="right"))
        p0, p1 = a.indptr[lo_c], a.indptr[hi_c]
        rows, sub_local = np.unique(local[p0:p1], return_inverse=True)
        block = (a.indptr[lo_c : hi_c + 1] - p0, sub_local.astype(np.int32), a.data[p0:p1])
        where = tcol[mine] - lo_c
        lo, hi = _solve_component(
            block,
            len(rows),
            rhs[rows],
            ub[lo_c:hi_c],
            where,
            seen=(seen[0][lo_c:hi_c], seen[1][lo_c:hi_c]),  # views: updated in place
            reach=None if reach is None else (reach[0][mine], reach[1][mine]),
            sides=((0, 1.0),) if side == 0 else ((1, -1.0),),
        )
        out[mine] = lo if side == 0 else hi


def _solve_component(
    a: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_rows: int,
    rhs: np.ndarray,
    ub: np.ndarray,
    where: np.ndarray,
    *,
    seen: tuple[np.ndarray, np.ndarray] | None = None,
    reach: tuple[np.ndarray, np.ndarray] | None = None,
    sides: tuple[tuple[int, float], ...] = ((0, 1.0), (1, -1.0)),
) -> tuple[np.ndarray, np.ndarray]:
    """min and max of each variable in *where* over {a x = rhs, 0 <= x <= ub}.

    *a* is column-wise (indptr, indices, data). With *reach* = (low, high) per target and
    *seen* = the least and greatest value of each variable over known feasible points, a
    side whose witnessed extreme already reaches low (resp. high) is not optimised and
    returns the witnessed value. Only *sides* are optimised (0: min, 1: max); others stay 0.
    """
    indptr, indices, data = a
    n_cols = len(indptr) - 1
    if n_rows == 0:
        return np.zeros(len(where)), ub[where].astype(float)
    if _highs is None:  # pragma: no cover
        mat = sp.csc_matrix((data, indices, indptr), shape=(n_rows, n_cols))
        return _solve_linprog(mat, rhs, ub, where)
    lp = _highs.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n_cols, n_rows
    lp.a_matrix_.format_ = _highs.MatrixFormat.kColwise
    lp.a_matrix_.start_ = indptr.astype(np.int32)
    lp.a_matrix_.index_ = indices.astype(np.int32)
    lp.a_matrix_.value_ = data.astype(float)
    lp.col_cost_ = np.zeros(n_cols)
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = np.where(np.isfinite(ub), ub, _highs.kHighsInf)
    lp.row_lower_ = rhs.astype(float)
    lp.row_upper_ = rhs.astype(float)
    solver = _highs._Highs()
    solver.setOptionValue("output_flag", False)
    solver.passModel(lp)
    out = np.zeros((2, len(where)))
    unbounded = (
        _highs.HighsModelStatus.kUnbounded,
        _highs.HighsModelStatus.kUnboundedOrInfeasible,
    )
    seen_lo, seen_hi = seen if seen is not None else (np.zeros(n_cols), np.zeros(n_cols))
    for i, j in enumerate(where):
        j = int(j)
        for side, sign in sides:
            if reach is not None and (
                seen_lo[j] <= reach[0][i] if side == 0 else seen_hi[j] >= reach[1][i]
            ):
                out[side, i] = seen_lo[j] if side == 0 else seen_hi[j]
                continue
            solver.changeColCost(j, sign)
            solver.run()
            status = solver.getModelStatus()
            if status != _highs.HighsModelStatus.kOptimal and status not in unbounded:
                solver.clearSolver()  # a warm start gone wrong: solve again from a cold start
                solver.run()
                status = solver.getModelStatus()
            if status == _highs.HighsModelStatus.kOptimal:
                out[side, i] = sign * solver.getInfo().objective_function_value
                if reach is not None:
                    x = np.clip(np.asarray(solver.getSolution().col_value), 0.0, ub)
                    np.minimum(seen_lo, x, out=seen_lo)
                    np.maximum(seen_hi, x, out=seen_hi)
            elif status in unbounded and side == 1:
                out[side, i] = np.inf
            else:  # pragma: no cover - the true values are always feasible
                raise RuntimeError(f"audit LP: {solver.modelStatusToString(status)}")
            solver.changeColCost(j, 0.0)
    return out[0], out[1]


def _solve_linprog(
    a: sp.csc_matrix, rhs: np.ndarray, ub: np.ndarray, where: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - used only without vendored HiGHS
    out = np.zeros((2, len(where)))
    bounds = [(0.0, None if not np.isfinite(u) else float(u)) for u in ub]
    for i, j in enumerate(where):
        for side, sign in ((0, 1.0), (1, -1.0)):
            c = np.zeros(a.shape[1])
            c[j] = sign
            res = linprog(c, A_eq=a, b_eq=rhs, bounds=bounds, method="highs")
            out[side, i] = sign * res.fun if res.status == 0 else np.inf
    return out[0], out[1]


def unknown_mask(cells: pd.DataFrame, status: pd.DataFrame) -> np.ndarray:
    """True for cells the attacker does not see: suppressed or never released."""
    if not {"cell_id", "status"} <= set(status.columns):
        raise DisclosureInputError("status: needs columns cell_id and status")
    by_id = status.set_index("cell_id")["status"]
    seen = by_id.reindex(cells["cell_id"])
    if seen.isna().any():
        raise DisclosureInputError(
            f"status: no row for cell {seen.index[seen.isna()][0]!r}. "
            "Fix: pass the status of protect() for the same cell table"
        )
    published = (seen == "published").to_numpy()
    return ~published | ~cells["intent"].to_numpy(dtype=bool)


def protection_ok(
    value: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    req_lower: np.ndarray,
    req_upper: np.ndarray,
) -> np.ndarray:
    """True where the interval reaches the required protection on both sides."""
    tol = 1e-7 * np.maximum(1.0, np.abs(value))
    return (value - lower >= req_lower - tol) & (upper - value >= req_upper - tol)


def audit(
    cells: pd.DataFrame,
    relations: pd.DataFrame,
    status: pd.DataFrame,
    settings: RuleSettings,
    *,
    known: np.ndarray | None = None,
) -> pd.DataFrame:
    """The attacker's interval for every cell it does not see (secure zone only): suppressed
    ones and those never released, which must not be pinned by the relations either.

    Parameters
    ----------
    cells, relations
        The cell table and its relations.
    status
        ``cell_id`` and ``status`` (``published`` or ``suppressed``), e.g. ``protect().status``.
    settings
        Rule settings that give the required protection.
    known
        Cells the attacker knows from earlier releases that are still public (boolean,
        aligned with *cells*): fixed at their value like published ones, whatever *status*
        says. The audit of a new version over every version still public.

    Returns
    -------
    DataFrame
        ``cell_id, lower, upper, req_lower, req_upper, ok`` where ``ok`` means the interval
        reaches ``value - req_lower`` and ``value + req_upper``. Never export these numbers.
    """
    linked = link(cells, relations)
    hidden = unknown_mask(cells, status)
    seen = np.zeros(len(cells), bool) if known is None else np.asarray(known, dtype=bool)
    unknown = hidden & ~seen
    targets = np.flatnonzero(hidden)
    # a cell suppressed now but known from an earlier release is pinned at its value
    lower = linked.value[targets].astype(float)
    upper = lower.copy()
    solve = ~seen[targets]
    lower[solve], upper[solve] = intervals(linked, unknown, targets[solve])
    req = required_protection_unchecked(cells, settings)
    req_lower = req["req_lower"].to_numpy()[targets]
    req_upper = req["req_upper"].to_numpy()[targets]
    ok = protection_ok(linked.value[targets], lower, upper, req_lower, req_upper)
    return pd.DataFrame(
        {
            "cell_id": linked.cell_ids[targets],
            "lower": lower,
            "upper": upper,
            "req_lower": req_lower,
            "req_upper": req_upper,
            "ok": ok,
        }
    )
