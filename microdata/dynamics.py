"""The world moves through time: events from last year's state, then this year's changes.

For every year ``y`` the simulator first draws the *events* of ``y`` (cannabis farms,
suspicions, Halt, early school leaving, youth care) from the state at the end of ``y - 1``,
then applies the *transitions* of ``y`` (deaths, births, children leaving home, separations,
moves, sales, incomes, debts, schooling). Labels therefore depend only on what the world
recorded before their year, which is what point-in-time features can see.

Years before ``FIRST_YEAR`` are event history only: they replay the event processes on the
first year's population so that early reference years have earlier suspicions, Halt
registrations and farms to look back on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from microdata import params, vocab
from microdata._random import gumbel_choice, match_within_groups, sigmoid, stream
from microdata.population import (
    DT,
    HT,
    MALE,
    OWN,
    ROLE,
    WOZ_INDEX,
    Buurten,
    State,
    owner_foreign_for,
    owner_type_for,
    urbanity_from_density,
)
from microdata.spells import OPEN_END, EventRecorder, Sink, SpellRecorder

SECM = {name: i for i, name in enumerate(vocab.SOCIO_ECONOMIC)}
SCHOOL = {name: i for i, name in enumerate(vocab.SCHOOL_TYPE)}
CARE = {name: i for i, name in enumerate(vocab.YOUTH_CARE)}
OFF = {name: i for i, name in enumerate(vocab.OFFENCE)}

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()


def marginal_probability(eta: np.ndarray, sd: float, chunk: int = 1_000_000) -> np.ndarray:
    """``E[sigmoid(eta + sd * Z)]`` for standard normal ``Z`` (Gauss–Hermite, 24 nodes).

    This is the exact probability of a label whose log-odds carry unobserved normal noise of
    standard deviation *sd*: the truth files store it, so the oracle is the best possible
    score given everything the world records.
    """
    out = np.empty(len(eta), dtype=np.float64)
    for s in range(0, len(eta), chunk):
        e = np.asarray(eta[s : s + chunk], dtype=np.float64)[:, None]
        out[s : s + chunk] = sigmoid(e + sd * _GH_X[None, :]) @ _GH_W
    return out


def _dict_encoder(vocabs: dict[str, tuple[str, ...]]) -> Callable[[str, np.ndarray], pa.Array]:
    def encode(name: str, values: np.ndarray) -> pa.Array:
        if name in vocabs:
            return pa.DictionaryArray.from_arrays(
                pa.array(values.astype(np.int8)), pa.array(list(vocabs[name]))
            )
        return pa.array(values)

    return encode


@dataclass
class YearAggregates:
    """Per-buurt figures at the end of each world year, for area statistics and business."""

    inhabitants: dict[int, np.ndarray] = field(default_factory=dict)
    households: dict[int, np.ndarray] = field(default_factory=dict)
    dwellings: dict[int, np.ndarray] = field(default_factory=dict)
    rental: dict[int, np.ndarray] = field(default_factory=dict)
    woz_sum: dict[int, np.ndarray] = field(default_factory=dict)
    income_sum: dict[int, np.ndarray] = field(default_factory=dict)
    econ_mean: dict[int, np.ndarray] = field(default_factory=dict)


class Simulator:
    """Runs the yearly dynamics and streams every table to *sink*."""

    def __init__(
        self,
        st: State,
        bu: Buurten,
        ownership: tuple[np.ndarray, np.ndarray, np.ndarray],
        *,
        neighbours: sp.csr_matrix,
        seed: int,
        rate_multiplier: float,
        sink: Sink,
        truth: Sink,
        progress: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.st = st
        self.bu = bu
        self.own, self.owner_type, self.owner_foreign = ownership
        self.transfers = np.zeros(len(self.own), dtype=np.int16)
        self.nb = neighbours
        self.seed = seed
        self.log_rm = float(np.log(rate_multiplier))
        self.sink = sink
        self.truth = truth
        self.progress = progress
        P, H = st.n_persons, st.n_households
        # event-driven person state (as of the end of the previous year)
        self.halt = np.zeros(P, dtype=np.int8)
        self.vsv = np.zeros(P, dtype=bool)
        self.nondrug = np.zeros(P, dtype=bool)
        self.any_susp = np.zeros(P, dtype=bool)
        self.drug = np.zeros(P, dtype=bool)
        self.probation_ever = np.zeros(P, dtype=bool)
        self.care_until = np.full(P, -1, dtype=np.int16)
        self.wsnp_until = np.full(P, -1, dtype=np.int16)
        self.secm = np.full(P, -1, dtype=np.int8)
        self.school = np.full(P, -1, dtype=np.int8)
        self.debts = np.zeros(H, dtype=bool)
        self.first_drug = np.full(P, 9999, dtype=np.int16)
        self.farms_buurt: dict[int, np.ndarray] = {}
        self.hazard: dict[int, np.ndarray] = {}
        self.agg = YearAggregates()

    # ------------------------------------------------------------------ helpers
    def rng(self, name: str, year: int) -> np.random.Generator:
        return stream(self.seed, f"{name}:{year}")

    def age(self, year: int) -> np.ndarray:
        return year - self.st.birth_year.astype(np.int32)

    def _grow_persons(self, n: int) -> None:
        fills = {
            "halt": 0,
            "care_until": -1,
            "wsnp_until": -1,
            "secm": -1,
            "school": -1,
            "first_drug": 9999,
        }
        for name, fill in fills.items():
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, np.full(n, fill, dtype=arr.dtype)]))
        for name in ("vsv", "nondrug", "any_susp", "drug", "probation_ever"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(n, dtype=bool)]))

    def _household_counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Members, adults, partners, children and 'other' per household (alive persons)."""
        st = self.st
        H = st.n_households
        a = st.alive
        hh, role = st.hh[a], st.role[a]
        members = np.bincount(hh, minlength=H)
        partner = np.bincount(hh, weights=role == ROLE["partner"], minlength=H)
        child = np.bincount(hh, weights=role == ROLE["child"], minlength=H)
        other = np.bincount(hh, weights=role == ROLE["other"], minlength=H)
        return members, partner, child, other

    def _hh_types(self) -> np.ndarray:
        members, partner, child, other = self._household_counts()
        adults = members - child
        t = np.where(
            other > 0,
            HT["other"],
            np.where(
                partner > 0,
                np.where(child > 0, HT["couple_with_children"], HT["couple"]),
                np.where(
                    child > 0, np.where(adults >= 1, HT["single_parent"], HT["other"]), HT["single"]
                ),
            ),
        )
        return t.astype(np.int8)

    # ------------------------------------------------------------------ setup
    def _start_recorders(self) -> None:
        st = self.st
        y0 = params.FIRST_YEAR
        enc = _dict_encoder(
            {
                "role": vocab.ROLE,
                "household_type": vocab.HOUSEHOLD_TYPE,
                "ownership": vocab.OWNERSHIP,
                "owner_type": vocab.OWNER_TYPE,
                "status": vocab.SOCIO_ECONOMIC,
                "school_type": vocab.SCHOOL_TYPE,
                "kind": vocab.YOUTH_CARE,
                "offence": vocab.OFFENCE,
            }
        )
        self.enc = enc
        self.rec_member = SpellRecorder(
            self.sink,
            "household_members",
            id_column="person_id",
            values={"household_id": st.hh.copy(), "role": st.role.copy()},
            start_year=y0,
            encode=enc,
        )
        self.rec_type = SpellRecorder(
            self.sink,
            "households",
            id_column="household_id",
            values={"household_type": st.hh_type.copy()},
            start_year=y0,
            encode=enc,
        )
        self.rec_res = SpellRecorder(
            self.sink,
            "residences",
            id_column="household_id",
            values={"dwelling_id": st.hh_dwelling.copy()},
            start_year=y0,
            encode=enc,
        )
        first = np.maximum(st.dw_build_year, y0).astype(np.int16)
        self.rec_own = SpellRecorder(
            self.sink,
            "ownership",
            id_column="dwelling_id",
            values={
                "ownership": self.own,
                "owner_type": self.owner_type,
                "owner_foreign": self.owner_foreign,
                "transfers": self.transfers,
            },
            start_year=first,
            encode=enc,
        )
        self.ev_halt = EventRecorder(self.sink, "halt", encode=enc)
        self.ev_susp = EventRecorder(self.sink, "suspicions", encode=enc)
        self.ev_conv = EventRecorder(self.sink, "convictions", encode=enc)
        self.ev_vsv = EventRecorder(self.sink, "early_school_leaving", encode=enc)
        self.ev_farm = EventRecorder(self.sink, "cannabis_farms", encode=enc)
        self.care_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.wsnp_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _school_types(self, year: int) -> np.ndarray:
        """Enrolment by age and track, unless the person left school early."""
        age = self.age(year)
        tr = self.st.track
        s = np.full(len(age), -1, dtype=np.int8)
        s[(age >= 4) & (age <= 11)] = SCHOOL["primary"]
        sec_end = np.where(tr == 1, 17, 15)
        s[(age >= 12) & (age <= sec_end)] = SCHOOL["secondary"]
        s[(tr == 0) & (age >= 16) & (age <= 19)] = SCHOOL["mbo"]
        s[(tr == 1) & (age >= 18) & (age <= 22)] = SCHOOL["higher"]
        s[self.vsv | ~self.st.alive] = -1
        return s

    def _secm_draw(self, idx: np.ndarray, year: int, rng: np.random.Generator) -> np.ndarray:
        """Socio-economic category for persons *idx* (15+), given age, means and schooling."""
        age = self.age(year)[idx].astype(np.float32)
        e = self.st.econ()[self.st.hh[idx]].astype(np.float32)
        K = len(vocab.SOCIO_ECONOMIC)
        lg = np.full((len(idx), K), -30.0, dtype=np.float32)
        young = age < 25
        old = age >= 67
        mid = ~young & ~old
        lg[:, SECM["employee"]] = np.where(young, 1.0 + 0.3 * e, 2.2 + 0.4 * e)
        lg[:, SECM["self_employed"]] = np.where(young, -2.5, 0.3 + 0.2 * e)
        lg[:, SECM["social_assistance"]] = np.where(young, -2.5, -1.6) - 1.0 * e
        lg[:, SECM["unemployment_benefit"]] = np.where(young, -3.0, -1.9) - 0.3 * e
        lg[:, SECM["disability_benefit"]] = np.where(young, -3.5, -1.4) - 0.4 * e
        lg[:, SECM["no_income"]] = np.where(young, -1.9, -1.0) - 0.6 * e
        lg[mid, SECM["pension"]] = -4.0
        lg[old] = -30.0
        lg[old, SECM["pension"]] = 5.0
        lg[old, SECM["employee"]] = 0.5
        lg[old, SECM["self_employed"]] = 0.3
        enrolled = self.school[idx] >= 0
        lg[enrolled] = -30.0
        lg[enrolled, SECM["student"]] = 0.0
        return gumbel_choice(lg, rng)

    # ------------------------------------------------------------------ events
    def _events(self, y: int) -> None:
        st = self.st
        rng = self.rng("events", y)
        age = self.age(y)
        alive = st.alive & (st.birth_year < y)  # existed at the end of y - 1
        econ = st.econ()
        e_p = econ[st.hh]
        hh_type = self._hh_types() if y > params.FIRST_YEAR else st.hh_type
        sp_hh = hh_type[st.hh] == HT["single_parent"]
        male = st.sex == MALE
        P = st.n_persons
        prop = st.propensity

        # Halt (12-17)
        m = alive & (age >= 12) & (age <= 17)
        bump = ((age >= 13) & (age <= 16)) * 0.4
        p = sigmoid(-4.9 + 1.2 * prop + 0.4 * male - 0.25 * e_p + bump)
        halt = m & (rng.random(P) < p)
        # Non-drug suspicions (12-45)
        m = alive & (age >= 12) & (age <= 45)
        eta = (
            -6.3
            + 1.4 * prop
            + 0.9 * male
            + 0.6 * (self.halt > 0)
            + 0.5 * self.vsv
            - 0.2 * e_p
            - 0.012 * (age - 19.0) ** 2
        )
        nd = m & (rng.random(P) < sigmoid(eta))
        # Early school leaving (15-22, enrolled in secondary or mbo)
        enrolled = (self.school == SCHOOL["secondary"]) | (self.school == SCHOOL["mbo"])
        if y < params.FIRST_YEAR:
            sch = self._school_types(y)
            enrolled = (sch == SCHOOL["secondary"]) | (sch == SCHOOL["mbo"])
        m = alive & enrolled & (age >= 15) & (age <= 22)
        p = sigmoid(-4.1 - 0.6 * e_p + 0.7 * prop + 0.5 * (self.halt > 0) + 0.3 * male)
        vsv = m & (rng.random(P) < p)
        # Youth care (0-17) and youth probation after a suspicion (12-17)
        in_care = self.care_until >= y
        m = alive & (age <= 17) & ~in_care
        p_hulp = sigmoid(-4.3 - 0.5 * e_p + 0.6 * sp_hh + 0.5 * prop)
        p_bescherm = sigmoid(-6.2 - 0.6 * e_p + 0.8 * sp_hh + 0.6 * prop)
        r = rng.random(P)
        hulp = m & (r < p_hulp)
        bescherm = m & ~hulp & (r < p_hulp + p_bescherm)
        reclass = nd & (age <= 17) & (rng.random(P) < 0.3)

        # First drug-offence suspicion: the jonge-aanwas label process.
        drug_h = self._drug_hazard(y, alive, age, e_p, sp_hh)
        if y >= params.FIRST_YEAR:
            self.hazard[y] = drug_h
        at_risk = alive & ~self.drug
        drug = at_risk & (rng.random(P) < drug_h)
        self.first_drug[drug] = y

        # Cannabis farms (hennep label process).
        farm_p, farm_exist = self._farm_probability(y, econ)
        farm = farm_exist & (rng.random(len(farm_p)) < farm_p)
        self.farms_buurt[y] = np.bincount(st.dw_buurt[farm], minlength=len(self.bu.code)).astype(
            np.int32
        )

        # Record events.
        ids = np.flatnonzero
        self.ev_halt.record(y, person_id=ids(halt).astype(np.int32))
        nd_idx = ids(nd)
        offence = rng.choice(
            [OFF["violence"], OFF["property"], OFF["vandalism"], OFF["other"]],
            size=len(nd_idx),
            p=[0.35, 0.4, 0.15, 0.1],
        ).astype(np.int8)
        dr_idx = ids(drug)
        s_ids = np.concatenate([nd_idx, dr_idx]).astype(np.int32)
        s_off = np.concatenate([offence, np.full(len(dr_idx), OFF["drugs"], dtype=np.int8)])
        self.ev_susp.record(y, person_id=s_ids, offence=s_off)
        conv = rng.random(len(s_ids)) < 0.45
        self.ev_conv.record(y, person_id=s_ids[conv], offence=s_off[conv])
        self.ev_vsv.record(y, person_id=ids(vsv).astype(np.int32))
        self.ev_farm.record(y, dwelling_id=ids(farm).astype(np.int32))
        for mask, kind, lo, hi in (
            (hulp, "jeugdhulp", 1, 3),
            (bescherm, "jeugdbescherming", 2, 4),
            (reclass, "jeugdreclassering", 1, 2),
        ):
            idx = ids(mask)
            until = (y + rng.integers(lo, hi + 1, len(idx)) - 1).astype(np.int16)
            self.care_rows.append(
                (
                    idx.astype(np.int32),
                    np.full(len(idx), CARE[kind], np.int8),
                    np.full(len(idx), y, np.int16),
                    until,
                )
            )
            if kind != "jeugdreclassering":
                self.care_until[idx] = np.maximum(self.care_until[idx], until)
        if y >= params.FIRST_YEAR:
            exist = np.flatnonzero(farm_exist)
            self.truth.emit(
                "hennep_probability",
                pa.table(
                    {
                        "dwelling_id": exist.astype(np.int32),
                        "year": np.full(len(exist), y, dtype=np.int16),
                        "probability": farm_p[exist].astype(np.float32),
                        "farm": farm[exist],
                    }
                ),
            )

        # Update event-driven state (visible from next year on).
        self.halt = np.minimum(self.halt + halt, 100).astype(np.int8)
        self.nondrug |= nd
        self.any_susp |= nd | drug
        self.drug |= drug
        self.vsv |= vsv
        self.probation_ever |= reclass
        if y >= params.FIRST_YEAR:
            self.school[vsv] = -1

    def _drug_hazard(
        self, y: int, alive: np.ndarray, age: np.ndarray, e_p: np.ndarray, sp_hh: np.ndarray
    ) -> np.ndarray:
        """Yearly hazard of a first drug suspicion for everyone aged 12-35 (0 elsewhere)."""
        st = self.st
        c = params.JONGE_AANWAS
        P = st.n_persons
        # suspected family member: a parent or sibling suspected of anything before y
        fam = np.zeros(P, dtype=bool)
        for link in (st.mother, st.father):
            has = link >= 0
            fam[has] |= self.any_susp[link[has]]
            cnt = np.bincount(link[has], weights=self.any_susp[has], minlength=P)
            sib = np.zeros(P)
            sib[has] = cnt[link[has]] - self.any_susp[has]
            fam |= sib > 0
        wsnp_now = self.wsnp_until >= y - 1
        hh_wsnp = (
            np.bincount(st.hh[st.alive], weights=wsnp_now[st.alive], minlength=st.n_households) > 0
        )
        no_income = self.secm == SECM["no_income"]
        eta = (
            c["intercept"]
            + c["age_curvature"] * (age - c["age_peak"]) ** 2
            + c["male"] * (st.sex == MALE)
            + c["early_school_leaver"] * self.vsv
            + c["halt_count"] * np.minimum(self.halt, 3)
            + c["youth_probation"] * self.probation_ever
            + c["earlier_non_drug_suspicion"] * self.nondrug
            + c["suspected_family_member"] * fam
            + c["household_debt_restructuring"] * hh_wsnp[st.hh]
            + c["single_parent_household"] * sp_hh
            + c["no_income"] * no_income
            + c["youth_care"] * (self.care_until >= y - 1)
            + c["halt_x_early_school_leaver"] * ((self.halt > 0) & self.vsv)
            + c["male_aged_15_20"] * ((st.sex == MALE) & (age >= 15) & (age <= 20))
            + c["suspected_family_x_single_parent"] * (fam & sp_hh)
            + self.log_rm
        )
        if params.HERKOMST_DIRECT_EFFECT:  # test-only variant; 0 keeps the world byte-identical
            eta = eta + params.HERKOMST_DIRECT_EFFECT * (st.herkomst > 0)
        h = np.zeros(P, dtype=np.float64)
        m = alive & (age >= params.MIN_AGE_SUSPECT) & (age <= 35)
        h[m] = marginal_probability(eta[m], params.LATENT_NOISE_SD["jonge_aanwas"])
        return h.astype(np.float32)

    def _farm_probability(self, y: int, econ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        st, bu = self.st, self.bu
        c = params.HENNEP
        exist = st.dw_build_year <= y - 1
        occ = st.dw_occupant
        vacant = occ < 0
        o = np.maximum(occ, 0)
        members, *_ = self._household_counts()
        drug_hh = (
            np.bincount(st.hh[st.alive], weights=self.drug[st.alive], minlength=st.n_households) > 0
        )
        recent = np.zeros(len(bu.code), dtype=np.int32)
        for k in range(y - 3, y):
            if k in self.farms_buurt:
                recent += self.farms_buurt[k]
        nb_recent = self.nb @ recent
        b = st.dw_buurt
        region = np.array([params.HENNEP_REGION[r] for r in bu.riec])[b]
        # urbanity as published in area_stats for year y - 1 (address density)
        if y - 1 in self.agg.dwellings:
            urb = urbanity_from_density(self.agg.dwellings[y - 1] / bu.land_area_km2)
        else:
            urb = bu.urbanity
        t = st.dw_type
        eta = (
            c["intercept"]
            + c["vacant"] * vacant
            + np.where(
                vacant,
                0.0,
                c["single_resident"] * (members[o] == 1)
                + c["problematic_debts"] * self.debts[o]
                + c["economic_position"] * econ[o]
                + c["resident_drug_suspicion"] * drug_hh[o]
                + c["poverty_below_minus_1_2"] * (econ[o] < -1.2)
                + c["debts_x_single_resident"] * (self.debts[o] & (members[o] == 1)),
            )
            + c["vacant_x_private_rent"] * (vacant & (self.own == OWN["private_rent"]))
            + c["rural_x_farm_in_buurt_3y"] * ((urb[b] >= 4) & (recent > 0)[b])
            + c["built_1960_1985"] * ((st.dw_build_year >= 1960) & (st.dw_build_year <= 1985))
            + c["surface_90_160_m2"] * ((st.dw_surface >= 90) & (st.dw_surface <= 160))
            + c["terraced"] * (t == DT["terraced"])
            + c["semi_detached"] * (t == DT["semi_detached"])
            + c["detached"] * (t == DT["detached"])
            + c["apartment"] * (t == DT["apartment"])
            + c["social_rent"] * (self.own == OWN["social_rent"])
            + c["private_rent"] * (self.own == OWN["private_rent"])
            + c["owner_foreign"] * self.owner_foreign
            + c["rural"] * (urb[b] >= 4)
            + c["farm_in_buurt_3y"] * (recent > 0)[b]
            + c["farm_in_neighbours_3y"] * (nb_recent > 0)[b]
            + region
            + self.log_rm
        )
        if params.HERKOMST_DIRECT_EFFECT:  # test-only variant; 0 keeps the world byte-identical
            eta = eta + params.HERKOMST_DIRECT_EFFECT * (~vacant & (st.hh_herkomst[o] > 0))
        p = np.zeros(len(eta))
        p[exist] = marginal_probability(eta[exist], params.LATENT_NOISE_SD["hennep"])
        return p, exist

    # ------------------------------------------------------------------ transitions
    def _transitions(self, y: int) -> None:
        st = self.st
        rng = self.rng("transitions", y)
        age = self.age(y)

        # Deaths (Gompertz from 60 on).
        p_death = np.where(age >= 60, np.exp(-10.6 + 0.095 * age), 0.0)
        dead = st.alive & (rng.random(st.n_persons) < p_death)
        st.alive[dead] = False
        st.death_year[dead] = y
        self.rec_member.end(np.flatnonzero(dead), y)
        self.rec_secm.end(np.flatnonzero(dead), y)
        self.rec_school.end(np.flatnonzero(dead), y)
        # A surviving partner becomes head.
        dead_head_hh = st.hh[dead & (st.role == ROLE["head"])]
        promote = st.alive & (st.role == ROLE["partner"]) & np.isin(st.hh, dead_head_hh)
        self.rec_member.update(
            np.flatnonzero(promote),
            {"household_id": st.hh[promote], "role": np.full(promote.sum(), ROLE["head"], np.int8)},
            y,
        )
        st.role[promote] = ROLE["head"]

        # Births: women 20-44 in couple households.
        hh_type = self._hh_types()
        mothers = np.flatnonzero(
            st.alive & (st.sex != MALE) & (age >= 20) & (age <= 44) & (st.role == ROLE["partner"])
        )
        fert = 0.09 * np.exp(-((age[mothers] - 31.0) ** 2) / (2 * 5.0**2))
        mothers = mothers[rng.random(len(mothers)) < fert]
        n_new = len(mothers)
        if n_new:
            hh_new = st.hh[mothers]
            heads = self._head_of(hh_new)
            st.birth_year = np.concatenate([st.birth_year, np.full(n_new, y, np.int16)])
            st.sex = np.concatenate([st.sex, (rng.random(n_new) < 0.5).astype(np.int8)])
            st.herkomst = np.concatenate([st.herkomst, st.hh_herkomst[hh_new]])
            st.mother = np.concatenate([st.mother, mothers.astype(np.int32)])
            st.father = np.concatenate([st.father, heads.astype(np.int32)])
            st.alive = np.concatenate([st.alive, np.ones(n_new, bool)])
            st.death_year = np.concatenate([st.death_year, np.full(n_new, -1, np.int16)])
            st.hh = np.concatenate([st.hh, hh_new.astype(np.int32)])
            st.role = np.concatenate([st.role, np.full(n_new, ROLE["child"], np.int8)])
            e = st.econ()[hh_new]
            st.propensity = np.concatenate(
                [
                    st.propensity,
                    (rng.normal(0, 0.8, n_new) - 0.25 * e + st.hh_family[hh_new]).astype(
                        np.float32
                    ),
                ]
            )
            st.track = np.concatenate(
                [
                    st.track,
                    (rng.random(n_new) < sigmoid(0.1 + 0.8 * e + rng.normal(0, 0.5, n_new))).astype(
                        np.int8
                    ),
                ]
            )
            self._grow_persons(n_new)
            self.rec_member.grow(
                {
                    "household_id": hh_new.astype(np.int32),
                    "role": np.full(n_new, ROLE["child"], np.int8),
                },
                y,
            )
            self.rec_secm.grow({"status": np.full(n_new, -1, np.int8)}, y)
            self.rec_school.grow({"school_type": np.full(n_new, -1, np.int8)}, y)
            age = self.age(y)

        # Children leaving home (18+), some pairing up with another leaver in their gemeente.
        p_leave = np.select([age < 18, age < 20, age < 23, age < 26], [0.0, 0.06, 0.12, 0.18], 0.25)
        leavers = np.flatnonzero(
            st.alive & (st.role == ROLE["child"]) & (rng.random(st.n_persons) < p_leave)
        )
        # Separations: the head of a couple household leaves.
        couple_hh = st.hh_alive & np.isin(hh_type, [HT["couple"], HT["couple_with_children"]])
        sep_hh = np.flatnonzero(couple_hh & (rng.random(st.n_households) < 0.01))
        sep_heads = self._head_of(sep_hh)
        sep_heads = sep_heads[sep_heads >= 0]
        partners_of = np.flatnonzero(
            st.alive & (st.role == ROLE["partner"]) & np.isin(st.hh, sep_hh)
        )
        self.rec_member.update(
            partners_of,
            {
                "household_id": st.hh[partners_of],
                "role": np.full(len(partners_of), ROLE["head"], np.int8),
            },
            y,
        )
        st.role[partners_of] = ROLE["head"]

        gm_of_person = self.bu.gemeente[st.dw_buurt[st.hh_dwelling[st.hh]]]
        # Half of the leavers move in with a leaver of the other sex from the same gemeente.
        pl = leavers[rng.random(len(leavers)) < 0.5]
        men, women = pl[st.sex[pl] == MALE], pl[st.sex[pl] != MALE]
        match = match_within_groups(gm_of_person[men], gm_of_person[women], rng)
        heads_c = men[match >= 0]
        partners_c = women[match[match >= 0]]
        paired = np.zeros(st.n_persons, dtype=bool)
        paired[heads_c] = True
        paired[partners_c] = True
        singles = np.concatenate([leavers[~paired[leavers]], sep_heads])
        new_heads = np.concatenate([singles, heads_c])
        n_single, n_couple = len(singles), len(heads_c)
        H0 = st.n_households
        n_hh_new = n_single + n_couple
        new_hh = np.arange(H0, H0 + n_hh_new, dtype=np.int32)
        origin_hh = st.hh[new_heads]
        parent_e = st.econ()[origin_hh]
        st.hh_type = np.concatenate(
            [
                st.hh_type,
                np.r_[np.full(n_single, HT["single"]), np.full(n_couple, HT["couple"])].astype(
                    np.int8
                ),
            ]
        )
        st.hh_herkomst = np.concatenate([st.hh_herkomst, st.herkomst[new_heads]])
        st.hh_mu = np.concatenate(
            [st.hh_mu, (0.5 * parent_e + rng.normal(-0.2, 0.75, n_hh_new)).astype(np.float32)]
        )
        st.hh_u = np.concatenate([st.hh_u, rng.normal(0, 0.55, n_hh_new).astype(np.float32)])
        st.hh_family = np.concatenate(
            [st.hh_family, rng.normal(0, 0.6, n_hh_new).astype(np.float32)]
        )
        st.hh_alive = np.concatenate([st.hh_alive, np.ones(n_hh_new, bool)])
        st.hh_dwelling = np.concatenate([st.hh_dwelling, np.full(n_hh_new, -1, np.int32)])
        self.debts = np.concatenate([self.debts, np.zeros(n_hh_new, bool)])
        movers_p = np.concatenate([singles, heads_c, partners_c])
        roles = np.r_[
            np.full(n_single + n_couple, ROLE["head"]), np.full(n_couple, ROLE["partner"])
        ].astype(np.int8)
        st.hh[movers_p] = np.concatenate([new_hh, new_hh[n_single:]])
        st.role[movers_p] = roles
        self.rec_member.update(movers_p, {"household_id": st.hh[movers_p], "role": roles}, y)

        # Couple formation: single men and women aged 22-50 in the same gemeente move in
        # together (she joins his household; hers dissolves below).
        lone = np.flatnonzero(
            st.alive & (st.role == ROLE["head"]) & (st.hh < H0) & (age >= 22) & (age <= 50)
        )
        lone = lone[(hh_type[st.hh[lone]] == HT["single"]) & (rng.random(len(lone)) < 0.05)]
        lm, lw = lone[st.sex[lone] == MALE], lone[st.sex[lone] != MALE]
        m = match_within_groups(gm_of_person[lm], gm_of_person[lw], rng)
        joiners, hosts = lw[m[m >= 0]], lm[m >= 0]
        st.hh[joiners] = st.hh[hosts]
        st.role[joiners] = ROLE["partner"]
        self.rec_member.update(
            joiners,
            {
                "household_id": st.hh[joiners],
                "role": np.full(len(joiners), ROLE["partner"], np.int8),
            },
            y,
        )

        # Households left empty dissolve (deaths, everyone left).
        members, *_ = self._household_counts()
        gone = np.flatnonzero(st.hh_alive & (members == 0))
        st.hh_alive[gone] = False
        vacated = st.hh_dwelling[gone]
        vacated = vacated[vacated >= 0]
        st.dw_occupant[vacated] = -1
        self.rec_type.grow({"household_type": st.hh_type[H0:]}, y)
        self.rec_res.grow({"dwelling_id": st.hh_dwelling[H0:]}, y)
        self.rec_debts.grow({"debts": self.debts[H0:]}, y)
        self.rec_type.end(gone, y)
        self.rec_res.end(gone, y)
        self.rec_debts.end(gone, y)

        # Moves: renters and the young move more; most stay in their gemeente.
        hh_idx = np.flatnonzero(st.hh_alive[:H0])
        cur = st.hh_dwelling[hh_idx]
        renter = self.own[cur] != OWN["owner_occupied"]
        head_age = np.full(st.n_households, 50)
        heads = st.alive & (st.role == ROLE["head"])
        head_age[st.hh[heads]] = age[heads]
        p_move = 0.035 + 0.05 * renter + 0.06 * (head_age[hh_idx] < 30)
        movers = hh_idx[rng.random(len(hh_idx)) < p_move]
        sales = self._allocate(y, new_hh, origin_hh, movers, rng)

        # Ownership: sales on move-in to owner-occupied dwellings, buy-to-let, landlord sales.
        D = len(self.own)
        built = st.dw_build_year <= y
        r = rng.random(D)
        to_let = sales & (r < 0.08)
        landlord = built & (self.own == OWN["private_rent"]) & (r < 0.04)
        social_sale = built & (self.own == OWN["social_rent"]) & (r < 0.004)
        changed = np.flatnonzero(sales | landlord | social_sale)
        new_own = self.own.copy()
        new_own[to_let] = OWN["private_rent"]
        new_own[social_sale] = OWN["owner_occupied"]
        ot = owner_type_for(new_own, rng)
        fo = owner_foreign_for(new_own, ot, rng)
        self.transfers[changed] += 1
        self.own[changed] = new_own[changed]
        self.owner_type[changed] = ot[changed]
        self.owner_foreign[changed] = fo[changed]
        self.rec_own.update(
            changed,
            {
                "ownership": self.own[changed],
                "owner_type": self.owner_type[changed],
                "owner_foreign": self.owner_foreign[changed],
                "transfers": self.transfers[changed],
            },
            y,
        )

        # Household types after all membership changes.
        live = np.flatnonzero(st.hh_alive)
        st.hh_type = self._hh_types()
        self.rec_type.update(live, {"household_type": st.hh_type[live]}, y)

        # Means: AR(1) shocks; problematic debts start and end; debt restructuring (WSNP).
        st.hh_u = (
            0.75 * st.hh_u + np.sqrt(1 - 0.75**2) * 0.55 * rng.normal(0, 1, st.n_households)
        ).astype(np.float32)
        e = st.econ()
        start = ~self.debts & (rng.random(st.n_households) < sigmoid(-3.7 - 1.0 * e))
        stop = self.debts & (rng.random(st.n_households) < 0.3)
        new_debts = (self.debts | start) & ~stop
        self.rec_debts.update(live, {"debts": new_debts[live]}, y)
        self.debts = new_debts & st.hh_alive
        head_p = np.flatnonzero(st.alive & (st.role == ROLE["head"]))
        cand = head_p[self.debts[st.hh[head_p]] & (self.wsnp_until[head_p] < y)]
        w = cand[rng.random(len(cand)) < 0.05]
        self.wsnp_until[w] = y + 2
        self.wsnp_rows.append(
            (w.astype(np.int32), np.full(len(w), y, np.int16), np.full(len(w), y + 2, np.int16))
        )

        # Schooling and socio-economic category.
        school = self._school_types(y)
        alive_idx = np.flatnonzero(st.alive)
        self.rec_school.update(alive_idx, {"school_type": school[alive_idx]}, y)
        changed_school = school != self.school
        self.school = school
        age = self.age(y)
        adult = st.alive & (age >= 15)
        redraw = adult & (
            (age == 15)
            | (age == 67)
            | changed_school
            | (self.secm < 0)
            | (rng.random(st.n_persons) < 0.12)
        )
        idx = np.flatnonzero(redraw)
        self.secm[idx] = self._secm_draw(idx, y, rng)
        self.rec_secm.update(idx, {"status": self.secm[idx]}, y)

    def _head_of(self, hh: np.ndarray) -> np.ndarray:
        st = self.st
        heads = np.flatnonzero(st.alive & (st.role == ROLE["head"]))
        lookup = np.full(st.n_households, -1, dtype=np.int64)
        lookup[st.hh[heads]] = heads
        return lookup[hh]

    def _allocate(
        self,
        y: int,
        new_hh: np.ndarray,
        origin_hh: np.ndarray,
        movers: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Give new households and movers a dwelling; returns the dwellings sold on move-in.

        New households look in the gemeente they grew up in: a vacant dwelling, else planned
        construction brought forward, else a dwelling built for them this year in their
        parents' buurt (a copy of the parents' dwelling type). Housing follows demand, so
        vacancy stays near its starting level.
        """
        st, bu = self.st, self.bu
        gm_dw = bu.gemeente[st.dw_buurt]
        sold: list[np.ndarray] = []
        free = np.flatnonzero((st.dw_occupant < 0) & (st.dw_build_year <= y))
        demand_gm = gm_dw[st.hh_dwelling[origin_hh]]
        pick = match_within_groups(demand_gm, gm_dw[free], rng)
        got = np.full(len(new_hh), -1, dtype=np.int64)
        got[pick >= 0] = free[pick[pick >= 0]]
        need = np.flatnonzero(got < 0)
        if need.size:
            taken = np.zeros(len(st.dw_type), dtype=bool)
            taken[got[got >= 0]] = True
            pool = np.flatnonzero((st.dw_occupant < 0) & (st.dw_build_year > y) & ~taken)
            p = match_within_groups(demand_gm[need], gm_dw[pool], rng)
            got[need[p >= 0]] = pool[p[p >= 0]]
        need = np.flatnonzero(got < 0)
        if need.size:
            got[need] = self._build(st.hh_dwelling[origin_hh[need]], y)
        st.dw_build_year[got] = np.minimum(st.dw_build_year[got], y).astype(np.int16)
        self.rec_own.restart(got, y)
        st.hh_dwelling[new_hh] = got
        st.dw_occupant[got] = new_hh
        self.rec_res.update(new_hh, {"dwelling_id": got.astype(np.int32)}, y)
        sold.append(got[self.own[got] == OWN["owner_occupied"]])
        gm_dw = bu.gemeente[st.dw_buurt]
        # Movers take what is still vacant; 80% look in their own gemeente.
        free = np.flatnonzero((st.dw_occupant < 0) & (st.dw_build_year <= y))
        old = st.hh_dwelling[movers]
        local = rng.random(len(movers)) < 0.8
        demand = np.where(local, gm_dw[old], -1)
        supply = gm_dw[free]
        p = match_within_groups(demand, supply, rng)
        lost = np.flatnonzero(p < 0)
        taken = np.zeros(len(free), dtype=bool)
        taken[p[p >= 0]] = True
        rest = np.flatnonzero(~taken)
        p2 = match_within_groups(np.zeros(len(lost), np.int64), np.zeros(len(rest), np.int64), rng)
        p[lost[p2 >= 0]] = rest[p2[p2 >= 0]]
        moved = p >= 0
        mv, new_dw = movers[moved], free[p[moved]]
        st.dw_occupant[old[moved]] = -1
        st.dw_occupant[new_dw] = mv
        st.hh_dwelling[mv] = new_dw
        sold.append(new_dw[self.own[new_dw] == OWN["owner_occupied"]])
        self.rec_res.update(mv, {"dwelling_id": new_dw.astype(np.int32)}, y)
        out = np.zeros(len(st.dw_type), dtype=bool)
        out[np.concatenate(sold)] = True
        return out

    def _build(self, templates: np.ndarray, y: int) -> np.ndarray:
        """New dwellings in year *y*, one per template dwelling, in the template's buurt."""
        st = self.st
        D, n = len(st.dw_type), len(templates)
        ids = np.arange(D, D + n)
        for name in ("dw_buurt", "dw_type", "dw_surface", "dw_woz_base", "dw_changes_20y"):
            arr = getattr(st, name)
            setattr(st, name, np.concatenate([arr, arr[templates]]))
        st.dw_changes_20y[ids] = 0
        st.dw_build_year = np.concatenate([st.dw_build_year, np.full(n, y, np.int16)])
        st.dw_occupant = np.concatenate([st.dw_occupant, np.full(n, -1, np.int32)])
        own = self.own[templates]
        ot, fo = self.owner_type[templates], self.owner_foreign[templates]
        self.own = np.concatenate([self.own, own])
        self.owner_type = np.concatenate([self.owner_type, ot])
        self.owner_foreign = np.concatenate([self.owner_foreign, fo])
        self.transfers = np.concatenate([self.transfers, np.zeros(n, np.int16)])
        self.rec_own.grow(
            {
                "ownership": own,
                "owner_type": ot,
                "owner_foreign": fo,
                "transfers": np.zeros(n, np.int16),
            },
            y,
        )
        return ids

    # ------------------------------------------------------------------ yearly tables
    def _yearly_tables(self, y: int) -> None:
        st, bu = self.st, self.bu
        live = np.flatnonzero(st.hh_alive)
        members, _partner, child, _other = self._household_counts()
        e = st.econ()
        adults = members - child
        equiv = 1 + 0.5 * np.maximum(adults - 1, 0) + 0.3 * child
        income = 24_000 * np.exp(0.42 * e) * equiv
        order = np.argsort(e[live], kind="stable")
        pct = np.empty(len(live), dtype=np.int8)
        pct[order] = (np.arange(len(live)) * 100 // max(len(live), 1) + 1).astype(np.int8)
        age = self.age(y)
        head_age = np.full(st.n_households, 45)
        heads = st.alive & (st.role == ROLE["head"])
        head_age[st.hh[heads]] = age[heads]
        wealth = 30_000 * np.exp(0.8 * e + 0.03 * (head_age - 45)) - 18_000
        self.sink.emit(
            "household_income",
            pa.table(
                {
                    "household_id": live.astype(np.int32),
                    "year": np.full(len(live), y, np.int16),
                    "disposable_income": np.round(income[live]).astype(np.int32),
                    "income_percentile": pct,
                    "wealth": np.round(np.clip(wealth[live], -2e9, 2e9)).astype(np.int32),
                }
            ),
        )
        built = np.flatnonzero(st.dw_build_year <= y)
        drift = 1 + 0.01 * np.sin(built * 0.7 + y)  # a little dwelling-specific movement
        woz = st.dw_woz_base[built] * WOZ_INDEX[y - params.FIRST_YEAR] * drift
        woz_i = (np.round(woz / 1000) * 1000).astype(np.int32)
        self.sink.emit(
            "woz",
            pa.table(
                {
                    "dwelling_id": built.astype(np.int32),
                    "year": np.full(len(built), y, np.int16),
                    "woz_value": woz_i,
                }
            ),
        )
        # Per-buurt aggregates for area statistics and the business register.
        B = len(bu.code)
        a = st.alive
        b_person = st.dw_buurt[st.hh_dwelling[st.hh[a]]]
        b_hh = st.dw_buurt[st.hh_dwelling[live]]
        ag = self.agg
        ag.inhabitants[y] = np.bincount(b_person, minlength=B)
        ag.households[y] = np.bincount(b_hh, minlength=B)
        ag.dwellings[y] = np.bincount(st.dw_buurt[built], minlength=B)
        ag.rental[y] = np.bincount(
            st.dw_buurt[built], weights=self.own[built] != OWN["owner_occupied"], minlength=B
        )
        ag.woz_sum[y] = np.bincount(st.dw_buurt[built], weights=woz_i, minlength=B)
        ag.income_sum[y] = np.bincount(b_hh, weights=income[live], minlength=B)
        ag.econ_mean[y] = np.bincount(b_hh, weights=e[live], minlength=B) / np.maximum(
            ag.households[y], 1
        )

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        self._start_recorders()
        st = self.st
        rng0 = stream(self.seed, "initial-status")
        e = st.econ()
        self.debts = rng0.random(st.n_households) < sigmoid(-2.6 - 1.1 * e)
        self.rec_debts = SpellRecorder(
            self.sink,
            "problematic_debts",
            id_column="household_id",
            values={"debts": self.debts.copy()},
            start_year=params.FIRST_YEAR,
            active=lambda v: v["debts"],
            encode=lambda n, v: pa.array(v),
            drop=("debts",),
        )
        for y in range(params.HISTORY_FROM, params.LAST_YEAR + 1):
            self.progress(f"year {y}")
            if y == params.FIRST_YEAR:
                # initial schooling and socio-economic status, as of the first year
                self.school = self._school_types(y - 1)
                self.rec_school = SpellRecorder(
                    self.sink,
                    "education",
                    id_column="person_id",
                    values={"school_type": self.school.copy()},
                    start_year=y,
                    active=lambda v: v["school_type"] >= 0,
                    encode=self.enc,
                )
                idx = np.flatnonzero(st.alive & (self.age(y - 1) >= 15))
                self.secm[idx] = self._secm_draw(idx, y - 1, rng0)
                self.rec_secm = SpellRecorder(
                    self.sink,
                    "socio_economic",
                    id_column="person_id",
                    values={"status": self.secm.copy()},
                    start_year=y,
                    active=lambda v: v["status"] >= 0,
                    encode=self.enc,
                )
                w = np.flatnonzero(
                    st.alive
                    & (st.role == ROLE["head"])
                    & self.debts[st.hh]
                    & (rng0.random(st.n_persons) < 0.08)
                )
                until = (y + rng0.integers(0, 3, len(w))).astype(np.int16)
                self.wsnp_until[w] = until
                self.wsnp_rows.append((w.astype(np.int32), np.full(len(w), y - 1, np.int16), until))
            self._events(y)
            if y >= params.FIRST_YEAR:
                self._transitions(y)
                self._yearly_tables(y)
        for rec in (
            self.rec_member,
            self.rec_type,
            self.rec_res,
            self.rec_own,
            self.rec_debts,
            self.rec_secm,
            self.rec_school,
        ):
            rec.finish()
        self._emit_care_and_wsnp()
        self._emit_persons()
        self._emit_youth_truth()

    def _clip_until(self, until: np.ndarray) -> np.ndarray:
        """Spells still running after the last world year are open."""
        return np.where(until > params.LAST_YEAR, OPEN_END, until).astype(np.int16)

    def _emit_care_and_wsnp(self) -> None:
        pid, kind, start, until = (np.concatenate(c) for c in zip(*self.care_rows, strict=True))
        o = np.lexsort((start, pid))
        self.sink.emit(
            "youth_care",
            pa.table(
                {
                    "person_id": pid[o],
                    "kind": self.enc("kind", kind[o]),
                    "valid_from": start[o],
                    "valid_to": self._clip_until(until[o]),
                }
            ),
        )
        pid, start, until = (np.concatenate(c) for c in zip(*self.wsnp_rows, strict=True))
        o = np.lexsort((start, pid))
        self.sink.emit(
            "debt_restructuring",
            pa.table(
                {
                    "person_id": pid[o],
                    "valid_from": start[o],
                    "valid_to": self._clip_until(until[o]),
                }
            ),
        )

    def _emit_persons(self) -> None:
        st = self.st
        death = st.death_year
        self.sink.emit(
            "persons",
            pa.table(
                {
                    "person_id": np.arange(st.n_persons, dtype=np.int32),
                    "birth_year": st.birth_year,
                    "sex": pa.DictionaryArray.from_arrays(
                        pa.array(st.sex), pa.array(list(vocab.SEX))
                    ),
                    "herkomst": pa.DictionaryArray.from_arrays(
                        pa.array(st.herkomst.astype(np.int8)), pa.array(list(vocab.HERKOMST))
                    ),
                    "mother_id": pa.array(st.mother, mask=st.mother < 0),
                    "father_id": pa.array(st.father, mask=st.father < 0),
                    "death_year": pa.array(death, mask=death < 0),
                }
            ),
        )

    def _emit_youth_truth(self) -> None:
        """Oracle of the jonge-aanwas label for every reference year with a complete window."""
        st = self.st
        W = params.WINDOW
        P = st.n_persons
        first_drug = self.first_drug.astype(np.int32)
        for t in range(params.FIRST_YEAR, params.LAST_YEAR - W + 2):
            age = t - st.birth_year.astype(np.int32)
            alive_t = (st.birth_year < t) & ((st.death_year < 0) | (st.death_year >= t))
            pop = alive_t & (age >= 8) & (age <= 23) & (first_drug >= t)
            surv = np.ones(P, dtype=np.float64)
            for y in range(t, t + W):
                h = self.hazard[y].astype(np.float64)
                h = np.concatenate([h, np.zeros(P - len(h))])
                surv *= 1 - h
            idx = np.flatnonzero(pop)
            label = first_drug[idx] <= t + W - 1
            a = age[idx]
            group = np.select([a <= 12, a <= 19], [0, 1], 2).astype(np.int8)
            self.truth.emit(
                "jonge_aanwas_probability",
                pa.table(
                    {
                        "person_id": idx.astype(np.int32),
                        "year": np.full(len(idx), t, np.int16),
                        "age_group": pa.DictionaryArray.from_arrays(
                            pa.array(group), pa.array(list(vocab.AGE_GROUPS))
                        ),
                        "probability": (1 - surv[idx]).astype(np.float32),
                        "first_drug_suspicion": label,
                    }
                ),
            )
