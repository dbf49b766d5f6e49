"""The feature catalogue: every feature declared once, with its lineage down to source columns.

Reviewers read it (``docs/features.md`` is generated from it by ``zicht catalogue``), MLflow
runs carry it as a table, and the protected-attribute guard checks each feature's sources
against the schemas' protected marks. A feature that is built but not declared here, or
declared with a protected source, cannot reach a model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import pandas as pd

from microdata import vocab

Level = Literal["person", "household", "dwelling", "area", "cell"]


@dataclass(frozen=True)
class Feature:
    """One feature: what it means, where it comes from, and which builder makes it."""

    name: str
    level: Level
    nl: str
    en: str
    sources: tuple[str, ...]  # "table.column"
    unit: str
    builder: str
    categories: tuple[str, ...] = ()  # for categorical features: code i means categories[i]

    @property
    def source_columns(self) -> tuple[tuple[str, str], ...]:
        return tuple(tuple(s.split(".", 1)) for s in self.sources)  # type: ignore[misc]


def _f(
    name: str,
    level: Level,
    nl: str,
    en: str,
    sources: Iterable[str],
    unit: str,
    builder: str,
    categories: tuple[str, ...] = (),
) -> Feature:
    return Feature(name, level, nl, en, tuple(sources), unit, builder, categories)


_MEMBERS = (
    "household_members.person_id",
    "household_members.household_id",
    "household_members.valid_from",
    "household_members.valid_to",
)
_RES = (
    "residences.household_id",
    "residences.dwelling_id",
    "residences.valid_from",
    "residences.valid_to",
)

#: Area indicators, built per buurt, wijk and gemeente from the key figures of year t-1 and
#: from aggregated microdata. (suffix, nl, en, sources, unit)
AREA_INDICATORS: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    (
        "urbanity",
        "stedelijkheid (1 zeer sterk … 5 niet stedelijk)",
        "urbanity class (1 very urban … 5 rural)",
        ("area_stats.urbanity",),
        "class 1-5",
    ),
    ("inhabitants", "aantal inwoners", "inhabitants", ("area_stats.inhabitants",), "persons"),
    ("density", "inwoners per km²", "inhabitants per km²", ("area_stats.density",), "persons/km²"),
    (
        "mean_income",
        "gemiddeld besteedbaar huishoudinkomen",
        "mean disposable household income",
        ("area_stats.mean_income",),
        "euro",
    ),
    (
        "mean_woz",
        "gemiddelde WOZ-waarde",
        "mean WOZ (property) value",
        ("area_stats.mean_woz",),
        "euro",
    ),
    (
        "share_rental",
        "aandeel huurwoningen",
        "share of rented dwellings",
        ("area_stats.share_rental",),
        "share",
    ),
    (
        "distance_facilities_km",
        "afstand tot voorzieningen",
        "distance to everyday facilities",
        ("area_stats.distance_facilities_km",),
        "km",
    ),
    (
        "business_density",
        "vestigingen per km²",
        "establishments per km²",
        ("area_stats.business_density",),
        "per km²",
    ),
    (
        "share_debts",
        "aandeel huishoudens met problematische schulden",
        "share of households with problematic debts",
        ("problematic_debts.household_id", *_RES, "dwellings.buurt_code"),
        "share",
    ),
    (
        "share_benefits",
        "aandeel huishoudens met een uitkering",
        "share of households with a benefit",
        ("socio_economic.status", *_MEMBERS, *_RES, "dwellings.buurt_code"),
        "share",
    ),
    (
        "share_early_school_leavers",
        "aandeel voortijdig schoolverlaters onder 15-22-jarigen",
        "share of early school leavers among residents aged 15-22",
        (
            "early_school_leaving.person_id",
            "persons.birth_year",
            *_MEMBERS,
            *_RES,
            "dwellings.buurt_code",
        ),
        "share",
    ),
)


def _area_features(prefix: str, level: Level, where_nl: str, where_en: str) -> list[Feature]:
    return [
        _f(
            f"{prefix}_{suffix}",
            level,
            f"{nl} ({where_nl}, jaar t-1)",
            f"{en} ({where_en}, year t-1)",
            sources,
            unit,
            "features.builders.area_indicators",
        )
        for suffix, nl, en, sources, unit in AREA_INDICATORS
    ]


_FEATURES: list[Feature] = [
    # ---------------------------------------------------------------- person (jonge aanwas)
    _f(
        "age",
        "person",
        "leeftijd in jaar t",
        "age in year t",
        ["persons.birth_year"],
        "years",
        "features.builders.person_features",
    ),
    _f(
        "male", "person", "man", "male", ["persons.sex"], "0/1", "features.builders.person_features"
    ),
    _f(
        "no_income",
        "person",
        "geen inkomen (15+)",
        "no income (aged 15+)",
        ["socio_economic.status"],
        "0/1",
        "features.builders.person_features",
    ),
    _f(
        "early_school_leaver",
        "person",
        "voortijdig schoolverlater",
        "early school leaver",
        ["early_school_leaving.person_id", "early_school_leaving.year"],
        "0/1",
        "features.builders.person_features",
    ),
    _f(
        "halt_count",
        "person",
        "aantal Halt-registraties",
        "number of Halt registrations",
        ["halt.person_id", "halt.year"],
        "count",
        "features.builders.person_features",
    ),
    _f(
        "youth_care",
        "person",
        "jeugdhulp of jeugdbescherming in t-1",
        "youth care or child protection in t-1",
        ["youth_care.kind", "youth_care.valid_from", "youth_care.valid_to"],
        "0/1",
        "features.builders.person_features",
    ),
    _f(
        "youth_probation",
        "person",
        "ooit jeugdreclassering",
        "ever on youth probation",
        ["youth_care.kind", "youth_care.valid_from"],
        "0/1",
        "features.builders.person_features",
    ),
    *[
        _f(
            f"suspicions_{off}",
            "person",
            f"eerdere verdenkingen: {nl}",
            f"earlier suspicions: {off}",
            ["suspicions.offence", "suspicions.year"],
            "count",
            "features.builders.person_features",
        )
        for off, nl in (
            ("violence", "geweld"),
            ("property", "vermogen"),
            ("vandalism", "vernieling"),
            ("other", "overig"),
        )
    ],
    _f(
        "years_since_suspicion",
        "person",
        "jaren sinds laatste verdenking (leeg: nooit)",
        "years since the last suspicion (empty: never)",
        ["suspicions.year"],
        "years",
        "features.builders.person_features",
    ),
    _f(
        "suspected_parent",
        "person",
        "ouder ooit verdachte",
        "a parent was ever a suspect",
        ["persons.mother_id", "persons.father_id", "suspicions.person_id", "suspicions.year"],
        "0/1",
        "features.builders.person_features",
    ),
    _f(
        "suspected_sibling",
        "person",
        "broer of zus ooit verdachte",
        "a sibling was ever a suspect",
        ["persons.mother_id", "persons.father_id", "suspicions.person_id", "suspicions.year"],
        "0/1",
        "features.builders.person_features",
    ),
    _f(
        "convicted_family_member",
        "person",
        "ouder, broer of zus ooit veroordeeld",
        "a parent or sibling was ever convicted",
        ["persons.mother_id", "persons.father_id", "convictions.person_id", "convictions.year"],
        "0/1",
        "features.builders.person_features",
    ),
    _f(
        "moves_3y",
        "person",
        "verhuizingen van het huishouden in t-3..t-1",
        "moves of the household in t-3..t-1",
        list(_MEMBERS + _RES),
        "count",
        "features.builders.person_features",
    ),
    # ---------------------------------------------------------------- household (shared)
    _f(
        "household_type",
        "household",
        "huishoudtype",
        "household type",
        ["households.household_type", *_MEMBERS],
        "category",
        "features.builders.Snapshot.household_state",
        vocab.HOUSEHOLD_TYPE,
    ),
    _f(
        "single_parent_household",
        "household",
        "eenoudergezin",
        "single-parent household",
        ["households.household_type", *_MEMBERS],
        "0/1",
        "features.builders.Snapshot.household_state",
    ),
    _f(
        "household_size",
        "household",
        "aantal personen in het huishouden",
        "persons in the household",
        list(_MEMBERS),
        "persons",
        "features.builders.Snapshot.household_state",
    ),
    _f(
        "household_income_percentile",
        "household",
        "percentiel besteedbaar huishoudinkomen",
        "percentile of disposable household income",
        ["household_income.income_percentile"],
        "percentile",
        "features.builders.Snapshot.household_state",
    ),
    _f(
        "household_benefits",
        "household",
        "iemand in het huishouden heeft een uitkering",
        "someone in the household receives a benefit",
        ["socio_economic.status", *_MEMBERS],
        "0/1",
        "features.builders.Snapshot.household_state",
    ),
    _f(
        "household_problematic_debts",
        "household",
        "problematische schulden",
        "problematic debts",
        ["problematic_debts.household_id"],
        "0/1",
        "features.builders.Snapshot.household_state",
    ),
    _f(
        "household_debt_restructuring",
        "household",
        "schuldsanering (WSNP) in het huishouden",
        "debt restructuring (WSNP) in the household",
        ["debt_restructuring.person_id", *_MEMBERS],
        "0/1",
        "features.builders.Snapshot.household_state",
    ),
    _f(
        "household_drug_suspicion",
        "household",
        "iemand in het huishouden ooit verdacht van drugsdelict",
        "someone in the household was ever suspected of a drug offence",
        ["suspicions.offence", "suspicions.year", *_MEMBERS],
        "0/1",
        "features.builders.Snapshot.household_state",
    ),
    *_area_features("buurt", "area", "buurt van de eenheid", "the unit's buurt"),
    _f(
        "riec_region",
        "area",
        "RIEC-regio",
        "RIEC region",
        ["areas.riec_code"],
        "category",
        "features.builders.area_indicators",
        tuple(f"RIEC{i:02d}" for i in range(1, 11)),
    ),
    # ---------------------------------------------------------------- dwelling (hennep)
    _f(
        "dwelling_type",
        "dwelling",
        "woningtype",
        "dwelling type",
        ["dwellings.dwelling_type"],
        "category",
        "features.builders.dwelling_features",
        vocab.DWELLING_TYPE,
    ),
    _f(
        "surface_m2",
        "dwelling",
        "oppervlakte",
        "floor surface",
        ["dwellings.surface_m2"],
        "m²",
        "features.builders.dwelling_features",
    ),
    _f(
        "build_year",
        "dwelling",
        "bouwjaar",
        "year of construction",
        ["dwellings.build_year"],
        "year",
        "features.builders.dwelling_features",
    ),
    _f(
        "ownership",
        "dwelling",
        "eigendom (koop, sociale huur, particuliere huur)",
        "ownership (owner-occupied, social rent, private rent)",
        ["ownership.ownership"],
        "category",
        "features.builders.dwelling_features",
        vocab.OWNERSHIP,
    ),
    _f(
        "owner_type",
        "dwelling",
        "type eigenaar",
        "owner type",
        ["ownership.owner_type"],
        "category",
        "features.builders.dwelling_features",
        vocab.OWNER_TYPE,
    ),
    _f(
        "owner_foreign",
        "dwelling",
        "eigenaar met buitenlands adres",
        "owner with a foreign address",
        ["ownership.owner_foreign"],
        "0/1",
        "features.builders.dwelling_features",
    ),
    _f(
        "ownership_changes",
        "dwelling",
        "eigendomswisselingen in 20 jaar tot t-1",
        "ownership changes in the 20 years up to t-1",
        ["dwellings.ownership_changes_20y", "ownership.transfers"],
        "count",
        "features.builders.dwelling_features",
    ),
    _f(
        "woz_value",
        "dwelling",
        "WOZ-waarde in t-1",
        "WOZ value in t-1",
        ["woz.woz_value"],
        "euro",
        "features.builders.dwelling_features",
    ),
    _f(
        "vacant",
        "dwelling",
        "onbewoond in t-1",
        "no registered residents in t-1",
        list(_RES),
        "0/1",
        "features.builders.dwelling_features",
    ),
    _f(
        "recent_move_in",
        "dwelling",
        "bewoners ingetrokken in t-2 of t-1",
        "residents moved in during t-2 or t-1",
        list(_RES),
        "0/1",
        "features.builders.dwelling_features",
    ),
    _f(
        "earlier_farm_here",
        "dwelling",
        "eerder een hennepkwekerij op dit adres",
        "a cannabis farm was dismantled here before",
        ["cannabis_farms.dwelling_id", "cannabis_farms.year"],
        "0/1",
        "features.builders.dwelling_features",
    ),
    _f(
        "farms_buurt_3y",
        "dwelling",
        "geruimde kwekerijen in de buurt in t-3..t-1",
        "farms dismantled in the buurt in t-3..t-1",
        ["cannabis_farms.dwelling_id", "cannabis_farms.year", "dwellings.buurt_code"],
        "count",
        "features.builders.dwelling_features",
    ),
    _f(
        "farms_neighbours_3y",
        "dwelling",
        "geruimde kwekerijen in aangrenzende buurten in t-3..t-1",
        "farms dismantled in neighbouring buurten in t-3..t-1",
        [
            "cannabis_farms.dwelling_id",
            "cannabis_farms.year",
            "dwellings.buurt_code",
            "areas.geometry",
        ],
        "count",
        "features.builders.dwelling_features",
    ),
    # ---------------------------------------------------------------- cell (branch turnover)
    *_area_features("area", "cell", "wijk of gemeente van de cel", "the cell's wijk or gemeente"),
    _f(
        "area_level",
        "cell",
        "niveau van de cel (0 wijk, 1 gemeente)",
        "cell level (0 wijk, 1 gemeente)",
        ["areas.level"],
        "category",
        "features.builders.cell_features",
        ("wijk", "gemeente"),
    ),
    _f(
        "branch",
        "cell",
        "branche (SBI)",
        "branch (SBI)",
        ["establishments.sbi"],
        "category",
        "features.builders.cell_features",
        tuple(vocab.BRANCHES),
    ),
    _f(
        "branch_establishments_per_1000",
        "cell",
        "vestigingen van de branche per 1.000 inwoners in t-1",
        "establishments of the branch per 1,000 inhabitants in t-1",
        [
            "establishments.sbi",
            "establishments.buurt_code",
            "establishments.founded_year",
            "establishments.closed_year",
            "area_stats.inhabitants",
        ],
        "per 1,000",
        "features.builders.cell_features",
    ),
    _f(
        "branch_employees_per_establishment",
        "cell",
        "werkzame personen per vestiging van de branche in t-1",
        "employees per establishment of the branch in t-1",
        [
            "establishments.employees",
            "establishments.sbi",
            "establishments.founded_year",
            "establishments.closed_year",
        ],
        "persons",
        "features.builders.cell_features",
    ),
    _f(
        "branch_employees_per_1000",
        "cell",
        "werkzame personen in de branche per 1.000 inwoners in t-1",
        "employees of the branch per 1,000 inhabitants in t-1",
        [
            "establishments.employees",
            "establishments.sbi",
            "establishments.buurt_code",
            "establishments.founded_year",
            "establishments.closed_year",
            "area_stats.inhabitants",
        ],
        "per 1,000",
        "features.builders.cell_features",
    ),
    _f(
        "branch_turnover_at_branch_rate",
        "cell",
        "werkzame personen in de branche × mediane omzet per werkzame persoon over alle"
        " vestigingen van de branche, per inwoner, in t-1 (log); nooit de eigen omzet van de cel",
        "log(1 + employees of the branch × the branch's median turnover per employee over all"
        " its establishments, per inhabitant) in t-1; never the cell's own turnover",
        [
            "establishments.employees",
            "establishments.sbi",
            "establishments.buurt_code",
            "establishments.founded_year",
            "establishments.closed_year",
            "turnover.turnover",
            "turnover.year",
            "area_stats.inhabitants",
        ],
        "log euro",
        "features.builders.cell_features",
    ),
]

_HOUSEHOLD = [f for f in _FEATURES if f.level == "household"]
_FEATURES += [
    _f(
        "residents_" + f.name.removeprefix("household_"),
        "dwelling",
        f"bewoners: {f.nl}",
        f"residents: {f.en}",
        f.sources + _RES,
        f.unit,
        "features.builders.dwelling_features",
        f.categories,
    )
    for f in _HOUSEHOLD
]

CATALOGUE: MappingProxyType[str, Feature] = MappingProxyType({f.name: f for f in _FEATURES})
if len(CATALOGUE) != len(_FEATURES):  # pragma: no cover - a duplicate name is a coding error
    raise RuntimeError("feature names must be unique in the catalogue")

#: Features that were in the catalogue once, and why they left (a config naming one is told).
RETIRED: MappingProxyType[str, str] = MappingProxyType(
    {
        "branch_turnover_per_inhabitant_lag": (
            "the cell's own turnover in t-1 made an anomaly that lasts its own expectation "
            "(docs/models.md, 'Expected turnover'); use branch_turnover_at_branch_rate"
        ),
    }
)

#: Features of each task's default feature set, in table order.
TASK_FEATURES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "jonge_aanwas": tuple(
            f.name
            for f in _FEATURES
            if f.level in ("person", "household")
            or f.name.startswith("buurt_")
            or f.name == "riec_region"
        ),
        "hennep": tuple(
            f.name
            for f in _FEATURES
            if f.level == "dwelling" or f.name.startswith("buurt_") or f.name == "riec_region"
        ),
        "branch_turnover": tuple(f.name for f in _FEATURES if f.level == "cell") + ("riec_region",),
    }
)


def catalogue_frame(names: Iterable[str] | None = None) -> pd.DataFrame:
    """The catalogue (or the named features) as a tidy table, for MLflow and reports."""
    feats = [CATALOGUE[n] for n in names] if names is not None else list(CATALOGUE.values())
    return pd.DataFrame(
        {
            "feature": [f.name for f in feats],
            "level": [f.level for f in feats],
            "definition_nl": [f.nl for f in feats],
            "definition_en": [f.en for f in feats],
            "sources": ["; ".join(f.sources) for f in feats],
            "unit": [f.unit for f in feats],
            "categories": [
                "; ".join(f"{i}={c}" for i, c in enumerate(f.categories)) for f in feats
            ],
            "builder": [f.builder for f in feats],
        }
    )


def render_markdown() -> str:
    """``docs/features.md``: the catalogue per task, generated (do not edit by hand)."""
    lines = [
        "# Feature catalogue",
        "",
        "Generated by `zicht catalogue` from `features/catalogue.py`; do not edit by hand.",
        "Every feature for reference year *t* uses data up to the end of *t − 1* only.",
        "No feature has a protected source (origin, migration background): the guard in",
        "`features/guard.py` refuses any feature whose lineage touches one.",
        "",
    ]
    for task, names in TASK_FEATURES.items():
        lines += [
            f"## `{task}` ({len(names)} features)",
            "",
            "| feature | level | definition (NL) | definition (EN) | unit | sources | builder |",
            "|---|---|---|---|---|---|---|",
        ]
        for n in names:
            f = CATALOGUE[n]
            unit = f.unit + (
                f" ({', '.join(f'{i}={c}' for i, c in enumerate(f.categories))})"
                if f.categories
                else ""
            )
            src = ", ".join(f"`{s}`" for s in dict.fromkeys(f.sources))
            lines.append(
                f"| `{f.name}` | {f.level} | {f.nl} | {f.en} | {unit} | {src} | `{f.builder}` |"
            )
        lines.append("")
    return "\n".join(lines)
