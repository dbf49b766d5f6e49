"""Schemas of the world's tables: the contract that generated worlds and real extracts meet.

Each table has a :class:`TableSpec`: its columns with a type *family* (checked on the Parquet
schema, so ``int32`` and ``int64`` are both integers and a string column may be
dictionary-encoded), a pandera schema for the values (checked batch by batch, so national
tables never sit whole in memory), its key, and which columns are **protected**.

Protected columns (origin, country of birth, nationality, parents' origin, generation) are
marked here and nowhere else. The feature guard reads this mark; nothing may turn it off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import pandera.pandas as pa

from microdata import vocab

Family = Literal["int", "float", "str", "bool", "binary"]

#: Upper bound of valid_to for spells still open at the extract's end.
OPEN_END = 9999
MIN_YEAR, MAX_YEAR = 1850, 2100

#: Column names that are protected wherever they appear (real extracts may carry them):
#: origin and migration background in Dutch and English spellings.
PROTECTED_NAME_PATTERN = re.compile(
    r"(herkomst|geboorteland|geboorte_land|nationalit|migrat|etni|ethnic|generatie|"
    r"country_of_birth|parents_origin)",
    re.IGNORECASE,
)

CODE_PATTERNS = MappingProxyType(
    {
        "riec": r"^RIEC(0[1-9]|10)$",
        "gemeente": r"^GM\d{4}$",
        "wijk": r"^WK\d{6}$",
        "buurt": r"^BU\d{8}$",
    }
)


@dataclass(frozen=True)
class Col:
    """One column: type family, nullability, value checks, and whether it is protected."""

    family: Family
    checks: tuple[pa.Check, ...] = ()
    nullable: bool = False
    protected: bool = False
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    """A world table: columns, unique key, time structure and a one-line description."""

    name: str
    columns: dict[str, Col]
    key: tuple[str, ...] = ()
    time: Literal["static", "spells", "year"] = "static"
    description: str = ""
    references: dict[str, str] = field(default_factory=dict)  # column -> "table.column"

    @property
    def file(self) -> str:
        return f"{self.name}.parquet"

    def pandera(self) -> pa.DataFrameSchema:
        """Value checks as a pandera schema (types are checked on the Arrow schema)."""
        return pa.DataFrameSchema(
            {
                name: pa.Column(
                    None,
                    checks=list(c.checks),
                    nullable=c.nullable,
                    required=True,
                    metadata={"protected": c.protected},
                )
                for name, c in self.columns.items()
                if c.family != "binary"
            },
            strict=False,
            name=self.name,
        )

    @property
    def protected_columns(self) -> tuple[str, ...]:
        return tuple(n for n, c in self.columns.items() if c.protected)


def _isin(values: tuple[str, ...] | list[str]) -> pa.Check:
    return pa.Check.isin(list(values), error=f"isin({', '.join(values)})")


def _between(lo: float, hi: float) -> pa.Check:
    return pa.Check.in_range(lo, hi, error=f"between {lo} and {hi}")


def _ge(lo: float) -> pa.Check:
    return pa.Check.ge(lo, error=f">= {lo}")


ID = Col("int", (_ge(0),))
YEAR = Col("int", (_between(MIN_YEAR, MAX_YEAR),), description="calendar year")
VALID_FROM = Col("int", (_between(MIN_YEAR, MAX_YEAR),), description="first year of the spell")
VALID_TO = Col(
    "int",
    (
        pa.Check(
            lambda s: s.between(MIN_YEAR, MAX_YEAR) | (s == OPEN_END),
            error=f"a year, or {OPEN_END} for an open spell",
        ),
    ),
    description=f"last year of the spell (inclusive); {OPEN_END} while open",
)


def _spells(
    name: str, id_col: str, values: dict[str, Col], description: str, references: dict[str, str]
) -> TableSpec:
    cols = {id_col: ID, **values, "valid_from": VALID_FROM, "valid_to": VALID_TO}
    return TableSpec(
        name,
        cols,
        key=(id_col, "valid_from"),
        time="spells",
        description=description,
        references=references,
    )


def _events(
    name: str,
    id_col: str,
    values: dict[str, Col],
    description: str,
    references: dict[str, str],
    key: tuple[str, ...] = (),
) -> TableSpec:
    cols = {id_col: ID, **values, "year": YEAR}
    return TableSpec(
        name, cols, key=key, time="year", description=description, references=references
    )


_AREA_CODE = pa.Check.str_matches(
    r"^(RIEC(0[1-9]|10)|GM\d{4}|WK\d{6}|BU\d{8})$",
    error="a CBS area code (RIEC01, GM0363, WK036300, BU03630000)",
)
_BUURT_CODE = pa.Check.str_matches(CODE_PATTERNS["buurt"], error="a buurt code like BU03630000")
_PERSON = {"person_id": "persons.person_id"}

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in [
        TableSpec(
            "areas",
            {
                "area_code": Col("str", (_AREA_CODE,)),
                "level": Col("str", (_isin(("riec", "gemeente", "wijk", "buurt")),)),
                "area_name": Col("str"),
                "parent_code": Col("str", nullable=True),
                "riec_code": Col("str"),
                "gemeente_code": Col("str", nullable=True),
                "wijk_code": Col("str", nullable=True),
                "land_area_km2": Col("float", (pa.Check.gt(0, error="> 0"),)),
                "geometry": Col("binary", description="WKB polygon in EPSG:28992"),
            },
            key=("area_code",),
            description="RIEC regions, gemeenten, wijken and buurten with polygons (GeoParquet)",
        ),
        TableSpec(
            "area_stats",
            {
                "area_code": Col("str", (_AREA_CODE,)),
                "level": Col("str", (_isin(("gemeente", "wijk", "buurt")),)),
                "year": YEAR,
                "inhabitants": Col("int", (_ge(0),)),
                "households": Col("int", (_ge(0),)),
                "dwellings": Col("int", (_ge(0),)),
                "density": Col("float", (_ge(0),)),
                "urbanity": Col("int", (_between(1, 5),)),
                "mean_woz": Col("float", (_ge(0),), nullable=True),
                "mean_income": Col("float", nullable=True),
                "share_rental": Col("float", (_between(0, 1),), nullable=True),
                "distance_facilities_km": Col("float", (_ge(0),)),
                "establishments": Col("int", (_ge(0),)),
                "business_density": Col("float", (_ge(0),)),
            },
            key=("area_code", "year"),
            time="year",
            description="key figures per area and year (kerncijfers wijken en buurten)",
            references={"area_code": "areas.area_code"},
        ),
        TableSpec(
            "persons",
            {
                "person_id": ID,
                "birth_year": YEAR,
                "sex": Col("str", (_isin(vocab.SEX),)),
                "herkomst": Col(
                    "str",
                    (_isin(vocab.HERKOMST),),
                    protected=True,
                    description="origin (protected: never a feature)",
                ),
                "mother_id": Col("int", (_ge(0),), nullable=True),
                "father_id": Col("int", (_ge(0),), nullable=True),
                "death_year": Col("int", (_between(MIN_YEAR, MAX_YEAR),), nullable=True),
            },
            key=("person_id",),
            description="registered persons (GBA-like), with parent links",
            references={"mother_id": "persons.person_id", "father_id": "persons.person_id"},
        ),
        _spells(
            "household_members",
            "person_id",
            {"household_id": ID, "role": Col("str", (_isin(vocab.ROLE),))},
            "which household a person belongs to, and in which role",
            _PERSON,
        ),
        _spells(
            "households",
            "household_id",
            {"household_type": Col("str", (_isin(vocab.HOUSEHOLD_TYPE),))},
            "household type over time",
            {},
        ),
        _spells(
            "residences",
            "household_id",
            {"dwelling_id": ID},
            "where a household lives",
            {"household_id": "households.household_id", "dwelling_id": "dwellings.dwelling_id"},
        ),
        TableSpec(
            "dwellings",
            {
                "dwelling_id": ID,
                "buurt_code": Col("str", (_BUURT_CODE,)),
                "dwelling_type": Col("str", (_isin(vocab.DWELLING_TYPE),)),
                "surface_m2": Col("int", (pa.Check.gt(0, error="> 0"),)),
                "build_year": YEAR,
                "ownership_changes_20y": Col(
                    "int",
                    (_ge(0),),
                    description="ownership changes in the 20 years before the extract",
                ),
            },
            key=("dwelling_id",),
            description="dwellings (BAG-like)",
            references={"buurt_code": "areas.area_code"},
        ),
        _spells(
            "ownership",
            "dwelling_id",
            {
                "ownership": Col("str", (_isin(vocab.OWNERSHIP),)),
                "owner_type": Col("str", (_isin(vocab.OWNER_TYPE),)),
                "owner_foreign": Col("bool"),
                "transfers": Col(
                    "int", (_ge(0),), description="transfers since the extract's start"
                ),
            },
            "ownership and owner of each dwelling over time",
            {"dwelling_id": "dwellings.dwelling_id"},
        ),
        _events(
            "woz",
            "dwelling_id",
            {"woz_value": Col("int", (_ge(0),))},
            "WOZ (property) value per dwelling and year",
            {"dwelling_id": "dwellings.dwelling_id"},
            key=("dwelling_id", "year"),
        ),
        _events(
            "household_income",
            "household_id",
            {
                "disposable_income": Col("int", (_ge(0),)),
                "income_percentile": Col("int", (_between(1, 100),)),
                "wealth": Col("int"),
            },
            "disposable household income, its national percentile, and wealth per year",
            {"household_id": "households.household_id"},
            key=("household_id", "year"),
        ),
        _spells(
            "socio_economic",
            "person_id",
            {"status": Col("str", (_isin(vocab.SOCIO_ECONOMIC),))},
            "socio-economic category (after SECM), persons aged 15+",
            _PERSON,
        ),
        _spells(
            "problematic_debts",
            "household_id",
            {},
            "spells of problematic debts of a household",
            {"household_id": "households.household_id"},
        ),
        _spells("debt_restructuring", "person_id", {}, "debt restructuring (WSNP) spells", _PERSON),
        _spells(
            "education",
            "person_id",
            {"school_type": Col("str", (_isin(vocab.SCHOOL_TYPE),))},
            "school enrolment",
            _PERSON,
        ),
        _events(
            "early_school_leaving",
            "person_id",
            {},
            "early school leaving (vsv) registrations",
            _PERSON,
        ),
        _events("halt", "person_id", {}, "Halt registrations (youth diversion)", _PERSON),
        TableSpec(
            "youth_care",
            {
                "person_id": ID,
                "kind": Col("str", (_isin(vocab.YOUTH_CARE),)),
                "valid_from": VALID_FROM,
                "valid_to": VALID_TO,
            },
            key=("person_id", "kind", "valid_from"),
            time="spells",
            description="youth care, child protection and youth probation",
            references=_PERSON,
        ),
        _events(
            "suspicions",
            "person_id",
            {"offence": Col("str", (_isin(vocab.OFFENCE),))},
            "police suspicions by offence type",
            _PERSON,
        ),
        _events(
            "convictions",
            "person_id",
            {"offence": Col("str", (_isin(vocab.OFFENCE),))},
            "convictions by offence type",
            _PERSON,
        ),
        _events(
            "cannabis_farms",
            "dwelling_id",
            {},
            "dismantled cannabis farms per dwelling",
            {"dwelling_id": "dwellings.dwelling_id"},
        ),
        TableSpec(
            "branches",
            {
                "sbi": Col(
                    "str", (pa.Check.str_matches(r"^\d{4,5}$", error="an SBI code of 4-5 digits"),)
                ),
                "branch_name": Col("str"),
                "vulnerable": Col("bool"),
            },
            key=("sbi",),
            description="branches (SBI) and whether ZoO counts them as vulnerable",
        ),
        TableSpec(
            "establishments",
            {
                "establishment_id": ID,
                "buurt_code": Col("str", (_BUURT_CODE,)),
                "sbi": Col("str"),
                "legal_form": Col("str", (_isin(vocab.LEGAL_FORM),)),
                "employees": Col("int", (_ge(0),)),
                "sole_director": Col("bool"),
                "founded_year": YEAR,
                "closed_year": Col("int", (_between(MIN_YEAR, MAX_YEAR),), nullable=True),
            },
            key=("establishment_id",),
            description="business establishments (business-register-like)",
            references={"buurt_code": "areas.area_code", "sbi": "branches.sbi"},
        ),
        _events(
            "turnover",
            "establishment_id",
            {"turnover": Col("int", (_ge(0),))},
            "yearly turnover per establishment, in euro",
            {"establishment_id": "establishments.establishment_id"},
            key=("establishment_id", "year"),
        ),
    ]
}


def protected_columns() -> dict[str, tuple[str, ...]]:
    """Table -> protected columns, from the schemas' marks."""
    return {name: t.protected_columns for name, t in TABLES.items() if t.protected_columns}


def is_protected_name(column: str) -> bool:
    """True for a column name that denotes origin or migration background in any table."""
    return bool(PROTECTED_NAME_PATTERN.search(column))
