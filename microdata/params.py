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

GENERATOR_VERSION = "1.0.0"

LATENT_NOISE_SD = MappingProxyType({"hennep": 1.0, "jonge_aanwas": 1.0})

#: Cannabis farm at a dwelling in year t, from the state at the end of t-1.
HENNEP = MappingProxyType(
    {
        "intercept": -9.35,
        "vacant": 0.9,
        "single_resident": 0.45,
        "problematic_debts": 0.9,
        "income_z": -0.35,
        "resident_drug_suspicion": 1.3,
        "terraced": 0.35,
        "semi_detached": 0.2,
        "detached": 0.6,
        "apartment": -0.45,
        "social_rent": 0.45,
        "private_rent": 0.8,
        "owner_foreign": 0.9,
        "rural": 0.25,
        "farms_buurt_3y_log1p": 0.7,
        "farms_neighbours_3y_log1p": 0.3,
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
        "intercept": -5.6,
        "age_peak": 18.5,
        "age_curvature": -0.03,
        "male": 0.9,
        "early_school_leaver": 0.9,
        "halt_count": 0.45,
        "youth_probation": 0.8,
        "earlier_non_drug_suspicion": 1.0,
        "suspected_family_member": 0.7,
        "household_debt_restructuring": 0.5,
        "single_parent_household": 0.4,
        "no_income": 0.6,
        "youth_care": 0.3,
    }
)
