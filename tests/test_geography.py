"""Tests for the synthetic area hierarchy (microdata.geography) and its names."""

from __future__ import annotations

import math
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from microdata import names
from microdata.geography import (
    COLUMNS,
    CRS,
    LEVELS,
    build_geography,
    load_outline,
    neighbours,
)
from microdata.scales import RIEC_REGIONS, Scale, get_scale

PARENT_LEVEL = {"gemeente": "riec", "wijk": "gemeente", "buurt": "wijk"}
CODE_PATTERN = {
    "riec": r"RIEC(0[1-9]|10)",
    "gemeente": r"GM(?!0000)\d{4}",
    "wijk": r"WK\d{6}",
    "buurt": r"BU\d{8}",
}


def _build(scale: str, seed: int) -> gpd.GeoDataFrame:
    return build_geography(get_scale(scale), rng=np.random.default_rng(seed))


@pytest.fixture(scope="module")
def tiny() -> gpd.GeoDataFrame:
    return _build("tiny", 0)


@pytest.fixture(scope="module")
def region() -> gpd.GeoDataFrame:
    return _build("region", 0)


@pytest.fixture(scope="module", params=[1, 2, 3])
def tiny_any_seed(request: pytest.FixtureRequest) -> gpd.GeoDataFrame:
    # Invariants must hold for any seed, not just the one the module was tuned on.
    return _build("tiny", request.param)


def _level(areas: gpd.GeoDataFrame, level: str) -> gpd.GeoDataFrame:
    return areas.loc[areas["level"] == level]


def _buurt_persons(areas: gpd.GeoDataFrame, scale: Scale) -> pd.Series:
    bu = _level(areas, "buurt")
    return bu.set_index("area_code")["population_weight"] * scale.persons


# ---------------------------------------------------------------------- outline


def test_outline_is_a_valid_netherlands_sized_polygon() -> None:
    outline = load_outline()
    assert isinstance(outline, shapely.Polygon)
    assert outline.is_valid
    assert 33_000 <= outline.area / 1e6 <= 38_000
    # Maastricht and Groningen lie inside, the North Sea off Scheveningen does not.
    assert outline.contains(shapely.Point(176_500, 318_500))
    assert outline.contains(shapely.Point(233_000, 582_000))
    assert not outline.contains(shapely.Point(60_000, 460_000))


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames() -> None:
    a, b = _build("tiny", 11), _build("tiny", 11)
    pd.testing.assert_frame_equal(
        pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry"))
    )
    assert list(shapely.to_wkb(a.geometry.to_numpy())) == list(
        shapely.to_wkb(b.geometry.to_numpy())
    )


def test_different_seed_gives_different_frames() -> None:
    a, b = _build("tiny", 11), _build("tiny", 12)
    assert list(shapely.to_wkb(a.geometry.to_numpy())) != list(
        shapely.to_wkb(b.geometry.to_numpy())
    )
    assert a["area_code"].tolist() != b["area_code"].tolist()


# --------------------------------------------------------------- frame layout


def test_columns_dtypes_crs_and_order(tiny: gpd.GeoDataFrame) -> None:
    assert list(tiny.columns) == list(COLUMNS)
    assert tiny.crs == CRS
    assert tiny["land_area_km2"].dtype == np.float64
    assert tiny["population_weight"].dtype == np.float64
    for col in ("area_code", "level", "area_name", "parent_code", "riec_code"):
        assert pd.api.types.is_string_dtype(tiny[col]), col
    rank = tiny["level"].map({lvl: i for i, lvl in enumerate(LEVELS)})
    assert rank.is_monotonic_increasing
    for _, grp in tiny.groupby(rank, sort=True):
        assert grp["area_code"].is_monotonic_increasing
    assert tiny.index.equals(pd.RangeIndex(len(tiny)))


# ---------------------------------------------------------------------- codes


