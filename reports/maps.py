"""Choropleth maps of a published level table (no file I/O: returns PNG bytes).

A map is drawn from an area table that has already passed disclosure control: one polygon
per area, coloured by a measure, with suppressed areas grey and hatched and a legend that
says so. :func:`choropleth_png` refuses unit-level input (an id column) and any area
coloured while it rests on fewer than ``min_count`` units. The caller
(:mod:`disclosure.publish`) decides where the bytes go.
"""

from __future__ import annotations

import io

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from reports.plots import NotAggregateError

SUPPRESSED_COLOUR = "#c8c8c8"
SUPPRESSED_HATCH = "////"
#: One colour scale for every map, level and year (the PNGs here and the dashboard): a log
#: scale centred on the reference value (NL = 100 for an index, 1 for a ratio), from a
#: quarter of it to four times it; values beyond are drawn in the end colours.
SCALE_FACTOR = 4.0


def colour_domain(centre: float) -> tuple[float, float, float]:
    """(low, centre, high) of the shared diverging colour scale around *centre*."""
    return centre / SCALE_FACTOR, centre, centre * SCALE_FACTOR


def choropleth_png(
    areas: gpd.GeoDataFrame,
    *,
    measure: str,
    title: str,
    min_count: int,
    centre: float | None = None,
    dpi: int = 110,
) -> bytes:
    """A PNG of *areas* coloured by *measure*; areas where it is empty are grey and hatched.

    Parameters
    ----------
    areas
        One row per area: a polygon ``geometry``, ``n`` and *measure* (NaN where suppressed).
    measure
        The column to colour by.
    title
        Figure title.
    min_count
        The threshold rule: a coloured area must rest on at least this many units.
    centre
        A reference value (e.g. 100 for an index, 1 for a ratio) at the middle of a diverging
        colour scale; without one a sequential scale is used.
    """
    ids = [c for c in areas.columns if str(c).endswith("_id")]
    if ids:
        raise NotAggregateError(f"id column(s) {ids}: maps take published area tables only")
    if measure not in areas.columns or "n" not in areas.columns:
        raise NotAggregateError(f"the area table needs columns n and {measure!r}")
    shown = areas[measure].notna().to_numpy()
    if (shown & (areas["n"].to_numpy() < min_count)).any():
        raise NotAggregateError(f"an area is coloured while it rests on fewer than {min_count}")
    fig, ax = plt.subplots(figsize=(6.4, 7.2))
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
            lo, hi = float(values.min()), float(values.max())
            kwargs: dict[str, object] = {"cmap": "viridis"}
            if centre is not None and lo < centre < hi:
                from matplotlib.colors import TwoSlopeNorm

                kwargs = {"cmap": "RdBu_r", "norm": TwoSlopeNorm(centre, lo, hi)}
            areas.loc[shown].assign(_v=values).plot(
                ax=ax,
                column="_v",
                edgecolor="white",
                linewidth=0.2,
                legend=True,
                legend_kwds={"label": measure, "shrink": 0.6},
                **kwargs,
            )
        ax.legend(
            handles=[
                Patch(
                    facecolor=SUPPRESSED_COLOUR,
                    edgecolor="#707070",
                    hatch=SUPPRESSED_HATCH,
                    label=f"suppressed ({len(hidden)} of {len(areas)})",
                )
            ],
            loc="lower right",
            fontsize=8,
            frameon=True,
        )
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def map_frame(
    table: gpd.GeoDataFrame, *, breakdown: str | None, total: str = "total"
) -> gpd.GeoDataFrame:
    """The rows of a (long) level table to map: the breakdown's total, if it has one."""
    if breakdown is None or breakdown not in table.columns:
        return table
    return table[table[breakdown].astype(str) == total]
