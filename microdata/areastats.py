"""Yearly key figures per buurt, wijk and gemeente ("kerncijfers wijken en buurten").

Computed from the microdata at the end of each year, like CBS's own publication. Features for
reference year *t* may use the figures of year *t - 1* and earlier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from microdata import params
from microdata.dynamics import YearAggregates
from microdata.population import Buurten, urbanity_from_density


def area_stats(
    bu: Buurten, agg: YearAggregates, establishments: dict[int, np.ndarray]
) -> pd.DataFrame:
    """One row per area (buurt, wijk, gemeente) and year."""
    wijk_code = np.array(["WK" + c[2:8] for c in bu.code])
    gm_code = np.array(["GM" + c[2:6] for c in bu.code])
    frames = []
    for y in range(params.FIRST_YEAR, params.LAST_YEAR + 1):
        base = pd.DataFrame(
            {
                "buurt": bu.code,
                "wijk": wijk_code,
                "gemeente": gm_code,
                "land_area_km2": bu.land_area_km2,
                "inhabitants": agg.inhabitants[y],
                "households": agg.households[y],
                "dwellings": agg.dwellings[y],
                "rental": agg.rental[y],
                "woz_sum": agg.woz_sum[y],
                "income_sum": agg.income_sum[y],
                "dist_x_inh": bu.distance_facilities_km * np.maximum(agg.inhabitants[y], 1),
                "dist_w": np.maximum(agg.inhabitants[y], 1),
                "establishments": establishments[y],
            }
        )
        for level in ("buurt", "wijk", "gemeente"):
            g = base.groupby(level, sort=True).sum(numeric_only=True)
            land = g["land_area_km2"]
            out = pd.DataFrame(
                {
                    "area_code": g.index.to_numpy(),
                    "level": level,
                    "year": np.int16(y),
                    "inhabitants": g["inhabitants"].to_numpy(np.int32),
                    "households": g["households"].to_numpy(np.int32),
                    "dwellings": g["dwellings"].to_numpy(np.int32),
                    "density": (g["inhabitants"] / land).to_numpy(np.float32),
                    "urbanity": urbanity_from_density((g["dwellings"] / land).to_numpy()),
                    "mean_woz": _ratio(g["woz_sum"], g["dwellings"]),
                    "mean_income": _ratio(g["income_sum"], g["households"]),
                    "share_rental": _ratio(g["rental"], g["dwellings"]),
                    "distance_facilities_km": _ratio(g["dist_x_inh"], g["dist_w"]),
                    "establishments": g["establishments"].to_numpy(np.int32),
                    "business_density": (g["establishments"] / land).to_numpy(np.float32),
                }
            )
            frames.append(out)
    return pd.concat(frames, ignore_index=True)


def _ratio(num: pd.Series, den: pd.Series) -> np.ndarray:
    """num / den as float32, empty (NaN) where the denominator is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num.to_numpy(np.float64) / den.to_numpy(np.float64)
    r[den.to_numpy() == 0] = np.nan
    return r.astype(np.float32)