def test_codes_have_cbs_format_and_are_unique(tiny_any_seed: gpd.GeoDataFrame) -> None:
    areas = tiny_any_seed
    assert areas["area_code"].is_unique
    for level, pattern in CODE_PATTERN.items():
        codes = _level(areas, level)["area_code"]
        assert codes.str.fullmatch(pattern).all(), level
    riec = _level(areas, "riec")["area_code"].tolist()
    assert riec == sorted(get_scale("tiny").gemeenten_per_riec)


def test_codes_nest_and_ancestor_columns_agree(tiny_any_seed: gpd.GeoDataFrame) -> None:
    areas = tiny_any_seed
    riec, gm = _level(areas, "riec"), _level(areas, "gemeente")
    wk, bu = _level(areas, "wijk"), _level(areas, "buurt")
    # Each row carries its own code at its level and NA for finer levels.
    assert riec["parent_code"].isna().all()
    assert (riec["riec_code"] == riec["area_code"]).all()
    assert riec[["gemeente_code", "wijk_code"]].isna().all().all()
    assert (gm["parent_code"] == gm["riec_code"]).all()
    assert (gm["gemeente_code"] == gm["area_code"]).all()
    assert gm["wijk_code"].isna().all()
    assert (wk["parent_code"] == wk["gemeente_code"]).all()
    assert (wk["wijk_code"] == wk["area_code"]).all()
    assert (bu["parent_code"] == bu["wijk_code"]).all()
    # Code digits nest: WK + gemeente digits + 2, BU + wijk digits + 2.
    assert (wk["area_code"].str[2:6] == wk["gemeente_code"].str[2:]).all()
    assert (bu["area_code"].str[2:8] == bu["wijk_code"].str[2:]).all()
    assert (bu["gemeente_code"].str[2:] == bu["area_code"].str[2:6]).all()
    # Ancestors exist and agree along the chain.
    gm_riec = gm.set_index("area_code")["riec_code"]
    wk_gm = wk.set_index("area_code")["gemeente_code"]
    assert set(gm["riec_code"]) <= set(riec["area_code"])
    assert (wk["riec_code"].to_numpy() == gm_riec[wk["gemeente_code"]].to_numpy()).all()
    assert (bu["gemeente_code"].to_numpy() == wk_gm[bu["wijk_code"]].to_numpy()).all()
    assert (bu["riec_code"].to_numpy() == gm_riec[bu["gemeente_code"]].to_numpy()).all()


def test_every_parent_has_children_within_cbs_limits(region: gpd.GeoDataFrame) -> None:
    for child, parent in PARENT_LEVEL.items():
        sizes = _level(region, child).groupby("parent_code").size()
        parents = _level(region, parent)["area_code"]
        assert set(sizes.index) == set(parents), child
        assert sizes.max() <= 100
    scale = get_scale("region")
    per_riec = _level(region, "gemeente").groupby("riec_code").size().to_dict()
    assert per_riec == dict(scale.gemeenten_per_riec)


@pytest.mark.parametrize("scale_name", ["tiny", "region"])
def test_counts_match_scale_targets(scale_name: str) -> None:
    scale = get_scale(scale_name)
    counts = _build(scale_name, 5)["level"].value_counts()
    assert counts["riec"] == len(scale.gemeenten_per_riec)
    assert counts["gemeente"] == scale.n_gemeenten
    assert abs(counts["wijk"] - scale.wijken) <= 0.05 * scale.wijken
    assert abs(counts["buurt"] - scale.buurten) <= 0.05 * scale.buurten


def test_region_scale_is_big_enough(region: gpd.GeoDataFrame) -> None:
    counts = region["level"].value_counts()
    assert counts["gemeente"] >= 16
    assert counts["buurt"] >= 400


def test_impossible_scale_is_refused() -> None:
    scale = Scale(
        name="broken", persons=1_000, gemeenten_per_riec={"RIEC01": 1}, wijken=101, buurten=200
    )
    with pytest.raises(ValueError, match="per gemeente"):
        build_geography(scale, rng=np.random.default_rng(0))


# ------------------------------------------------------------------- geometry


