"""Protection witnesses: the cheapest way to move one cell, found by linear programming.

A suppressed cell *t* is protected on its upper side when the attacker cannot rule out
``x_t = value_t + req``: some table ``x`` that satisfies every relation, keeps every
published cell at its value and every cell within ``[0, upper]`` reaches it. Writing
``x = value + f``, such a *witness* ``f`` lies in the null space of the relations, is 0 on
published cells and has ``f_t = +req`` (``-req`` for the lower side). The attacker's exact
interval (:mod:`disclosure.audit`) reaches the requirement if and only if a witness exists.

:class:`Witnesses` finds, for a target and a side, the witness of least weighted change
``sum_i w_i |f_i|`` over a set of *free* cells (the suppressed ones, and, when building a
pattern, published candidates at the cost of suppressing them). The witness is sparse (a
cycle through the table), so the cells it moves are the complements the target needs. It
solves one small LP per call with HiGHS (vendored by scipy), over a hop-limited
neighbourhood of the target: a witness found there is a witness of the whole table (the
cells outside stay at their values), so a neighbourhood is only ever conservative.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from disclosure.audit import Linked

try:  # HiGHS as vendored by scipy (as in disclosure.audit)
    from scipy.optimize._highspy import _core as _highs
except ImportError:  # pragma: no cover - fall back to linprog
    _highs = None

#: a cell moves in a witness when its change exceeds this share of the target's requirement
SUPPORT_TOL = 1e-7


class Witnesses:
    """Neighbourhoods and witness LPs over one linked cell table (pure; no state changes)."""

    def __init__(self, linked: Linked) -> None:
        csr = linked.matrix.tocsr()
        csc = linked.matrix.tocsc()
        self.csc = csc
        self.rel_cells = np.split(csr.indices, csr.indptr[1:-1])
        self.cell_rels = np.split(csc.indices, csc.indptr[1:-1])
        self.cell_coef = np.split(csc.data, csc.indptr[1:-1])
        self.rel_coef = np.split(csr.data, csr.indptr[1:-1])
        self.value = linked.value
        self.upper = linked.upper
        self.n_cells = len(linked.value)
        self.solver = new_solver() if _highs is not None else None

    def _below(self, c: int, populated: np.ndarray | None) -> set[int]:
        """c and every cell below it (its parts, their parts, ...), only populated ones."""
        out = {c}
        stack = [c]
        while stack:
            x = stack.pop()
            for r, coef in zip(self.cell_rels[x], self.cell_coef[x], strict=True):
                if coef < 0:
                    continue  # x is a part here, not the total
                for s, sc in zip(self.rel_cells[r], self.rel_coef[r], strict=True):
                    s = int(s)
                    if sc < 0 and s not in out and (populated is None or populated[s]):
                        out.add(s)
                        stack.append(s)
        return out

    def related(self, t: int, cands: np.ndarray, populated: np.ndarray) -> np.ndarray:
        """Which of the cells *cands* (each of one contributor) share that contributor with
        *t*: the cell's unit lies in t when some populated cell below it (or itself) lies
        below t, or t lies below it (e.g. gemeente x branch and its wijk x total)."""
        below_t = self._below(t, None)
        out = np.zeros(len(cands), bool)
        for i, c in enumerate(cands):
            c = int(c)
            mine = self._below(c, populated)
            out[i] = bool(mine & below_t) or t in self._below(c, None)
        return out

    def hood(self, t: int, hops: int | None, allowed: np.ndarray) -> np.ndarray:
        """Cells within *hops* relation steps of *t* through *allowed* cells (None: all).

        A step goes from a cell to every cell sharing a relation with it; only *allowed*
        cells (and *t*) are entered, so the neighbourhood follows the free cells.
        """
        seen = np.zeros(self.n_cells, bool)
        seen[t] = True
        rel_seen = np.zeros(len(self.rel_cells), bool)
        frontier = np.array([t])
        step = 0
        while len(frontier) and (hops is None or step < hops):
            step += 1
            rels = np.unique(np.concatenate([self.cell_rels[c] for c in frontier]))
            rels = rels[~rel_seen[rels]]
            if not len(rels):
                break
            rel_seen[rels] = True
            nxt = np.unique(np.concatenate([self.rel_cells[r] for r in rels]))
            nxt = nxt[~seen[nxt] & allowed[nxt]]
            seen[nxt] = True
            frontier = nxt
        return np.flatnonzero(seen)

    def solve(
        self,
        free: np.ndarray,
        t: int,
        up: bool,
        amount: float,
        weight: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The least-weight witness moving cell *t* by *amount* (up or down) within *free*.

        Parameters
        ----------
        free
            Indices of the cells that may change (must include *t*).
        t, up, amount
            The target, the side and how far it must move (> 0).
        weight
            Per-cell weight of a unit of change (aligned with the whole table).

        Returns
        -------
        (cells, change) of the cells that move (the target included), or None when no
        witness exists within *free*.
        """
        free = np.asarray(free, dtype=np.int64)
        csc = self.csc
        starts = csc.indptr[free]
        counts = csc.indptr[free + 1] - starts
        indptr = np.concatenate([[0], np.cumsum(counts)])
        take = np.arange(indptr[-1]) + np.repeat(starts - indptr[:-1], counts)
        rows, local = np.unique(csc.indices[take], return_inverse=True)
        data = csc.data[take]
        k = len(free)
        scale = float(amount)
        v = self.value[free] / scale
        room = (self.upper[free] - self.value[free]) / scale
        up_cap = np.where(np.isfinite(room), np.maximum(room, 0.0), np.inf)
        down_cap = np.maximum(v, 0.0)
        where = int(np.searchsorted(free, t)) if free[0] <= t else -1
        if where < 0 or where >= k or free[where] != t:
            where = int(np.flatnonzero(free == t)[0])
        need_cap = up_cap[where] if up else down_cap[where]
        if need_cap < 1.0 - 1e-9:
            return None
        lo = np.zeros(2 * k)
        hi = np.concatenate([up_cap, down_cap])
        if up:
            lo[where] = hi[where] = 1.0
            hi[k + where] = 0.0
        else:
            lo[k + where] = hi[k + where] = 1.0
            hi[where] = 0.0
        w = weight[free].astype(float)
        w[where] = 0.0
        cost = np.concatenate([w, w])
        nnz = len(data)
        mat = sp.csc_matrix(
            (
                np.concatenate([data, -data]),
                np.concatenate([local, local]),
                np.concatenate([indptr, indptr[1:] + nnz]),
            ),
            shape=(len(rows), 2 * k),
        )
        x = _lp(mat, cost, lo, hi, self.solver)
        if x is None:
            return None
        f = x[:k] - x[k:]
        moved = np.abs(f) > SUPPORT_TOL
        moved[where] = True
        return free[moved], f[moved] * scale


