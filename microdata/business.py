"""The business register: establishments per buurt and branch, with yearly turnover.

Turnover follows area characteristics (the households' means, WOZ level, urbanity and
distance to facilities), the establishment's size, and yearly noise. Two things are planted:

* **dominant businesses**: in a few wijk × branch cells one establishment is much larger than
  the rest, so the dominance rule of output control has work to do;
* **anomalous cells** of two kinds among the wijk × branch cells with three or more
  establishments (vulnerable branches four times as likely):

  - *fronts*: 1.5% of the cells inflate their turnover for several consecutive years
    (3-6, cut off at the last world year), as front businesses do;
  - *spikes*: another 3% inflate it in one year only.

  They are the ground truth of the ``branch_turnover`` model and are listed, with their kind,
  years and inflation factor, in the truth (``turnover_anomalies``; per cell-year in
  ``turnover_cells``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from microdata import params, vocab
from microdata._random import stream
from microdata.dynamics import YearAggregates
from microdata.population import Buurten, urbanity_from_density
from microdata.spells import Sink

BRANCH_CODES = tuple(vocab.BRANCHES)
#: median employees per establishment, by branch (same order as BRANCH_CODES)
MEDIAN_EMPLOYEES = np.array([2, 1, 1, 4, 25, 8, 4, 3, 40, 5, 5, 1, 2, 3, 3], dtype=np.float64)
#: branches that cluster on business parks
PARK_BRANCHES = ("45201", "78201", "41000", "47190", "62010")
#: share of eligible wijk x branch cells (three or more establishments) given a multi-year front
FRONT_SHARE = 0.015
#: shortest and longest front, in years (inclusive; cut off at the last world year)
FRONT_YEARS = (3, 6)
#: share of eligible cells (other than the fronts) given a one-year spike
SPIKE_SHARE = 0.03
#: inflation factor of an anomalous cell's turnover, drawn U(low, high) for both kinds
ANOMALY_FACTOR = (2.5, 5.0)
#: the kinds of planted anomaly, as the truth names them
ANOMALY_KINDS = ("front", "spike")
#: share of small wijk x branch cells (2-6 establishments) given one dominant business
DOMINANT_SHARE = 0.12
#: how many times larger (in turnover) the dominant business of such a cell is than its size
DOMINANT_SIZE = 12.0


@dataclass(frozen=True)
class AnomalyPlan:
    """The planted anomalous wijk × branch cells: cell index (wijk · K + branch), kind (an
    index into :data:`ANOMALY_KINDS`), first and last inflated year (inclusive) and factor."""

    cell: np.ndarray
    kind: np.ndarray
    first: np.ndarray
    last: np.ndarray
    factor: np.ndarray


def _area_factor(bu: Buurten, agg: YearAggregates, year: int) -> np.ndarray:
    """Multiplicative area effect on turnover per buurt in *year* (log-linear in area traits)."""
    dw = np.maximum(agg.dwellings[year], 1)
    woz = agg.woz_sum[year] / dw
    log_woz = np.log(np.maximum(woz, 50_000) / 300_000)
    return np.exp(
        0.35 * agg.econ_mean[year]
        + 0.25 * log_woz
        - 0.12 * np.log(bu.distance_facilities_km)
        + 0.06 * (3 - urbanity_from_density(agg.dwellings[year] / bu.land_area_km2))
    )


def generate_business(
    bu: Buurten,
    agg: YearAggregates,
    *,
    seed: int,
    sink: Sink,
    truth: Sink,
) -> dict[int, np.ndarray]:
    """Write ``branches``, ``establishments``, ``turnover`` and the turnover truth.

    Returns the number of active establishments per buurt for each world year.
    """
    rng = stream(seed, "business")
    B, K = len(bu.code), len(BRANCH_CODES)
    rates = np.array([vocab.BRANCHES[k][2] for k in BRANCH_CODES])
    median_turnover = np.array([vocab.BRANCHES[k][3] for k in BRANCH_CODES], dtype=np.float64)
    vulnerable = np.array([vocab.BRANCHES[k][1] for k in BRANCH_CODES])
    park = np.isin(np.array(BRANCH_CODES), PARK_BRANCHES)
    y0 = params.FIRST_YEAR

    def expected_counts(year: int) -> np.ndarray:
        inh = agg.inhabitants[year].astype(np.float64)
        urban = 1.0 + 0.1 * (3 - bu.urbanity)
        lam = inh[:, None] / 1000 * rates[None, :] * urban[:, None]
        lam += bu.business_park[:, None] * park[None, :] * rates[None, :] * 0.8
        return lam

    # Initial stock with a history of founding years; then yearly closures and start-ups.
    lam0 = expected_counts(y0)
    n0 = rng.poisson(lam0)
    cell_b = np.repeat(np.arange(B), K)
    cell_k = np.tile(np.arange(K), B)
    counts = n0.ravel()
    est_b = np.repeat(cell_b, counts).astype(np.int32)
    est_k = np.repeat(cell_k, counts).astype(np.int8)
    founded = (y0 - 1 - np.minimum(rng.geometric(0.09, len(est_b)) - 1, 60)).astype(np.int16)
    closed = np.full(len(est_b), -1, dtype=np.int16)
    for y in range(y0, params.LAST_YEAR + 1):
        active = closed < 0
        close = active & (rng.random(len(closed)) < 0.08)
        closed[close] = y
        births = rng.poisson(expected_counts(y) * 0.08).ravel()
        est_b = np.concatenate([est_b, np.repeat(cell_b, births).astype(np.int32)])
        est_k = np.concatenate([est_k, np.repeat(cell_k, births).astype(np.int8)])
        founded = np.concatenate([founded, np.full(births.sum(), y, np.int16)])
        closed = np.concatenate([closed, np.full(births.sum(), -1, np.int16)])
    E = len(est_b)

    employees = np.maximum(
        1, np.round(MEDIAN_EMPLOYEES[est_k] * np.exp(rng.normal(0, 0.7, E)))
    ).astype(np.int16)
    size = (employees / MEDIAN_EMPLOYEES[est_k]) ** 0.8 * np.exp(rng.normal(0, 0.3, E))
    # Legal form: small branches are mostly sole proprietorships.
    big = MEDIAN_EMPLOYEES[est_k] >= 8
    r = rng.random(E)
    legal = np.select(
        [
            r < np.where(big, 0.1, 0.62),
            r < np.where(big, 0.18, 0.78),
            r < np.where(big, 0.93, 0.97),
            r < np.where(big, 0.97, 0.98),
        ],
        [0, 1, 2, 3],
        4,
    ).astype(np.int8)
    sole = np.select(
        [legal == 0, legal == 1, legal == 2, legal == 3],
        [np.ones(E, bool), np.zeros(E, bool), rng.random(E) < 0.55, np.zeros(E, bool)],
        rng.random(E) < 0.3,
    )

    # Cells: wijk x branch. Plant dominant businesses and anomalous cells.
    W = int(bu.wijk.max()) + 1
    est_cell = bu.wijk[est_b].astype(np.int64) * K + est_k
    cell_n = np.bincount(est_cell, minlength=W * K)
    candidates = np.flatnonzero((cell_n >= 2) & (cell_n <= 6))
    dom_cells = candidates[rng.random(len(candidates)) < DOMINANT_SHARE]
    if len(dom_cells):
        in_dom = np.isin(est_cell, dom_cells)
        idx = np.flatnonzero(in_dom)
        first_of_cell = idx[np.unique(est_cell[idx], return_index=True)[1]]
        size[first_of_cell] *= DOMINANT_SIZE
        # Its staff grows with it (size ~ employees^0.8, as for every business), so the
        # register shows a large business; in generator 1.1 it kept its peers' staff, and
        # every dominant cell looked anomalous to a model that does not know its past turnover.
        grown = employees[first_of_cell] * DOMINANT_SIZE ** (1 / 0.8)
        employees[first_of_cell] = np.minimum(np.round(grown), np.iinfo(np.int16).max)
    eligible = np.flatnonzero(cell_n >= 3)
    w_anom = np.where(vulnerable[eligible % K], 4.0, 1.0)
    n_front = max(1, round(FRONT_SHARE * len(eligible)))
    fronts = rng.choice(
        eligible, size=min(n_front, len(eligible)), replace=False, p=w_anom / w_anom.sum()
    )
    front_onset = rng.integers(y0, params.LAST_YEAR - 1, len(fronts)).astype(np.int16)
    front_factor = rng.uniform(*ANOMALY_FACTOR, len(fronts))
    # Spikes and front lengths (generator 1.2) draw from a stream of their own, so the
    # establishments and the fronts' cells, onsets and factors stay those of generator 1.1.
    ra = stream(seed, "business:anomalies")
    lo, hi = FRONT_YEARS
    front_end = np.minimum(front_onset + ra.integers(lo, hi + 1, len(fronts)) - 1, params.LAST_YEAR)
    # A spike falls in a year with a year before it (so a model with features from t - 1 sees
    # it) in which the cell trades: one of its years with an active establishment.
    spike_years = np.arange(y0 + 1, params.LAST_YEAR + 1)
    trading = np.zeros((W * K, len(spike_years)), dtype=bool)
    for j, y in enumerate(spike_years):
        active = (founded <= y) & ((closed < 0) | (closed > y))
        trading[np.unique(est_cell[active]), j] = True
    rest = ~np.isin(eligible, fronts) & trading[eligible].any(axis=1)
    n_spike = min(round(SPIKE_SHARE * len(eligible)), int(rest.sum()))
    spikes = ra.choice(
        eligible[rest], size=n_spike, replace=False, p=w_anom[rest] / w_anom[rest].sum()
    )
    years_of = trading[spikes]
    nth = np.floor(ra.random(n_spike) * years_of.sum(axis=1)).astype(np.int64)
    spike_year = spike_years[np.argmax(np.cumsum(years_of, axis=1) > nth[:, None], axis=1)]
    spike_factor = ra.uniform(*ANOMALY_FACTOR, n_spike)
    plan = AnomalyPlan(
        cell=np.concatenate([fronts, spikes]),
        kind=np.r_[np.zeros(len(fronts), np.int8), np.ones(n_spike, np.int8)],
        first=np.concatenate([front_onset, spike_year]).astype(np.int16),
        last=np.concatenate([front_end, spike_year]).astype(np.int16),
        factor=np.concatenate([front_factor, spike_factor]),
    )
    cell_first = np.full(W * K, 9999, dtype=np.int16)
    cell_last = np.full(W * K, -1, dtype=np.int16)
    cell_factor = np.ones(W * K)
    cell_first[plan.cell] = plan.first
    cell_last[plan.cell] = plan.last
    cell_factor[plan.cell] = plan.factor

    sbi_dict = pa.array(list(BRANCH_CODES))
    sink.emit(
        "branches",
        pa.table(
            {
                "sbi": list(BRANCH_CODES),
                "branch_name": [vocab.BRANCHES[k][0] for k in BRANCH_CODES],
                "vulnerable": [bool(vocab.BRANCHES[k][1]) for k in BRANCH_CODES],
            }
        ),
    )
    order = np.lexsort((est_k, est_b))  # ids by buurt, then branch
    est_b, est_k, founded, closed = est_b[order], est_k[order], founded[order], closed[order]
    employees, size, legal, sole, est_cell = (
        employees[order],
        size[order],
        legal[order],
        sole[order],
        est_cell[order],
    )
    sink.emit(
        "establishments",
        pa.table(
            {
                "establishment_id": np.arange(E, dtype=np.int32),
                "buurt_code": pa.DictionaryArray.from_arrays(
                    pa.array(est_b), pa.array(bu.code.astype(str))
                ),
                "sbi": pa.DictionaryArray.from_arrays(pa.array(est_k), sbi_dict),
                "legal_form": pa.DictionaryArray.from_arrays(
                    pa.array(legal), pa.array(list(vocab.LEGAL_FORM))
                ),
                "employees": employees,
                "sole_director": sole,
                "founded_year": founded,
                "closed_year": pa.array(closed, mask=closed < 0),
            }
        ),
    )

    active_per_buurt: dict[int, np.ndarray] = {}
    truth_frames = []
    for y in range(y0, params.LAST_YEAR + 1):
        active = (founded <= y) & ((closed < 0) | (closed > y))
        ids = np.flatnonzero(active)
        af = _area_factor(bu, agg, y)[est_b[ids]]
        expected = median_turnover[est_k[ids]] * af * size[ids]
        cells = est_cell[ids]
        on = (cell_first[cells] <= y) & (cell_last[cells] >= y)
        inflation = np.where(on, cell_factor[cells], 1.0)
        yr = stream(seed, f"turnover:{y}")
        realised = expected * inflation * np.exp(yr.normal(-0.03, 0.25, len(ids)))
        sink.emit(
            "turnover",
            pa.table(
                {
                    "establishment_id": ids.astype(np.int32),
                    "year": np.full(len(ids), y, np.int16),
                    "turnover": np.round(realised).astype(np.int64),
                }
            ),
        )
        active_per_buurt[y] = np.bincount(est_b[ids], minlength=B)
        truth_frames.append(
            pd.DataFrame(
                {
                    "cell": cells,
                    "expected": expected,
                    "realised": np.round(realised),
                    "inflated": inflation > 1,
                    "year": y,
                }
            )
        )
    _emit_turnover_truth(truth_frames, bu, plan, truth, K)
    return active_per_buurt


def _cell_sums(df: pd.DataFrame, area: str) -> pd.DataFrame:
    """Establishments, expected and realised turnover, and the largest share, per cell-year."""
    out = (
        df.groupby([area, "k", "year"], sort=True)
        .agg(
            establishments=("expected", "size"),
            expected_turnover=("expected", "sum"),
            realised_turnover=("realised", "sum"),
            max_share=("realised", "max"),
        )
        .reset_index()
    )
    out["max_share"] = out["max_share"] / out["realised_turnover"].where(
        out["realised_turnover"] > 0
    )
    return out


def _emit_turnover_truth(
    frames: list[pd.DataFrame],
    bu: Buurten,
    plan: AnomalyPlan,
    truth: Sink,
    K: int,
) -> None:
    """Expected and realised turnover per wijk × branch and gemeente × branch cell and year,
    with the kind of planted anomaly (``turnover_cells``), and the plan itself, one row per
    planted wijk cell (``turnover_anomalies``)."""
    df = pd.concat(frames, ignore_index=True)
    wijk_to_gm = np.zeros(int(bu.wijk.max()) + 1, dtype=np.int64)
    wijk_to_gm[bu.wijk] = bu.gemeente
    wijk_code = np.empty(int(bu.wijk.max()) + 1, dtype=object)
    wijk_code[bu.wijk] = ["WK" + c[2:8] for c in bu.code]
    gm_code = np.empty(int(bu.gemeente.max()) + 1, dtype=object)
    gm_code[bu.gemeente] = ["GM" + c[2:6] for c in bu.code]
    kinds = np.array(ANOMALY_KINDS, dtype=object)
    cell_kind = np.full(len(wijk_to_gm) * K, -1, dtype=np.int64)
    cell_kind[plan.cell] = plan.kind
    cell_factor = np.ones(len(wijk_to_gm) * K)
    cell_factor[plan.cell] = plan.factor
    df["wijk"] = df["cell"] // K
    df["k"] = df["cell"] % K
    out = []
    wk = _cell_sums(df, "wijk")
    cell = wk["wijk"].to_numpy() * K + wk["k"].to_numpy()
    wk = wk.join(df.groupby(["wijk", "k", "year"])["inflated"].any(), on=["wijk", "k", "year"])
    wk["anomalous"] = wk.pop("inflated").to_numpy(bool)
    wk["inflation"] = np.where(wk["anomalous"], cell_factor[cell], 1.0)
    wk["kind"] = np.where(wk["anomalous"], kinds[np.maximum(cell_kind[cell], 0)], None)
    wk["level"] = "wijk"
    wk["area_code"] = wijk_code[wk["wijk"].to_numpy()]
    out.append(wk)
    df["gemeente"] = wijk_to_gm[df["wijk"].to_numpy()]
    gm = _cell_sums(df, "gemeente")
    # a gemeente cell counts as anomalous when its planted wijk cells inflate it by half or
    # more; its kind is that of the planted cells with the most expected turnover in it
    inflated = df[df["inflated"]]
    by_kind = (
        inflated.assign(kind=cell_kind[inflated["cell"].to_numpy()])
        .groupby(["gemeente", "k", "year", "kind"])["expected"]
        .sum()
        .reset_index()
        .sort_values(["gemeente", "k", "year", "expected"], kind="stable")
        .groupby(["gemeente", "k", "year"])
        .last()
        .rename(columns={"expected": "inflated_expected"})
    )
    gm = gm.join(by_kind, on=["gemeente", "k", "year"])
    gm["anomalous"] = (gm["realised_turnover"] >= 1.5 * gm["expected_turnover"]) & gm[
        "inflated_expected"
    ].notna()
    gm["inflation"] = np.where(
        gm["anomalous"], gm["realised_turnover"] / gm["expected_turnover"], 1.0
    )
    gm["kind"] = np.where(gm["anomalous"], kinds[gm["kind"].fillna(0).to_numpy(np.int64)], None)
    gm["level"] = "gemeente"
    gm["area_code"] = gm_code[gm["gemeente"].to_numpy()]
    out.append(gm.drop(columns=["inflated_expected"]))
    res = pd.concat(out, ignore_index=True)
    res["sbi"] = np.array(BRANCH_CODES)[res["k"].to_numpy()]
    res = res[
        [
            "level",
            "area_code",
            "sbi",
            "year",
            "establishments",
            "expected_turnover",
            "realised_turnover",
            "max_share",
            "anomalous",
            "kind",
            "inflation",
        ]
    ]
    table = pa.Table.from_pandas(res, preserve_index=False)
    at = table.schema.get_field_index("kind")  # typed string even when no cell is anomalous
    table = table.set_column(
        at, "kind", pa.array(res["kind"].to_numpy(object), type=pa.string(), from_pandas=True)
    )
    truth.emit("turnover_cells", table)
    order = np.lexsort((plan.cell % K, wijk_code[plan.cell // K].astype(str)))
    truth.emit(
        "turnover_anomalies",
        pa.table(
            {
                "level": pa.array(["wijk"] * len(order), type=pa.string()),
                "area_code": pa.array(wijk_code[plan.cell[order] // K].tolist(), type=pa.string()),
                "sbi": pa.array(
                    np.array(BRANCH_CODES)[plan.cell[order] % K].tolist(), type=pa.string()
                ),
                "kind": pa.array(kinds[plan.kind[order]].tolist(), type=pa.string()),
                "first_year": plan.first[order],
                "last_year": plan.last[order],
                "inflation": plan.factor[order],
            }
        ),
    )
