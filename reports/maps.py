"""Choropleth maps of a published level table (no file I/O: returns PNG bytes).

A map is drawn from an area table that has already passed disclosure control: one polygon
per area, coloured by a measure on the shared scale (:func:`colour_domain`), with suppressed
areas grey and hatched and a legend that says so, the gemeente borders and names, the year
and a source line. :func:`choropleth_png` refuses unit-level input (an id column) and any area
coloured while it rests on fewer than ``min_count`` units. The caller
(:mod:`disclosure.publish`) decides where the bytes go.
"""

from __future__ import annotations

import io
from typing import Any

import geopandas as gpd
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import colormaps, patheffects
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from reports.plots import NotAggregateError

SUPPRESSED_COLOUR = "#c8c8c8"
SUPPRESSED_HATCH = "////"
#: One colour scale for every map, level and year (the PNGs here and the dashboard): a log
#: scale centred on the reference value (NL = 100 for an index, 1 for a ratio), from a
#: quarter of it to four times it; values beyond are drawn in the end colours.
SCALE_FACTOR = 4.0
CMAP = "RdBu_r"
#: area borders: grey, so an area at the centre of the scale (white) is still seen
EDGE_COLOUR = "#8c8c8c"
#: at most this many place names on one map (the largest areas)
MAX_PLACE_LABELS = 40


def colour_domain(centre: float) -> tuple[float, float, float]:
    """(low, centre, high) of the shared diverging colour scale around *centre*."""
    return centre / SCALE_FACTOR, centre, centre * SCALE_FACTOR


def scale_colours(values: Any, *, centre: float) -> np.ndarray:
    """RGBA colours of *values* on the shared scale around *centre* (:func:`colour_domain`):
    log, diverging (blue below, white at, red above the reference), clipped at its ends."""
    lo, _, hi = colour_domain(centre)
    v = np.clip(np.asarray(values, dtype=float), lo, hi)
    return np.asarray(colormaps[CMAP](LogNorm(vmin=lo, vmax=hi)(v)))


def choropleth_png(areas: gpd.GeoDataFrame, *, dpi: int = 110, **kwargs: Any) -> bytes:
    """:func:`choropleth_figure` as PNG bytes (same arguments)."""
    fig = choropleth_figure(areas, **kwargs)
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def choropleth_figure(
    areas: gpd.GeoDataFrame,
    *,
    measure: str,
    title: str,
    min_count: int,
    centre: float | None = None,
    year: int | None = None,
    source: str | None = None,
    places: gpd.GeoDataFrame | None = None,
    max_labels: int = MAX_PLACE_LABELS,
) -> Figure:
    """A map of *areas* coloured by *measure*; areas where it is empty are grey and hatched.

    Parameters
    ----------
    areas
        One row per area: a polygon ``geometry``, ``n`` and *measure* (NaN where suppressed).
    measure
        The column to colour by.
    title
        Figure title; *year* is added to it.
    min_count
        The threshold rule: a coloured area must rest on at least this many units.
    centre
        A reference value (100 for an index, 1 for a ratio) at the middle of the shared
        diverging log scale (:func:`colour_domain`): the same colours on every map, level and
        year. Without one, a sequential scale over the values is used.
    year
        The publication year, shown in the title.
    source
        The source line at the foot (e.g. ``Bron: Zicht, synthetische data``).
    places
        Polygons with an ``area_name`` (the gemeenten): drawn as borders and labelled with
        their names (the *max_labels* largest, so a national map stays readable).
    """
    ids = [c for c in areas.columns if str(c).endswith("_id")]
    if ids:
        raise NotAggregateError(f"id column(s) {ids}: maps take published area tables only")
    if measure not in areas.columns or "n" not in areas.columns:
        raise NotAggregateError(f"the area table needs columns n and {measure!r}")
    shown = areas[measure].notna().to_numpy()
    if (shown & (areas["n"].to_numpy() < min_count)).any():
        raise NotAggregateError(f"an area is coloured while it rests on fewer than {min_count}")
    fig, ax = plt.subplots(figsize=(6.4, 7.4))
    try:
        values = areas.loc[shown, measure].astype(float)
        hidden = areas.loc[~shown]
        if len(hidden):
            hidden.plot(
                ax=ax,
                facecolor=SUPPRESSED_COLOUR,
                edgecolor="#707070",
                hatch=SUPPRESSED_HATCH,
                linewidth=0.3,
            )
        if len(values):
            _colour(areas.loc[shown].assign(_v=values), ax=ax, measure=measure, centre=centre)
        if places is not None and len(places):
            _place_names(places, ax=ax, max_labels=max_labels)
        ax.legend(
            handles=[
                Patch(
                    facecolor=SUPPRESSED_COLOUR,
                    edgecolor="#707070",
                    hatch=SUPPRESSED_HATCH,
                    label=f"onderdrukt / suppressed ({len(hidden)} of {len(areas)})",
                )
            ],
            loc="lower right",
            fontsize=8,
            frameon=True,
        )
        ax.set_title(title if year is None else f"{title}, {year}", fontsize=10)
        ax.set_axis_off()
        if source:
            fig.text(0.02, 0.015, source, fontsize=7, color="#444444", ha="left", va="bottom")
        return fig
    except BaseException:
        plt.close(fig)
        raise


def _colour(shown: gpd.GeoDataFrame, *, ax: Any, measure: str, centre: float | None) -> None:
    """The coloured areas (column ``_v``) and their colour bar."""
    if centre is None:
        shown.plot(
            ax=ax,
            column="_v",
            cmap="viridis",
            edgecolor="white",
            linewidth=0.2,
            legend=True,
            legend_kwds={"label": measure, "shrink": 0.6},
        )
        return
    lo, mid, hi = colour_domain(centre)
    shown.plot(
        ax=ax,
        color=scale_colours(shown["_v"], centre=centre),
        edgecolor=EDGE_COLOUR,
        linewidth=0.2,
    )
    norm = LogNorm(vmin=lo, vmax=hi)  # centre = sqrt(lo * hi): the middle of the scale
    bar = ax.figure.colorbar(ScalarMappable(norm=norm, cmap=CMAP), ax=ax, shrink=0.6, extend="both")
    ticks = [lo, lo * 2, mid, hi / 2, hi]
    bar.set_ticks(ticks)
    bar.set_ticklabels([f"{t:g}" for t in ticks])
    bar.minorticks_off()
    bar.set_label(f"{measure} ({'NL = ' + format(mid, 'g') if mid == 100 else 'verwacht = 1'})")


def _place_names(places: gpd.GeoDataFrame, *, ax: Any, max_labels: int) -> None:
    """Borders and names of *places* (the largest *max_labels* by area)."""
    places.boundary.plot(ax=ax, color="#333333", linewidth=0.6)
    largest = places.assign(_a=places.geometry.area).nlargest(max_labels, "_a")
    halo = [patheffects.withStroke(linewidth=2.2, foreground="white")]
    for name, point in zip(
        largest["area_name"], largest.geometry.representative_point(), strict=True
    ):
        ax.annotate(
            str(name),
            xy=(point.x, point.y),
            ha="center",
            va="center",
            fontsize=7,
            color="#111111",
            path_effects=halo,
        )


def map_frame(
    table: gpd.GeoDataFrame, *, breakdown: str | None, total: str = "total"
) -> gpd.GeoDataFrame:
    """The rows of a (long) level table to map: the breakdown's total, if it has one."""
    if breakdown is None or breakdown not in table.columns:
        return table
    return table[table[breakdown].astype(str) == total]