def _lp(
    mat: sp.csc_matrix,
    cost: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    solver: object | None = None,
) -> np.ndarray | None:
    """min cost @ x subject to mat @ x == 0, lo <= x <= hi; None when infeasible.

    *solver* is a HiGHS instance to reuse (its options set once); a new one otherwise.
    """
    n_rows, n_cols = mat.shape
    if _highs is None:  # pragma: no cover
        from scipy.optimize import linprog

        res = linprog(
            cost,
            A_eq=mat if n_rows else None,
            b_eq=np.zeros(n_rows) if n_rows else None,
            bounds=list(zip(lo, [None if np.isinf(h) else h for h in hi], strict=True)),
            method="highs",
        )
        return res.x if res.status == 0 else None
    highs = solver if solver is not None else new_solver()
    upper = np.where(np.isfinite(hi), hi, _highs.kHighsInf)
    zeros = np.zeros(n_rows)
    highs.passModel(  # type: ignore[attr-defined]
        n_cols,
        n_rows,
        len(mat.data),
        1,  # column-wise
        1,  # minimise
        0.0,
        cost.astype(np.float64),
        lo.astype(np.float64),
        upper.astype(np.float64),
        zeros,
        zeros,
        mat.indptr[:-1].astype(np.int32),
        mat.indices.astype(np.int32),
        mat.data.astype(np.float64),
        np.zeros(n_cols, dtype=np.int32),  # all continuous
    )
    for _attempt in range(2):
        highs.run()  # type: ignore[attr-defined]
        status = highs.getModelStatus()  # type: ignore[attr-defined]
        if status == _highs.HighsModelStatus.kOptimal:
            x = np.asarray(highs.getSolution().col_value)  # type: ignore[attr-defined]
            return np.clip(x, lo, hi)
        if status == _highs.HighsModelStatus.kInfeasible:
            return None
        highs.clearSolver()  # type: ignore[attr-defined]  # a numerical hiccup: once more, cold
    return None


def new_solver() -> object:
    """A quiet HiGHS instance without presolve (the witness LPs are small)."""
    solver = _highs._Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("presolve", "off")
    return solver