def test_geometry_is_valid_polygonal_and_area_matches(tiny_any_seed: gpd.GeoDataFrame) -> None:
    geoms = tiny_any_seed.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    assert set(tiny_any_seed.geom_type) <= {"Polygon", "MultiPolygon"}
    np.testing.assert_allclose(
        tiny_any_seed["land_area_km2"].to_numpy(), shapely.area(geoms) / 1e6, rtol=1e-12
    )
    assert (tiny_any_seed["land_area_km2"] > 0).all()


@pytest.mark.parametrize("scale_name", ["tiny", "region"])
def test_children_tile_their_parent(
    scale_name: str, tiny: gpd.GeoDataFrame, region: gpd.GeoDataFrame
) -> None:
    areas = tiny if scale_name == "tiny" else region
    for child, parent in PARENT_LEVEL.items():
        parents = _level(areas, parent).set_index("area_code").geometry
        for code, grp in _level(areas, child).groupby("parent_code"):
            p = parents[code]
            kids = grp.geometry.to_numpy()
            # Within: nothing of a child sticks out of its parent.
            assert shapely.area(shapely.difference(kids, p)).max() < 1.0, code
            # Cover: the union is the parent; no overlap: the areas add up to it.
            union = shapely.union_all(kids)
            assert abs(union.area - p.area) / p.area < 1e-6, code
            assert shapely.symmetric_difference(union, p).area / p.area < 1e-6, code
            assert abs(shapely.area(kids).sum() - p.area) / p.area < 1e-6, code


def test_regions_lie_within_the_outline(tiny: gpd.GeoDataFrame) -> None:
    outline = load_outline()
    riec = _level(tiny, "riec").geometry.to_numpy()
    assert shapely.area(shapely.difference(riec, outline)).max() < 1.0


# ----------------------------------------------------------------- population


def test_weights_sum_to_one_and_are_buurt_only(tiny_any_seed: gpd.GeoDataFrame) -> None:
    areas = tiny_any_seed
    bu = _level(areas, "buurt")["population_weight"].to_numpy()
    assert (bu >= 0).all()
    assert not np.isnan(bu).any()
    assert math.isclose(bu.sum(), 1.0, rel_tol=0, abs_tol=1e-12)
    assert math.isclose(math.fsum(bu), 1.0, rel_tol=0, abs_tol=1e-12)
    assert areas.loc[areas["level"] != "buurt", "population_weight"].isna().all()


def test_near_empty_buurten_exist_and_are_named_for_it(region: gpd.GeoDataFrame) -> None:
    scale = get_scale("region")
    persons = _buurt_persons(region, scale)
    small = persons < 25
    # Disclosure control needs cells under its threshold of 10 units at every scale.
    assert 0.03 <= small.mean() <= 0.06
    bu = _level(region, "buurt").set_index("area_code")
    named = bu["area_name"].str.match(r"(Bedrijventerrein|Buitengebied) ")
    assert named[small].mean() > 0.8
    # Every wijk keeps inhabitants.
    wk_pop = persons.groupby(bu["wijk_code"]).sum()
    assert (wk_pop > 25).all()


def test_tiny_scale_has_near_empty_buurten(tiny: gpd.GeoDataFrame) -> None:
    assert (_buurt_persons(tiny, get_scale("tiny")) < 25).any()


def test_gemeente_sizes_are_skewed(region: gpd.GeoDataFrame) -> None:
    scale = get_scale("region")
    bu = _level(region, "buurt")
    gm_pop = (bu.groupby("gemeente_code")["population_weight"].sum() * scale.persons).sort_values()
    assert gm_pop.iloc[-1] >= 3 * gm_pop.median()
    assert 60_000 <= gm_pop.iloc[-1] <= 140_000
    assert math.isclose(gm_pop.sum(), scale.persons, rel_tol=1e-9)


def test_small_central_buurten_are_denser(region: gpd.GeoDataFrame) -> None:
    bu = _level(region, "buurt")
    density = bu["population_weight"] / bu["land_area_km2"]
    # Across the whole world, the smallest fifth of buurten by area is far denser.
    small = bu["land_area_km2"] <= bu["land_area_km2"].quantile(0.2)
    assert density[small].median() > 5 * density[~small].median()


# ---------------------------------------------------------------------- names


