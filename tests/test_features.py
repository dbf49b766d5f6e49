"""Feature builders: known answers, point-in-time correctness, catalogue completeness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import builders as b
from features.catalogue import CATALOGUE, TASK_FEATURES, render_markdown
from features.tables import META, UNIT_ID, build_task_year, load_world
from microdata.spells import OPEN_END

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("hennep", "jonge_aanwas", "branch_turnover")


@pytest.fixture(scope="module")
def tiny_frames(tiny_data: Path) -> b.WorldFrames:
    w = load_world(tiny_data / "world")
    for table in b.YEARLY_TABLES:  # in memory, so tests can edit them
        w.frames[table] = w.reader.read(table)  # type: ignore[union-attr]
    return w


# ----------------------------------------------------------------------------- known answers


def _stats(codes: list[str], level: str) -> pd.DataFrame:
    return pd.concat([_stats_year(codes, level, 2019), _stats_year(codes, level, 2020)])


def _stats_year(codes: list[str], level: str, year: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "area_code": codes,
            "level": level,
            "year": year,
            "inhabitants": 100,
            "households": 40,
            "dwellings": 45,
            "density": 50.0,
            "urbanity": 3,
            "mean_woz": 250_000.0,
            "mean_income": 40_000.0,
            "share_rental": 0.4,
            "distance_facilities_km": 1.5,
            "establishments": 5,
            "business_density": 2.0,
        }
    )


def mini_world() -> b.WorldFrames:
    """Two buurten, two households, five persons, four dwellings: every answer is known."""
    spell = {"valid_from": 2016, "valid_to": OPEN_END}
    frames = {
        "areas": pd.DataFrame(
            {
                "area_code": ["RIEC01", "GM0001", "WK000100", "BU00010000", "BU00010001"],
                "level": ["riec", "gemeente", "wijk", "buurt", "buurt"],
                "area_name": ["R", "G", "W", "B0", "B1"],
                "parent_code": [None, "RIEC01", "GM0001", "WK000100", "WK000100"],
                "riec_code": ["RIEC01"] * 5,
                "gemeente_code": [None, "GM0001", "GM0001", "GM0001", "GM0001"],
                "wijk_code": [None, None, "WK000100", "WK000100", "WK000100"],
                "land_area_km2": [10.0, 10.0, 2.0, 1.0, 1.0],
            }
        ),
        "area_stats": pd.concat(
            [
                _stats(["BU00010000", "BU00010001"], "buurt"),
                _stats(["WK000100"], "wijk"),
                _stats(["GM0001"], "gemeente"),
            ]
        ),
        "persons": pd.DataFrame(
            {
                "person_id": [0, 1, 2, 3, 4],
                "birth_year": [1980, 1978, 2008, 2005, 1990],
                "sex": ["V", "M", "M", "V", "M"],
                "mother_id": pd.array([None, None, 0, 0, None], dtype="Int32"),
                "father_id": pd.array([None, None, 1, 1, None], dtype="Int32"),
                "death_year": pd.array([None] * 5, dtype="Int16"),
            }
        ),
        "household_members": pd.DataFrame(
            {
                "person_id": [0, 1, 2, 3, 4],
                "household_id": [0, 0, 0, 0, 1],
                "role": ["partner", "head", "child", "child", "head"],
                **spell,
            }
        ),
        "households": pd.DataFrame(
            {"household_id": [0, 1], "household_type": ["couple_with_children", "single"], **spell}
        ),
        "residences": pd.DataFrame(
            {
                "household_id": [0, 1, 1],
                "dwelling_id": [0, 2, 1],
                "valid_from": [2016, 2016, 2019],
                "valid_to": [OPEN_END, 2018, OPEN_END],
            }
        ),
        "dwellings": pd.DataFrame(
            {
                "dwelling_id": [0, 1, 2, 3],
                "buurt_code": ["BU00010000", "BU00010000", "BU00010001", "BU00010001"],
                "dwelling_type": ["terraced", "apartment", "detached", "apartment"],
                "surface_m2": [110, 60, 170, 55],
                "build_year": [1970, 1985, 1930, 2010],
                "ownership_changes_20y": [1, 2, 0, 3],
            }
        ),
        "ownership": pd.DataFrame(
            {
                "dwelling_id": [0, 1, 2, 3],
                "ownership": ["owner_occupied", "private_rent", "owner_occupied", "social_rent"],
                "owner_type": ["person", "company", "person", "foundation"],
                "owner_foreign": [False, True, False, False],
                "transfers": [0, 1, 0, 0],
                **spell,
            }
        ),
        "socio_economic": pd.DataFrame(
            {
                "person_id": [4, 3],
                "status": ["no_income", "student"],
                "valid_from": [2018, 2016],
                "valid_to": [OPEN_END, OPEN_END],
            }
        ),
        "problematic_debts": pd.DataFrame(
            {"household_id": [0], "valid_from": [2018], "valid_to": [OPEN_END]}
        ),
        "debt_restructuring": pd.DataFrame(
            {"person_id": [1], "valid_from": [2019], "valid_to": [2020]}
        ),
        "early_school_leaving": pd.DataFrame({"person_id": [3], "year": [2018]}),
        "halt": pd.DataFrame({"person_id": [2, 2, 2], "year": [2018, 2019, 2020]}),
        "youth_care": pd.DataFrame(
            {
                "person_id": [2],
                "kind": ["jeugdreclassering"],
                "valid_from": [2019],
                "valid_to": [2019],
            }
        ),
        "suspicions": pd.DataFrame(
            {
                "person_id": [3, 0, 2],
                "offence": ["property", "violence", "drugs"],
                "year": [2018, 2017, 2021],
            }
        ),
        "convictions": pd.DataFrame({"person_id": [0], "offence": ["violence"], "year": [2017]}),
        "cannabis_farms": pd.DataFrame({"dwelling_id": [1, 2], "year": [2018, 2020]}),
        "branches": pd.DataFrame(
            {"sbi": ["96021"], "branch_name": ["Kappers"], "vulnerable": [True]}
        ),
        "establishments": pd.DataFrame(
            {
                "establishment_id": [0, 1],
                "buurt_code": ["BU00010000", "BU00010001"],
                "sbi": ["96021", "96021"],
                "legal_form": ["eenmanszaak", "bv"],
                "employees": [2, 4],
                "sole_director": [True, False],
                "founded_year": [2010, 2015],
                "closed_year": pd.array([None, None], dtype="Int16"),
            }
        ),
        "household_income": pd.DataFrame(
            {
                "household_id": [0, 1],
                "year": [2019, 2019],
                "disposable_income": [20_000, 60_000],
                "income_percentile": [20, 80],
                "wealth": [0, 10_000],
            }
        ),
        "woz": pd.DataFrame(
            {
                "dwelling_id": [0, 1, 2, 3],
                "year": 2019,
                "woz_value": [300_000, 200_000, 500_000, 150_000],
            }
        ),
        "turnover": pd.DataFrame(
            {
                "establishment_id": [0, 1, 0, 1],
                "year": [2019, 2019, 2020, 2020],
                "turnover": [80_000, 120_000, 90_000, 100_000],
            }
        ),
    }
    nb = pd.DataFrame(
        {"area_code": ["BU00010000", "BU00010001"], "neighbour_code": ["BU00010001", "BU00010000"]}
    )
    return b.WorldFrames(frames, nb)


def test_person_features_known_answers() -> None:
    w = mini_world()
    f = build_task_year(w, "jonge_aanwas", 2020, TASK_FEATURES["jonge_aanwas"]).set_index(
        "person_id"
    )
    assert sorted(f.index) == [2, 3], "only the 8-23-year-olds without a drug suspicion before t"
    boy, girl = f.loc[2], f.loc[3]
    assert boy["age"] == 12 and boy["male"] == 1 and boy["age_group"] == "8-12"
    assert boy["halt_count"] == 2, "Halt in 2020 is after t-1 and must not count"
    assert boy["youth_probation"] == 1 and boy["youth_care"] == 0
    assert boy["suspected_parent"] == 1 and boy["suspected_sibling"] == 1
    assert boy["convicted_family_member"] == 1
    assert boy["household_problematic_debts"] == 1 and boy["household_debt_restructuring"] == 1
    assert boy["household_income_percentile"] == 20 and boy["household_size"] == 4
    assert boy["household_type"] == 2 and boy["single_parent_household"] == 0
    assert boy["label"] == 1, "first drug suspicion in 2021 lies in the window 2020-2022"
    assert girl["early_school_leaver"] == 1 and girl["suspicions_property"] == 1
    assert girl["years_since_suspicion"] == 2 and girl["suspected_sibling"] == 0
    assert girl["no_income"] == 0 and girl["label"] == 0
    assert np.isnan(boy["years_since_suspicion"])
    assert boy["buurt_code"] == "BU00010000" and boy["riec_code"] == "RIEC01"


def test_dwelling_features_known_answers() -> None:
    w = mini_world()
    f = build_task_year(w, "hennep", 2020, TASK_FEATURES["hennep"]).set_index("dwelling_id")
    assert sorted(f.index) == [0, 1, 2, 3]
    assert f.loc[1, "recent_move_in"] == 1 and f.loc[1, "earlier_farm_here"] == 1
    assert f.loc[1, "owner_foreign"] == 1 and f.loc[1, "ownership_changes"] == 3
    assert f.loc[0, "farms_buurt_3y"] == 1 and f.loc[0, "farms_neighbours_3y"] == 0
    assert f.loc[2, "vacant"] == 1 and f.loc[3, "vacant"] == 1 and f.loc[0, "vacant"] == 0
    assert f.loc[2, "farms_buurt_3y"] == 0 and f.loc[2, "farms_neighbours_3y"] == 1
    assert f.loc[2, "earlier_farm_here"] == 0, "the 2020 farm is the label, not history"
    assert f["label"].to_dict() == {0: 0, 1: 0, 2: 1, 3: 0}
    assert f.loc[0, "residents_size"] == 4 and f.loc[0, "residents_problematic_debts"] == 1
    assert f.loc[1, "residents_income_percentile"] == 80 and f.loc[1, "woz_value"] == 200_000
    assert np.isnan(f.loc[3, "residents_income_percentile"]) and f.loc[3, "residents_size"] == 0


def test_cell_features_known_answers() -> None:
    w = mini_world()
    f = build_task_year(w, "branch_turnover", 2020, TASK_FEATURES["branch_turnover"]).set_index(
        "cell_id"
    )
    assert sorted(f.index) == ["GM0001|96021", "WK000100|96021"]
    wk = f.loc["WK000100|96021"]
    assert wk["branch_establishments_per_1000"] == pytest.approx(20.0)  # 2 per 100 inhabitants
    assert wk["branch_employees_per_establishment"] == pytest.approx(3.0)
    assert wk["branch_employees_per_1000"] == pytest.approx(60.0)  # 6 per 100 inhabitants
    # 2019: 80,000 / 2 and 120,000 / 4 per employee, median 35,000; 6 employees, 100 inhabitants
    assert wk["branch_turnover_at_branch_rate"] == pytest.approx(np.log1p(6 * 35_000 / 100))
    assert wk["prior_establishments"] == 2
    assert wk["label"] == pytest.approx(np.log1p(190_000 / 100), rel=1e-6)


def test_cell_features_never_see_the_cells_own_turnover(tiny_frames: b.WorldFrames) -> None:
    """A cell whose turnover in t - 1 is ten times what it was (a front in its second year)
    keeps its features: its expectation cannot absorb the anomaly. Only the branch's median
    rate may move, by a hair, since the cell's businesses are among the branch's."""
    t, y = 2021, 2020
    cells = b.cell_population(tiny_frames, t)
    before = pd.DataFrame(b.cell_features(b.Snapshot(tiny_frames, y), cells))
    # the wijk cell of the branch with the most establishments that has 3 or more itself
    wijk = cells[cells["level"] == "wijk"].reset_index(drop=True)
    n = pd.Series(b.cell_establishments(tiny_frames, wijk, y))
    branch = b._active_establishments(tiny_frames, y)["sbi"].astype(str).value_counts().index[0]
    pick = wijk[(n >= 3).to_numpy() & (wijk["sbi"] == branch).to_numpy()].iloc[0]
    est = b._active_establishments(tiny_frames, y)
    buurten = tiny_frames.buurten.set_index("area_code")["wijk_code"].astype(str)
    in_cell = est[
        (est["sbi"].astype(str) == pick["sbi"])
        & (est["buurt_code"].astype(str).map(buurten) == pick["area_code"])
    ]["establishment_id"]
    tv = tiny_frames.frames["turnover"].copy()
    hit = tv["establishment_id"].isin(in_cell) & (tv["year"] == y)
    assert hit.sum() >= 3
    tv.loc[hit, "turnover"] *= 10
    inflated = b.WorldFrames({**tiny_frames.frames, "turnover": tv}, tiny_frames.neighbours)
    after = pd.DataFrame(b.cell_features(b.Snapshot(inflated, y), cells))
    moved = np.abs(after - before).max()
    assert moved.drop("branch_turnover_at_branch_rate").max() == 0
    assert moved["branch_turnover_at_branch_rate"] < 0.05, "log(10) = 2.3 if it were the own"


# ----------------------------------------------------------------------------- catalogue


def test_every_catalogue_feature_is_built_and_every_column_declared(
    tiny_frames: b.WorldFrames,
) -> None:
    assert set().union(*TASK_FEATURES.values()) == set(CATALOGUE), (
        "catalogue entries no task builds"
    )
    for task in TASKS:
        frame = build_task_year(tiny_frames, task, 2021, TASK_FEATURES[task])
        assert list(frame.columns) == list(META[task]) + list(TASK_FEATURES[task])
        assert len(frame) > 0
        assert frame[UNIT_ID[task]].is_unique
        feats = frame[list(TASK_FEATURES[task])]
        assert (feats.dtypes == np.float32).all()
        assert not feats.isna().all().any(), "a feature is empty for every unit"


def test_feature_tables_hold_no_other_units_ids(tiny_frames: b.WorldFrames) -> None:
    """Only the unit's own id is an id column; no feature copies a parent's or resident's id."""
    persons = tiny_frames["persons"].set_index("person_id")
    for task in TASKS:
        frame = build_task_year(tiny_frames, task, 2021, TASK_FEATURES[task])
        id_like = [c for c in frame.columns if c.endswith("_id")]
        assert id_like == [UNIT_ID[task]]
        if task == "jonge_aanwas":
            for link in ("mother_id", "father_id"):
                ids = (
                    persons[link].reindex(frame["person_id"]).to_numpy(np.float64, na_value=np.nan)
                )
                for col in TASK_FEATURES[task]:
                    vals = frame[col].to_numpy(np.float64)
                    both = ~np.isnan(ids) & ~np.isnan(vals)
                    assert not (both.sum() > 10 and np.array_equal(vals[both], ids[both])), col


