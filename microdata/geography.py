"""Synthetic area hierarchy RIEC region -> gemeente -> wijk -> buurt, with geometry.

The world needs areas that behave like CBS areas: codes in CBS format, polygons that tile
their parent exactly, a few large cities with small dense central buurten, and a tail of
near-empty buurten (industrial estates, rural outskirts) that disclosure control must
catch. Real boundaries are not used; every level is a Voronoi diagram of random seeds
clipped to its parent, nested four deep inside a hand-made outline of the Netherlands.

Everything is a pure function of the scale and the random generator: the same seed gives
byte-identical geometry. The only file read is the packaged outline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity
from scipy.special import ndtri

from microdata import names
from microdata.scales import RIEC_REGIONS, Scale

#: Coordinate reference system of every geometry here: RD New, in metres.
CRS = "EPSG:28992"

#: Area levels from coarse to fine; output rows are sorted in this order.
LEVELS: tuple[str, ...] = ("riec", "gemeente", "wijk", "buurt")

#: CBS codes give a wijk and a buurt two digits each within their parent.
MAX_CHILDREN = 100

#: Seed points of the RIEC regions (RD New metres), near each region's real centre of
#: gravity. The regions are their Voronoi cells clipped to the outline, the same at every
#: scale. Each point also becomes the seed of the region's largest gemeente.
RIEC_SEEDS: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "RIEC01": (215_000.0, 565_000.0),  # Noord-Nederland
        "RIEC02": (215_000.0, 470_000.0),  # Oost-Nederland
        "RIEC03": (150_000.0, 470_000.0),  # Midden-Nederland
        "RIEC04": (115_000.0, 520_000.0),  # Noord-Holland
        "RIEC05": (122_000.0, 485_000.0),  # Amsterdam-Amstelland
        "RIEC06": (85_000.0, 455_000.0),  # Den Haag
        "RIEC07": (92_000.0, 432_000.0),  # Rotterdam
        "RIEC08": (70_000.0, 395_000.0),  # Zeeland-West-Brabant
        "RIEC09": (160_000.0, 395_000.0),  # Oost-Brabant
        "RIEC10": (193_000.0, 350_000.0),  # Limburg
    }
)

#: Output columns, in order.
COLUMNS: tuple[str, ...] = (
    "area_code",
    "level",
    "area_name",
    "parent_code",
    "riec_code",
    "gemeente_code",
    "wijk_code",
    "land_area_km2",
    "population_weight",
    "geometry",
)

# Wijken per gemeente grow less than proportionally with population: big cities have
# bigger wijken (Amsterdam has ~100 wijken for 900k people, a 20k village 3-5).
_WIJK_POP_EXPONENT = 0.8
# Population share within a parent ~ area**exponent: smaller (central) cells hold more
# people, so density falls steeply from the centre outwards.
_SHARE_AREA_EXPONENT = -0.3
_SHARE_NOISE_SIGMA = 0.35
# Share of buurten made near-empty, so that every scale has cells under the threshold of
# 10 units that disclosure control has to suppress.
_NEAR_EMPTY_SHARE = 0.04
_NEAR_EMPTY_PERSONS = (1.0, 20.0)
# Persons per km² no wijk or buurt exceeds (the densest Dutch buurten reach ~30k); it
# keeps small central cells from drawing a crowd that would not fit.
_MAX_DENSITY_KM2 = 25_000.0
# Wijken average over more ground, so their cap is lower; it also leaves the buurten of
# a full wijk room to differ.
_MAX_WIJK_DENSITY_KM2 = 15_000.0
# A wijk gets no more buurten than its area divided by this (m²): 2 ha, about the
# smallest real buurten.
_MIN_BUURT_M2 = 20_000.0
# Regions in the order their cities rank, as in the real country (Amsterdam, Rotterdam,
# Den Haag, Utrecht, Eindhoven, Groningen, Tilburg/Breda, Nijmegen/Arnhem, Maastricht,
# Haarlem/Zaanstad).
_CITY_ORDER: tuple[str, ...] = (
    "RIEC05", "RIEC07", "RIEC06", "RIEC03", "RIEC09", "RIEC01", "RIEC08", "RIEC02",
    "RIEC10", "RIEC04",
)  # fmt: skip
# A city's seed keeps other gemeente seeds at this many times the radius of a disc of its
# target area; neighbours' cells then reach about halfway, so the city gets roughly that
# area.
_CITY_CLEAR_FACTOR = 1.3
# Polygon parts smaller than this (m^2) are clipping artefacts, not land.
_SLIVER_M2 = 1e-3
# Seeds closer than this fraction of the mean seed spacing are redrawn, which keeps
# Voronoi cells from degenerating into slivers.
_MIN_SEED_SPACING = 0.15
# Neighbours: boundaries within this distance (m) count as shared, and a shared stretch
# must be longer than this (m) to count as a border rather than a corner touch.
_TOUCH_TOLERANCE_M = 1e-4
_MIN_BORDER_M = 1e-2


@dataclass(frozen=True)
class _Density:
    """Relative seed density: a Gaussian bump around a centre on top of a flat floor.

    A low floor gives a city (many small cells in the middle, large ones outside); a
    high floor gives an almost uniform village gemeente.
    """

    x: float
    y: float
    sigma: float
    floor: float

    def accept(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Acceptance probability in (0, 1] for candidate points."""
        d2 = (x - self.x) ** 2 + (y - self.y) ** 2
        return (self.floor + np.exp(-d2 / (2.0 * self.sigma**2))) / (self.floor + 1.0)


