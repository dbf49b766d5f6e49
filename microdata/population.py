"""The first world year's population: households, persons and dwellings per buurt.

Pure numpy: takes the buurt frame (with population weights) and returns state arrays. The
yearly dynamics in :mod:`microdata.dynamics` move this state forward in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from microdata import vocab
from microdata._random import rank_within, sample_within_groups, sigmoid
from microdata.params import FIRST_YEAR, LAST_YEAR

HT = {name: i for i, name in enumerate(vocab.HOUSEHOLD_TYPE)}
ROLE = {name: i for i, name in enumerate(vocab.ROLE)}
DT = {name: i for i, name in enumerate(vocab.DWELLING_TYPE)}
OWN = {name: i for i, name in enumerate(vocab.OWNERSHIP)}
OT = {name: i for i, name in enumerate(vocab.OWNER_TYPE)}
MALE, FEMALE = 0, 1

#: Yearly WOZ price index (FIRST_YEAR = 1), shaped like the Dutch housing market.
WOZ_INDEX = np.array([1.0, 1.06, 1.15, 1.24, 1.32, 1.43, 1.62, 1.58, 1.66, 1.78])


@dataclass
class Buurten:
    """Buurt-level attributes the generator uses (index = buurt number)."""

    code: np.ndarray
    gemeente: np.ndarray  # gemeente number
    wijk: np.ndarray  # wijk number
    riec: np.ndarray  # RIEC code per buurt (str)
    land_area_km2: np.ndarray
    target_persons: np.ndarray
    urbanity: np.ndarray  # 1 (very urban) .. 5 (rural)
    deprivation: np.ndarray  # latent, standard normal-ish
    migrant_share: np.ndarray
    price_per_m2: np.ndarray
    distance_facilities_km: np.ndarray
    business_park: np.ndarray  # bool


@dataclass
class State:
    """Current state of every person, household and dwelling (index = id)."""

    # persons
    birth_year: np.ndarray
    sex: np.ndarray
    herkomst: np.ndarray
    mother: np.ndarray
    father: np.ndarray
    alive: np.ndarray
    death_year: np.ndarray
    hh: np.ndarray
    role: np.ndarray
    propensity: np.ndarray
    track: np.ndarray
    # households
    hh_dwelling: np.ndarray
    hh_type: np.ndarray
    hh_herkomst: np.ndarray
    hh_mu: np.ndarray
    hh_u: np.ndarray
    hh_family: np.ndarray
    hh_alive: np.ndarray
    # dwellings
    dw_buurt: np.ndarray
    dw_type: np.ndarray
    dw_surface: np.ndarray
    dw_build_year: np.ndarray
    dw_woz_base: np.ndarray
    dw_occupant: np.ndarray
    dw_changes_20y: np.ndarray

    @property
    def n_persons(self) -> int:
        return len(self.birth_year)

    @property
    def n_households(self) -> int:
        return len(self.hh_type)

    def econ(self) -> np.ndarray:
        """Household economic position (latent, about standard normal)."""
        return self.hh_mu + self.hh_u


def urbanity_from_density(addresses_per_km2: np.ndarray) -> np.ndarray:
    """CBS urbanity class from address density (1: >= 2,500 per km2 … 5: < 500)."""
    edges = np.array([500, 1000, 1500, 2500])
    return (5 - np.searchsorted(edges, addresses_per_km2, side="right")).astype(np.int8)


def make_buurten(areas: pd.DataFrame, persons: int, rng: np.random.Generator) -> Buurten:
    """Buurt attributes from the geography frame (``build_geography`` output)."""
    b = areas[areas["level"] == "buurt"].reset_index(drop=True)
    gm_codes = pd.Index(sorted(b["gemeente_code"].unique()))
    wk_codes = pd.Index(sorted(b["wijk_code"].unique()))
    weight = b["population_weight"].to_numpy(dtype=np.float64)
    target = rng.multinomial(persons, weight / weight.sum()).astype(np.int64)
    land = b["land_area_km2"].to_numpy(dtype=np.float64)
    urb = urbanity_from_density(target / 2.2 / np.maximum(land, 1e-3))
    n = len(b)
    # Deprivation clusters by gemeente and is higher in urban cores.
    gm = gm_codes.get_indexer(b["gemeente_code"])
    gm_effect = rng.normal(0, 0.4, len(gm_codes))[gm]
    deprivation = 0.25 * (3 - urb) + gm_effect + rng.normal(0, 0.8, n)
    migrant = sigmoid(-1.2 + 0.45 * (3 - urb) + 0.45 * deprivation + rng.normal(0, 0.35, n))
    riec = b["riec_code"].to_numpy()
    riec_price = (
        pd.Series(riec)
        .map(
            {
                "RIEC05": 0.45,
                "RIEC04": 0.15,
                "RIEC03": 0.15,
                "RIEC06": 0.1,
                "RIEC01": -0.25,
                "RIEC10": -0.2,
                "RIEC02": -0.1,
            }
        )
        .fillna(0.0)
        .to_numpy()
    )
    price = 2200 * np.exp(
        0.12 * (3 - urb) - 0.12 * deprivation + riec_price + rng.normal(0, 0.08, n)
    )
    distance = np.round(np.exp(rng.normal(-0.2 + 0.35 * (urb - 1), 0.3)), 2)
    names = b["area_name"].astype(str)
    business_park = names.str.startswith("Bedrijventerrein").to_numpy()
    return Buurten(
        code=b["area_code"].to_numpy(),
        gemeente=gm.astype(np.int32),
        wijk=wk_codes.get_indexer(b["wijk_code"]).astype(np.int32),
        riec=riec,
        land_area_km2=land,
        target_persons=target,
        urbanity=urb,
        deprivation=deprivation.astype(np.float32),
        migrant_share=migrant.astype(np.float32),
        price_per_m2=price.astype(np.float32),
        distance_facilities_km=distance.astype(np.float32),
        business_park=business_park,
    )


def _household_types(urb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Household type per household, more singles in cities."""
    u = (urb.astype(np.float64) - 1) / 4  # 0 urban .. 1 rural
    single = 0.50 - 0.20 * u
    couple = 0.27 + 0.04 * u
    cwc = 0.14 + 0.16 * u
    sp = np.full_like(u, 0.07)
    other = 1 - single - couple - cwc - sp
    p = np.stack([single, couple, cwc, sp, other], axis=1)
    c = p.cumsum(axis=1)
    r = rng.random(len(u))[:, None]
    return (r > c).sum(axis=1).astype(np.int8)


