"""World scales: how big a synthetic world is, and how much its event rates are raised.

A scale is a frozen, declarative spec. The generator never branches on the scale's *name*;
everything it needs is a field here, so a new scale is one more entry in :data:`SCALES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: The ten RIEC regions (Regionale Informatie- en Expertisecentra), code -> name.
RIEC_REGIONS: Mapping[str, str] = MappingProxyType(
    {
        "RIEC01": "Noord-Nederland",
        "RIEC02": "Oost-Nederland",
        "RIEC03": "Midden-Nederland",
        "RIEC04": "Noord-Holland",
        "RIEC05": "Amsterdam-Amstelland",
        "RIEC06": "Den Haag",
        "RIEC07": "Rotterdam",
        "RIEC08": "Zeeland-West-Brabant",
        "RIEC09": "Oost-Brabant",
        "RIEC10": "Limburg",
    }
)


@dataclass(frozen=True)
class Scale:
    """Size and rate settings of one world scale.

    Attributes
    ----------
    name:
        ``tiny``, ``region`` or ``national``.
    persons:
        Target number of registered persons in the first world year.
    gemeenten_per_riec:
        How many gemeenten each RIEC region holds. Regions not named are absent.
    wijken, buurten:
        Target totals; the generator stays within a few percent.
    rate_multiplier:
        Multiplies the odds of every *label* event (cannabis farms, first drug
        suspicions) so that a small world still has positives in every fold. It is 1 at
        ``region`` and ``national``, where the base rates match Dutch figures. It is
        recorded in the manifest and applied inside the truth probabilities, so the
        oracle stays exact.
    """

    name: str
    persons: int
    gemeenten_per_riec: Mapping[str, int] = field(repr=False)
    wijken: int
    buurten: int
    rate_multiplier: float = 1.0

    @property
    def n_gemeenten(self) -> int:
        return sum(self.gemeenten_per_riec.values())


SCALES: Mapping[str, Scale] = MappingProxyType(
    {
        "tiny": Scale(
            name="tiny",
            persons=30_000,
            gemeenten_per_riec=MappingProxyType({"RIEC03": 3, "RIEC10": 3}),
            wijken=30,
            buurten=110,
            rate_multiplier=8.0,
        ),
        "region": Scale(
            name="region",
            persons=300_000,
            gemeenten_per_riec=MappingProxyType({"RIEC03": 6, "RIEC09": 5, "RIEC10": 5}),
            wijken=90,
            buurten=430,
        ),
        "national": Scale(
            name="national",
            persons=17_900_000,
            gemeenten_per_riec=MappingProxyType(
                {
                    "RIEC01": 40,
                    "RIEC02": 73,
                    "RIEC03": 32,
                    "RIEC04": 41,
                    "RIEC05": 6,
                    "RIEC06": 23,
                    "RIEC07": 27,
                    "RIEC08": 29,
                    "RIEC09": 40,
                    "RIEC10": 31,
                }
            ),
            wijken=3_300,
            buurten=14_000,
        ),
    }
)


def get_scale(name: str) -> Scale:
    """Return the scale called *name*, or raise ``KeyError`` naming the valid ones."""
    try:
        return SCALES[name]
    except KeyError:
        valid = ", ".join(SCALES)
        raise KeyError(f"unknown scale {name!r}; choose one of: {valid}") from None