# --------------------------------------------------------------------------- outline


def _read_package_text(name: str) -> str:
    """Read a data file shipped inside the ``microdata`` package."""
    try:
        return resources.files("microdata").joinpath(name).read_text(encoding="utf-8")
    except (NotADirectoryError, TypeError):
        # Python 3.11's importlib.resources chokes on a namespace package (no
        # __init__.py) under an editable install, whose search path holds a path-hook
        # entry that is not a directory; the file sits next to this module regardless.
        return (Path(__file__).parent / name).read_text(encoding="utf-8")


def load_outline() -> shapely.Polygon:
    """Load the packaged outline of the Netherlands mainland.

    Returns
    -------
    shapely.Polygon
        A valid polygon in EPSG:28992 (metres) of about 37,000 km². It is hand-made from
        a few dozen anchor points; the IJsselmeer and the Zeeland waters count as land.

    Raises
    ------
    ValueError
        If the packaged file is not in EPSG:28992 or is not a valid polygon.
    """
    spec = json.loads(_read_package_text("assets/nl_outline.json"))
    if spec.get("crs") != CRS:
        raise ValueError(
            f"microdata/assets/nl_outline.json: crs is {spec.get('crs')!r}, expected {CRS!r}"
        )
    outline = shapely.Polygon(np.asarray(spec["coordinates"], dtype=np.float64))
    if not outline.is_valid or outline.is_empty:
        raise ValueError(
            "microdata/assets/nl_outline.json: coordinates do not form a valid polygon "
            f"({shapely.is_valid_reason(outline)}); fix the vertex list"
        )
    return outline


# ------------------------------------------------------------------------- geometry


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Return the polygonal part of *geom* without slivers, valid, possibly empty."""
    if not shapely.is_valid(geom):
        geom = shapely.make_valid(geom)
    parts = shapely.get_parts(geom)
    # A GeometryCollection from make_valid may itself hold MultiPolygons.
    parts = shapely.get_parts(parts)
    keep = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > _SLIVER_M2)
    kept = parts[keep]
    if len(kept) == 0:
        return shapely.Polygon()
    if len(kept) == 1:
        return kept[0]
    return shapely.MultiPolygon(list(kept))


def _clip(cells: np.ndarray, parent: shapely.Geometry) -> np.ndarray:
    """Clip Voronoi *cells* to *parent* and clean them up; empty cells stay empty."""
    out = shapely.intersection(cells, parent)
    type_id = shapely.get_type_id(out)
    # Only non-Polygon or invalid results need the slow path; with seeds strictly inside
    # the parent that is a few percent of cells.
    suspect = (type_id != 3) | ~shapely.is_valid(out)
    for i in np.flatnonzero(suspect):
        out[i] = _polygonal(out[i])
    return out


def _sample_seeds(
    rng: np.random.Generator,
    parent: shapely.Geometry,
    n: int,
    *,
    density: _Density | None,
    fixed: tuple[float, float] | None = None,
    clear_radius: float = 0.0,
) -> np.ndarray:
    """Draw *n* distinct seed points strictly inside *parent* by rejection sampling.

    Parameters
    ----------
    rng:
        Source of randomness.
    parent:
        The polygon to fill; prepared in place for fast containment tests.
    n:
        Number of seeds.
    density:
        Relative density to thin uniform candidates with; None for uniform.
    fixed:
        A point to use as the first seed, if it lies inside *parent*.
    clear_radius:
        No other seed comes closer than this to *fixed*, which makes its cell larger.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 2)``, x and y in metres.
    """
    shapely.prepare(parent)
    xmin, ymin, xmax, ymax = parent.bounds
    box_area = max((xmax - xmin) * (ymax - ymin), 1e-9)
    rate = max(parent.area / box_area, 1e-3)
    if density is not None:
        # The worst-case thinning rate, so one batch nearly always suffices.
        rate *= density.floor / (density.floor + 1.0)
    min_sep = _MIN_SEED_SPACING * np.sqrt(parent.area / n)

    seeds = np.empty((n, 2))
    count = 0
    if fixed is not None and shapely.contains_xy(parent, *fixed):
        seeds[0] = fixed
        count = 1
    for _ in range(1000):
        if count == n:
            return seeds
        need = n - count
        m = int(1.5 * need / rate) + 8
        x = rng.uniform(xmin, xmax, m)
        y = rng.uniform(ymin, ymax, m)
        keep = shapely.contains_xy(parent, x, y)
        if density is not None:
            keep &= rng.random(m) < density.accept(x, y)
        if fixed is not None and clear_radius > 0.0:
            keep &= np.hypot(x - fixed[0], y - fixed[1]) >= clear_radius
        for px, py in zip(x[keep], y[keep], strict=True):
            # Distinct and not too close, so that no Voronoi cell collapses to a sliver.
            if count and np.min(np.hypot(seeds[:count, 0] - px, seeds[:count, 1] - py)) < min_sep:
                continue
            seeds[count] = (px, py)
            count += 1
            if count == n:
                break
    raise RuntimeError(
        f"could not place {n} seeds in a polygon of {parent.area:.0f} m²; "
        "the parent is too small or too thin for this many children"
    )


def _split(
    rng: np.random.Generator,
    parent: shapely.Geometry,
    n: int,
    *,
    density: _Density | None,
    fixed: tuple[float, float] | None = None,
    clear_radius: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split *parent* into *n* clipped Voronoi cells that tile it.

    Returns
    -------
    cells, seeds
        ``cells[i]`` is the non-empty polygonal cell of ``seeds[i]`` (shape ``(n, 2)``).
    """
    for _ in range(20):
        seeds = _sample_seeds(
            rng, parent, n, density=density, fixed=fixed, clear_radius=clear_radius
        )
        if n == 1:
            return np.array([parent], dtype=object), seeds
        diagram = shapely.voronoi_polygons(
            shapely.multipoints(seeds), extend_to=parent, ordered=True
        )
        cells = shapely.get_parts(diagram)
        if len(cells) != n:
            continue
        cells = _clip(cells, parent)
        # A seed strictly inside the parent always keeps a cell; an empty one means a
        # numerically degenerate diagram, so draw new seeds rather than patch it.
        if not shapely.is_empty(cells).any():
            return cells, seeds
    raise RuntimeError(f"Voronoi split of a {parent.area:.0f} m² polygon into {n} cells failed")