def initial_population(bu: Buurten, rng: np.random.Generator) -> State:
    """Households with members, ages, origin and economic position, placed in dwellings."""
    year0 = FIRST_YEAR
    mean_size = np.array([1.0, 2.0, 3.9, 2.5, 2.6])
    urb_share = (bu.urbanity.astype(np.float64) - 1) / 4
    exp_size = 1.9 + 0.5 * urb_share
    n_hh_b = np.round(bu.target_persons / exp_size).astype(np.int64)
    hh_buurt = np.repeat(np.arange(len(n_hh_b)), n_hh_b).astype(np.int32)
    H = len(hh_buurt)
    hh_type = _household_types(bu.urbanity[hh_buurt], rng)

    # Members: adults and children per household.
    n_kids = np.zeros(H, dtype=np.int64)
    cwc = hh_type == HT["couple_with_children"]
    sp = hh_type == HT["single_parent"]
    n_kids[cwc] = 1 + np.minimum(rng.poisson(0.9, cwc.sum()), 4)
    n_kids[sp] = 1 + np.minimum(rng.poisson(0.5, sp.sum()), 3)
    n_adults = np.where(np.isin(hh_type, [HT["couple"], HT["couple_with_children"]]), 2, 1)
    other = hh_type == HT["other"]
    n_adults[other] = 2 + rng.integers(0, 3, other.sum())
    del mean_size

    # Head age by type.
    u = rng.random(H)
    head_age = np.empty(H)
    t = hh_type
    m = t == HT["single"]
    head_age[m] = np.select(
        [u[m] < 0.4, u[m] < 0.65],
        [rng.uniform(19, 35, m.sum()), rng.uniform(35, 65, m.sum())],
        rng.uniform(65, 93, m.sum()),
    )
    m = t == HT["couple"]
    head_age[m] = np.select(
        [u[m] < 0.3, u[m] < 0.6],
        [rng.uniform(23, 35, m.sum()), rng.uniform(35, 65, m.sum())],
        rng.uniform(65, 90, m.sum()),
    )
    m = cwc
    head_age[m] = rng.uniform(28, 57, m.sum())
    m = sp
    head_age[m] = rng.uniform(25, 56, m.sum())
    m = other
    head_age[m] = rng.uniform(18, 31, m.sum())
    head_age = np.floor(head_age).astype(np.int64)

    # Household economic position: permanent part + AR(1) part.
    hh_herk = np.zeros(H, dtype=np.int8)
    is_migrant = rng.random(H) < bu.migrant_share[hh_buurt]
    # Among migrant households: Europe, Turkey, Morocco, Suriname, Caribbean, other non-European;
    # the non-European groups concentrate in urban areas.
    urb_h = bu.urbanity[hh_buurt]
    p_eu = np.where(urb_h >= 4, 0.55, 0.30)
    rest = (1 - p_eu)[:, None] * np.array([0.22, 0.22, 0.2, 0.07, 0.29])[None, :]
    probs = np.column_stack([p_eu, rest])
    c = probs.cumsum(axis=1)
    draw = (rng.random(H)[:, None] > c).sum(axis=1) + 1
    hh_herk[is_migrant] = draw[is_migrant].astype(np.int8)
    herk_shift = np.array([0.0, -0.1, -0.45, -0.5, -0.35, -0.4, -0.4], dtype=np.float32)
    mu = (
        -0.45 * bu.deprivation[hh_buurt]
        + herk_shift[hh_herk]
        + 0.006 * np.clip(head_age - 25, 0, 35)
        - 0.25 * sp
        + rng.normal(0, 0.75, H)
    ).astype(np.float32)
    hh_u = rng.normal(0, 0.55, H).astype(np.float32)
    family = rng.normal(0, 0.6, H).astype(np.float32)

    # Persons: heads, partners, other adults, then children.
    size = n_adults + n_kids
    P = int(size.sum())
    hh = np.repeat(np.arange(H), size).astype(np.int32)
    pos = np.arange(P) - np.repeat(np.cumsum(size) - size, size)
    adult = pos < n_adults[hh]
    role = np.full(P, ROLE["child"], dtype=np.int8)
    role[adult] = ROLE["head"]
    is_couple = np.isin(hh_type[hh], [HT["couple"], HT["couple_with_children"]])
    role[adult & (pos == 1) & is_couple] = ROLE["partner"]
    role[adult & other[hh] & (pos > 0)] = ROLE["other"]
    age = np.empty(P, dtype=np.int64)
    ha = head_age[hh]
    age[role == ROLE["head"]] = ha[role == ROLE["head"]]
    pm = role == ROLE["partner"]
    age[pm] = np.clip(ha[pm] + np.round(rng.normal(-1.5, 3, pm.sum())), 18, 99)
    om = role == ROLE["other"]
    age[om] = np.clip(ha[om] + rng.integers(-2, 4, om.sum()), 18, 40)
    km = role == ROLE["child"]
    max_child_age = np.clip(ha[km] - 21, 0, 24)
    age[km] = np.floor(rng.random(km.sum()) * (max_child_age + 1)).astype(np.int64)
    birth_year = (year0 - age).astype(np.int16)

    sex = (rng.random(P) < 0.5).astype(np.int8)
    head = role == ROLE["head"]
    sex[head & is_couple] = MALE
    sex[pm] = FEMALE
    sex[head & sp[hh]] = (rng.random((head & sp[hh]).sum()) < 0.85).astype(np.int8)

    # Parent links of children living at home.
    first = np.cumsum(size) - size  # index of each household's head
    mother = np.full(P, -1, dtype=np.int32)
    father = np.full(P, -1, dtype=np.int32)
    kc = km & is_couple
    father[kc] = first[hh[kc]]
    mother[kc] = first[hh[kc]] + 1
    ks = km & sp[hh]
    head_of = first[hh[ks]]
    head_female = sex[head_of] == FEMALE
    ks_idx = np.flatnonzero(ks)
    mother[ks_idx[head_female]] = head_of[head_female]
    father[ks_idx[~head_female]] = head_of[~head_female]
    # The other parent of a single-parent household often lives alone in the same gemeente.
    gm_p = bu.gemeente[hh_buurt[hh]]
    single_adult = head & (hh_type[hh] == HT["single"]) & (age >= 28) & (age <= 65)
    for parent_sex, links in ((MALE, father), (FEMALE, mother)):
        need = ks_idx[links[ks_idx] < 0]
        # one draw per single-parent household, shared by its children
        need_hh, inverse = np.unique(hh[need], return_inverse=True)
        supply = np.flatnonzero(single_adult & (sex == parent_sex))
        pick = sample_within_groups(gm_p[first[need_hh]], gm_p[supply], rng)
        known = (pick >= 0) & (rng.random(len(need_hh)) < 0.7)
        chosen = np.where(known, supply[np.maximum(pick, 0)], -1)
        links[need] = chosen[inverse]

    herkomst = hh_herk[hh]
    econ = mu + hh_u
    propensity = (rng.normal(0, 0.8, P) - 0.25 * econ[hh] + 0.3 * sp[hh] + family[hh]).astype(
        np.float32
    )
    track = (rng.random(P) < sigmoid(0.1 + 0.8 * econ[hh] + rng.normal(0, 0.5, P))).astype(np.int8)

    # Dwellings: occupied + a few vacant + future construction per buurt.
    vac_b = rng.binomial(n_hh_b, 0.03) + (n_hh_b < 5)
    fut_b = rng.binomial(n_hh_b, 0.02)
    n_dw_b = n_hh_b + vac_b + fut_b
    dw_buurt = np.repeat(np.arange(len(n_dw_b)), n_dw_b).astype(np.int32)
    D = len(dw_buurt)
    urb_d = bu.urbanity[dw_buurt].astype(np.float64)
    share_apt = np.array([0.7, 0.5, 0.35, 0.2, 0.1])[urb_d.astype(int) - 1]
    r = rng.random(D)
    rural = (urb_d - 1) / 4
    p_ter = (1 - share_apt) * (0.55 - 0.2 * rural)
    p_semi = (1 - share_apt) * (0.25 + 0.05 * rural)
    dw_type = np.select(
        [r < share_apt, r < share_apt + p_ter, r < share_apt + p_ter + p_semi],
        [DT["apartment"], DT["terraced"], DT["semi_detached"]],
        DT["detached"],
    ).astype(np.int8)
    surface_mean = np.array([72, 112, 138, 168])[dw_type]
    dw_surface = np.clip(np.round(surface_mean * np.exp(rng.normal(0, 0.2, D))), 20, 600).astype(
        np.int16
    )
    # Build years: an old stock with post-war and 1970s peaks; future stock gets world years.
    era = rng.choice(
        [1900, 1930, 1950, 1965, 1975, 1990, 2005],
        size=D,
        p=[0.06, 0.1, 0.14, 0.2, 0.22, 0.16, 0.12],
    )
    dw_build = (era + rng.integers(0, 15, D)).clip(1850, year0 - 1).astype(np.int16)
    fut_rank = rank_within(dw_buurt, rng.random(D))
    future = fut_rank < fut_b[dw_buurt]
    dw_build[future] = rng.integers(year0, LAST_YEAR + 1, future.sum()).astype(np.int16)
    type_factor = np.array([0.95, 1.0, 1.1, 1.25])[dw_type]
    woz_base = (
        dw_surface * bu.price_per_m2[dw_buurt] * type_factor * np.exp(rng.normal(0, 0.15, D))
    ).astype(np.float32)

    # Occupy: among existing dwellings, a random few stay vacant; the rest are matched to
    # households by size and means (bigger, richer households in bigger dwellings).
    existing = ~future
    vac_rank = rank_within(np.where(existing, dw_buurt, -1), rng.random(D))
    vacant = existing & (vac_rank < vac_b[dw_buurt])
    occupiable = np.flatnonzero(existing & ~vacant)
    dw_score = np.log(dw_surface[occupiable]) + rng.normal(0, 0.25, len(occupiable))
    o_d = occupiable[np.lexsort((dw_score, dw_buurt[occupiable]))]
    hh_score = 0.25 * np.log(size) + 0.12 * econ + rng.normal(0, 0.2, H)
    o_h = np.lexsort((hh_score, hh_buurt))
    assert len(o_d) == H, "each household needs one dwelling"
    hh_dwelling = np.empty(H, dtype=np.int32)
    hh_dwelling[o_h] = o_d
    dw_occupant = np.full(D, -1, dtype=np.int32)
    dw_occupant[hh_dwelling] = np.arange(H, dtype=np.int32)
    changes = rng.poisson(1.2, D).astype(np.int8)

    return State(
        birth_year=birth_year,
        sex=sex,
        herkomst=herkomst,
        mother=mother,
        father=father,
        alive=np.ones(P, dtype=bool),
        death_year=np.full(P, -1, dtype=np.int16),
        hh=hh,
        role=role,
        propensity=propensity,
        track=track,
        hh_dwelling=hh_dwelling,
        hh_type=hh_type,
        hh_herkomst=hh_herk,
        hh_mu=mu,
        hh_u=hh_u,
        hh_family=family,
        hh_alive=np.ones(H, dtype=bool),
        dw_buurt=dw_buurt,
        dw_type=dw_type,
        dw_surface=dw_surface,
        dw_build_year=dw_build,
        dw_woz_base=woz_base,
        dw_occupant=dw_occupant,
        dw_changes_20y=changes,
    )