def test_names_are_unique_where_codes_are(tiny_any_seed: gpd.GeoDataFrame) -> None:
    areas = tiny_any_seed
    assert (areas["area_name"].str.len() > 0).all()
    assert _level(areas, "gemeente")["area_name"].is_unique
    assert not _level(areas, "wijk").duplicated(["gemeente_code", "area_name"]).any()
    assert not _level(areas, "buurt").duplicated(["wijk_code", "area_name"]).any()
    riec = _level(areas, "riec").set_index("area_code")["area_name"]
    assert all(RIEC_REGIONS[c] == n for c, n in riec.items())


def test_name_generator_is_seeded_and_unique() -> None:
    a = names.place_names(np.random.default_rng(4), 300)
    b = names.place_names(np.random.default_rng(4), 300)
    assert a == b
    assert len(set(a)) == 300
    assert all(re.fullmatch(r"[A-Z'][\w' -]+", n) for n in a)
    taken = set(a)
    c = names.place_names(np.random.default_rng(4), 10, taken=taken)
    assert not set(c) & set(a)


def test_buurt_names_follow_their_kind() -> None:
    got = names.buurt_names(
        np.random.default_rng(0),
        ["Oost", "Oost", "Noord", "Zuid"],
        ["buitengebied", "buitengebied", "bedrijventerrein", "woon"],
    )
    assert got[0] == "Buitengebied Oost"
    assert got[1].startswith("Buitengebied Oost ")
    assert got[2].startswith("Bedrijventerrein ")
    assert len(set(got)) == 4


def test_compass_known_answers() -> None:
    dx = np.array([0.0, 1.0, 1.0, 0.0, -1.0, -1.0])
    dy = np.array([1.0, 1.0, 0.0, -1.0, -1.0, 0.0])
    assert names.compass(dx, dy) == ["Noord", "Noordoost", "Oost", "Zuid", "Zuidwest", "West"]


# ----------------------------------------------------------------- neighbours


def test_neighbours_known_answer_on_a_grid() -> None:
    # A 2x2 grid: A B / C D. Edge neighbours only; A-D and B-C meet in a corner.
    sq = [shapely.box(x, y, x + 10, y + 10) for x, y in [(0, 10), (10, 10), (0, 0), (10, 0)]]
    areas = gpd.GeoDataFrame(
        {"area_code": ["A", "B", "C", "D"], "level": ["buurt"] * 4}, geometry=sq, crs=CRS
    )
    got = neighbours(areas, "buurt")
    expected = pd.DataFrame(
        {
            "area_code": ["A", "A", "B", "B", "C", "C", "D", "D"],
            "neighbour_code": ["B", "C", "A", "D", "A", "D", "B", "C"],
        }
    )
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_neighbours_are_symmetric_and_cover_multi_buurt_wijken(
    region: gpd.GeoDataFrame,
) -> None:
    nb = neighbours(region, "buurt")
    assert list(nb.columns) == ["area_code", "neighbour_code"]
    assert (nb["area_code"] != nb["neighbour_code"]).all()
    pairs = set(zip(nb["area_code"], nb["neighbour_code"], strict=True))
    assert pairs == {(b, a) for a, b in pairs}
    assert not nb.duplicated().any()
    assert nb.equals(nb.sort_values(["area_code", "neighbour_code"], ignore_index=True))
    bu = _level(region, "buurt")
    siblings = bu.groupby("wijk_code")["area_code"].transform("size")
    needs = set(bu.loc[siblings > 1, "area_code"])
    assert needs <= set(nb["area_code"])


def test_neighbours_of_gemeenten_touch(region: gpd.GeoDataFrame) -> None:
    nb = neighbours(region, "gemeente")
    geom = _level(region, "gemeente").set_index("area_code").geometry
    for a, b in nb.itertuples(index=False):
        assert geom[a].distance(geom[b]) < 1e-3


def test_neighbours_rejects_unknown_level(tiny: gpd.GeoDataFrame) -> None:
    with pytest.raises(ValueError, match="level"):
        neighbours(tiny, "provincie")
