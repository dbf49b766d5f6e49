"""The synthetic world on the tiny scale: valid, reproducible, consistent, and alive in time."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from microdata import params
from microdata.io import data_fingerprint, write_world
from microdata.scales import get_scale
from microdata.validate import read_table, validate_world


def world(data: Path) -> Path:
    return data / "world"


def test_tiny_world_is_valid(tiny_data: Path) -> None:
    assert validate_world(world(tiny_data)) == []


@pytest.mark.parametrize("seed", [0, 1, 99])
def test_schemas_hold_for_other_seeds(tmp_path: Path, seed: int) -> None:
    write_world(tmp_path, get_scale("tiny"), seed=seed)
    assert validate_world(tmp_path / "world") == []


def test_same_seed_same_bytes(tiny_data: Path, tmp_path: Path) -> None:
    write_world(tmp_path, get_scale("tiny"), seed=7)
    for part in ("world", "truth"):
        a = (tiny_data / part / "manifest.json").read_bytes()
        b = (tmp_path / part / "manifest.json").read_bytes()
        assert a == b, f"{part}/manifest.json differs between two runs with the same seed"
    assert data_fingerprint(tmp_path / "world") == data_fingerprint(world(tiny_data))
    truth = json.loads((tmp_path / "truth" / "manifest.json").read_text())
    assert truth["world_fingerprint"] == data_fingerprint(tmp_path / "world")


def test_different_seed_differs(tiny_data: Path, tmp_path: Path) -> None:
    write_world(tmp_path, get_scale("tiny"), seed=8)
    a = json.loads((tiny_data / "world" / "manifest.json").read_text())["files"]
    b = json.loads((tmp_path / "world" / "manifest.json").read_text())["files"]
    differing = [f for f in a if a[f]["sha256"] != b[f]["sha256"]]
    assert {"persons.parquet", "dwellings.parquet", "areas.parquet"} <= set(differing)


def test_manifest_is_canonical(tiny_data: Path) -> None:
    raw = (tiny_data / "world" / "manifest.json").read_text()
    doc = json.loads(raw)
    assert raw == json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    assert "created" not in raw and "time" not in raw.lower().replace("times", "")
    assert doc["scale"] == "tiny" and doc["seed"] == 7
    assert doc["generator_version"] == params.GENERATOR_VERSION
    for name, entry in doc["files"].items():
        assert len(entry["sha256"]) == 64, name


def test_area_hierarchy_and_geometry(tiny_data: Path) -> None:
    areas = gpd.read_parquet(world(tiny_data) / "areas.parquet")
    assert areas.crs.to_epsg() == 28992
    assert areas["area_code"].is_unique
    assert shapely.is_valid(areas.geometry.values).all()
    by_code = areas.set_index("area_code").geometry
    child = areas[areas["level"] != "riec"]
    parents = by_code.loc[child["parent_code"]].values
    spill = shapely.area(shapely.difference(child.geometry.values, parents))
    assert (spill < 1.0).all(), "a child area sticks out of its parent"
    buurt = areas[areas["level"] == "buurt"]
    np.testing.assert_allclose(buurt["land_area_km2"], buurt.geometry.area / 1e6, rtol=1e-9)
    assert (buurt["land_area_km2"] > 0).all()
    assert buurt["gemeente_code"].nunique() >= 6


def test_area_stats_add_up(tiny_data: Path) -> None:
    stats = read_table(world(tiny_data), "area_stats")
    areas = read_table(world(tiny_data), "areas", ["area_code", "parent_code"])
    parent = dict(zip(areas["area_code"], areas["parent_code"], strict=True))
    for child_level, parent_level in (("buurt", "wijk"), ("wijk", "gemeente")):
        c = stats[stats["level"] == child_level].copy()
        c["parent"] = c["area_code"].map(parent)
        summed = c.groupby(["parent", "year"])[["inhabitants", "dwellings", "establishments"]].sum()
        p = stats[stats["level"] == parent_level].set_index(["area_code", "year"])
        pd.testing.assert_frame_equal(
            summed.sort_index(),
            p.loc[summed.index, ["inhabitants", "dwellings", "establishments"]].sort_index(),
            check_names=False,
            check_dtype=False,
        )


def test_world_changes_over_time(tiny_data: Path) -> None:
    """Persons age, move, form households and die; dwellings change owners; incomes move."""
    w = world(tiny_data)
    y0 = params.FIRST_YEAR
    res = read_table(w, "residences")
    assert (res["valid_from"] > y0).sum() > 500, "households hardly move"
    hh = read_table(w, "households")
    changed_type = hh.groupby("household_id").size().gt(1).sum()
    assert changed_type > 100, "household types never change"
    assert (hh["valid_from"] > y0).sum() > 500, "no new households formed"
    persons = read_table(w, "persons")
    assert (persons["birth_year"] > y0).sum() > 100, "nobody is born"
    assert persons["death_year"].notna().sum() > 100, "nobody dies"
    members = read_table(w, "household_members")
    assert members.groupby("person_id").size().gt(1).sum() > 300, "nobody leaves home"
    own = read_table(w, "ownership")
    assert (own["valid_from"] > y0).sum() > 200, "dwellings never change owner"
    income = read_table(w, "household_income")
    first = income[income["year"] == y0].set_index("household_id")["income_percentile"]
    last = income[income["year"] == params.LAST_YEAR].set_index("household_id")["income_percentile"]
    both = first.index.intersection(last.index)
    assert (first[both] != last[both]).mean() > 0.5, "incomes are static"
    secm = read_table(w, "socio_economic")
    assert (secm["valid_from"] > y0).sum() > 1000, "socio-economic status is static"
    debts = read_table(w, "problematic_debts")
    assert (debts["valid_from"] > y0).sum() > 100 and (debts["valid_to"] < 9999).sum() > 100


def test_truth_agrees_with_world_events(tiny_data: Path) -> None:
    w, t = world(tiny_data), tiny_data / "truth"
    farms = read_table(w, "cannabis_farms")
    hp = pd.read_parquet(t / "hennep_probability.parquet")
    truth_farms = hp.loc[hp["farm"], ["dwelling_id", "year"]].sort_values(["year", "dwelling_id"])
    world_farms = farms[farms["year"] >= params.FIRST_YEAR].sort_values(["year", "dwelling_id"])
    np.testing.assert_array_equal(
        truth_farms.to_numpy(), world_farms[["dwelling_id", "year"]].to_numpy()
    )
    assert ((hp["probability"] > 0) & (hp["probability"] < 1)).all()
    # jonge aanwas: the truth label is a first drug suspicion within W years of t
    susp = read_table(w, "suspicions")
    first = susp[susp["offence"] == "drugs"].groupby("person_id")["year"].min()
    ja = pd.read_parquet(t / "jonge_aanwas_probability.parquet")
    fy = ja["person_id"].map(first)
    expected = fy.between(ja["year"], ja["year"] + params.WINDOW - 1)
    np.testing.assert_array_equal(ja["first_drug_suspicion"].to_numpy(), expected.to_numpy())
    assert (fy.isna() | (fy >= ja["year"])).all(), "population holds someone already suspected"
    assert ja["year"].max() == params.LAST_YEAR - params.WINDOW + 1


def _status_at(spells: pd.DataFrame, id_col: str, year: int) -> pd.Index:
    on = spells[(spells["valid_from"] <= year) & (spells["valid_to"] >= year)]
    return pd.Index(on[id_col].unique())


def test_planted_effects_have_their_sign(tiny_data: Path) -> None:
    """Farms are likelier where residents have debts; drug suspicion after early school leaving."""
    w = world(tiny_data)
    res, debts = read_table(w, "residences"), read_table(w, "problematic_debts")
    hp = pd.read_parquet(tiny_data / "truth" / "hennep_probability.parquet")
    rates = {True: [0, 0], False: [0, 0]}
    for t in range(params.FIRST_YEAR + 1, params.LAST_YEAR + 1):
        lived = res[(res["valid_from"] <= t - 1) & (res["valid_to"] >= t - 1)]
        indebted = set(
            lived.loc[
                lived["household_id"].isin(_status_at(debts, "household_id", t - 1)), "dwelling_id"
            ]
        )
        year = hp[hp["year"] == t]
        flag = year["dwelling_id"].isin(indebted)
        for k in (True, False):
            rates[k][0] += int(year.loc[flag == k, "farm"].sum())
            rates[k][1] += int((flag == k).sum())
    with_debts, without = (rates[k][0] / rates[k][1] for k in (True, False))
    assert with_debts > 1.5 * without
    ja = pd.read_parquet(tiny_data / "truth" / "jonge_aanwas_probability.parquet")
    vsv = read_table(w, "early_school_leaving").groupby("person_id")["year"].min()
    left = ja["person_id"].map(vsv) < ja["year"]
    assert (
        ja.loc[left, "first_drug_suspicion"].mean()
        > 2 * ja.loc[~left, "first_drug_suspicion"].mean()
    )


def test_business_register_plants_dominance_and_anomalies(tiny_data: Path) -> None:
    cells = pd.read_parquet(tiny_data / "truth" / "turnover_cells.parquet")
    wijk = cells[cells["level"] == "wijk"]
    assert (wijk["max_share"] > 0.5).any(), "no cell with a dominant business"
    share = wijk.groupby("year")["anomalous"].mean()
    assert 0.002 < share.mean() < 0.03
    turnover = read_table(world(tiny_data), "turnover")
    assert (turnover["turnover"] >= 0).all()
    branches = read_table(world(tiny_data), "branches")
    names = set(branches.loc[branches["vulnerable"], "branch_name"])
    assert {"Kappers", "Nagelstudio's", "Autoreparatie", "Uitzendbureaus"} <= names


def _cell_turnover(data: Path) -> pd.DataFrame:
    """Every establishment-year with its wijk x branch cell and its share of the cell."""
    est = read_table(world(data), "establishments")
    areas = read_table(world(data), "areas")[["area_code", "wijk_code"]]
    df = read_table(world(data), "turnover").merge(est, on="establishment_id")
    df["area_code"] = df["buurt_code"].astype(str).map(areas.set_index("area_code")["wijk_code"])
    df["sbi"] = df["sbi"].astype(str)
    df["share"] = df["turnover"] / df.groupby(["area_code", "sbi", "year"])["turnover"].transform(
        "sum"
    )
    return df


def test_dominant_businesses_are_large_in_staff_too(tiny_data: Path) -> None:
    """Generator 1.2: a business twelve times its size has the staff to match (in 1.1 it kept
    its peers' staff, and every dominant cell looked anomalous to an area model)."""
    df = _cell_turnover(tiny_data)
    median = df.groupby("sbi")["employees"].transform("median")
    big = df[df["employees"] >= 10 * median]
    assert big["establishment_id"].nunique() >= 3
    assert big["share"].median() > 0.5, "the large-staff businesses dominate their cells"


def test_anomalies_are_one_year_spikes_and_multi_year_fronts(tiny_data: Path) -> None:
    plan = pd.read_parquet(tiny_data / "truth" / "turnover_anomalies.parquet")
    assert set(plan["kind"]) == {"front", "spike"}
    assert not plan.duplicated(["area_code", "sbi"]).any(), "one anomaly per cell"
    spikes, fronts = plan[plan["kind"] == "spike"], plan[plan["kind"] == "front"]
    assert (spikes["first_year"] == spikes["last_year"]).all()
    assert (spikes["first_year"] > params.FIRST_YEAR).all(), "a spike has a year before it"
    length = fronts["last_year"] - fronts["first_year"] + 1
    assert ((length >= 3) & (length <= 6) | (fronts["last_year"] == params.LAST_YEAR)).all()
    assert (length >= 2).all(), "a front lasts several years"
    assert plan["inflation"].between(2.5, 5.0).all()
    # the per-year truth marks exactly the planted years, with their kind
    cells = pd.read_parquet(tiny_data / "truth" / "turnover_cells.parquet")
    wijk = cells[cells["level"] == "wijk"].merge(
        plan.drop(columns="level"), on=["area_code", "sbi"], how="left", suffixes=("", "_plan")
    )
    inside = (wijk["year"] >= wijk["first_year"]) & (wijk["year"] <= wijk["last_year"])
    assert (wijk["anomalous"] == inside).all()
    assert (wijk.loc[inside, "kind"] == wijk.loc[inside, "kind_plan"]).all()
    assert wijk.loc[~inside, "kind"].isna().all()
    assert (inside & (wijk["kind_plan"] == "spike")).sum() == len(spikes), "every spike trades"
    # ...and the world's turnover carries them: realised / expected near the factor
    planted = wijk[inside]
    ratio = planted["realised_turnover"] / planted["expected_turnover"] / planted["inflation"]
    assert ratio.between(0.5, 1.6).all()
    # ...in the world's own turnover table (the truth's realised turnover is its cell sum)
    df = _cell_turnover(tiny_data)
    world_sums = df.groupby(["area_code", "sbi", "year"])["turnover"].sum()
    key = pd.MultiIndex.from_frame(planted[["area_code", "sbi", "year"]])
    np.testing.assert_allclose(world_sums.reindex(key), planted["realised_turnover"], atol=1)
    gm = cells[(cells["level"] == "gemeente") & cells["anomalous"]]
    assert gm["kind"].isin(["front", "spike"]).all()