def _riec_polygons(outline: shapely.Polygon) -> dict[str, shapely.Geometry]:
    """The ten RIEC regions: Voronoi cells of :data:`RIEC_SEEDS` clipped to *outline*."""
    points = np.array(list(RIEC_SEEDS.values()))
    diagram = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=outline, ordered=True)
    cells = _clip(shapely.get_parts(diagram), outline)
    return dict(zip(RIEC_SEEDS, cells, strict=True))


#: Land per registered person in the Netherlands (about 37,400 km2 of outline for 17.9M).
LAND_PER_PERSON_M2 = 2_090.0


def _shrink_to_scale(
    regions: dict[str, shapely.Geometry], scale: Scale
) -> dict[str, shapely.Geometry]:
    """Shrink the regions a smaller world uses around their seeds, keeping Dutch densities.

    A ``region`` world of 300k persons spread over three whole RIEC regions would be as thin
    as the Veluwe everywhere; scaling each used region about its seed point (and clipping
    to the original, so it stays inside) gives the land a world of that size would have.
    The national scale uses the regions whole.
    """
    used = {c: g for c, g in regions.items() if c in scale.gemeenten_per_riec}
    total = float(sum(shapely.area(g) for g in used.values()))
    target = scale.persons * LAND_PER_PERSON_M2
    if target >= total:
        return regions
    f = float(np.sqrt(target / total))
    out = dict(regions)
    for code, geom in used.items():
        x, y = RIEC_SEEDS[code]
        shrunk = shapely.intersection(shapely.affinity.scale(geom, f, f, origin=(x, y)), geom)
        out[code] = _polygonal(shapely.make_valid(shrunk))
    return out


# ----------------------------------------------------------------------- population


def _gemeente_populations(rng: np.random.Generator, n: int, persons: int) -> np.ndarray:
    """Skewed gemeente populations summing to *persons*, largest first.

    A lognormal rank curve whose spread grows with *n*, with the top ranks lifted as
    in the Dutch primate cities. At 342 gemeenten and 17.9M persons this gives about
    1.0M, 600k, 520k, 400k, then 200-300k, a median near 28k and a minimum near 1.3k;
    with 16 gemeenten and 300k persons one town of ~90k and the rest 3-35k.
    """
    sigma = 0.58 + 0.08 * np.log(n)
    z = ndtri((np.arange(n) + 0.5) / n) + rng.normal(0.0, 0.1, n)
    pop = np.exp(sigma * np.sort(z)[::-1])
    # One big city per ~85 gemeenten; in a small world the one city stands out more.
    k = max(1, round(n / 85))
    pop[:k] *= np.linspace(1.4, 1.25, k) if k > 1 else 1.6
    pop *= persons / pop.sum()
    return np.sort(pop)[::-1]


