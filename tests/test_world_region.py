"""Difficulty and realism at region scale: the contract's ranges, computed from the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from microdata import params
from microdata.validate import read_table


def test_region_world_is_valid(region_data: Path) -> None:
    from microdata.validate import validate_world

    assert validate_world(region_data / "world") == []


def test_region_size(region_data: Path) -> None:
    stats = read_table(region_data / "world", "area_stats")
    first = stats[stats["year"] == params.FIRST_YEAR]
    assert first["level"].value_counts()["gemeente"] >= 15
    assert first["level"].value_counts()["buurt"] >= 400
    persons = first.loc[first["level"] == "gemeente", "inhabitants"].sum()
    assert 270_000 <= persons <= 330_000
    buurt = first[first["level"] == "buurt"]
    assert (buurt["dwellings"] < 10).sum() >= 5, "no small buurten for disclosure control"
    gm = first.loc[first["level"] == "gemeente", "inhabitants"]
    assert gm.max() >= 3 * gm.median(), "gemeente sizes are not skewed"


def test_oracle_auc_in_specified_ranges(region_data: Path) -> None:
    hp = pd.read_parquet(region_data / "truth" / "hennep_probability.parquet")
    ja = pd.read_parquet(region_data / "truth" / "jonge_aanwas_probability.parquet")
    hennep = roc_auc_score(hp["farm"], hp["probability"])
    jonge = roc_auc_score(ja["first_drug_suspicion"], ja["probability"])
    assert 0.80 <= hennep <= 0.90, f"hennep oracle AUC {hennep:.3f}"
    assert 0.75 <= jonge <= 0.88, f"jonge aanwas oracle AUC {jonge:.3f}"


def test_base_rates_of_dutch_order(region_data: Path) -> None:
    hp = pd.read_parquet(region_data / "truth" / "hennep_probability.parquet")
    per_10k = hp.groupby("year")["farm"].mean().mean() * 1e4
    assert 5.0 <= per_10k <= 7.0, f"{per_10k:.1f} farms per 10,000 dwellings per year"
    w = region_data / "world"
    persons = read_table(w, "persons", ["person_id", "birth_year", "death_year"])
    susp = read_table(w, "suspicions")
    first = susp[susp["offence"] == "drugs"].groupby("person_id")["year"].min()
    rates = []
    for y in range(params.FIRST_YEAR, params.LAST_YEAR + 1):
        age = y - persons["birth_year"]
        alive = (persons["birth_year"] < y) & (
            persons["death_year"].isna() | (persons["death_year"] >= y)
        )
        youth = persons.loc[alive & age.between(8, 23), "person_id"]
        rates.append((first.reindex(youth).eq(y)).sum() / len(youth))
    pct = 100 * float(np.mean(rates))
    assert 0.2 <= pct <= 0.6, f"{pct:.2f}% of 8-23-year-olds get a first drug suspicion per year"


def test_herkomst_has_no_direct_effect(region_data: Path) -> None:
    """Outcome rates differ by origin, but only through the drivers: given the true
    probability (which is built from the drivers alone), origin explains nothing more."""
    w = region_data / "world"
    persons = read_table(w, "persons", ["person_id", "herkomst"])
    ja = pd.read_parquet(region_data / "truth" / "jonge_aanwas_probability.parquet")
    df = ja.merge(persons, on="person_id")
    df["resid"] = df["first_drug_suspicion"].astype(float) - df["probability"]
    # a person appears in several reference years with overlapping windows: cluster by person
    per_person = df.groupby(["herkomst", "person_id"], observed=True)["resid"].sum()
    g = per_person.groupby(level="herkomst", observed=True)
    z = (g.sum() / np.sqrt(g.apply(lambda r: (r**2).sum())))[g.size() >= 500]
    assert (z.abs() < 4).all(), (
        f"origin explains outcomes beyond the drivers: z = {z.round(2).to_dict()}"
    )
    # ...while origin is correlated with income and area, as in reality
    members = read_table(w, "household_members")
    income = read_table(w, "household_income")
    m = members[
        (members["valid_from"] <= params.FIRST_YEAR) & (members["valid_to"] >= params.FIRST_YEAR)
    ]
    inc = income[income["year"] == params.FIRST_YEAR]
    pct = m.merge(inc, on="household_id").merge(persons, on="person_id")
    means = pct.groupby("herkomst", observed=True)["income_percentile"].mean()
    assert means["Nederland"] - means[["Marokko", "Turkije"]].mean() > 5
