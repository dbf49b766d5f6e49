"""The intruder's screening (disclosure.attack._solve) finds exactly what two LPs per cell find.

Random two-level tables (a grand total, totals, their parts) with counts, some cells published
exactly and the rest only bounded by ``[0, n]``, are attacked twice: with the screening of
feasible points and with every cell's own two LPs. The findings and the recomputed cells are the
same; an exactly solved cell has the same interval; a screened cell's seen interval lies inside
the exact one and is at least a unit wide.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from disclosure import attack as A


def _table(seed: int, groups: int, parts: int, share: float, integer: bool):
    rng = np.random.default_rng(seed)
    cells = A._Cells.empty(integer=integer)
    n = rng.integers(0, 14, size=(groups, parts)).astype(float)
    # counts planted so that some cells are (nearly) all positive: group disclosures exist
    v = np.minimum(n, np.round(n * rng.uniform(0.0, 1.1, size=n.shape)))
    if not integer:
        v = n * rng.uniform(0.0, 1.0, size=n.shape)
    rows = []

    def add(key, value, count):
        published = bool(rng.uniform() < share)
        lo, hi = (value, value) if published else (0.0, count)
        cells.add(key, lo, hi, count, published)
        return cells.index[key]

    grand = add(("v1", "nederland", "NL", "total"), float(v.sum()), float(n.sum()))
    tops = []
    for g in range(groups):
        top = add(("v1", "gemeente", f"G{g}", "total"), float(v[g].sum()), float(n[g].sum()))
        kids = [add(("v1", "buurt", f"B{g}_{p}", "total"), v[g, p], n[g, p]) for p in range(parts)]
        rows.append([(top, 1.0)] + [(k, -1.0) for k in kids])
        tops.append(top)
    rows.append([(grand, 1.0)] + [(t, -1.0) for t in tops])
    return cells, rows


@given(
    seed=st.integers(0, 10_000),
    groups=st.integers(1, 4),
    parts=st.integers(1, 5),
    share=st.sampled_from([0.2, 0.5, 0.8]),
    integer=st.booleans(),
)
def test_screening_finds_what_every_lp_finds(
    seed: int, groups: int, parts: int, share: float, integer: bool
) -> None:
    cells, rows = _table(seed, groups, parts, share, integer)
    kw = {"min_count": 10, "group_share": 0.9}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(A, "_SCREEN", False)
        exact = A._solve("t", "b", cells, rows, **kw)
    fast = A._solve("t", "b", cells, rows, **kw)
    assert list(fast.columns) == list(exact.columns)
    assert exact["exact"].all()
    key = ["level", "area_code"]
    assert fast[key].equals(exact[key])  # the same cells, in the same order
    assert fast["finding"].tolist() == exact["finding"].tolist()
    assert fast["recomputed"].tolist() == exact["recomputed"].tolist()
    solved = fast["exact"].to_numpy()
    np.testing.assert_allclose(fast.loc[solved, "lower"], exact.loc[solved, "lower"], atol=1e-7)
    np.testing.assert_allclose(fast.loc[solved, "upper"], exact.loc[solved, "upper"], atol=1e-7)
    inner = fast[~solved]
    outer = exact[~solved]
    assert (inner["lower"].to_numpy() >= outer["lower"].to_numpy() - 1e-7).all()
    assert (inner["upper"].to_numpy() <= outer["upper"].to_numpy() + 1e-7).all()
    assert (inner["upper"] - inner["lower"] >= 1.0 - 1e-7).all()


def test_a_planted_pinned_cell_is_found_and_screened_cells_are_skipped() -> None:
    """Known answer: a total of 12 with parts 5 (published), x and y (hidden, n 3 and 4) and a
    second hidden total whose parts are wide: x + y = 7 with x <= 3, y <= 4 pins both."""
    cells = A._Cells.empty(integer=True)
    cells.add(("v", "gemeente", "G", "total"), 12.0, 12.0, 20.0, True)
    cells.add(("v", "buurt", "P", "total"), 5.0, 5.0, 13.0, True)
    cells.add(("v", "buurt", "X", "total"), 0.0, 3.0, 3.0, False)
    cells.add(("v", "buurt", "Y", "total"), 0.0, 4.0, 4.0, False)
    cells.add(("v", "gemeente", "H", "total"), 0.0, 60.0, 60.0, False)
    cells.add(("v", "buurt", "Q", "total"), 0.0, 30.0, 30.0, False)
    cells.add(("v", "buurt", "R", "total"), 0.0, 30.0, 30.0, False)
    rows = [[(0, 1.0), (1, -1.0), (2, -1.0), (3, -1.0)], [(4, 1.0), (5, -1.0), (6, -1.0)]]
    got = A._solve("t", "b", cells, rows, min_count=10, group_share=0.9).set_index("area_code")
    assert got.loc["X", "finding"] and got.loc["Y", "finding"]
    assert got.loc["X", "lower"] == pytest.approx(3) and got.loc["Y", "upper"] == pytest.approx(4)
    assert not got.loc[["H", "Q", "R"], "finding"].any()
    assert got.loc[["X", "Y"], "exact"].all()
    assert not got.loc[["H", "Q", "R"], "exact"].all()  # wide cells cost no LP of their own
