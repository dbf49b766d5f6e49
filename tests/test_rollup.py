# mypy: disable-error-code="index,arg-type,call-overload"
"""Roll-up: known answers on hand-built frames, and exact additivity as a property."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.rollup import (
    LEVELS,
    TOTAL,
    Rollup,
    aggregate,
    elevated,
    level_tables,
    roll_up_binary,
    roll_up_turnover,
)

# two buurten in one wijk, one in another; one gemeente; one RIEC region
GEO = {
    "BU00010000": ("WK000100", "GM0001", "RIEC01"),
    "BU00010001": ("WK000100", "GM0001", "RIEC01"),
    "BU00010100": ("WK000101", "GM0001", "RIEC01"),
}
AREAS = pd.DataFrame(
    {
        "area_code": ["RIEC01", "GM0001", "WK000100", "WK000101", *GEO],
        "area_name": ["Regio", "Gem", "W0", "W1", "B0", "B1", "B2"],
        "parent_code": [None, "RIEC01", "GM0001", "GM0001", "WK000100", "WK000100", "WK000101"],
    }
)


def _units(buurten: list[str], **cols: object) -> pd.DataFrame:
    frame = pd.DataFrame({"buurt_code": buurten})
    for i, c in enumerate(("wijk_code", "gemeente_code", "riec_code")):
        frame[c] = [GEO[b][i] for b in buurten]
    return frame.assign(**cols)


def _publish_all(rollup: Rollup) -> pd.DataFrame:
    return pd.DataFrame({"cell_id": rollup.cells["cell_id"], "status": "published", "reason": ""})


def test_hennep_known_answer() -> None:
    buurten = ["BU00010000"] * 3 + ["BU00010001"] * 2 + ["BU00010100"] * 5
    prob = [0.1, 0.3, 0.2, 0.05, 0.05, 0.01, 0.01, 0.01, 0.01, 0.01]
    score = np.arange(10, dtype=float)  # the top decile is the unit with score 9
    r = roll_up_binary(_units(buurten, probability=prob, score=score), task="hennep")
    g = r.grid.set_index(["level", "area_code"])
    assert g.loc[("buurt", "BU00010000"), "n"] == 3
    assert np.isclose(g.loc[("buurt", "BU00010000"), "risk_sum"], 0.6)
    assert g.loc[("buurt", "BU00010000"), "risk_sum__top1"] == 0.3
    assert g.loc[("wijk", "WK000100"), "risk_sum__top2"] == 0.2
    assert g.loc[("nederland", "NL"), "elevated_count"] == 1
    assert g.loc[("buurt", "BU00010100"), "elevated_count"] == 1
    tables = level_tables(r, _publish_all(r), areas=AREAS)
    nl = tables["nederland"].iloc[0]
    assert nl["index"] == 100 and nl["area_name"] == "Nederland" and nl["parent_code"] == ""
    b0 = tables["buurt"].set_index("area_code").loc["BU00010000"]
    assert np.isclose(b0["expected_per_1000"], 200.0)
    assert b0["index"] == round(100 * 0.2 / (0.75 / 10), 1)  # published to 1 decimal
    assert b0["parent_code"] == "WK000100"
    assert tables["riec"].iloc[0]["parent_code"] == "NL"
    # the cell table: one row per area x basis; sums carry top1, counts do not
    cells = r.cells.set_index("cell_id")
    assert cells.loc["wijk|WK000100|total|risk_sum", "top1"] == 0.3
    assert np.isnan(cells.loc["wijk|WK000100|total|elevated_count", "top1"])
    assert cells["upper"].eq(cells["n"]).all()


def test_suppressed_basis_empties_its_derived_measures() -> None:
    buurten = ["BU00010000"] * 12 + ["BU00010001"] * 4 + ["BU00010100"] * 15
    rng = np.random.default_rng(1)
    units = _units(buurten, probability=rng.random(len(buurten)) / 10, score=rng.random(31))
    r = roll_up_binary(units, task="hennep")
    status = _publish_all(r)
    hidden = status["cell_id"] == "buurt|BU00010001|total|risk_sum"
    status.loc[hidden, ["status", "reason"]] = ["suppressed", "threshold"]
    row = level_tables(r, status, areas=AREAS)["buurt"].set_index("area_code").loc["BU00010001"]
    assert row["status_risk_sum"] == "suppressed" and row["reason_risk_sum"] == "threshold"
    assert np.isnan([row["risk_mean"], row["expected_per_1000"], row["index"]]).all()
    assert row["n"] == 4
    assert row["status_elevated_count"] == "published" and not np.isnan(row["elevated_share"])


def test_jonge_aanwas_age_groups_add_up_and_elevated_per_group() -> None:
    rng = np.random.default_rng(3)
    k = 300
    buurten = list(rng.choice(list(GEO), k))
    groups = rng.choice(["8-12", "13-19", "20-23"], k)
    units = _units(buurten, age_group=groups, probability=rng.random(k) / 5, score=rng.random(k))
    r = roll_up_binary(units, task="jonge_aanwas")
    g = r.grid
    for _key, block in g.groupby(["level", "area_code"]):
        parts = block[block["breakdown"] != TOTAL]
        total = block[block["breakdown"] == TOTAL].iloc[0]
        assert parts["n"].sum() == total["n"]
        assert np.isclose(parts["risk_sum"].sum(), total["risk_sum"])
        assert parts["elevated_count"].sum() == total["elevated_count"]
    nl = g[(g["level"] == "nederland") & (g["breakdown"] != TOTAL)]
    assert (np.abs(nl["elevated_count"] / nl["n"] - 0.1) < 0.02).all()  # top decile per group
    tables = level_tables(r, _publish_all(r), areas=AREAS)
    assert list(tables["gemeente"]["age_group"]) == ["8-12", "13-19", "20-23", "total"]
    assert tables["gemeente"]["top_drivers"].eq("").all()  # no profiles: empty
    assert "no area driver profiles" in r.schema["notes"][0]


def test_elevated_is_strictly_above_the_top_decile() -> None:
    score = np.arange(100, dtype=float)
    assert elevated(score).sum() == 10
    assert not elevated(np.ones(50)).any()  # ties at the threshold are not above it


def test_turnover_known_answer() -> None:
    est = _units(
        ["BU00010000", "BU00010001", "BU00010100", "BU00010100"],
        sbi=["4120", "4120", "4120", "5610"],
        turnover=[100.0, 300.0, 50.0, np.nan],
    )
    inhabitants = pd.Series({"WK000100": 10, "WK000101": 0, "GM0001": 10})
    preds = pd.DataFrame(
        {
            "level": ["wijk", "wijk", "wijk", "gemeente", "gemeente"],
            "area_code": ["WK000100", "WK000101", "WK000101", "GM0001", "GM0001"],
            "sbi": ["4120", "4120", "5610", "4120", "5610"],
            "expected_log": np.log1p([20.0, 5.0, 5.0, 40.0, 1.0]),
            "flag": [True, False, False, False, False],
        }
    )
    r = roll_up_turnover(preds, establishments=est, inhabitants=inhabitants)
    g = r.grid.set_index(["level", "area_code", "breakdown"])
    w = g.loc[("wijk", "WK000100", "4120")]
    assert w["n"] == 2 and w["turnover_sum"] == 400 and w["turnover_sum__top1"] == 300
    assert w["turnover_sum__top2"] == 100
    assert np.isclose(w["expected_turnover"], 200.0)
    assert g.loc[("nederland", "NL", TOTAL), "n"] == 4
    assert np.isclose(g.loc[("riec", "RIEC01", "4120"), "expected_turnover"], 400.0)
    assert np.isclose(g.loc[("gemeente", "GM0001", TOTAL), "expected_turnover"], 410.0)
    tables = level_tables(r, _publish_all(r), areas=AREAS, branch_names={"4120": "Bouw"})
    wijk = tables["wijk"].set_index(["area_code", "branch"])
    row = wijk.loc[("WK000100", "4120")]
    assert np.isclose(row["turnover_per_inhabitant"], 40.0)
    assert np.isclose(row["deviation_ratio"], 2.0) and bool(row["flag"])
    assert row["branch_name"] == "Bouw"
    # a wijk without inhabitants: turnover_per_inhabitant empty
    assert np.isnan(wijk.loc[("WK000101", "4120"), "turnover_per_inhabitant"])
    assert "buurt" not in tables
    assert list(tables["gemeente"]["branch"]) == ["4120", "5610", TOTAL]


@st.composite
def _worlds(draw: st.DrawFn) -> pd.DataFrame:
    k = draw(st.integers(1, 60))
    buurten = draw(st.lists(st.sampled_from(sorted(GEO)), min_size=k, max_size=k))
    probs = draw(st.lists(st.floats(0, 1), min_size=k, max_size=k))
    groups = draw(st.lists(st.sampled_from(["8-12", "13-19", "20-23"]), min_size=k, max_size=k))
    return _units(buurten, probability=probs, score=probs, age_group=groups)


@settings(max_examples=30)
@given(_worlds())
def test_every_level_adds_up_to_the_national_total(units: pd.DataFrame) -> None:
    r = roll_up_binary(units, task="jonge_aanwas")
    g = r.grid[r.grid["breakdown"] == TOTAL]
    nl = g[g["level"] == "nederland"].iloc[0]
    assert nl["n"] == len(units)
    for level in LEVELS:
        at = g[g["level"] == level]
        assert at["n"].sum() == nl["n"]
        assert np.isclose(at["risk_sum"].sum(), nl["risk_sum"])
        assert at["elevated_count"].sum() == nl["elevated_count"]
    # every relation: total = sum of parts, for every basis
    values = r.cells.set_index("cell_id")["value"]
    rel = r.relations.assign(value=r.relations["cell_id"].map(values))
    assert rel["value"].notna().all()
    signed = np.where(rel["role"] == "total", rel["value"], -rel["value"])
    assert np.allclose(pd.Series(signed).groupby(rel["relation_id"].to_numpy()).sum(), 0)
    assert (rel.groupby("relation_id")["role"].apply(lambda s: (s == "total").sum()) == 1).all()


def test_aggregate_top_two_over_any_grouping() -> None:
    units = _units(list(GEO) * 2, x=[5.0, 1.0, 3.0, 4.0, 2.0, 6.0])
    g = aggregate(units, levels=("gemeente",), breakdown=None, sums=("x",), top="x").iloc[0]
    assert (g["n"], g["x"], g["x__top1"], g["x__top2"]) == (6, 21.0, 6.0, 5.0)