def _city_first(rng: np.random.Generator, pop: np.ndarray, scale: Scale) -> np.ndarray:
    """Order gemeente populations region by region, each region's city first.

    The largest populations become the regional cities, handed out in
    :data:`_CITY_ORDER` (the biggest to Amsterdam-Amstelland when it is present); the
    rest are shuffled over the remaining places. Regions follow :data:`RIEC_REGIONS`.
    """
    regions = [c for c in RIEC_REGIONS if c in scale.gemeenten_per_riec]
    ranked = [c for c in _CITY_ORDER if c in scale.gemeenten_per_riec]
    city_pop = dict(zip(ranked, pop[: len(ranked)], strict=True))
    rest = rng.permutation(pop[len(ranked) :])
    out: list[float] = []
    used = 0
    for riec in regions:
        k = scale.gemeenten_per_riec[riec]
        out.append(float(city_pop[riec]))
        out.extend(rest[used : used + k - 1])
        used += k - 1
    return np.array(out)


def _apportion(total: int, weights: np.ndarray, *, lo: int, hi: int | np.ndarray) -> np.ndarray:
    """Split the integer *total* proportionally to *weights*, each part in [lo, hi].

    Water-filling (find the scale at which the clipped quotas add up to *total*), then
    largest remainders. Exact: the result sums to *total*. *hi* may differ per part.
    """
    n = len(weights)
    hi = np.broadcast_to(np.asarray(hi, dtype=np.int64), (n,))
    if not (n * lo <= total <= hi.sum() and (hi >= lo).all()):
        raise ValueError(f"cannot split {total} into {n} parts of {lo} to {hi.max()} each")
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    t_lo, t_hi = 0.0, float(total) * float(hi.max()) / w.min() + 1.0
    for _ in range(200):
        t = 0.5 * (t_lo + t_hi)
        if np.clip(t * w, lo, hi).sum() < total:
            t_lo = t
        else:
            t_hi = t
    quota = np.clip(t_hi * w, lo, hi)
    parts = np.floor(quota).astype(np.int64)
    frac = quota - parts
    # Hand out what rounding left over to the largest remainders, never above hi.
    while (left := total - int(parts.sum())) != 0:
        if left > 0:
            order = np.argsort(-np.where(parts < hi, frac, -np.inf), kind="stable")
            parts[order[:left]] += 1
        else:
            order = np.argsort(np.where(parts > lo, frac, np.inf), kind="stable")
            parts[order[:-left]] -= 1
        frac = quota - parts
    return parts


def _area_shares(rng: np.random.Generator, areas: np.ndarray) -> np.ndarray:
    """Population shares of sibling cells: smaller cells get more, with lognormal noise."""
    w = areas**_SHARE_AREA_EXPONENT * rng.lognormal(0.0, _SHARE_NOISE_SIGMA, len(areas))
    return w / w.sum()


def _spread(
    total: float,
    share: np.ndarray,
    area_m2: np.ndarray,
    *,
    max_density: float = _MAX_DENSITY_KM2,
) -> np.ndarray:
    """Persons per sibling cell: *total* split by *share*, no cell above *max_density*.

    What a full cell cannot hold goes to the others in proportion to their shares
    (water-filling), so small central cells saturate at the cap (persons per km²)
    instead of reaching absurd densities. Where the siblings together cannot hold
    *total* at the cap, the cap is raised to 1.5 times their mean density.
    """
    area_km2 = area_m2 / 1e6
    cap = area_km2 * max(max_density, 1.5 * total / area_km2.sum())
    pop = total * share
    for _ in range(len(pop)):
        full = pop >= cap
        excess = float((pop[full] - cap[full]).sum())
        if excess <= 1e-9 * total:
            break
        pop[full] = cap[full]
        room = ~full
        pop[room] += excess * pop[room] / pop[room].sum()
    return pop


# -------------------------------------------------------------------------- builder


@dataclass(frozen=True)
class _Gemeenten:
    """Gemeenten in build order: region by region, each region's city first."""

    code: list[str]
    name: list[str]
    riec: list[str]
    geom: np.ndarray
    centre: np.ndarray  # (n, 2): the Voronoi seed, which lies inside the gemeente
    pop: np.ndarray
    urban: np.ndarray
    density: list[_Density]  # seed density for the gemeente's wijken and buurten


@dataclass(frozen=True)
class _Children:
    """Wijken or buurten in build order: parent by parent, child ``00`` first."""

    parent: np.ndarray  # index into the parent level
    index: np.ndarray  # position within the parent, the last two code digits
    geom: np.ndarray
    pop: np.ndarray
    name: list[str]


