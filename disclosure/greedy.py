"""Greedy secondary suppression over the area hierarchy and the breakdown totals.

The fast method for large tables of counts (:func:`disclosure.suppress.protect` with
``method="greedy"``); the least-cost witness method is the default. ``protect_greedy``
suppresses the primary-unsafe cells, then adds complements until the audit
(:mod:`disclosure.audit`) finds every suppressed cell protected:

1. *Closing singletons.* A relation with a single unknown cell would give that cell away,
   so a complement is chosen among its published cells. Candidates that can absorb the
   protection the unknown cell needs (its value going down, its headroom to ``upper`` going
   up) come first; then those that open the fewest new singleton relations elsewhere (and
   close the most); then parts before the relation's total (totals are what users read);
   then the smallest ``value / n`` (least information lost). The complement
   inherits the protection it carries, so the chain continues up and across the table.
2. *Audit and repair.* Components of linked unknown cells are audited by LP; a cell whose
   interval is too narrow gets one more complement in its component (the best candidate by
   the same order, sized to the shortfall), then singletons are closed again. Suppressing
   more only widens intervals, so cells once protected stay protected and only failing
   cells are re-solved. If a failing cell has no candidate left, protection is refused.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from disclosure.audit import Linked, components, intervals, link, protection_ok
from disclosure.primary import primary_unchecked, required_protection_unchecked
from disclosure.settings import DisclosureRefused, RuleSettings

if TYPE_CHECKING:
    from disclosure.suppress import Protection


class _Suppressor:
    """Mutable bookkeeping for one protect() call: unknown cells, their needs, relation counts."""

    def __init__(
        self,
        linked: Linked,
        cells: pd.DataFrame,
        unknown: np.ndarray,
        known: np.ndarray | None = None,
    ) -> None:
        csr = linked.matrix.tocsr()
        csc = linked.matrix.tocsc()
        self.rel_cells = np.split(csr.indices, csr.indptr[1:-1])
        self.rel_coef = np.split(csr.data, csr.indptr[1:-1])
        self.cell_rels = np.split(csc.indices, csc.indptr[1:-1])
        self.cell_coef = np.split(csc.data, csc.indptr[1:-1])
        self.value = linked.value
        self.upper = linked.upper
        n = cells["n"].to_numpy(dtype=float)
        self.cost = linked.value / np.maximum(n, 1.0)
        self.unknown = unknown.copy()
        # cells an attacker already knows from an earlier release: no use as complements
        self.known = np.zeros(len(unknown), bool) if known is None else known.copy()
        self.count: list[int] = (
            np.rint(abs(linked.matrix) @ unknown.astype(float)).astype(int).tolist()
        )
        self.need_up = np.zeros(len(unknown))
        self.need_lo = np.zeros(len(unknown))
        self.secondary = np.zeros(len(unknown), dtype=bool)
        self.queue: list[int] = []

    def raise_need(self, c: int, up: float, lo: float) -> None:
        """Cell c must be able to move up by *up* and down by *lo*."""
        had = self.need_up[c] > 0 or self.need_lo[c] > 0
        self.need_up[c] = max(self.need_up[c], up)
        self.need_lo[c] = max(self.need_lo[c], lo)
        if not had and (up > 0 or lo > 0):
            self.queue.extend(int(r) for r in self.cell_rels[c] if self.count[r] == 1)

    def suppress(self, s: int) -> None:
        self.unknown[s] = True
        self.secondary[s] = True
        for r in self.cell_rels[s]:
            self.count[r] += 1
            if self.count[r] == 1:
                self.queue.append(int(r))

    def _key(self, s: int, skip: int, up: float, lo: float, same: bool, total: bool) -> tuple:
        # s moves opposite to the protected cell when both sit on the same side of a relation
        down_need, up_need = (up, lo) if same else (lo, up)
        short = max(down_need - self.value[s], 0.0) + max(
            up_need - (self.upper[s] - self.value[s]), 0.0
        )
        opened = 0
        for r in self.cell_rels[s]:
            if r != skip:
                opened += int(self.count[r] == 0) - int(self.count[r] == 1)
        return (short > 1e-9 * max(1.0, up, lo), opened, total, self.cost[s], short, s)

    def best_in(self, r: int, c: int, up: float, lo: float) -> tuple | None:
        """The best published complement for cell c in relation r, with its key."""
        cells, coefs = self.rel_cells[r], self.rel_coef[r]
        coef_c = coefs[cells == c][0]
        best = None
        for s, coef in zip(cells, coefs, strict=True):
            if not self.unknown[s] and not self.known[s]:
                key = self._key(int(s), r, up, lo, bool(coef == coef_c), bool(coef > 0))
                if best is None or key < best[0]:
                    best = (key, int(s), bool(coef == coef_c))
        return best

    def close_singletons(self) -> None:
        """Give every relation with one needy unknown cell a complement, until none is left."""
        while self.queue:
            r = self.queue.pop()
            if self.count[r] != 1:
                continue
            cells = self.rel_cells[r]
            c = int(cells[self.unknown[cells]][0])
            up, lo = self.need_up[c], self.need_lo[c]
            if up <= 0 and lo <= 0:
                continue
            found = self.best_in(r, c, up, lo)
            if found is None:  # pragma: no cover - a relation has at least two cells
                continue
            _, s, same = found
            self.suppress(s)
            self.raise_need(s, lo if same else up, up if same else lo)

    def escalate(self, t: int, label: np.ndarray) -> bool:
        """Suppress every published cell related to t's component; False if there is none.

        The last resort for a cell that one-complement repairs have not protected within
        ``patience`` rounds: more unknowns only widen intervals, so this converges.
        """
        added = False
        for m in np.flatnonzero(label == label[t]):
            for r in self.cell_rels[m]:
                for s in self.rel_cells[r]:
                    if not self.unknown[s] and not self.known[s]:
                        self.suppress(int(s))
                        added = True
        return added

    def repair(self, t: int, short_up: float, short_lo: float, label: np.ndarray) -> bool:
        """Add one complement for failing cell t; False if its component offers none."""
        options = []
        for r in self.cell_rels[t]:
            found = self.best_in(int(r), t, short_up, short_lo)
            if found is not None:
                options.append(found)
        if not options:  # widen the search to the relations of t's whole component
            need = max(short_up, short_lo)
            members = np.flatnonzero(label == label[t])
            for m in members:
                for r in self.cell_rels[m]:
                    found = self.best_in(int(r), int(m), need, need)
                    if found is not None:
                        options.append(found)
        if not options:
            return False
        _, s, same = min(options)
        self.suppress(s)
        self.raise_need(s, short_lo if same else short_up, short_up if same else short_lo)
        return True


def protect_greedy(
    cells: pd.DataFrame,
    relations: pd.DataFrame,
    settings: RuleSettings,
    *,
    max_rounds: int = 400,
    patience: int = 50,
    presuppressed: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> Protection:
    """Primary and secondary suppression, audited until no suppressed cell is recoverable.

    Parameters
    ----------
    cells, relations
        The cell table and its relations (``docs/design/publish_interfaces.md``).
    settings
        The rule settings.
    max_rounds
        Audit/repair rounds before giving up.
    patience
        Rounds of one-complement repairs before a still failing cell's whole neighbourhood
        (every published cell related to its component) is suppressed.
    presuppressed
        Cells to suppress from the start (boolean, aligned with *cells*): those an earlier
        release that is still public suppressed, so that this release cannot give them away.
    known
        Cells the attacker already knows exactly (an earlier release published the same
        value): they stay published, are never used as complements, and an unsafe one is
        refused.

    Returns
    -------
    Protection

    Raises
    ------
    DisclosureRefused
        If some unsafe cell cannot be protected; the message names it.
    """
    linked = link(cells, relations)
    prim = primary_unchecked(cells, settings)
    intent = cells["intent"].to_numpy(dtype=bool)
    # a cell that is never released is still protected when unsafe: unknown to the attacker
    # is not enough if the relations pin it (all its siblings and its total published)
    unsafe = prim["unsafe"].to_numpy()
    req = required_protection_unchecked(cells, settings)
    req_lo, req_up = req["req_lower"].to_numpy(), req["req_upper"].to_numpy()
    known = np.zeros(len(cells), bool) if known is None else np.asarray(known, dtype=bool)
    if (unsafe & known).any():
        c = int(np.flatnonzero(unsafe & known)[0])
        raise DisclosureRefused(
            f"cell {linked.cell_ids[c]} ({prim['reason'].iloc[c]}) is unsafe but an earlier "
            "release that is still public published it. Fix: withdraw that release (move its "
            "version out of the public zone's versions directory) or keep the rules it used"
        )
    start = unsafe | ~intent
    if presuppressed is not None:
        start = start | (np.asarray(presuppressed, dtype=bool) & ~known)
    state = _Suppressor(linked, cells, start, known)
    state.secondary[start & ~unsafe & intent] = True
    unsafe_released = unsafe & intent
    for c in np.flatnonzero(unsafe):
        state.raise_need(int(c), req_up[c], req_lo[c])
    state.close_singletons()
    failing = np.flatnonzero(unsafe & ((req_lo > 0) | (req_up > 0)))
    rounds = 0
    while len(failing):
        if rounds == max_rounds:
            raise DisclosureRefused(
                f"secondary suppression: {len(failing)} cells still under protection after "
                f"{max_rounds} rounds (e.g. {linked.cell_ids[failing[0]]}). Fix: raise "
                "max_rounds or publish a coarser table"
            )
        rounds += 1
        lo, hi = intervals(linked, state.unknown, failing, need=(req_lo[failing], req_up[failing]))
        value = linked.value[failing]
        ok = protection_ok(value, lo, hi, req_lo[failing], req_up[failing])
        failing, lo, hi, value = failing[~ok], lo[~ok], hi[~ok], value[~ok]
        if not len(failing):
            break
        label = components(linked, state.unknown).label
        # one repair per component and round: the first repair often fixes its neighbours
        heap = [
            (-max(value[i] + req_up[t] - hi[i], lo[i] - value[i] + req_lo[t]), int(t), i)
            for i, t in enumerate(failing)
        ]
        heapq.heapify(heap)
        repaired: set[int] = set()
        stuck: int | None = None
        changed = False
        while heap:
            _, t, i = heapq.heappop(heap)
            if label[t] in repaired:
                continue
            repaired.add(int(label[t]))
            short_up = max(value[i] + req_up[t] - hi[i], 0.0)
            short_lo = max(lo[i] - (value[i] - req_lo[t]), 0.0)
            if rounds > patience and state.escalate(t, label):
                changed = True
                continue
            if state.repair(t, short_up, short_lo, label):
                changed = True
            elif stuck is None:
                # its interval may be stale: an earlier repair of this round can have widened
                # it (components merge); only a round that changes nothing is final
                stuck = t
        if stuck is not None and not changed:
            raise DisclosureRefused(
                f"secondary suppression: cell {linked.cell_ids[stuck]} "
                f"({prim['reason'].iloc[stuck]}) cannot be protected; every related cell is "
                "already suppressed. Fix: publish a coarser table or drop the cell's intent"
            )
        state.close_singletons()
    from disclosure.suppress import result

    return result(cells, prim, state.unknown, state.secondary, intent, unsafe_released, rounds)
