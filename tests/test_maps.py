"""The static maps: one shared colour scale, place names, the year and a source line."""

from __future__ import annotations

import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from reports.maps import (
    MAX_PLACE_LABELS,
    choropleth_figure,
    choropleth_png,
    colour_domain,
    scale_colours,
)
from reports.plots import NotAggregateError


def _areas(values: list[float | None], n: list[int]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "area_code": [f"BU{i:08d}" for i in range(len(values))],
            "n": n,
            "index": pd.array(values, dtype="Float64"),
            "geometry": [box(1000 * i, 0, 1000 * (i + 1), 1000) for i in range(len(values))],
        },
        crs=28992,
    )


def test_one_scale_centred_on_the_reference() -> None:
    assert colour_domain(100) == (25.0, 100.0, 400.0)
    assert colour_domain(1) == (0.25, 1.0, 4.0)
    white = scale_colours([100.0], centre=100)[0]
    assert white[:3] == pytest.approx([0.97, 0.97, 0.97], abs=0.03)  # RdBu's middle
    low, high = scale_colours([25.0, 400.0], centre=100)
    assert low[2] > low[0] and high[0] > high[2]  # blue below NL, red above
    # a log scale: twice and half the reference are equally far from white
    up, down = scale_colours([200.0, 50.0], centre=100)
    assert 1 - up[2] == pytest.approx(1 - down[0], abs=0.05)
    # clipped at the ends, and the same relative colours for an index and a ratio
    np.testing.assert_allclose(scale_colours([10, 1000], centre=100), [low, high])
    np.testing.assert_allclose(  # (the colour map has 256 steps: a neighbouring one at most)
        scale_colours([50, 100, 300], centre=100),
        scale_colours([0.5, 1, 3], centre=1),
        atol=0.02,
    )


def test_the_same_value_gets_the_same_colour_on_every_map() -> None:
    """A gemeente map and a buurt map of other ranges colour 200 alike (no per-map norm)."""
    fills = []
    for values in ([200.0, 90.0], [200.0, 30.0, 380.0]):
        fig = choropleth_figure(
            _areas(values, [50] * len(values)),
            measure="index",
            title="t",
            min_count=10,
            centre=100,
        )
        try:
            coll = fig.axes[0].collections[0]
            fills.append(coll.get_facecolor()[0])
        finally:
            plt.close(fig)
    np.testing.assert_allclose(fills[0], fills[1])
    np.testing.assert_allclose(fills[0], scale_colours([200.0], centre=100)[0])


def test_names_year_and_source_are_on_the_map() -> None:
    areas = _areas([120.0, None, 80.0, 100.0], [40, 3, 40, 40])
    places = gpd.GeoDataFrame(
        {
            "area_name": ["Everlo", "Veenoord"],
            "geometry": [box(0, 0, 2000, 1000), box(2000, 0, 4000, 1000)],
        },
        crs=28992,
    )
    fig = choropleth_figure(
        areas,
        measure="index",
        title="hennep: index per buurt",
        min_count=10,
        centre=100,
        year=2024,
        source="Bron: Zicht, synthetische data",
        places=places,
    )
    try:
        ax = fig.axes[0]
        assert ax.get_title() == "hennep: index per buurt, 2024"
        assert [t.get_text() for t in fig.texts] == ["Bron: Zicht, synthetische data"]
        assert sorted(t.get_text() for t in ax.texts) == ["Everlo", "Veenoord"]
        legend = ax.get_legend().get_texts()[0].get_text()
        assert "suppressed (1 of 4)" in legend
        bar = fig.axes[1]
        assert [t.get_text() for t in bar.get_yticklabels()] == ["25", "50", "100", "200", "400"]
        assert "NL = 100" in bar.get_ylabel()
    finally:
        plt.close(fig)


def test_only_the_largest_places_are_named() -> None:
    k = MAX_PLACE_LABELS + 5
    places = gpd.GeoDataFrame(
        {
            "area_name": [f"G{i}" for i in range(k)],
            "geometry": [box(0, 100 * i, 100 + i, 100 * i + 90) for i in range(k)],
        },
        crs=28992,
    )
    fig = choropleth_figure(
        _areas([100.0], [50]), measure="index", title="t", min_count=10, places=places
    )
    try:
        names = {t.get_text() for t in fig.axes[0].texts}
        assert names == {f"G{i}" for i in range(5, k)}  # the five smallest go unnamed
    finally:
        plt.close(fig)


def test_a_small_coloured_area_is_refused_and_png_bytes_come_back() -> None:
    with pytest.raises(NotAggregateError, match="fewer than 10"):
        choropleth_png(_areas([120.0], [3]), measure="index", title="t", min_count=10)
    png = choropleth_png(_areas([120.0], [30]), measure="index", title="t", min_count=10)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