def _check_scale(scale: Scale) -> None:
    unknown = [c for c in scale.gemeenten_per_riec if c not in RIEC_REGIONS]
    if unknown:
        raise ValueError(
            f"scale {scale.name!r}: gemeenten_per_riec names unknown RIEC regions {unknown}; "
            f"use codes from RIEC_REGIONS"
        )
    if any(k < 1 for k in scale.gemeenten_per_riec.values()):
        raise ValueError(f"scale {scale.name!r}: every listed RIEC region needs >= 1 gemeente")
    n_gm = scale.n_gemeenten
    if n_gm > 1999:
        raise ValueError(f"scale {scale.name!r}: {n_gm} gemeenten do not fit GM0001-GM1999")
    if not n_gm <= scale.wijken <= MAX_CHILDREN * n_gm:
        raise ValueError(
            f"scale {scale.name!r}: wijken={scale.wijken} must lie between the number of "
            f"gemeenten ({n_gm}) and {MAX_CHILDREN} per gemeente"
        )
    if not scale.wijken <= scale.buurten <= MAX_CHILDREN * scale.wijken:
        raise ValueError(
            f"scale {scale.name!r}: buurten={scale.buurten} must lie between wijken "
            f"({scale.wijken}) and {MAX_CHILDREN} per wijk"
        )
    if scale.persons <= 0:
        raise ValueError(f"scale {scale.name!r}: persons must be positive")


