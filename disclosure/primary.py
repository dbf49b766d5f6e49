"""Primary disclosure rules on a cell table (vectorised) and the protection they require.

A cell table has one row per cell x additive basis; its columns are described in
``docs/design/publish_interfaces.md`` section 2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from disclosure.settings import DisclosureInputError, RuleSettings

CELL_COLUMNS = (
    "cell_id",
    "level",
    "area_code",
    "breakdown",
    "basis",
    "kind",
    "n",
    "value",
    "top1",
    "top2",
    "upper",
    "intent",
)
#: optional columns: ``unit_max`` (the most one unit can contribute; default 1 for counts and
#: ``top1`` for sums), ``contributors`` (units behind the value when they differ from the
#: published ``n``; the threshold rule counts them) and ``own_value_known`` (each contributor
#: knows its own contribution, as a business knows its turnover: a suppressed cell of one
#: contributor is then known to it and protects no other cell; default False)
OPTIONAL_COLUMNS = ("unit_max", "contributors", "own_value_known")
REASONS = ("threshold", "dominance", "nk", "group")


def unit_max(cells: pd.DataFrame) -> np.ndarray:
    """The most one unit can contribute to each cell: the ``unit_max`` column where given,
    else 1 for counts and the largest contribution (``top1``) for sums."""
    is_sum = cells["kind"].to_numpy() == "sum"
    default = np.where(is_sum, np.nan_to_num(cells["top1"].to_numpy(dtype=float)), 1.0)
    if "unit_max" not in cells.columns:
        return default
    given = cells["unit_max"].to_numpy(dtype=float)
    return np.where(np.isfinite(given), given, default)


def contributors(cells: pd.DataFrame) -> np.ndarray:
    """Units behind each cell's value (the threshold rule's count): ``contributors`` or ``n``."""
    n = cells["n"].to_numpy(dtype=float)
    if "contributors" not in cells.columns:
        return n
    return cells["contributors"].to_numpy(dtype=float)


def _fail(rule: str, fix: str, rows: pd.Series | None = None) -> DisclosureInputError:
    where = ""
    if rows is not None and len(rows):
        shown = ", ".join(map(str, rows.head(5)))
        where = f" (cells: {shown}{', ...' if len(rows) > 5 else ''})"
    return DisclosureInputError(f"cell table: {rule}{where}. Fix: {fix}")


def validate_cells(cells: pd.DataFrame) -> None:
    """Raise :class:`DisclosureInputError` naming column, rule and fix if *cells* is unusable."""
    missing = [c for c in CELL_COLUMNS if c not in cells.columns]
    if missing:
        raise _fail(
            f"missing columns {missing}",
            "build the cell table with every column of publish_interfaces.md section 2",
        )
    ids = cells["cell_id"]
    if ids.isna().any() or ids.duplicated().any():
        raise _fail(
            "column cell_id must be unique and non-empty",
            "give every cell x basis its own id",
            ids[ids.duplicated(keep=False) | ids.isna()],
        )
    bad_kind = ~cells["kind"].isin(["sum", "count"])
    if bad_kind.any():
        raise _fail("column kind must be 'sum' or 'count'", "set kind", ids[bad_kind])
    n = cells["n"].to_numpy(dtype=float)
    value = cells["value"].to_numpy(dtype=float)
    upper = cells["upper"].to_numpy(dtype=float)
    top1 = cells["top1"].to_numpy(dtype=float)
    checks = [
        (~np.isfinite(n) | (n < 0) | (n != np.round(n)), "column n must be a whole number >= 0"),
        (~np.isfinite(value) | (value < 0), "column value must be finite and >= 0"),
        (np.isnan(upper), "column upper must not be NaN (use inf for no bound)"),
        (value > upper * (1 + 1e-12) + 1e-12, "column value must not exceed upper"),
        (
            (cells["kind"].to_numpy() == "sum") & (contributors(cells) > 0) & np.isnan(top1),
            "column top1 must be set for sum cells with contributors",
        ),
        (top1 > value * (1 + 1e-9) + 1e-9, "column top1 must not exceed value"),
    ]
    for mask, rule in checks:
        if mask.any():
            raise _fail(rule, "correct the roll-up that built these cells", ids[mask])
    if "unit_max" in cells.columns:
        um = cells["unit_max"].to_numpy(dtype=float)
        if (um < 0).any():
            raise _fail("column unit_max must be >= 0", "correct the roll-up", ids[um < 0])
    if "contributors" in cells.columns:
        k = cells["contributors"].to_numpy(dtype=float)
        bad = ~np.isfinite(k) | (k < 0) | (k > n) | (k != np.round(k))
        if bad.any():
            raise _fail(
                "column contributors must be a whole number in [0, n]",
                "count the units behind each value",
                ids[bad],
            )
    for col in ("intent", "own_value_known"):
        if col in cells.columns and cells[col].dtype != bool:
            raise _fail(f"column {col} must be boolean", f"cast {col} to bool")


def primary(cells: pd.DataFrame, settings: RuleSettings) -> pd.DataFrame:
    """Apply the primary rules to every cell.

    Parameters
    ----------
    cells
        The cell table.
    settings
        The rule settings.

    Returns
    -------
    DataFrame
        ``cell_id``, ``unsafe`` (bool) and ``reason``: a ``;``-joined subset of
        ``threshold``, ``dominance``, ``nk``, ``group`` (empty when safe).

    Examples
    --------
    A sum whose largest contributor is exactly half of it is safe:

    >>> cells = pd.DataFrame({"cell_id": ["a"], "level": ["buurt"], "area_code": ["BU1"],
    ...     "breakdown": ["total"], "basis": ["turnover_sum"], "kind": ["sum"], "n": [12],
    ...     "value": [100.0], "top1": [50.0], "top2": [10.0], "upper": [np.inf],
    ...     "intent": [True]})
    >>> primary(cells, RuleSettings()).unsafe.item()
    False
    """
    validate_cells(cells)
    return primary_unchecked(cells, settings)


def primary_unchecked(cells: pd.DataFrame, settings: RuleSettings) -> pd.DataFrame:
    """:func:`primary` for a cell table that already passed :func:`validate_cells`."""
    flags = _rule_flags(cells, settings)
    reason = pd.Series("", index=cells.index, dtype=object)
    for name in REASONS:
        hit = flags[name]
        reason = reason.where(~hit, reason + np.where(reason == "", "", ";") + name)
    unsafe = np.logical_or.reduce([flags[name] for name in REASONS])
    return pd.DataFrame(
        {"cell_id": cells["cell_id"].to_numpy(), "unsafe": unsafe, "reason": reason.to_numpy()}
    )


def _rule_flags(cells: pd.DataFrame, settings: RuleSettings) -> dict[str, np.ndarray]:
    n = cells["n"].to_numpy(dtype=float)
    value = cells["value"].to_numpy(dtype=float)
    top1 = np.nan_to_num(cells["top1"].to_numpy(dtype=float))
    top2 = np.nan_to_num(cells["top2"].to_numpy(dtype=float))
    is_sum = cells["kind"].to_numpy() == "sum"
    flags = {
        "threshold": contributors(cells) < settings.min_count,
        "dominance": is_sum & (top1 > settings.dominance_share * value),
        "nk": np.zeros(len(cells), dtype=bool),
        "group": (~is_sum) & (n > 0) & (value >= settings.group_share * np.maximum(n, 1)),
    }
    if settings.nk is not None:
        top_n = top1 if settings.nk[0] == 1 else top1 + top2
        flags["nk"] = is_sum & (top_n > settings.nk[1] * value)
    return flags


def required_protection(cells: pd.DataFrame, settings: RuleSettings) -> pd.DataFrame:
    """The protection each cell needs when suppressed, on each side of its value.

    Dominance cells: the (1, k) formula ``top1 / dominance_share - value`` (for k = 50 %,
    ``2 top1 - value``); (n, k) cells likewise with the top-n sum; threshold and group cells
    ``protection_share * value`` but at least ``margin_units`` units' maximum contribution
    (:func:`unit_max`), so that a cell worth 0 is protected too. The largest applicable
    amount is taken. Requirements are capped by what the attacker's bounds allow (``value``
    below, ``upper - value`` above).
    Safe cells need none; cells never released (``intent == False``) need the same as
    released ones: an unknown cell that the relations pin is disclosed all the same.

    Returns
    -------
    DataFrame
        ``cell_id``, ``req_lower``, ``req_upper``.
    """
    validate_cells(cells)
    return required_protection_unchecked(cells, settings)


def required_protection_unchecked(cells: pd.DataFrame, settings: RuleSettings) -> pd.DataFrame:
    """:func:`required_protection` for a cell table that already passed validation."""
    flags = _rule_flags(cells, settings)
    value = cells["value"].to_numpy(dtype=float)
    upper = cells["upper"].to_numpy(dtype=float)
    top1 = np.nan_to_num(cells["top1"].to_numpy(dtype=float))
    top2 = np.nan_to_num(cells["top2"].to_numpy(dtype=float))
    floor = settings.margin_units * unit_max(cells)
    share = np.where(
        flags["threshold"] | flags["group"],
        np.maximum(settings.protection_share * value, floor),
        0.0,
    )
    dom = np.where(flags["dominance"], top1 / settings.dominance_share - value, 0.0)
    req = np.maximum(share, dom)
    if settings.nk is not None:
        top_n = top1 if settings.nk[0] == 1 else top1 + top2
        req = np.maximum(req, np.where(flags["nk"], top_n / settings.nk[1] - value, 0.0))
    req = np.maximum(req, 0.0)
    return pd.DataFrame(
        {
            "cell_id": cells["cell_id"].to_numpy(),
            "req_lower": np.minimum(req, value),
            "req_upper": np.minimum(req, np.maximum(upper - value, 0.0)),
        }
    )