def test_docs_catalogue_is_generated_and_current() -> None:
    text = (ROOT / "docs" / "features.md").read_text()
    assert text == render_markdown() + "\n", "docs/features.md is stale: run `zicht catalogue`"
    for name in CATALOGUE:
        assert f"`{name}`" in text


# ----------------------------------------------------------------------------- point in time


def truncate(w: b.WorldFrames, y: int) -> b.WorldFrames:
    """The world as it was known at the end of year y: everything later removed."""
    out = {}
    for name, df in w.frames.items():
        df = df.copy()
        if "year" in df.columns:
            df = df[df["year"] <= y]
        if "valid_from" in df.columns:
            df = df[df["valid_from"] <= y]
            df.loc[df["valid_to"] > y, "valid_to"] = OPEN_END
        if name == "persons":
            df = df[df["birth_year"] <= y]
            df["death_year"] = df["death_year"].where(df["death_year"] <= y)
        if name == "dwellings":
            df = df[df["build_year"] <= y]
        if name == "establishments":
            df = df[df["founded_year"] <= y]
            df["closed_year"] = df["closed_year"].where(df["closed_year"] <= y)
        out[name] = df
    return b.WorldFrames(out, w.neighbours)


@pytest.mark.parametrize("t", [2018, 2021])
def test_features_use_only_data_up_to_t_minus_1(tiny_frames: b.WorldFrames, t: int) -> None:
    y = t - 1
    past = truncate(tiny_frames, y)
    # the test has teeth: the future holds a lot that would change features
    for name in ("suspicions", "household_members", "residences", "ownership", "household_income"):
        assert len(past.frames[name]) < 0.95 * len(tiny_frames.frames[name]), name
    for task in ("jonge_aanwas", "hennep"):
        feats = list(TASK_FEATURES[task])
        full = build_task_year(tiny_frames, task, t, feats).drop(columns="label")
        cut = build_task_year(past, task, t, feats).drop(columns="label")
        pd.testing.assert_frame_equal(full.reset_index(drop=True), cut.reset_index(drop=True))
    cells = b.cell_population(tiny_frames, t)
    full = pd.DataFrame(b.cell_features(b.Snapshot(tiny_frames, y), cells))
    cut = pd.DataFrame(b.cell_features(b.Snapshot(past, y), cells))
    pd.testing.assert_frame_equal(full, cut)
    # the size class of the deviation flag, too (a meta column, from t - 1)
    np.testing.assert_array_equal(
        b.cell_establishments(tiny_frames, cells, y), b.cell_establishments(past, cells, y)
    )
    # ...and the features do move from one reference year to the next
    a = build_task_year(tiny_frames, "jonge_aanwas", t, ["household_income_percentile"]).set_index(
        "person_id"
    )
    nxt = build_task_year(
        tiny_frames, "jonge_aanwas", t + 1, ["household_income_percentile"]
    ).set_index("person_id")
    common = a.index.intersection(nxt.index)
    moved = (
        a.loc[common, "household_income_percentile"]
        != nxt.loc[common, "household_income_percentile"]
    ).mean()
    assert moved > 0.3
