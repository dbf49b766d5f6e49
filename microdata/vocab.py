"""Closed vocabularies of the world's categorical columns.

The generator stores integer codes internally and writes these labels; the schemas use the
same lists, so a real extract with an unknown label fails validation with the list of allowed
values in the message.
"""

from __future__ import annotations

from types import MappingProxyType

SEX = ("M", "V")

#: Protected: origin ("herkomst") as CBS publishes it. Never a feature; see ``schemas.PROTECTED``.
HERKOMST = (
    "Nederland",
    "Europa (excl. Nederland)",
    "Turkije",
    "Marokko",
    "Suriname",
    "Nederlands-Caribisch",
    "Overig buiten Europa",
)

#: The categories of the protected origin column, for the audit accessor only.
PROTECTED_ORIGIN_CATEGORIES = HERKOMST

HOUSEHOLD_TYPE = ("single", "couple", "couple_with_children", "single_parent", "other")
ROLE = ("head", "partner", "child", "other")

DWELLING_TYPE = ("apartment", "terraced", "semi_detached", "detached")
OWNERSHIP = ("owner_occupied", "social_rent", "private_rent")
OWNER_TYPE = ("person", "company", "foundation")

#: Socio-economic category (after CBS's SECM), for persons aged 15 and over.
SOCIO_ECONOMIC = (
    "employee",
    "self_employed",
    "social_assistance",
    "unemployment_benefit",
    "disability_benefit",
    "pension",
    "student",
    "no_income",
)
BENEFIT_STATUSES = ("social_assistance", "unemployment_benefit", "disability_benefit")

SCHOOL_TYPE = ("primary", "secondary", "mbo", "higher")
YOUTH_CARE = ("jeugdhulp", "jeugdbescherming", "jeugdreclassering")
OFFENCE = ("drugs", "violence", "property", "vandalism", "other")

LEGAL_FORM = ("eenmanszaak", "vof", "bv", "nv", "stichting")

#: Branches (SBI 2008 codes). ``96023`` (nail studios) is a synthetic split of SBI 96022 so
#: that the vulnerable branches named by the ZoO report each have a code of their own.
#: code -> (name, vulnerable, establishments per 1,000 inhabitants, median turnover in euro)
BRANCHES = MappingProxyType(
    {
        "96021": ("Kappers", True, 2.0, 85_000),
        "96022": ("Schoonheidsverzorging", True, 2.4, 60_000),
        "96023": ("Nagelstudio's", True, 0.8, 45_000),
        "45201": ("Autoreparatie", True, 1.1, 420_000),
        "78201": ("Uitzendbureaus", True, 0.5, 1_900_000),
        "56101": ("Restaurants", True, 1.6, 520_000),
        "56300": ("Cafés", True, 0.7, 260_000),
        "47420": ("Telefoon- en telecomwinkels", True, 0.15, 330_000),
        "47111": ("Supermarkten", False, 0.35, 5_200_000),
        "47710": ("Kledingwinkels", False, 0.9, 450_000),
        "69201": ("Accountants en administratiekantoren", False, 4.0, 310_000),
        "70221": ("Organisatie-adviesbureaus", False, 42.0, 120_000),
        "41000": ("Bouw", False, 33.0, 240_000),
        "62010": ("Softwareontwikkeling", False, 15.0, 260_000),
        "47190": ("Overige winkels", False, 7.0, 280_000),
    }
)

AGE_GROUPS = MappingProxyType({"8-12": (8, 12), "13-19": (13, 19), "20-23": (20, 23)})

#: Levels of published area scores and profiles, smallest first (``nederland``: the country).
AREA_LEVELS: tuple[str, ...] = ("buurt", "wijk", "gemeente", "riec", "nederland")
#: Column of a unit table that holds the unit's area code at each level below the country.
AREA_CODE_COLUMN: dict[str, str] = {
    "buurt": "buurt_code",
    "wijk": "wijk_code",
    "gemeente": "gemeente_code",
    "riec": "riec_code",
}


def code_of(vocab: tuple[str, ...], label: str) -> int:
    """Index of *label* in *vocab* (the integer code the generator uses)."""
    return vocab.index(label)
