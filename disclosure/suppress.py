"""Secondary suppression that minimises the information hidden, audited by linear programming.

``protect`` suppresses the primary-unsafe cells, then finds for every unsafe cell and side a
*witness* (:mod:`disclosure.witness`): a change of the table that satisfies every relation,
moves only suppressed cells and moves the unsafe cell by its required protection. While one
exists, the attacker's interval reaches the requirement (the audit's LP and the witness are
the two faces of one linear programme).

1. *Building.* Unsafe cells are taken hardest first (largest protection as a share of the
   value). For each side, the LP finds the least-cost witness over the suppressed cells
   (almost free) and the published ones (each at its cost: the value it would hide, plus a
   small fixed cost per cell, as tau-ARGUS's default cost is the cell value); the published
   cells it moves become complements. The search starts in the cell's neighbourhood (two
   relation steps: its siblings, its total, the rows of both) and widens only when no
   witness exists there, so protection climbs the hierarchy only as far as a complement
   large enough is found (a dominant business whose wijk siblings are all smaller than it
   needs its gemeente cell, not the whole level).
2. *Singletons.* The only contributor of a suppressed cell knows its value, so no witness
   of another cell may move a suppressed singleton: protection must hold against each
   such intruder (tau-ARGUS's singleton handling). The (1, k) dominance protection covers
   the second-largest contributor's knowledge (:mod:`disclosure.primary`).
3. *Releasing.* Complements are then tried for publication, the costliest first: a
   complement is published again when every witness that moved it can be re-routed through
   the cells still suppressed. What is left is a pattern in which no complement can be
   dropped (a local minimum of the information lost).
4. *Audit.* The exact LP audit (:func:`disclosure.audit.intervals`) checks every unsafe cell;
   any shortfall (none is expected) is repaired by another witness over the whole table.

There is no escalation to whole levels: a cell that no witness over the whole table can
protect is refused (:class:`DisclosureRefused`, nothing published).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from disclosure.audit import Linked, intervals, link, protection_ok
from disclosure.primary import contributors, primary_unchecked, required_protection_unchecked
from disclosure.settings import DisclosureRefused, RuleSettings
from disclosure.witness import Witnesses


@dataclass(frozen=True)
class Protection:
    """The result of :func:`protect`.

    Attributes
    ----------
    status
        ``cell_id``, ``status`` (``published`` or ``suppressed``) and ``reason`` (``;``-joined
        primary reasons, ``secondary``, or ``not_released`` for cells with ``intent == False``).
    summary
        Suppressed cells and their units by ``level`` and ``reason`` (a cell with two primary
        reasons counts under both), with ``cells`` and ``units``.
    rounds
        How many audit rounds it took until every suppressed cell was protected.
    """

    status: pd.DataFrame
    summary: pd.DataFrame
    rounds: int


#: the fixed cost of suppressing a cell, in units of its basis's mean cell value: the value
#: hidden dominates (as tau-ARGUS's default cost), this breaks ties towards fewer cells
CELL_COST = 0.5
#: the cost of a cell is multiplied by this per level of aggregation above the finest cells
LEVEL_WEIGHT = 2.0
#: the weight of moving a cell that is suppressed anyway, relative to its cost: witnesses go
#: through suppressed cells first and, among them, through the cheapest
SUPPRESSED_WEIGHT = 1e-3
#: neighbourhoods tried, in relation steps (None: every cell reachable)
BUILD_HOPS: tuple[int | None, ...] = (2, 4, 8, None)
RELEASE_HOPS: tuple[int | None, ...] = (4, None)


def heights(linked: Linked) -> np.ndarray:
    """Each cell's level of aggregation: 0 for a cell that is no relation's total, else one
    more than the highest of its parts (wijk x branch 0, gemeente x branch 1, ...)."""
    m = linked.matrix.tocsr()
    total_of = np.full(m.shape[0], -1)
    rows, cols = m.nonzero()
    is_total = m.data > 0
    total_of[rows[is_total]] = cols[is_total]
    part_rows, part_cols = rows[~is_total], cols[~is_total]
    h = np.zeros(m.shape[1], dtype=np.int64)
    for _ in range(m.shape[1] + 1):
        best = np.zeros(m.shape[0], dtype=np.int64)
        np.maximum.at(best, part_rows, h[part_cols] + 1)
        new = h.copy()
        np.maximum.at(new, total_of[total_of >= 0], best[total_of >= 0])
        if (new == h).all():
            break
        h = new
    return h


def suppression_cost(cells: pd.DataFrame, linked: Linked) -> tuple[np.ndarray, np.ndarray]:
    """What suppressing each cell hides, and the unit it is measured in.

    The value hidden, in units of the mean value of its basis (``scale``), times
    :data:`LEVEL_WEIGHT` per level of aggregation (:func:`heights`: totals are what most
    readers read, and the upper table is protected first, as in tau-ARGUS's modular
    method), plus :data:`CELL_COST` (so a cell worth 0 is not free to suppress).
    """
    value = cells["value"].to_numpy(dtype=float)
    basis = cells["basis"].to_numpy()
    scale = np.ones(len(cells))
    for b in pd.unique(basis):
        m = basis == b
        pos = value[m][value[m] > 0]
        scale[m] = float(pos.mean()) if len(pos) else 1.0
    weight = LEVEL_WEIGHT ** heights(linked).astype(float)
    return value / scale * weight + CELL_COST, scale


def own_value_known(cells: pd.DataFrame) -> np.ndarray:
    """Cells whose single contributor knows the value (``own_value_known`` and one
    contributor): that contributor can take the cell out of any other cell's protection."""
    if "own_value_known" not in cells.columns:
        return np.zeros(len(cells), bool)
    return cells["own_value_known"].to_numpy(dtype=bool) & (contributors(cells) == 1)