def _order_from(seeds: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Indices of *seeds* by distance from *centre*, so child 00 is the central one."""
    d = np.hypot(seeds[:, 0] - centre[0], seeds[:, 1] - centre[1])
    return np.argsort(d, kind="stable")


def _directions(geoms: np.ndarray, centre: np.ndarray) -> list[str]:
    """Compass point of each geometry's centroid seen from *centre*."""
    c = shapely.centroid(geoms)
    return names.compass(shapely.get_x(c) - centre[0], shapely.get_y(c) - centre[1])


def build_geography(scale: Scale, *, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Build the synthetic RIEC -> gemeente -> wijk -> buurt hierarchy with geometry.

    Parameters
    ----------
    scale:
        World size: gemeenten per RIEC region, target numbers of wijken and buurten,
        and persons (which shapes the gemeente populations).
    rng:
        Source of all randomness. The same generator state gives an identical frame,
        geometry bytes included.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per area in CRS EPSG:28992, sorted by level (riec, gemeente, wijk,
        buurt) then ``area_code``, with columns

        - ``area_code`` (str): ``RIEC01``, ``GM0363``, ``WK036300``, ``BU03630000``;
        - ``level`` (str): ``riec``, ``gemeente``, ``wijk`` or ``buurt``;
        - ``area_name`` (str): gemeente names unique nationally, wijk names unique
          within their gemeente, buurt names within their wijk;
        - ``parent_code`` (str, NA for riec rows);
        - ``riec_code``, ``gemeente_code``, ``wijk_code`` (str): the row's own code at
          its level and its ancestors' above; NA for levels finer than the row;
        - ``land_area_km2`` (float64): polygon area / 1e6;
        - ``population_weight`` (float64): a buurt's share of all persons, NaN on other
          levels; it sums to 1 over buurten and per gemeente to the gemeente's share;
        - ``geometry``: valid, non-empty Polygon or MultiPolygon.

        Children tile their parent. Wijk and buurt ``00`` are the ones nearest the
        gemeente's centre. About 4% of buurten are near-empty (under ~20 expected
        persons), named ``"Bedrijventerrein ..."`` or ``"Buitengebied ..."``.

    Raises
    ------
    ValueError
        If the scale asks for impossible counts (e.g. more than 100 wijken per gemeente).

    Examples
    --------
    >>> import numpy as np
    >>> from microdata.scales import get_scale
    >>> areas = build_geography(get_scale("tiny"), rng=np.random.default_rng(0))
    >>> areas.level.unique().tolist()
    ['riec', 'gemeente', 'wijk', 'buurt']
    """
    _check_scale(scale)
    riec_geom = _shrink_to_scale(_riec_polygons(load_outline()), scale)
    gm = _gemeenten(rng, scale, riec_geom)
    wk = _wijken(rng, scale, gm)
    bu = _buurten(rng, scale, gm, wk)
    return _assemble(scale, riec_geom, gm, wk, bu)


def _gemeenten(
    rng: np.random.Generator, scale: Scale, riec_geom: Mapping[str, shapely.Geometry]
) -> _Gemeenten:
    """Populations, codes and names of the gemeenten, then their cells region by region."""
    riec_codes = [c for c in RIEC_REGIONS if c in scale.gemeenten_per_riec]
    n = scale.n_gemeenten
    pop = _city_first(rng, _gemeente_populations(rng, n, scale.persons), scale)
    numbers = rng.choice(np.arange(1, 2000), size=n, replace=False)
    gm_names = names.place_names(rng, n)
    riec = np.empty(n, dtype=object)
    geom = np.empty(n, dtype=object)
    centre = np.empty((n, 2))
    city = np.zeros(n, dtype=bool)
    mean_area = sum(riec_geom[c].area for c in riec_codes) / n
    start = 0
    for code in riec_codes:
        k = scale.gemeenten_per_riec[code]
        members = np.arange(start, start + k)
        start += k
        region = riec_geom[code]
        # The region's first gemeente is its city (the largest, see _city_first) and sits
        # on the region's seed point; the others crowd mildly around it, like suburbs.
        city[members[0]] = True
        sx, sy = RIEC_SEEDS[code]
        suburbs = _Density(sx, sy, 0.35 * np.sqrt(region.area), floor=1.0)
        # Keep other seeds off the city so that its cell grows with its population
        # (area ~ population**0.35: Dutch cities are denser, not just bigger). Measured
        # against the whole world, as regions differ a lot in gemeenten per km².
        size = (pop[members[0]] / pop.mean()) ** 0.35
        target = min(mean_area * size, 0.4 * region.area)
        clear = _CITY_CLEAR_FACTOR * np.sqrt(target / np.pi) if k > 1 else 0.0
        cells, seeds = _split(rng, region, k, density=suburbs, fixed=(sx, sy), clear_radius=clear)
        geom[members] = list(cells)
        centre[members] = seeds
        riec[members] = code
    # Cities are the regional centres plus the largest tenth of gemeenten anywhere.
    urban = city | (pop >= np.quantile(pop, 0.9))
    density = [
        _Density(
            float(centre[g, 0]),
            float(centre[g, 1]),
            (0.2 if urban[g] else 0.3) * np.sqrt(geom[g].area),
            floor=0.15 if urban[g] else 1.0,
        )
        for g in range(n)
    ]
    return _Gemeenten(
        code=[f"GM{k:04d}" for k in numbers],
        name=gm_names,
        riec=list(riec),
        geom=geom,
        centre=centre,
        pop=pop,
        urban=urban,
        density=density,
    )


def _wijken(rng: np.random.Generator, scale: Scale, gm: _Gemeenten) -> _Children:
    """Split every gemeente into wijken and share its population out over them."""
    counts = _apportion(scale.wijken, gm.pop**_WIJK_POP_EXPONENT, lo=1, hi=MAX_CHILDREN)
    parent: list[int] = []
    index: list[int] = []
    geom: list[shapely.Geometry] = []
    pop: list[float] = []
    wk_names: list[str] = []
    for g, k in enumerate(counts):
        cells, seeds = _split(rng, gm.geom[g], int(k), density=gm.density[g])
        cells = cells[_order_from(seeds, gm.centre[g])]
        area = shapely.area(cells)
        share = _area_shares(rng, area)
        numbered = rng.random() < (0.2 if gm.urban[g] else 0.5)
        wk_names += names.wijk_names(
            rng,
            _directions(cells, gm.centre[g]),
            place=gm.name[g],
            numbered=numbered,
            urban=bool(gm.urban[g]),
        )
        parent += [g] * len(cells)
        index += range(len(cells))
        geom += list(cells)
        pop += list(_spread(gm.pop[g], share, area, max_density=_MAX_WIJK_DENSITY_KM2))
    return _Children(
        parent=np.array(parent),
        index=np.array(index),
        geom=np.array(geom, dtype=object),
        pop=np.array(pop),
        name=wk_names,
    )


def _buurten(rng: np.random.Generator, scale: Scale, gm: _Gemeenten, wk: _Children) -> _Children:
    """Split every wijk into buurten, mark the near-empty ones, then name them."""
    # Small wijken cannot hold many buurten, however many people they have.
    room = np.clip(shapely.area(wk.geom) // _MIN_BUURT_M2, 1, MAX_CHILDREN).astype(np.int64)
    if room.sum() < scale.buurten:
        room[:] = MAX_CHILDREN
    counts = _apportion(scale.buurten, wk.pop, lo=1, hi=room)
    cells_per_wijk: list[np.ndarray] = []
    share: list[float] = []
    for w, k in enumerate(counts):
        g = wk.parent[w]
        cells, seeds = _split(rng, wk.geom[w], int(k), density=gm.density[g])
        cells = cells[_order_from(seeds, gm.centre[g])]
        cells_per_wijk.append(cells)
        share += list(_area_shares(rng, shapely.area(cells)))
    parent = np.repeat(np.arange(len(counts)), counts)
    index = np.concatenate([np.arange(k) for k in counts])
    geom = np.concatenate(cells_per_wijk)
    area = shapely.area(geom)
    kind = _near_empty_kinds(rng, area, parent, wk.parent[parent], counts, wk.pop)
    pop = _buurt_populations(rng, np.array(share), area, kind, counts, wk.pop)

    bu_names: list[str] = []
    n_wijken = np.bincount(wk.parent, minlength=len(gm.code))
    # Buurten were built wijk by wijk, so each wijk's buurten are one slice.
    start = np.concatenate([[0], np.cumsum(counts)])
    for w in range(len(counts)):
        sel = slice(int(start[w]), int(start[w + 1]))
        g = wk.parent[w]
        bu_names += names.buurt_names(
            rng,
            _directions(geom[sel], gm.centre[g]),
            [str(k) for k in kind[sel]],
            central=bool(wk.index[w] == 0 and n_wijken[g] > 1),
        )
    return _Children(parent=parent, index=index, geom=geom, pop=pop, name=bu_names)


def _assemble(
    scale: Scale,
    riec_geom: Mapping[str, shapely.Geometry],
    gm: _Gemeenten,
    wk: _Children,
    bu: _Children,
) -> gpd.GeoDataFrame:
    """Stack the four levels into the output frame, sorted, with areas and weights."""
    riec_codes = [c for c in RIEC_REGIONS if c in scale.gemeenten_per_riec]
    gm_code = np.array(gm.code, dtype=object)
    gm_riec = np.array(gm.riec, dtype=object)
    wk_code = np.array(
        [f"WK{gm.code[g][2:]}{i:02d}" for g, i in zip(wk.parent, wk.index, strict=True)],
        dtype=object,
    )
    bu_code = [f"BU{wk_code[w][2:]}{i:02d}" for w, i in zip(bu.parent, bu.index, strict=True)]
    bu_gm = wk.parent[bu.parent]
    frames = [
        _frame(
            "riec",
            riec_codes,
            [RIEC_REGIONS[c] for c in riec_codes],
            geoms=[riec_geom[c] for c in riec_codes],
            riec=riec_codes,
        ),
        _frame(
            "gemeente",
            gm.code,
            gm.name,
            geoms=gm.geom,
            parent=gm.riec,
            riec=gm.riec,
            gemeente=gm.code,
        ),
        _frame(
            "wijk",
            wk_code,
            wk.name,
            geoms=wk.geom,
            parent=gm_code[wk.parent],
            riec=gm_riec[wk.parent],
            gemeente=gm_code[wk.parent],
            wijk=wk_code,
        ),
        _frame(
            "buurt",
            bu_code,
            bu.name,
            geoms=bu.geom,
            parent=wk_code[bu.parent],
            riec=gm_riec[bu_gm],
            gemeente=gm_code[bu_gm],
            wijk=wk_code[bu.parent],
            pop=bu.pop,
        ),
    ]
    df = pd.concat(frames, ignore_index=True)
    df["_rank"] = df["level"].map({lvl: i for i, lvl in enumerate(LEVELS)})
    df = df.sort_values(["_rank", "area_code"], kind="stable", ignore_index=True)
    df = df.drop(columns="_rank")
    # Normalise after sorting: np.sum depends on order, and "sums to exactly 1" should
    # hold for the buurt rows as they come out.
    is_bu = (df["level"] == "buurt").to_numpy()
    df.loc[is_bu, "population_weight"] = _unit_sum(df.loc[is_bu, "population_weight"].to_numpy())
    geoms = df.pop("geometry").to_numpy()
    df["land_area_km2"] = shapely.area(geoms) / 1e6
    out = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=CRS), crs=CRS)
    return out[list(COLUMNS)]


# A column's values: a list, or an object array of strings or geometries.
_Values = Sequence[str] | Sequence[shapely.Geometry] | np.ndarray


def _frame(
    level: str,
    codes: _Values,
    area_names: _Values,
    *,
    geoms: _Values,
    riec: _Values,
    parent: _Values | None = None,
    gemeente: _Values | None = None,
    wijk: _Values | None = None,
    pop: np.ndarray | None = None,
) -> pd.DataFrame:
    """One level's rows; code columns left as None are all-NA."""
    n = len(codes)

    def col(values: _Values | None) -> pd.Series:
        return pd.Series([None] * n if values is None else list(values), dtype="str")

    return pd.DataFrame(
        {
            "area_code": col(codes),
            "level": col([level] * n),
            "area_name": col(area_names),
            "parent_code": col(parent),
            "riec_code": col(riec),
            "gemeente_code": col(gemeente),
            "wijk_code": col(wijk),
            "land_area_km2": np.zeros(n),
            "population_weight": np.full(n, np.nan) if pop is None else np.asarray(pop, float),
            "geometry": pd.Series(list(geoms), dtype=object),
        }
    )


def _near_empty_kinds(
    rng: np.random.Generator,
    area: np.ndarray,
    wijk: np.ndarray,
    gemeente: np.ndarray,
    n_per_wijk: np.ndarray,
    wijk_pop: np.ndarray,
) -> np.ndarray:
    """Mark about 4% of buurten as near-empty: ``bedrijventerrein`` or ``buitengebied``.

    Large buurten (for their gemeente) are the likeliest: rural outskirts and industrial
    estates. At most half the buurten of a wijk are marked, and never a wijk's only buurt,
    so every wijk keeps inhabitants; and a wijk keeps enough inhabited land to house its
    people below :data:`_MAX_DENSITY_KM2`.
    """
    n = len(area)
    kind = np.full(n, "woon", dtype=object)
    target = round(_NEAR_EMPTY_SHARE * n)
    # Relative size within the gemeente, so that urban outskirts qualify too.
    med = pd.Series(area).groupby(gemeente).transform("median").to_numpy()
    rel = area / med
    # Gumbel-max trick: sorting log-weight + Gumbel noise samples without replacement
    # with probability proportional to rel.
    key = np.log(rel) + rng.gumbel(size=n)
    room = n_per_wijk // 2
    used = np.zeros(len(n_per_wijk), dtype=np.int64)
    spare_m2 = np.bincount(wijk, weights=area) - wijk_pop / _MAX_DENSITY_KM2 * 1e6
    chosen = 0
    for i in np.argsort(-key, kind="stable"):
        if chosen == target:
            break
        w = wijk[i]
        if used[w] < room[w] and spare_m2[w] >= area[i]:
            used[w] += 1
            spare_m2[w] -= area[i]
            chosen += 1
            kind[i] = "buitengebied" if rel[i] >= 1.0 else "bedrijventerrein"
    return kind


def _buurt_populations(
    rng: np.random.Generator,
    share: np.ndarray,
    area_m2: np.ndarray,
    kind: np.ndarray,
    counts: np.ndarray,
    wijk_pop: np.ndarray,
) -> np.ndarray:
    """Persons per buurt: near-empty ones get a handful, the rest share the wijk's.

    Buurten come wijk by wijk, ``counts[w]`` of them for wijk ``w``.
    """
    lo, hi = _NEAR_EMPTY_PERSONS
    tiny = rng.uniform(lo, hi, len(share))
    pop = np.zeros(len(share))
    start = np.concatenate([[0], np.cumsum(counts)])
    for w, total in enumerate(wijk_pop):
        sel = slice(int(start[w]), int(start[w + 1]))
        empty = kind[sel] != "woon"
        # Never take more than 5% of a small wijk's people for its near-empty buurten.
        few = np.minimum(tiny[sel][empty], 0.05 * total / max(int(empty.sum()), 1))
        live = ~empty
        part = np.zeros(len(empty))
        part[empty] = few
        part[live] = _spread(
            total - few.sum(), share[sel][live] / share[sel][live].sum(), area_m2[sel][live]
        )
        pop[sel] = part
    return pop


def _unit_sum(pop: np.ndarray) -> np.ndarray:
    """Normalise to shares whose ``np.sum`` is exactly 1.0 (rounding pushed onto the largest)."""
    w = pop / pop.sum()
    big = int(np.argmax(w))
    for _ in range(8):
        residual = 1.0 - w.sum()
        if residual == 0.0:
            break
        w[big] += residual
    return w


# ----------------------------------------------------------------------- neighbours


def neighbours(areas: gpd.GeoDataFrame, level: str) -> pd.DataFrame:
    """Pairs of same-level areas that share a border of positive length.

    Parameters
    ----------
    areas:
        A frame from :func:`build_geography` (``area_code``, ``level``, ``geometry``).
    level:
        One of :data:`LEVELS`.

    Returns
    -------
    pandas.DataFrame
        Columns ``area_code`` and ``neighbour_code`` (str), each pair in both directions,
        sorted by both columns. Areas that only meet in a corner are not neighbours;
        borders shorter than 1 cm are treated as corners.

    Raises
    ------
    ValueError
        If *level* is not one of :data:`LEVELS`.
    """
    if level not in LEVELS:
        raise ValueError(f"neighbours: level {level!r} is not one of {LEVELS}")
    sub = areas.loc[areas["level"] == level]
    codes = sub["area_code"].to_numpy(dtype=object)
    geoms = sub.geometry.to_numpy()
    # Clipped Voronoi cells share their borders only up to floating-point noise, so
    # candidates are pairs within a hair's breadth, not exactly touching ones.
    left, right = sub.sindex.query(geoms, predicate="dwithin", distance=_TOUCH_TOLERANCE_M)
    once = left < right
    left, right = left[once], right[once]
    # The stretch of one boundary within a hair of the other polygon is their border; a
    # corner touch leaves only a stub about as long as the tolerance.
    grown = shapely.buffer(geoms, _TOUCH_TOLERANCE_M, quad_segs=1, join_style="mitre")
    shared = shapely.length(shapely.intersection(shapely.boundary(geoms[left]), grown[right]))
    keep = shared > _MIN_BORDER_M
    a, b = codes[left[keep]], codes[right[keep]]
    out = pd.DataFrame(
        {
            "area_code": pd.Series(np.concatenate([a, b]), dtype="str"),
            "neighbour_code": pd.Series(np.concatenate([b, a]), dtype="str"),
        }
    )
    return out.sort_values(["area_code", "neighbour_code"], ignore_index=True)
