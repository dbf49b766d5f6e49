"""Generate a whole synthetic world: the pure orchestration, writing through sinks.

``generate_world`` wires geography, population, yearly dynamics, the business register and
area statistics together. It does no file I/O itself: tables go to a *world* sink and truth
tables to a *truth* sink (see :mod:`microdata.io` for the Parquet edge).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from microdata import business, params
from microdata._random import stream
from microdata.areastats import area_stats
from microdata.business import generate_business
from microdata.dynamics import Simulator
from microdata.geography import build_geography, neighbours
from microdata.population import initial_ownership, initial_population, make_buurten
from microdata.scales import Scale
from microdata.spells import Sink

Progress = Callable[[str], None]

#: The progress messages a generation emits, in order (the CLI sizes its bar from this).
STAGES: tuple[str, ...] = (
    "areas and geometry",
    "population",
    *(f"year {y}" for y in range(params.HISTORY_FROM, params.LAST_YEAR + 1)),
    "business register",
    "area statistics",
    "manifests",
)


def _neighbour_matrix(areas, buurt_codes: np.ndarray) -> sp.csr_matrix:
    pairs = neighbours(areas, "buurt")
    index = {c: i for i, c in enumerate(buurt_codes)}
    i = pairs["area_code"].map(index).to_numpy()
    j = pairs["neighbour_code"].map(index).to_numpy()
    n = len(buurt_codes)
    return sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))


def effects_document(scale: Scale, seed: int) -> dict:
    """The planted effect sizes and settings, as written to ``truth/effects.json``."""
    return {
        "generator_version": params.GENERATOR_VERSION,
        "seed": seed,
        "scale": scale.name,
        "rate_multiplier": scale.rate_multiplier,
        "first_year": params.FIRST_YEAR,
        "last_year": params.LAST_YEAR,
        "history_from": params.HISTORY_FROM,
        "window": params.WINDOW,
        "latent_noise_sd": dict(params.LATENT_NOISE_SD),
        "hennep": dict(params.HENNEP),
        "hennep_region": dict(params.HENNEP_REGION),
        "jonge_aanwas": dict(params.JONGE_AANWAS),
        "herkomst_direct_effect": float(params.HERKOMST_DIRECT_EFFECT),
        "turnover": {
            "front_share": business.FRONT_SHARE,
            "front_years": list(business.FRONT_YEARS),
            "spike_share": business.SPIKE_SHARE,
            "anomaly_factor": list(business.ANOMALY_FACTOR),
            "dominant_share": business.DOMINANT_SHARE,
            "dominant_size": business.DOMINANT_SIZE,
        },
    }


def generate_world(
    scale: Scale, *, seed: int, sink: Sink, truth: Sink, progress: Progress = lambda _m: None
) -> dict:
    """Generate every world and truth table for *scale* and *seed*.

    Returns the effects document (also emitted as ``truth/effects.json`` by the io edge).
    """
    progress("areas and geometry")
    areas = build_geography(scale, rng=stream(seed, "geography"))
    bu = make_buurten(areas, scale.persons, stream(seed, "buurten"))
    nb = _neighbour_matrix(areas, bu.code)
    out = areas.drop(columns=["population_weight"])
    sink.emit("areas", pa.table(out.to_arrow(index=False, geometry_encoding="WKB")))

    progress("population")
    st = initial_population(bu, stream(seed, "population"))
    own = initial_ownership(st, stream(seed, "ownership"))
    sim = Simulator(
        st,
        bu,
        own,
        neighbours=nb,
        seed=seed,
        rate_multiplier=scale.rate_multiplier,
        sink=sink,
        truth=truth,
        progress=progress,
    )
    sim.run()
    # Dwellings last: construction brought forward during the run changed build years.
    sink.emit(
        "dwellings",
        pa.table(
            {
                "dwelling_id": np.arange(len(st.dw_type), dtype=np.int32),
                "buurt_code": pa.DictionaryArray.from_arrays(
                    pa.array(st.dw_buurt), pa.array(bu.code.astype(str))
                ),
                "dwelling_type": _dict(st.dw_type, "DWELLING_TYPE"),
                "surface_m2": st.dw_surface,
                "build_year": st.dw_build_year,
                "ownership_changes_20y": st.dw_changes_20y,
            }
        ),
    )

    progress("business register")
    est = generate_business(bu, sim.agg, seed=seed, sink=sink, truth=truth)
    progress("area statistics")
    stats = area_stats(bu, sim.agg, est)
    sink.emit("area_stats", pa.Table.from_pandas(stats, preserve_index=False))
    doc = effects_document(scale, seed)
    doc["scale_spec"] = {
        "persons": scale.persons,
        "wijken": scale.wijken,
        "buurten": scale.buurten,
        "gemeenten_per_riec": dict(scale.gemeenten_per_riec),
    }
    truth.emit("effects", pa.table({"json": [json.dumps(doc, sort_keys=True)]}))
    return doc


def _dict(codes: np.ndarray, vocab_name: str) -> pa.DictionaryArray:
    from microdata import vocab

    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8)), pa.array(list(getattr(vocab, vocab_name)))
    )
