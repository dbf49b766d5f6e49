"""Text that a spreadsheet would run: names that start like a formula (CSV injection).

A cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which
some spreadsheets skip before reading one of those) is read as a formula when a CSV file is
opened in Excel or LibreOffice; the municipal staff who open the public tables would run
it. OWASP's advice: prefix such a value with a single quote, which the spreadsheet shows as
text. ``zicht world validate`` reports such names in a world; the public CSV files carry
them neutralised (:func:`neutralise`).
"""

from __future__ import annotations

import pandas as pd

#: the characters a spreadsheet formula (or its lead-in) starts with
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(value: object) -> bool:
    """Whether *value* is text that starts like a spreadsheet formula.

    >>> looks_like_formula("=HYPERLINK(1)"), looks_like_formula("Oud-West")
    (True, False)
    """
    return isinstance(value, str) and value.startswith(FORMULA_START)


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """*frame* with every text value that starts like a formula prefixed by ``'``.

    >>> neutralise(pd.DataFrame({"area_name": ["@Zuid", "Noord"]}))["area_name"].tolist()
    ["'@Zuid", 'Noord']
    """
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
            continue
        hit = s.map(looks_like_formula).astype(bool)
        if hit.any():
            out[col] = s.where(~hit, "'" + s.astype(str))
    return out
