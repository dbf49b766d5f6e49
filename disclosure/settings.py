"""Named disclosure-control rule settings and the errors of the disclosure core.

The settings are passed explicitly to every function of the core; there are no module
globals to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class DisclosureInputError(ValueError):
    """A cell table or relation table that the disclosure core cannot work with (exit 2)."""


class DisclosureRefused(RuntimeError):
    """Secondary suppression cannot protect every unsafe cell; publish nothing (exit 3)."""


@dataclass(frozen=True)
class RuleSettings:
    """The primary rules and the protection they require.

    Parameters
    ----------
    min_count
        Threshold rule: a cell with fewer units is unsafe.
    dominance_share
        Dominance rule for sums: unsafe when the largest contributor is more than this share
        of the sum. Exactly this share is safe.
    nk
        Optional (n, k) rule with n in {1, 2}: unsafe when the top-n contributors together are
        more than k times the sum. Off (``None``) by default.
    group_share
        Group disclosure for counts of units: a share ``value / n`` at or above this is unsafe.
        Shares at or below 0.1 are never treated as group disclosure.
    protection_share
        Required protection of threshold and group cells, each side, as a share of the value.
    margin_units
        Required protection of threshold and group cells, each side, in units' maximum
        contributions (the cell table's ``unit_max``: 1 for a count or a sum of
        probabilities). A share of the value is nothing when the value is 0, so without this
        floor a zero-valued cell (e.g. the only child of a buurt with risk 0) could be pinned
        exactly; with it the attacker's interval always spans at least one unit.

    Examples
    --------
    >>> RuleSettings(min_count=5).min_count
    5
    """

    min_count: int = 10
    dominance_share: float = 0.5
    nk: tuple[int, float] | None = None
    group_share: float = 0.9
    protection_share: float = 0.10
    margin_units: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.min_count, int) or self.min_count < 1:
            problems.append(f"min_count must be an integer >= 1, got {self.min_count!r}")
        if not 0.0 < self.dominance_share < 1.0:
            problems.append(f"dominance_share must lie in (0, 1), got {self.dominance_share!r}")
        if self.nk is not None:
            n, k = self.nk
            if n not in (1, 2) or not 0.0 < k < 1.0:
                problems.append(
                    f"nk must be (n, k) with n in {{1, 2}} and 0 < k < 1, got {self.nk!r}"
                )
        if not 0.1 < self.group_share <= 1.0:
            problems.append(f"group_share must lie in (0.1, 1], got {self.group_share!r}")
        if not (0.0 <= self.protection_share < 1.0 and math.isfinite(self.protection_share)):
            problems.append(f"protection_share must lie in [0, 1), got {self.protection_share!r}")
        if not (0.0 <= self.margin_units and math.isfinite(self.margin_units)):
            problems.append(f"margin_units must be finite and >= 0, got {self.margin_units!r}")
        if problems:
            raise DisclosureInputError("RuleSettings: " + "; ".join(problems))
