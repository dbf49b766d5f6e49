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
    linked: Linked, unknown: np.ndarray, targets: Iterable[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The attacker's (lower, upper) for each target cell index (each must be unknown)."""
    targets = np.asarray(list(targets), dtype=np.int64)
    lower = np.zeros(len(targets))
    upper = np.zeros(len(targets))
    if not len(targets):
        return lower, upper
    if not unknown[targets].all():
        raise ValueError("intervals: every target must be an unknown (suppressed) cell")
    comp = components(linked, unknown)
    csc = linked.matrix.tocsc()
    known_value = np.where(unknown, 0.0, linked.value)
    rhs_all = -(linked.matrix @ known_value)
    tlab = comp.label[targets]
    order = np.argsort(tlab, kind="stable")
    bounds = np.flatnonzero(np.diff(tlab[order])) + 1
    members_by_label = pd.Series(np.flatnonzero(unknown)).groupby(comp.label[unknown]).indices
    unknown_idx = np.flatnonzero(unknown)
    for group in np.split(order, bounds):
        cols = unknown_idx[members_by_label[tlab[group[0]]]]
        block = csc[:, cols]
        rows = np.unique(block.indices)
        block = block[rows, :].tocsc()
        lo, hi = _solve_component(
            block, rhs_all[rows], linked.upper[cols], np.searchsorted(cols, targets[group])
        )
        lower[group], upper[group] = lo, hi
    return lower, upper


def _solve_component(
    a: sp.csc_matrix, rhs: np.ndarray, ub: np.ndarray, where: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """min and max of each variable in *where* over {a x = rhs, 0 <= x <= ub}."""
    n_rows, n_cols = a.shape
    if n_rows == 0:
        return np.zeros(len(where)), ub[where].astype(float)
    if _highs is None:  # pragma: no cover
        return _solve_linprog(a, rhs, ub, where)
    lp = _highs.HighsLp()
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n_cols, n_rows
    lp.a_matrix_.format_ = _highs.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data.astype(float)
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
    for i, j in enumerate(where):
        for side, sign in ((0, 1.0), (1, -1.0)):
            solver.changeColCost(int(j), sign)
            solver.run()
            status = solver.getModelStatus()
            if status == _highs.HighsModelStatus.kOptimal:
                out[side, i] = sign * solver.getInfo().objective_function_value
            elif status in unbounded and side == 1:
                out[side, i] = np.inf
            else:  # pragma: no cover - the true values are always feasible
                raise RuntimeError(f"audit LP: {solver.modelStatusToString(status)}")
        solver.changeColCost(int(j), 0.0)
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
) -> pd.DataFrame:
    """The attacker's interval for every suppressed cell with ``intent`` (secure zone only).

    Parameters
    ----------
    cells, relations
        The cell table and its relations.
    status
        ``cell_id`` and ``status`` (``published`` or ``suppressed``), e.g. ``protect().status``.
    settings
        Rule settings that give the required protection.

    Returns
    -------
    DataFrame
        ``cell_id, lower, upper, req_lower, req_upper, ok`` where ``ok`` means the interval
        reaches ``value - req_lower`` and ``value + req_upper``. Never export these numbers.
    """
    linked = link(cells, relations)
    unknown = unknown_mask(cells, status)
    targets = np.flatnonzero(unknown & cells["intent"].to_numpy(dtype=bool))
    lower, upper = intervals(linked, unknown, targets)
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