Key = tuple[int, bool, int]  # (unsafe cell, upper side?, the singleton it must not move or -1)


class _Pattern:
    """One protect() call's mutable state: which cells are hidden and every witness.

    Each unsafe cell and side has a witness (key ``(t, up, -1)``); for every singleton
    cell of another contributor that this witness moves, a second witness that leaves that
    singleton where it is (key ``(t, up, s)``): protection against each such intruder.
    """

    def __init__(
        self,
        w: Witnesses,
        cost: np.ndarray,
        unknown: np.ndarray,
        known: np.ndarray,
        singleton: np.ndarray,
        populated: np.ndarray,
        need: dict[tuple[int, bool], float],
    ) -> None:
        self.w = w
        self.cost = cost
        self.unknown = unknown.copy()
        self.fixed = unknown.copy()  # hidden whatever happens: unsafe, never released, sticky
        self.known = known  # the attacker knows these: never free
        self.singleton = singleton
        self.populated = populated
        self.need = need
        self.secondary = np.zeros(len(unknown), bool)
        self.support: dict[Key, np.ndarray] = {}
        self.users: dict[int, dict[Key, float]] = {}  # cell -> key -> share of the move
        self.avoids: dict[tuple[int, bool], set[int]] = {}  # (t, up) -> its intruder keys

    def _weight(self, published_cost: bool) -> np.ndarray:
        hidden = SUPPRESSED_WEIGHT * np.where(self.fixed, CELL_COST, self.cost)
        return np.where(self.unknown, hidden, self.cost if published_cost else np.inf)

    def outsiders(self, t: int, moved: np.ndarray) -> list[int]:
        """The singletons among *moved* whose contributor is not one of t's."""
        lone = moved[self.singleton[moved] & (moved != t)]
        if not len(lone):
            return []
        return [int(c) for c in lone[~self.w.related(t, lone, self.populated)]]

    def find(
        self, key: Key, *, base: np.ndarray, hops: tuple[int | None, ...], weight: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The cells a least-cost witness for *key* moves and by how much, searching in
        wider and wider neighbourhoods of the *base* cells."""
        t, up, avoid = key
        allowed = base & ~self.known
        allowed[t] = True
        if avoid >= 0:
            allowed[avoid] = False
        last = -1
        for h in hops:
            free = self.w.hood(t, h, allowed)
            if len(free) == last:
                continue  # the neighbourhood stopped growing: no use solving again
            last = len(free)
            found = self.w.solve(free, t, up, self.need[(t, up)], weight)
            if found is not None:
                return found
        return None

    def keep(self, key: Key, found: tuple[np.ndarray, np.ndarray]) -> None:
        self.drop(key)
        moved, change = found
        self.support[key] = moved
        if key[2] >= 0:
            self.avoids.setdefault((key[0], key[1]), set()).add(key[2])
        share = np.abs(change) / self.need[(key[0], key[1])]
        for c, x in zip(moved, share, strict=True):
            self.users.setdefault(int(c), {})[key] = float(x)

    def drop(self, key: Key) -> None:
        old = self.support.pop(key, None)
        if old is not None:
            for c in old:
                self.users[int(c)].pop(key, None)
            if key[2] >= 0:
                self.avoids[(key[0], key[1])].discard(key[2])

    def _stale(self, t: int, up: bool) -> None:
        """Drop the intruder witnesses of (t, up) whose singleton its witness no longer moves."""
        if not self.avoids.get((t, up)):
            return
        wanted = set(self.outsiders(t, self.support[(t, up, -1)]))
        for s in list(self.avoids[(t, up)] - wanted):
            self.drop((t, up, s))

    def build(self, t: int, up: bool, hops: tuple[int | None, ...]) -> bool:
        """Protect one side of t (and against every singleton intruder its witness moves),
        suppressing the published cells the witnesses move.

        Suppressed cells are almost free to move, published ones cost what suppressing
        them would hide.
        """
        every = np.ones(len(self.unknown), bool)
        queue: list[Key] = [(t, up, -1)]
        while queue:
            key = queue.pop()
            found = self.find(key, base=every, hops=hops, weight=self._weight(True))
            if found is None:
                return False
            moved = found[0]
            new = moved[~self.unknown[moved]]
            self.unknown[new] = True
            self.secondary[new] = True
            self.keep(key, found)
            if key[2] < 0:
                queue += [(t, up, s) for s in self.outsiders(t, moved)]
        self._stale(t, up)
        return True

    def mirrored(self, t: int, up: bool) -> bool:
        """Whether the witness of t's other side, reversed, serves this side too (no LP):
        every cell it moves has room to move the other way as far."""
        other = (t, not up, -1)
        if other not in self.support:
            return False
        moved = self.support[other]
        found = self.w.solve(moved, t, up, self.need[(t, up)], self._weight(False))
        if found is None or self.outsiders(t, found[0]):
            return False
        self.keep((t, up, -1), found)
        return True

    def release(self) -> None:
        """Publish every complement whose witnesses can all be re-routed, costliest first."""
        order = np.flatnonzero(self.secondary & ~self.fixed)
        order = order[np.argsort(-self.cost[order], kind="stable")]
        weight = None
        for s in order:
            # the witnesses that lean on s the most first: if one cannot do without s, the
            # others need not be tried
            leaning = self.users.get(int(s), {})
            affected = sorted(leaning, key=lambda k: (k[2] >= 0, -leaning[k], k))
            self.unknown[s] = False
            if weight is None or affected:
                weight = self._weight(False)
            trial = self._reroute(affected, weight)
            if trial is None:
                self.unknown[s] = True
                continue
            self.secondary[s] = False
            for key, moved in trial.items():
                self.keep(key, moved)
            for t, up in {(k[0], k[1]) for k in trial}:
                self._stale(t, up)

    def _reroute(
        self, affected: list[Key], weight: np.ndarray
    ) -> dict[Key, tuple[np.ndarray, np.ndarray]] | None:
        """New witnesses through the cells still hidden for every *affected* key (and for
        each intruder a re-routed witness newly moves), or None if one has none."""
        trial: dict[Key, tuple[np.ndarray, np.ndarray]] = {}
        pending = deque(affected)
        while pending:
            key = pending.popleft()
            t, up, avoid = key
            if key in trial:
                continue
            if avoid >= 0:
                key0 = (t, up, -1)
                base = trial[key0][0] if key0 in trial else self.support.get(key0)
                if base is None or avoid not in self.outsiders(t, base):
                    continue  # its singleton is no longer moved: no longer needed
            found = self.find(key, base=self.unknown, hops=RELEASE_HOPS, weight=weight)
            if found is None:
                return None
            trial[key] = found
            if avoid < 0:
                for o in self.outsiders(t, found[0]):
                    k2 = (t, up, o)
                    if k2 not in trial and (k2 not in self.support or k2 in affected):
                        pending.append(k2)
        return trial


def protect(
    cells: pd.DataFrame,
    relations: pd.DataFrame,
    settings: RuleSettings,
    *,
    method: str = "witness",
    max_rounds: int = 20,
    presuppressed: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> Protection:
    """Primary and secondary suppression, audited until no suppressed cell is recoverable.

    Parameters
    ----------
    cells, relations
        The cell table and its relations (``docs/design/publish_interfaces.md``). An
        optional boolean column ``own_value_known`` marks cells whose contributors know
        their own contribution (business turnover): a suppressed cell of one such
        contributor is known to it, so it never protects another cell.
    settings
        The rule settings.
    method
        ``witness`` (the least-cost witnesses and release pass above) or ``greedy``
        (:mod:`disclosure.greedy`: closing singleton relations and repairing by audit; linear
        time, for tables with tens of thousands of unsafe cells, where one LP per cell and
        side takes too long; it hides more).
    max_rounds
        Audit/repair rounds before giving up (the first audit normally passes).
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
    if method == "greedy":
        from disclosure.greedy import protect_greedy

        return protect_greedy(cells, relations, settings, presuppressed=presuppressed, known=known)
    if method != "witness":
        raise ValueError(f"protect: method must be 'witness' or 'greedy', got {method!r}")
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
    cost, unit = suppression_cost(cells, linked)
    need: dict[tuple[int, bool], float] = {}
    for u in np.flatnonzero(unsafe):
        for up, amount in ((True, req_up[u]), (False, req_lo[u])):
            if amount > 1e-12 * max(1.0, linked.value[u]):
                need[(int(u), up)] = float(amount)
    state = _Pattern(
        Witnesses(linked),
        cost,
        start,
        known,
        own_value_known(cells),
        contributors(cells) > 0,
        need,
    )
    state.secondary[start & ~unsafe & intent] = True
    # hardest first: the largest protection (in cost units) forces the largest complements,
    # which the smaller needs around it can then share
    most = {t: max(need.get((t, True), 0.0), need.get((t, False), 0.0)) for t, _ in need}
    order = sorted(need, key=lambda k: (-most[k[0]] / unit[k[0]], k[0], not k[1]))
    for key in order:
        if state.mirrored(key[0], key[1]):
            continue
        if not state.build(key[0], key[1], BUILD_HOPS):
            _refuse(linked.cell_ids[key[0]], prim["reason"].iloc[key[0]])
    state.release()
    rounds = _audit_and_repair(linked, state, need, req_lo, req_up, unsafe, prim, max_rounds)
    return result(cells, prim, state.unknown, state.secondary, intent, unsafe & intent, rounds)


def _refuse(cell_id: str, reason: str) -> None:
    raise DisclosureRefused(
        f"secondary suppression: cell {cell_id} ({reason}) cannot be protected: no change "
        "of the suppressed and publishable cells hides it by its required protection. Fix: "
        "publish a coarser table or drop the cell's intent"
    )


def _audit_and_repair(
    linked,
    state: _Pattern,
    need: dict[tuple[int, bool], float],
    req_lo: np.ndarray,
    req_up: np.ndarray,
    unsafe: np.ndarray,
    prim: pd.DataFrame,
    max_rounds: int,
) -> int:
    """The exact LP audit over the final pattern; a failing side gets a whole-table witness."""
    targets = np.flatnonzero(unsafe & ((req_lo > 0) | (req_up > 0)))
    for rounds in range(1, max_rounds + 1):
        if not len(targets):
            return rounds
        lo, hi = intervals(linked, state.unknown, targets, need=(req_lo[targets], req_up[targets]))
        ok = protection_ok(linked.value[targets], lo, hi, req_lo[targets], req_up[targets])
        failing = targets[~ok]
        if not len(failing):
            return rounds
        for t in failing:
            for up in (True, False):
                if (int(t), up) in need and not state.build(int(t), up, (None,)):
                    _refuse(linked.cell_ids[t], prim["reason"].iloc[t])
        targets = failing
    raise DisclosureRefused(
        f"secondary suppression: {len(targets)} cells still under protection after "
        f"{max_rounds} audit rounds (e.g. {linked.cell_ids[targets[0]]}). Fix: raise "
        "max_rounds or publish a coarser table"
    )


def result(
    cells: pd.DataFrame,
    prim: pd.DataFrame,
    unknown: np.ndarray,
    secondary: np.ndarray,
    intent: np.ndarray,
    unsafe: np.ndarray,
    rounds: int,
) -> Protection:
    """The :class:`Protection` of a suppression pattern (shared by both methods)."""
    reason = np.where(
        ~intent,
        "not_released",
        np.where(unsafe, prim["reason"].to_numpy(), np.where(secondary, "secondary", "")),
    )
    status = pd.DataFrame(
        {
            "cell_id": cells["cell_id"].to_numpy(),
            "status": np.where(unknown, "suppressed", "published"),
            "reason": reason,
        }
    )
    tally: dict[tuple[str, str], list[int]] = {}
    hidden = np.flatnonzero(unknown)
    levels, units = cells["level"].to_numpy()[hidden], cells["n"].to_numpy()[hidden]
    for level, why, n in zip(levels, reason[hidden], units, strict=True):
        for one in str(why).split(";"):
            entry = tally.setdefault((str(level), one), [0, 0])
            entry[0] += 1
            entry[1] += int(n)
    summary = pd.DataFrame(
        [(lv, why, c, u) for (lv, why), (c, u) in sorted(tally.items())],
        columns=["level", "reason", "cells", "units"],
    )
    return Protection(status=status, summary=summary, rounds=rounds)
