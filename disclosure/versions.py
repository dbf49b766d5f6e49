"""What earlier releases that are still public already told an attacker (pure core).

Every version kept in ``PUBLISH.d/`` stays readable, so a new release is safe only together
with them: a cell suppressed now but published before is known, and a complement published
now may undo a suppression made before. :func:`prior_knowledge` turns the secure states of
those versions (cell id, true value, decision) into two masks over the new cell table:

- ``known``: the same cell with the same value was published before; the attacker knows it,
  whatever this release does (the audit pins it; it cannot serve as a complement);
- ``suppressed``: the same cell with the same value was suppressed before; it stays
  suppressed (sticky), so this release cannot give it away.

"The same variable" is decided by value, not by name: a cell of another model (another
``risk_sum``) is another quantity, while a count that did not change between the versions
(a driver count, a turnover sum, a re-published model) is the same. Equal values of
different quantities are treated as the same: conservative, never unsafe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from disclosure.settings import DisclosureInputError, RuleSettings


def _same_variable(
    cells: pd.DataFrame, frame: pd.DataFrame, what: str, rtol: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of an earlier *frame*: its position in *cells* (-1: none) and whether it
    is the same variable (same id, same value within *rtol*)."""
    missing = [c for c in ("cell_id", "value", "status") if c not in frame.columns]
    if missing:
        raise DisclosureInputError(
            f"{what}: missing columns {missing}. Fix: publish again with the current code, "
            "which keeps cell_id, value and status per version"
        )
    pos = pd.Index(cells["cell_id"]).get_indexer(frame["cell_id"])
    ours = cells["value"].to_numpy(dtype=float)
    theirs = frame["value"].to_numpy(dtype=float)
    hit = pos >= 0
    same = np.zeros(len(frame), dtype=bool)
    same[hit] = np.isfinite(theirs[hit]) & (
        np.abs(theirs[hit] - ours[pos[hit]]) <= rtol * np.maximum(1.0, np.abs(ours[pos[hit]]))
    )
    return pos, same


@dataclass(frozen=True)
class PriorKnowledge:
    """Masks aligned with a cell table (see the module docstring)."""

    known: np.ndarray
    suppressed: np.ndarray

    @property
    def any(self) -> bool:
        return bool(self.known.any() or self.suppressed.any())


def prior_knowledge(
    cells: pd.DataFrame, prior: Sequence[pd.DataFrame], *, rtol: float = 1e-9
) -> PriorKnowledge:
    """Known and sticky cells of *cells* given earlier releases' states.

    Parameters
    ----------
    cells
        The new cell table (``cell_id``, ``value``).
    prior
        One frame per earlier release still public: ``cell_id``, ``value`` (NaN: not the
        same variable as ours, whatever its id) and ``status`` (``published`` or anything
        else for not published).
    rtol
        Relative tolerance of "the same value".

    Examples
    --------
    >>> cells = pd.DataFrame({"cell_id": ["a", "b", "c"], "value": [1.0, 2.0, 3.0]})
    >>> old = pd.DataFrame({"cell_id": ["a", "b", "c"], "value": [1.0, 2.0, 9.0],
    ...                     "status": ["published", "suppressed", "published"]})
    >>> k = prior_knowledge(cells, [old])
    >>> k.known.tolist(), k.suppressed.tolist()
    ([True, False, False], [False, True, False])
    """
    known = np.zeros(len(cells), dtype=bool)
    suppressed = np.zeros(len(cells), dtype=bool)
    for frame in prior:
        pos, same = _same_variable(cells, frame, "earlier release state", rtol)
        published = frame["status"].to_numpy() == "published"
        known[pos[same & published]] = True
        suppressed[pos[same & ~published]] = True
    return PriorKnowledge(known=known, suppressed=suppressed & ~known)


@dataclass(frozen=True)
class PriorRelease:
    """One earlier release still public, as the secure zone kept it: its full cell table
    with each cell's decision (``status``), and its relations."""

    tag: str
    cells: pd.DataFrame
    relations: pd.DataFrame


@dataclass(frozen=True)
class JointTable:
    """This release's cells and relations together with those of earlier releases.

    The first ``n_current`` rows of ``cells`` are this release's, in order. An earlier
    cell that is the same variable as one of ours (same id, same value) *is* ours: its
    relations are rewritten to our id. Any other earlier cell is a variable of its own,
    ``<tag>:<cell_id>``: known to the attacker when it was published, suppressed for good
    when it was not. So one LP sees every relation an attacker can combine.
    """

    cells: pd.DataFrame
    relations: pd.DataFrame
    known: np.ndarray
    presuppressed: np.ndarray
    n_current: int


