"""The documented parameters of the data-generating process (see ``docs/world.md``).

Every effect size that shapes a label lives here, once, and is copied into
``truth/effects.json`` so a reviewer can read what was planted. Coefficients are on the
log-odds scale. ``LATENT_NOISE_SD`` is the standard deviation of the unobserved, per unit-year
normal term added to each label's log-odds; the truth probabilities integrate it out, so
they are the exact probabilities of the labels given what the world records.
"""

from __future__ import annotations

from types import MappingProxyType

#: First and last world year (inclusive). State tables start in FIRST_YEAR.
FIRST_YEAR = 2016
LAST_YEAR = 2025
#: Event histories (suspicions, Halt, early school leaving, youth care, farms) start earlier,
#: generated on the first year's population, so features of early reference years have history.
HISTORY_FROM = 2011
#: Follow-up window of the jonge-aanwas label, in years (the contract's W).
WINDOW = 3
#: Age of criminal responsibility.
MIN_AGE_SUSPECT = 12

GENERATOR_VERSION = "1.2.0"

LATENT_NOISE_SD = MappingProxyType({"hennep": 1.0, "jonge_aanwas": 0.8})

#: A direct effect of origin on both labels (log-odds for every origin other than the first,
#: "Nederland"; for hennep, the origin of the occupying household). It is 0 in every shipped
#: world: origin acts only through area and income. Tests set it to plant a direct effect
#: that the proxy audit (``features.audit``) must flag.
HERKOMST_DIRECT_EFFECT = 0.0

#: Cannabis farm at a dwelling in year t, from the state at the end of t-1. Since generator
#: 1.1 most of the risk sits in subgroups (interactions, a threshold and bands) rather than in
#: main effects, as the subgroup findings of the ZoO work describe: a main-effects logistic
#: regression reaches an expected AUC of about 0.82 on the region world against the oracle's
#: 0.87 (docs/world.md, §8.1, and ``benchmarks/world_ceiling.py``).
HENNEP = MappingProxyType(
    {
        "intercept": -11.68,
        "vacant": 0.6,
        "single_resident": 0.4,
        "problematic_debts": 0.6,
        "economic_position": -0.3,
        "resident_drug_suspicion": 1.4,
        "terraced": 0.35,
        "semi_detached": 0.2,
        "detached": 0.6,
        "apartment": -0.45,
        "social_rent": 0.45,
        "private_rent": 1.0,
        "owner_foreign": 0.6,
        "rural": 0.25,
        "farm_in_buurt_3y": 0.4,
        "farm_in_neighbours_3y": 0.3,
        # interactions and a threshold: risk is not additive in the drivers
        "vacant_x_private_rent": 1.8,
        "poverty_below_minus_1_2": 1.0,
        "debts_x_single_resident": 1.2,
        "rural_x_farm_in_buurt_3y": 0.9,
        # bands, not slopes: post-war stock with attics, mid-sized houses with room to grow
        "built_1960_1985": 0.9,
        "surface_90_160_m2": 0.8,
    }
)
#: Regional differences (log-odds) in farm risk per RIEC region.
HENNEP_REGION = MappingProxyType(
    {
        "RIEC01": 0.1,
        "RIEC02": 0.25,
        "RIEC03": 0.0,
        "RIEC04": -0.1,
        "RIEC05": -0.2,
        "RIEC06": 0.0,
        "RIEC07": 0.1,
        "RIEC08": 0.45,
        "RIEC09": 0.6,
        "RIEC10": 0.7,
    }
)

#: First drug-offence suspicion in year t (ages 12+), from the state at the end of t-1.
JONGE_AANWAS = MappingProxyType(
    {
        "intercept": -6.55,
        "age_peak": 18.5,
        "age_curvature": -0.03,
        "male": 1.0,
        "early_school_leaver": 1.1,
        "halt_count": 0.55,
        "youth_probation": 1.0,
        "earlier_non_drug_suspicion": 1.3,
        "suspected_family_member": 0.8,
        "household_debt_restructuring": 0.7,
        "single_parent_household": 0.5,
        "no_income": 0.8,
        "youth_care": 0.3,
        # interactions: risk is not additive in the drivers
        "halt_x_early_school_leaver": 0.6,
        "male_aged_15_20": 0.4,
        "suspected_family_x_single_parent": 0.5,
    }
)
