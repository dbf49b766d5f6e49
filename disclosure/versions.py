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

from disclosure.settings import DisclosureInputError


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
    ids = pd.Index(cells["cell_id"])
    value = cells["value"].to_numpy(dtype=float)
    known = np.zeros(len(cells), dtype=bool)
    suppressed = np.zeros(len(cells), dtype=bool)
    for frame in prior:
        missing = [c for c in ("cell_id", "value", "status") if c not in frame.columns]
        if missing:
            raise DisclosureInputError(
                f"earlier release state: missing columns {missing}. Fix: publish again with "
                "the current code, which keeps cell_id, value and status per version"
            )
        pos = ids.get_indexer(frame["cell_id"])
        hit = pos >= 0
        pos = pos[hit]
        theirs = frame["value"].to_numpy(dtype=float)[hit]
        same = np.isfinite(theirs) & (
            np.abs(theirs - value[pos]) <= rtol * np.maximum(1.0, np.abs(value[pos]))
        )
        published = (frame["status"].to_numpy()[hit] == "published") & same
        known[pos[published]] = True
        suppressed[pos[same & ~published]] = True
    return PriorKnowledge(known=known, suppressed=suppressed & ~known)