def initial_ownership(
    st: State, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ownership, owner type and foreign-owner flag per dwelling, tied to residents' means."""
    D = len(st.dw_type)
    econ = st.econ()
    occ = st.dw_occupant
    e = np.where(occ >= 0, econ[np.maximum(occ, 0)], rng.normal(0, 1, D))
    apt = st.dw_type == DT["apartment"]
    p_owner = sigmoid(0.55 + 1.1 * e - 1.3 * apt)
    owner = rng.random(D) < p_owner
    social = ~owner & (rng.random(D) < sigmoid(0.9 - 0.9 * e))
    ownership = np.where(
        owner, OWN["owner_occupied"], np.where(social, OWN["social_rent"], OWN["private_rent"])
    ).astype(np.int8)
    owner_type = _owner_type(ownership, rng)
    foreign = _owner_foreign(ownership, owner_type, rng)
    return ownership, owner_type, foreign


def _owner_type(ownership: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ot = np.full(len(ownership), OT["person"], dtype=np.int8)
    ot[ownership == OWN["social_rent"]] = OT["foundation"]
    priv = ownership == OWN["private_rent"]
    ot[priv & (rng.random(len(ownership)) < 0.45)] = OT["company"]
    return ot


def _owner_foreign(
    ownership: np.ndarray, owner_type: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    p = np.where(
        ownership == OWN["private_rent"],
        np.where(owner_type == OT["company"], 0.07, 0.035),
        np.where(ownership == OWN["owner_occupied"], 0.003, 0.0),
    )
    return rng.random(len(ownership)) < p


owner_type_for = _owner_type
owner_foreign_for = _owner_foreign