def joint_table(
    cells: pd.DataFrame,
    relations: pd.DataFrame,
    prior: Sequence[PriorRelease],
    *,
    known: np.ndarray | None = None,
    presuppressed: np.ndarray | None = None,
    rtol: float = 1e-9,
) -> JointTable:
    """Join *cells* and *relations* with every release in *prior* (see :class:`JointTable`).

    *known* and *presuppressed* are this release's masks (:func:`prior_knowledge`).

    Examples
    --------
    Version 1 published T = A + B + C with A and B hidden; version 2 changes C:

    >>> def table(c):
    ...     return pd.DataFrame({"cell_id": ["T", "A", "B", "C"],
    ...                          "value": [12.0 + c, 2.0, 10.0, c]})
    >>> rels = pd.DataFrame({"relation_id": ["r"] * 4, "cell_id": ["T", "A", "B", "C"],
    ...                      "role": ["total", "part", "part", "part"]})
    >>> old = table(5.0).assign(status=["published", "suppressed", "suppressed", "published"])
    >>> j = joint_table(table(3.0), rels, [PriorRelease("v1", old, rels)])
    >>> j.cells["cell_id"].tolist()
    ['T', 'A', 'B', 'C', 'v1:T', 'v1:C']
    >>> j.known.tolist(), j.presuppressed.tolist()
    ([False, False, False, False, True, True], [False, False, False, False, False, False])
    >>> sorted(j.relations.loc[j.relations["relation_id"] == "v1:r", "cell_id"])
    ['A', 'B', 'v1:C', 'v1:T']
    """
    n = len(cells)
    known = np.zeros(n, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    sticky = np.zeros(n, dtype=bool) if presuppressed is None else np.asarray(presuppressed)
    frames, rels = [cells.reset_index(drop=True)], [relations]
    known_parts, sticky_parts = [known], [sticky.astype(bool)]
    for release in prior:
        old = release.cells.reset_index(drop=True)
        _, same = _same_variable(cells, old, f"earlier release {release.tag}", rtol)
        new_id = np.where(
            same, old["cell_id"].astype(str), f"{release.tag}:" + old["cell_id"].astype(str)
        )
        rename = dict(zip(old["cell_id"].astype(str), new_id, strict=True))
        own = old[~same].copy()
        own["cell_id"] = new_id[~same]
        published = own["status"].to_numpy() == "published"
        frames.append(own.drop(columns=["status", "reason"], errors="ignore"))
        known_parts.append(published)
        sticky_parts.append(~published)
        r = release.relations.copy()
        r["relation_id"] = f"{release.tag}:" + r["relation_id"].astype(str)
        r["cell_id"] = r["cell_id"].astype(str).map(rename)
        if r["cell_id"].isna().any():
            raise DisclosureInputError(
                f"earlier release {release.tag}: a relation names a cell its state does not "
                "hold. Fix: remove that release's state from DATA/disclosure/releases only if "
                "the version is no longer public; otherwise publish again with the current code"
            )
        rels.append(r)
    joint = pd.concat(frames, ignore_index=True)
    return JointTable(
        cells=joint,
        relations=pd.concat(rels, ignore_index=True),
        known=np.concatenate(known_parts),
        presuppressed=np.concatenate(sticky_parts) & ~np.concatenate(known_parts),
        n_current=n,
    )


@dataclass(frozen=True)
class Controlled:
    """:func:`control_release`'s result: this release's decisions and the joint audit."""

    status: pd.DataFrame
    audit: pd.DataFrame


def control_release(
    cells: pd.DataFrame,
    relations: pd.DataFrame,
    settings: RuleSettings,
    *,
    prior_states: Sequence[pd.DataFrame] = (),
    prior_releases: Sequence[PriorRelease] = (),
    method: str = "witness",
) -> Controlled:
    """Primary rules, secondary suppression and the LP audit of one release together with
    every earlier release still public.

    *prior_states* (``cell_id``, ``value``, ``status``) make cells published before known
    and cells suppressed before sticky (:func:`prior_knowledge`); *prior_releases* (full
    cell tables and relations, when the secure zone kept them) add the earlier releases'
    relations to one joint LP (:func:`joint_table`), so that no combination of the versions
    recomputes a hidden cell of either. *method* is protect()'s secondary suppression
    method. Raises
    :class:`~disclosure.settings.DisclosureRefused` when no pattern is found; the audit's
    ``ok`` column says whether every hidden cell (of any version) keeps its protection.
    """
    from disclosure.audit import audit
    from disclosure.suppress import protect

    prior = prior_knowledge(cells, prior_states)
    joint = joint_table(
        cells, relations, prior_releases, known=prior.known, presuppressed=prior.suppressed
    )
    protection = protect(
        joint.cells,
        joint.relations,
        settings,
        method=method,
        presuppressed=joint.presuppressed,
        known=joint.known,
    )
    result = audit(joint.cells, joint.relations, protection.status, settings, known=joint.known)
    ours = set(cells["cell_id"])
    status = protection.status[protection.status["cell_id"].isin(ours)].reset_index(drop=True)
    return Controlled(status=status, audit=result)
