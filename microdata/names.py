"""Dutch-sounding names for synthetic areas, built from parts and seeded by an rng.

The names only have to *look* Dutch and be unique where codes are unique in practice:
gemeente names nationally, wijk names within a gemeente, buurt names within a wijk. They
are built from stems, suffixes and fixed patterns so that no real area is copied on
purpose (a real name may still come up by chance, which is harmless).

All randomness goes through the ``numpy.random.Generator`` that is passed in, and no set
is ever iterated over, so the same generator state always gives the same names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

#: Compass points in the order used by :func:`compass`, clockwise from north.
DIRECTIONS: tuple[str, ...] = (
    "Noord",
    "Noordoost",
    "Oost",
    "Zuidoost",
    "Zuid",
    "Zuidwest",
    "West",
    "Noordwest",
)

#: Buurt kinds understood by :func:`buurt_names`.
BUURT_KINDS: tuple[str, ...] = ("woon", "bedrijventerrein", "buitengebied")

_PLACE_STEMS: tuple[str, ...] = (
    "Ooster", "Wester", "Zuider", "Noorder", "Hazel", "Veen", "Wolder", "Zand", "Berg",
    "Mol", "Brug", "Dijk", "Hout", "Eik", "Linde", "Ek", "Bred", "Harder", "Aal", "Stein",
    "Beek", "Ven", "Roos", "Dal", "Wijk", "Hamel", "Lochem", "Barne", "Winter", "Zomer",
    "Heer", "Ravens", "Valken", "Kraan", "Ever", "Bunne", "Elster", "Heem", "Hille", "Loos",
    "Mark", "Nijen", "Olde", "Putte", "Raal", "Schoon", "Sneek", "Tiel", "Uden", "Vorden",
    "Wamel", "Ysel", "Zeven", "Ammer", "Bleis", "Drie", "Gelder", "Hengel", "Kollum", "Lunter",
    "Meppel", "Norg", "Ommer", "Peel", "Rijs", "Slede", "Twello", "Vlie", "Waarde", "Zwaag",
    "Akker", "Boxt", "Cuijk", "Delden", "Emmel", "Franeker", "Gorre", "Hoog", "Ijssel",
    "Kamper", "Lemmer", "Mieden", "Nunspe", "Oirsch", "Panner", "Reusel", "Staphorst",
    "Tolle", "Veghel", "Wissen", "Zuidla", "Bronk", "Mosse", "Weer", "Goor", "Helden", "Aarle",
)  # fmt: skip

_PLACE_SUFFIXES: tuple[str, ...] = (
    "broek", "hoven", "dam", "burg", "wijk", "dorp", "zijl", "horst", "veen", "huizen",
    "recht", "um", "ingen", "lo", "beek", "haar", "sloot", "voort", "meer", "woude", "holt",
    "rade", "stede", "loo", "donk", "rode", "kerk", "zand", "sum", "wert", "dijk", "veld",
    "werd", "bergen", "hem", "hout", "naarde", "mond", "oord", "schot", "ijk", "el", "en",
    "ster", "waard", "borg", "berg", "drecht", "wold", "land", "brug",
)  # fmt: skip

_PLACE_PREFIXES: tuple[str, ...] = (
    "Nieuw-", "Oud-", "Sint-", "Groot-", "Klein-", "Noord-", "Zuid-", "Oost-", "West-",
    "Hoog-", "Ter ", "Den ", "'s-",
)  # fmt: skip

# Nouns that follow "De " in wijk and buurt names ("De Horst", "De Kamp").
_DE_NOUNS: tuple[str, ...] = (
    "Horst", "Kamp", "Hoef", "Bongerd", "Vliert", "Haar", "Hoven", "Weide", "Akkers",
    "Esch", "Brink", "Meent", "Molen", "Dreef", "Gaarden", "Kooi", "Wielen", "Beemd",
    "Lanen", "Zoom", "Wetering", "Kolk", "Hoek", "Hei", "Heuvel", "Kempen", "Laak", "Vaart",
    "Vennen", "Wissel", "Elzen", "Eng", "Maten", "Schans", "Steeg", "Tuinen", "Uithof",
    "Rietlanden", "Boomgaard", "Driesprong", "Berken", "Donken", "Essen", "Kuil", "Venne",
)  # fmt: skip

# First halves of compound names ("Molenveld", "Schildersbuurt").
_COMPOUND_STEMS: tuple[str, ...] = (
    "Molen", "Kerk", "Bloemen", "Schilders", "Vogel", "Bomen", "Zeehelden", "Componisten",
    "Linden", "Eiken", "Beuken", "Water", "Park", "Sluis", "Haven", "Dijk", "Kasteel",
    "Burger", "Rozen", "Tuin", "Sterren", "Station", "Bos", "Wilgen", "Heide", "Akker",
    "Kloosters", "Vesting", "Poort", "Markt", "Linnen", "Klaver", "Zon", "Berken", "Populier",
    "Dichters", "Vaart", "Brink", "Esdoorn", "Mees", "Merel", "Kievit", "Reiger", "Zwaluw",
    "Hof", "Schutters", "Ambachts", "Kanaal", "Spoor", "Polder", "Rivieren", "Lanen",
)  # fmt: skip

_WIJK_SUFFIXES: tuple[str, ...] = (
    "veld", "wijk", "buurt", "kwartier", "park", "hof", "kamp", "akker", "hoek", "berg",
    "dorp", "weide", "rijk", "haven", "landen", "hage",
)  # fmt: skip

_BUURT_SUFFIXES: tuple[str, ...] = (
    "buurt", "park", "hof", "hoek", "kamp", "akker", "laan", "plein", "veld", "straat",
    "erf", "wei", "dreef", "singel", "gaarde", "kade",
)  # fmt: skip

# Give up and number a duplicate after this many draws; the pools hold thousands of
# combinations, so reaching it means a pathologically large request, not bad luck.
_MAX_TRIES = 200


def compass(dx: np.ndarray, dy: np.ndarray) -> list[str]:
    """Return the compass point (``"Noord"``, ``"Zuidwest"``, ...) of each offset.

    Parameters
    ----------
    dx, dy:
        East and north offsets from a reference point, any unit.

    Returns
    -------
    list of str
        One entry of :data:`DIRECTIONS` per offset; a zero offset counts as north.

    Examples
    --------
    >>> compass(np.array([0.0, 1.0]), np.array([-1.0, 1.0]))
    ['Zuid', 'Noordoost']
    """
    # Bearing clockwise from north, in eighths of a circle, rounded to the nearest point.
    bearing = np.degrees(np.arctan2(np.asarray(dx, float), np.asarray(dy, float))) % 360.0
    idx = np.round(bearing / 45.0).astype(int) % len(DIRECTIONS)
    return [DIRECTIONS[i] for i in idx]


def _pick(rng: np.random.Generator, pool: Sequence[str]) -> str:
    return pool[int(rng.integers(len(pool)))]


def _join(stem: str, suffix: str) -> str:
    # "Linde" + "en" reads as "Linden", not "Lindeen": drop a doubled vowel at the seam.
    if stem and suffix and stem[-1] in "aeiou" and suffix[0] == stem[-1]:
        suffix = suffix[1:]
    return stem + suffix


def place_name(rng: np.random.Generator) -> str:
    """Return one Dutch-sounding place name such as ``"Hazelhoven"`` or ``"Nieuw-Veendam"``.

    Parameters
    ----------
    rng:
        Source of randomness.

    Returns
    -------
    str
        A stem and a suffix, sometimes after a prefix (``"Sint-"``, ``"Ter "``, ...).
    """
    name = _join(_pick(rng, _PLACE_STEMS), _pick(rng, _PLACE_SUFFIXES))
    if rng.random() < 0.15:
        prefix = _pick(rng, _PLACE_PREFIXES)
        name = prefix + name
    return name


def _unique(
    rng: np.random.Generator, make: Callable[[], str], taken: set[str], fallback: str
) -> str:
    """Draw names from *make* until one is not in *taken*; record and return it."""
    for _ in range(_MAX_TRIES):
        name = make()
        if name not in taken:
            taken.add(name)
            return name
    # Deterministic last resort: number the fallback until it is free.
    i = 2
    while f"{fallback} {i}" in taken:
        i += 1
    name = f"{fallback} {i}"
    taken.add(name)
    return name


def place_names(rng: np.random.Generator, n: int, *, taken: set[str] | None = None) -> list[str]:
    """Return *n* distinct place names, none of them in *taken*.

    Parameters
    ----------
    rng:
        Source of randomness.
    n:
        How many names.
    taken:
        Names that must not be returned. The set is updated with the new names, so one
        set can be shared across calls to keep names unique nationally.

    Returns
    -------
    list of str
        *n* distinct names.
    """
    used = set() if taken is None else taken
    make = partial(place_name, rng)
    return [_unique(rng, make, used, "Nieuwdorp") for _ in range(n)]


def _de_name(rng: np.random.Generator) -> str:
    return "De " + _pick(rng, _DE_NOUNS)


def _compound(rng: np.random.Generator, suffixes: Sequence[str]) -> str:
    return _join(_pick(rng, _COMPOUND_STEMS), _pick(rng, suffixes))


def _wijk_plain(rng: np.random.Generator, direction: str, *, urban: bool) -> str:
    """One wijk name that is not a central one."""
    u = rng.random()
    if u < 0.2:
        # Directional names follow the wijk's real bearing from the centre ("Oud-Zuid").
        if urban and rng.random() < 0.6:
            return _pick(rng, ("Oud-", "Nieuw-")) + direction
        return direction
    if u < 0.45:
        return _de_name(rng)
    if u < 0.8 or urban:
        return _compound(rng, _WIJK_SUFFIXES)
    # Rural wijken are often a village of their own.
    return place_name(rng)


def wijk_names(
    rng: np.random.Generator,
    directions: Sequence[str],
    *,
    place: str,
    numbered: bool,
    urban: bool,
) -> list[str]:
    """Return names for the wijken of one gemeente, unique within it.

    Parameters
    ----------
    rng:
        Source of randomness.
    directions:
        Compass point of each wijk seen from the gemeente's centre, in wijk-code order.
        The first wijk (code ``..00``) is taken to be the central one.
    place:
        The gemeente's name; a gemeente with one wijk, or the centre of a numbered
        gemeente, is called after it (``"Wijk 00 Oosterbroek"``).
    numbered:
        Use the CBS habit of ``"Wijk 03 Molenveld"`` names.
    urban:
        City gemeenten get ``"Binnenstad"``/``"Centrum"`` and ``"Oud-Zuid"``-style names.

    Returns
    -------
    list of str
        One name per entry of *directions*.
    """
    taken: set[str] = set()
    names: list[str] = []
    n = len(directions)
    for i, direction in enumerate(directions):
        if i == 0:
            if n == 1 or numbered:
                base = place
            else:
                base = "Binnenstad" if urban and rng.random() < 0.5 else "Centrum"
            taken.add(base)
        else:
            make = partial(_wijk_plain, rng, direction, urban=urban)
            base = _unique(rng, make, taken, f"{direction} {place}")
        names.append(f"Wijk {i:02d} {base}" if numbered or n == 1 else base)
    return names


def _buurt_plain(rng: np.random.Generator, direction: str) -> str:
    u = rng.random()
    if u < 0.3:
        return _de_name(rng)
    if u < 0.9:
        return _compound(rng, _BUURT_SUFFIXES)
    return f"{_pick(rng, _COMPOUND_STEMS)}buurt-{direction}"


def _buurt_candidate(rng: np.random.Generator, kind: str, direction: str) -> str:
    """One candidate name for a buurt of the given kind."""
    if kind == "buitengebied":
        return f"Buitengebied {direction}"
    if kind == "bedrijventerrein":
        if rng.random() < 0.5:
            return f"Bedrijventerrein {direction}"
        return f"Bedrijventerrein {_de_name(rng)}"
    return _buurt_plain(rng, direction)


def buurt_names(
    rng: np.random.Generator,
    directions: Sequence[str],
    kinds: Sequence[str],
    *,
    central: bool = False,
) -> list[str]:
    """Return names for the buurten of one wijk, unique within it.

    Parameters
    ----------
    rng:
        Source of randomness.
    directions:
        Compass point of each buurt seen from its gemeente's centre, in buurt-code order.
    kinds:
        One of :data:`BUURT_KINDS` per buurt. Near-empty buurten are named after what
        they are: ``"Bedrijventerrein Noord"``, ``"Buitengebied Oost"``.
    central:
        The wijk is its gemeente's centre; its first buurt is then called ``"Centrum"``.

    Returns
    -------
    list of str
        One name per buurt.
    """
    if len(directions) != len(kinds):
        raise ValueError(
            f"buurt_names: got {len(directions)} directions but {len(kinds)} kinds; "
            "pass one of each per buurt"
        )
    taken: set[str] = set()
    names: list[str] = []
    for i, (direction, kind) in enumerate(zip(directions, kinds, strict=True)):
        if kind not in BUURT_KINDS:
            raise ValueError(f"buurt_names: unknown buurt kind {kind!r}; use one of {BUURT_KINDS}")
        if kind == "woon" and i == 0 and central:
            taken.add("Centrum")
            names.append("Centrum")
            continue
        fallback = {
            "woon": f"Buurt {direction}",
            "bedrijventerrein": f"Bedrijventerrein {direction}",
            "buitengebied": f"Buitengebied {direction}",
        }[kind]
        make = partial(_buurt_candidate, rng, kind, direction)
        names.append(_unique(rng, make, taken, fallback))
    return names
