"""Feature builders: pure functions from world tables to feature tables.

Every builder takes the world as :class:`WorldFrames` and a reference year ``t`` and uses
only data up to the end of ``t - 1`` (``y = t - 1`` below): spells in force during ``y``,
yearly rows of ``y``, events dated ``<= y``. Labels are the only thing that look at ``t``
and later, and they are built in separate functions.

The state of the population at the end of ``y`` is computed once per year in a
:class:`Snapshot` (who lives in which household, in which dwelling, in which buurt, and the
household's circumstances) and shared by the person, dwelling and cell builders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.catalogue import AREA_INDICATORS
from features.world import IdSpace, WorldFileError, WorldReader, active_at, codes, dense
from microdata import vocab

BENEFITS = tuple(vocab.SOCIO_ECONOMIC.index(s) for s in vocab.BENEFIT_STATUSES)
NO_INCOME = vocab.SOCIO_ECONOMIC.index("no_income")
DRUGS = vocab.OFFENCE.index("drugs")
SINGLE_PARENT = vocab.HOUSEHOLD_TYPE.index("single_parent")
RIEC_CODES = tuple(f"RIEC{i:02d}" for i in range(1, 11))

#: tables every builder may need, loaded whole (small or spell tables)
WHOLE_TABLES = (
    "areas",
    "area_stats",
    "persons",
    "household_members",
    "households",
    "residences",
    "dwellings",
    "ownership",
    "socio_economic",
    "problematic_debts",
    "debt_restructuring",
    "early_school_leaving",
    "halt",
    "youth_care",
    "suspicions",
    "convictions",
    "cannabis_farms",
    "branches",
    "establishments",
)
#: yearly tables, read one year at a time
YEARLY_TABLES = ("household_income", "woz", "turnover")


@dataclass
class WorldFrames:
    """The world as DataFrames (protected columns never included), plus buurt neighbours.

    Yearly tables are read lazily per year from *reader* unless given in *frames*. With
    *ids* (how :func:`load_frames` reads a world), the person, household and dwelling id
    columns hold dense codes of those spaces, so arrays by unit are as long as the tables;
    ``ids[unit].original(codes)`` gives the extract's ids back. Without *ids* (frames built
    by hand) the ids are used as they are and must be small.
    """

    frames: dict[str, pd.DataFrame]
    neighbours: pd.DataFrame  # area_code, neighbour_code (buurten)
    reader: WorldReader | None = None
    ids: dict[str, IdSpace] | None = None
    _yearly_cache: dict[tuple[str, int], pd.DataFrame] = field(default_factory=dict, repr=False)

    def __getitem__(self, table: str) -> pd.DataFrame:
        return self.frames[table]

    def yearly(self, table: str, year: int) -> pd.DataFrame:
        if table in self.frames:
            df = self.frames[table]
            return df[df["year"] == year]
        key = (table, year)
        if key not in self._yearly_cache:
            if self.reader is None:
                raise KeyError(f"{table} is neither loaded nor readable")
            if len(self._yearly_cache) > 6:
                self._yearly_cache.clear()
            self._yearly_cache[key] = self.reader.read(table, year=year, ids=self.ids)
        return self._yearly_cache[key]

    def original_ids(self, unit: str, codes: np.ndarray) -> np.ndarray:
        """The extract's ids (int64) of internal unit *codes*."""
        if self.ids is None:
            return np.asarray(codes, dtype=np.int64)
        return self.ids[unit].original(codes)

    def unit_codes(self, unit: str, ids: np.ndarray) -> np.ndarray:
        """Internal codes of the extract's *ids* (-1: unknown)."""
        if self.ids is None:
            return np.asarray(ids, dtype=np.int64)
        return self.ids[unit].codes(ids)

    @cached_property
    def n_persons(self) -> int:
        if self.ids is not None:
            return len(self.ids["person"])
        return int(self.frames["persons"]["person_id"].max()) + 1

    @cached_property
    def n_households(self) -> int:
        if self.ids is not None:
            return len(self.ids["household"])
        return (
            int(
                max(
                    self.frames["households"]["household_id"].max(),
                    self.frames["household_members"]["household_id"].max(),
                )
            )
            + 1
        )

    @cached_property
    def n_dwellings(self) -> int:
        if self.ids is not None:
            return len(self.ids["dwelling"])
        return int(self.frames["dwellings"]["dwelling_id"].max()) + 1

    @cached_property
    def buurten(self) -> pd.DataFrame:
        a = self.frames["areas"]
        return a[a["level"] == "buurt"].sort_values("area_code").reset_index(drop=True)

    @cached_property
    def buurt_index(self) -> pd.Index:
        return pd.Index(self.buurten["area_code"].astype(str))

    @cached_property
    def dwelling_buurt(self) -> np.ndarray:
        d = self.frames["dwellings"]
        idx = self.buurt_index.get_indexer(pd.Index(d["buurt_code"].astype(str)))
        return dense(d["dwelling_id"].to_numpy(), idx, self.n_dwellings, fill=-1, dtype=np.int32)

    @cached_property
    def neighbour_matrix(self) -> sp.csr_matrix:
        i = self.buurt_index.get_indexer(pd.Index(self.neighbours["area_code"]))
        j = self.buurt_index.get_indexer(pd.Index(self.neighbours["neighbour_code"]))
        ok = (i >= 0) & (j >= 0)
        n = len(self.buurt_index)
        return sp.csr_matrix((np.ones(ok.sum()), (i[ok], j[ok])), shape=(n, n))


def load_frames(reader: WorldReader, *, neighbours: pd.DataFrame) -> WorldFrames:
    """Read the world for feature building (declared, non-protected columns only), with
    person, household and dwelling ids factorised into dense codes once, here."""
    ids = reader.id_spaces()
    frames = {t: reader.read(t, ids=ids) for t in WHOLE_TABLES}
    return WorldFrames(frames, neighbours, reader, ids)


# --------------------------------------------------------------------------- snapshot


class Snapshot:
    """The population at the end of year *y*: dense arrays by person, household, dwelling."""

    def __init__(self, w: WorldFrames, y: int) -> None:
        self.w, self.y = w, y
        P, H, D = w.n_persons, w.n_households, w.n_dwellings
        p = w["persons"]
        pid = p["person_id"].to_numpy()
        self.birth_year = dense(
            pid, p["birth_year"].to_numpy(np.int32), P, fill=9999, dtype=np.int32
        )
        death = p["death_year"].to_numpy(np.float64, na_value=np.nan)
        self.dead = dense(
            pid, ~np.isnan(death) & (np.nan_to_num(death, nan=9999) <= y), P, fill=True, dtype=bool
        )
        self.mother = dense(
            pid, p["mother_id"].to_numpy(np.float64, na_value=-1), P, fill=-1, dtype=np.int64
        )
        self.father = dense(
            pid, p["father_id"].to_numpy(np.float64, na_value=-1), P, fill=-1, dtype=np.int64
        )
        self.male = dense(pid, codes(p["sex"], vocab.SEX) == 0, P, fill=False, dtype=bool)
        m = active_at(w["household_members"], y)
        self.hh = dense(
            m["person_id"].to_numpy(),
            m["household_id"].to_numpy(np.int64),
            P,
            fill=-1,
            dtype=np.int64,
        )
        live = self.hh >= 0
        self.age = y + 1 - self.birth_year  # age in year t = y + 1
        # household composition and circumstances
        hh_live = self.hh[live]
        self.hh_size = np.bincount(hh_live, minlength=H)
        ht = active_at(w["households"], y)
        self.hh_type = dense(
            ht["household_id"].to_numpy(),
            codes(ht["household_type"], vocab.HOUSEHOLD_TYPE),
            H,
            fill=-1,
            dtype=np.int8,
        )
        secm = active_at(w["socio_economic"], y)
        self.status = dense(
            secm["person_id"].to_numpy(),
            codes(secm["status"], vocab.SOCIO_ECONOMIC),
            P,
            fill=-1,
            dtype=np.int8,
        )
        on_benefit = np.isin(self.status, BENEFITS)
        self.hh_benefits = np.bincount(hh_live, weights=on_benefit[live], minlength=H) > 0
        debts = active_at(w["problematic_debts"], y)
        self.hh_debts = dense(debts["household_id"].to_numpy(), True, H, fill=False, dtype=bool)
        wsnp = active_at(w["debt_restructuring"], y)
        in_wsnp = dense(wsnp["person_id"].to_numpy(), True, P, fill=False, dtype=bool)
        self.hh_wsnp = np.bincount(hh_live, weights=in_wsnp[live], minlength=H) > 0
        s = w["suspicions"]
        s = s[s["year"] <= y]
        self.suspected = dense(s["person_id"].to_numpy(), True, P, fill=False, dtype=bool)
        drugs = s[codes(s["offence"], vocab.OFFENCE) == DRUGS]
        self.drug_suspected = dense(drugs["person_id"].to_numpy(), True, P, fill=False, dtype=bool)
        self.hh_drug = np.bincount(hh_live, weights=self.drug_suspected[live], minlength=H) > 0
        self.suspicions = s
        inc = w.yearly("household_income", y)
        self.hh_income_pct = dense(
            inc["household_id"].to_numpy(),
            inc["income_percentile"].to_numpy(np.float32),
            H,
            fill=np.nan,
            dtype=np.float32,
        )
        res = active_at(w["residences"], y)
        self.hh_dwelling = dense(
            res["household_id"].to_numpy(),
            res["dwelling_id"].to_numpy(np.int64),
            H,
            fill=-1,
            dtype=np.int64,
        )
        self.hh_moved_in = dense(
            res["household_id"].to_numpy(),
            res["valid_from"].to_numpy(np.int32),
            H,
            fill=-1,
            dtype=np.int32,
        )
        self.dw_household = dense(
            res["dwelling_id"].to_numpy(),
            res["household_id"].to_numpy(np.int64),
            D,
            fill=-1,
            dtype=np.int64,
        )
        self.residences = w["residences"]
        # where people live
        dw = np.where(live, self.hh_dwelling[np.maximum(self.hh, 0)], -1)
        self.person_buurt = np.where(dw >= 0, w.dwelling_buurt[np.maximum(dw, 0)], -1)
        vsv = w["early_school_leaving"]
        vsv = vsv[vsv["year"] <= y]
        self.early_leaver = dense(vsv["person_id"].to_numpy(), True, P, fill=False, dtype=bool)

    def household_state(self, hh: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
        """Household features for households *hh* (-1: none), named ``<prefix>_…``."""
        ok = hh >= 0
        h = np.maximum(hh, 0)

        def pick(arr: np.ndarray, fill: float) -> np.ndarray:
            return np.where(ok, arr[h], fill).astype(np.float32)

        names = {
            "type": pick(self.hh_type.astype(np.float32), np.nan),
            "single_parent_household": pick(
                (self.hh_type == SINGLE_PARENT).astype(np.float32), np.nan
            ),
            "size": pick(self.hh_size.astype(np.float32), 0),
            "income_percentile": pick(self.hh_income_pct, np.nan),
            "benefits": pick(self.hh_benefits.astype(np.float32), 0),
            "problematic_debts": pick(self.hh_debts.astype(np.float32), 0),
            "debt_restructuring": pick(self.hh_wsnp.astype(np.float32), 0),
            "drug_suspicion": pick(self.hh_drug.astype(np.float32), 0),
        }
        names["type"][names["type"] < 0] = np.nan
        out = {}
        for k, v in names.items():
            if prefix == "household" and k == "single_parent_household":
                out["single_parent_household"] = v
            elif prefix == "residents" and k == "single_parent_household":
                out["residents_single_parent_household"] = v
            else:
                out[f"{prefix}_{k}"] = v
        return out

    @cached_property
    def area_indicators(self) -> dict[str, pd.DataFrame]:
        """Area indicators per level (index: area_code), for year y."""
        return area_indicators(self)


# --------------------------------------------------------------------------- area


def area_indicators(snap: Snapshot) -> dict[str, pd.DataFrame]:
    """Key figures of year y plus shares aggregated from the microdata, per level."""
    w, y = snap.w, snap.y
    stats = w["area_stats"]
    stats = stats[stats["year"] == y].set_index("area_code")
    B = len(w.buurt_index)
    # household shares per buurt
    hh_ids = np.flatnonzero(snap.hh_dwelling >= 0)
    hh_buurt = w.dwelling_buurt[snap.hh_dwelling[hh_ids]]
    ok = hh_buurt >= 0
    hh_ids, hh_buurt = hh_ids[ok], hh_buurt[ok]
    n_hh = np.bincount(hh_buurt, minlength=B)
    n_debts = np.bincount(hh_buurt, weights=snap.hh_debts[hh_ids], minlength=B)
    n_benef = np.bincount(hh_buurt, weights=snap.hh_benefits[hh_ids], minlength=B)
    teen = (snap.person_buurt >= 0) & (snap.age - 1 >= 15) & (snap.age - 1 <= 22) & ~snap.dead
    n_teen = np.bincount(snap.person_buurt[teen], minlength=B)
    n_vsv = np.bincount(snap.person_buurt[teen], weights=snap.early_leaver[teen], minlength=B)
    b = w.buurten
    counts = pd.DataFrame(
        {
            "buurt": w.buurt_index,
            "wijk": b["wijk_code"].astype(str).to_numpy(),
            "gemeente": b["gemeente_code"].astype(str).to_numpy(),
            "hh": n_hh,
            "debts": n_debts,
            "benefits": n_benef,
            "teen": n_teen,
            "vsv": n_vsv,
        }
    )
    out: dict[str, pd.DataFrame] = {}
    base = [s for s, *_ in AREA_INDICATORS if not s.startswith("share_") or s == "share_rental"]
    for level in ("buurt", "wijk", "gemeente"):
        g = counts.groupby(level, sort=True)[["hh", "debts", "benefits", "teen", "vsv"]].sum()
        df = stats.reindex(g.index)[base].astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            df["share_debts"] = (g["debts"] / g["hh"]).astype(np.float32)
            df["share_benefits"] = (g["benefits"] / g["hh"]).astype(np.float32)
            df["share_early_school_leavers"] = (g["vsv"] / g["teen"]).astype(np.float32)
        out[level] = df[[s for s, *_ in AREA_INDICATORS]]
    return out


def _buurt_context(
    snap: Snapshot, buurt_idx: np.ndarray, prefix: str = "buurt"
) -> dict[str, np.ndarray]:
    ind = snap.area_indicators["buurt"].reindex(snap.w.buurt_index)
    ok = buurt_idx >= 0
    out = {}
    for col in ind.columns:
        vals = ind[col].to_numpy(np.float32)
        out[f"{prefix}_{col}"] = np.where(ok, vals[np.maximum(buurt_idx, 0)], np.nan).astype(
            np.float32
        )
    riec = codes(snap.w.buurten["riec_code"].astype(str), RIEC_CODES).astype(np.float32)
    out["riec_region"] = np.where(ok, riec[np.maximum(buurt_idx, 0)], np.nan).astype(np.float32)
    return out


def area_codes(w: WorldFrames, buurt_idx: np.ndarray) -> dict[str, np.ndarray]:
    """buurt, wijk, gemeente and RIEC codes for buurt indices (empty where unknown)."""
    b = w.buurten
    out = {}
    for col, name in (
        ("area_code", "buurt_code"),
        ("wijk_code", "wijk_code"),
        ("gemeente_code", "gemeente_code"),
        ("riec_code", "riec_code"),
    ):
        vals = b[col].astype(str).to_numpy()
        out[name] = np.asarray(np.where(buurt_idx >= 0, vals[np.maximum(buurt_idx, 0)], None))
    return out


# --------------------------------------------------------------------------- person


def person_population(snap: Snapshot) -> np.ndarray:
    """Person ids of the jonge-aanwas population for reference year t = y + 1: aged 8-23 in t,
    alive and registered in a household at the end of t - 1, no drug suspicion before t."""
    return np.flatnonzero(
        (snap.hh >= 0) & ~snap.dead & (snap.age >= 8) & (snap.age <= 23) & ~snap.drug_suspected
    )


def person_features(snap: Snapshot, persons: np.ndarray) -> dict[str, np.ndarray]:
    """Person-level features for *persons* (ids), as of the end of y."""
    w, y = snap.w, snap.y
    P = w.n_persons
    f: dict[str, np.ndarray] = {}
    f["age"] = snap.age[persons].astype(np.float32)
    f["male"] = snap.male[persons].astype(np.float32)
    f["no_income"] = (snap.status[persons] == NO_INCOME).astype(np.float32)
    f["early_school_leaver"] = snap.early_leaver[persons].astype(np.float32)
    halt = w["halt"]
    halt = halt[halt["year"] <= y]
    f["halt_count"] = np.bincount(halt["person_id"].to_numpy(), minlength=P)[persons].astype(
        np.float32
    )
    yc = w["youth_care"]
    kind = pd.Series(np.asarray(vocab.YOUTH_CARE + ("",))[codes(yc["kind"], vocab.YOUTH_CARE)])
    care = active_at(yc[kind.isin(["jeugdhulp", "jeugdbescherming"]).to_numpy()], y)
    f["youth_care"] = dense(care["person_id"].to_numpy(), True, P, fill=False, dtype=bool)[
        persons
    ].astype(np.float32)
    prob = yc[(kind == "jeugdreclassering").to_numpy() & (yc["valid_from"] <= y).to_numpy()]
    f["youth_probation"] = dense(prob["person_id"].to_numpy(), True, P, fill=False, dtype=bool)[
        persons
    ].astype(np.float32)
    s = snap.suspicions
    off = np.asarray(vocab.OFFENCE + ("",))[codes(s["offence"], vocab.OFFENCE)]
    for o in ("violence", "property", "vandalism", "other"):
        ids = s["person_id"].to_numpy()[off == o]
        f[f"suspicions_{o}"] = np.bincount(ids, minlength=P)[persons].astype(np.float32)
    last = s.groupby("person_id")["year"].max()
    last_year = dense(
        last.index.to_numpy(), last.to_numpy(np.float32), P, fill=np.nan, dtype=np.float32
    )
    f["years_since_suspicion"] = (y + 1 - last_year[persons]).astype(np.float32)
    f["suspected_parent"], f["suspected_sibling"] = _family(snap, snap.suspected, persons)
    conv = w["convictions"]
    conv = conv[conv["year"] <= y]
    convicted = dense(conv["person_id"].to_numpy(), True, P, fill=False, dtype=bool)
    cp, cs = _family(snap, convicted, persons)
    f["convicted_family_member"] = np.maximum(cp, cs)
    # household moves in t-3..t-1: residence spells of the current household starting then
    res = snap.residences
    recent = res[(res["valid_from"] >= y - 2) & (res["valid_from"] <= y)]
    moves = np.bincount(recent["household_id"].to_numpy(), minlength=w.n_households)
    f["moves_3y"] = moves[snap.hh[persons]].astype(np.float32)
    f.update(snap.household_state(snap.hh[persons], "household"))
    f.update(_buurt_context(snap, snap.person_buurt[persons]))
    return f


def _family(snap: Snapshot, flag: np.ndarray, persons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether a parent, and whether a sibling (same mother or father), has *flag*."""
    P = len(flag)
    parent = np.zeros(len(persons), dtype=bool)
    sibling = np.zeros(len(persons), dtype=bool)
    for link in (snap.mother, snap.father):
        has = link >= 0
        lp = link[persons]
        parent |= (lp >= 0) & flag[np.maximum(lp, 0)]
        cnt = np.bincount(link[has], weights=flag[has], minlength=P)
        own = flag[persons]
        sibling |= (lp >= 0) & (cnt[np.maximum(lp, 0)] - own > 0)
    return parent.astype(np.float32), sibling.astype(np.float32)


def person_labels(w: WorldFrames, persons: np.ndarray, t: int, window: int) -> np.ndarray:
    """First drug suspicion within [t, t + window - 1] (the jonge-aanwas label)."""
    s = w["suspicions"]
    drugs = s[codes(s["offence"], vocab.OFFENCE) == DRUGS]
    first = drugs.groupby("person_id")["year"].min()
    fy = dense(
        first.index.to_numpy(), first.to_numpy(np.int32), w.n_persons, fill=9999, dtype=np.int32
    )
    return ((fy[persons] >= t) & (fy[persons] <= t + window - 1)).astype(np.int8)


def age_groups(age: np.ndarray) -> np.ndarray:
    return np.select([age <= 12, age <= 19], ["8-12", "13-19"], "20-23")


# --------------------------------------------------------------------------- dwelling


def dwelling_population(snap: Snapshot) -> np.ndarray:
    """Dwellings that exist at the end of t - 1."""
    d = snap.w["dwellings"]
    return np.sort(d.loc[d["build_year"] <= snap.y, "dwelling_id"].to_numpy())


def dwelling_features(snap: Snapshot, dwellings: np.ndarray) -> dict[str, np.ndarray]:
    """Dwelling-level features for *dwellings* (ids), as of the end of y."""
    w, y = snap.w, snap.y
    D = w.n_dwellings
    d = w["dwellings"]
    did = d["dwelling_id"].to_numpy()
    f: dict[str, np.ndarray] = {}
    f["dwelling_type"] = dense(did, codes(d["dwelling_type"], vocab.DWELLING_TYPE), D, fill=-1)[
        dwellings
    ].astype(np.float32)
    f["surface_m2"] = dense(did, d["surface_m2"].to_numpy(np.float32), D, fill=np.nan)[dwellings]
    f["build_year"] = dense(did, d["build_year"].to_numpy(np.float32), D, fill=np.nan)[dwellings]
    own = active_at(w["ownership"], y)
    oid = own["dwelling_id"].to_numpy()
    f["ownership"] = dense(
        oid, codes(own["ownership"], vocab.OWNERSHIP).astype(np.float32), D, fill=np.nan
    )[dwellings]
    f["owner_type"] = dense(
        oid, codes(own["owner_type"], vocab.OWNER_TYPE).astype(np.float32), D, fill=np.nan
    )[dwellings]
    f["owner_foreign"] = dense(oid, own["owner_foreign"].to_numpy(np.float32), D, fill=np.nan)[
        dwellings
    ]
    transfers = dense(oid, own["transfers"].to_numpy(np.float32), D, fill=0)
    before = dense(did, d["ownership_changes_20y"].to_numpy(np.float32), D, fill=0)
    f["ownership_changes"] = (before + transfers)[dwellings]
    woz = w.yearly("woz", y)
    f["woz_value"] = dense(
        woz["dwelling_id"].to_numpy(), woz["woz_value"].to_numpy(np.float32), D, fill=np.nan
    )[dwellings]
    hh = snap.dw_household[dwellings]
    f["vacant"] = (hh < 0).astype(np.float32)
    moved_in = np.where(hh >= 0, snap.hh_moved_in[np.maximum(hh, 0)], -1)
    f["recent_move_in"] = (moved_in >= y - 1).astype(np.float32)
    farms = w["cannabis_farms"]
    past = farms[farms["year"] <= y]
    f["earlier_farm_here"] = dense(past["dwelling_id"].to_numpy(), True, D, fill=False, dtype=bool)[
        dwellings
    ].astype(np.float32)
    recent = past[past["year"] >= y - 2]
    B = len(w.buurt_index)
    rb = w.dwelling_buurt[recent["dwelling_id"].to_numpy()]
    per_buurt = np.bincount(rb[rb >= 0], minlength=B).astype(np.float64)
    nb = w.neighbour_matrix @ per_buurt
    db = w.dwelling_buurt[dwellings]
    f["farms_buurt_3y"] = np.where(db >= 0, per_buurt[np.maximum(db, 0)], np.nan).astype(np.float32)
    f["farms_neighbours_3y"] = np.where(db >= 0, nb[np.maximum(db, 0)], np.nan).astype(np.float32)
    f.update(snap.household_state(hh, "residents"))
    f.update(_buurt_context(snap, db))
    return f


def dwelling_labels(w: WorldFrames, dwellings: np.ndarray, t: int) -> np.ndarray:
    """A cannabis farm dismantled at the dwelling in year t (the hennep label)."""
    farms = w["cannabis_farms"]
    ids = farms.loc[farms["year"] == t, "dwelling_id"].to_numpy()
    return dense(ids, True, w.n_dwellings, fill=False, dtype=bool)[dwellings].astype(np.int8)


# --------------------------------------------------------------------------- cells


def _active_establishments(w: WorldFrames, year: int) -> pd.DataFrame:
    e = w["establishments"]
    closed = e["closed_year"].to_numpy(np.float64, na_value=np.inf)
    return e[(e["founded_year"].to_numpy() <= year) & (closed > year)]


def _cell_turnover(w: WorldFrames, year: int) -> pd.DataFrame:
    """Establishments, employees and turnover per (level, area_code, sbi) in *year*."""
    est = _active_establishments(w, year)
    tv = w.yearly("turnover", year)[["establishment_id", "turnover"]]
    est = est.merge(tv, on="establishment_id", how="left")
    b = w.buurten.set_index("area_code")
    bc = est["buurt_code"].astype(str)
    frames = []
    for level, col in (("wijk", "wijk_code"), ("gemeente", "gemeente_code")):
        g = (
            pd.DataFrame(
                {
                    "area_code": b[col].astype(str).reindex(bc).to_numpy(),
                    "sbi": est["sbi"].astype(str).to_numpy(),
                    "employees": est["employees"].to_numpy(np.float64),
                    "turnover": est["turnover"].to_numpy(np.float64),
                }
            )
            .groupby(["area_code", "sbi"], sort=True)
            .agg(
                establishments=("employees", "size"),
                employees=("employees", "sum"),
                turnover=("turnover", "sum"),
            )
            .reset_index()
        )
        g.insert(0, "level", level)
        frames.append(g)
    return pd.concat(frames, ignore_index=True)


def branch_rates(w: WorldFrames, year: int) -> pd.Series:
    """Median turnover per employee of each branch (SBI) over all its establishments with
    turnover in *year*: a rate that the inflated turnover of a few cells cannot move."""
    est = _active_establishments(w, year)[["establishment_id", "sbi", "employees"]]
    tv = w.yearly("turnover", year)[["establishment_id", "turnover"]]
    est = est.merge(tv, on="establishment_id", how="inner")
    per_employee = est["turnover"].to_numpy(np.float64) / np.maximum(
        est["employees"].to_numpy(np.float64), 1
    )
    return pd.Series(per_employee).groupby(est["sbi"].astype(str).to_numpy()).median()


def cell_population(w: WorldFrames, t: int) -> pd.DataFrame:
    """Cells (wijk × branch and gemeente × branch) with an establishment active in t."""
    return _cell_turnover(w, t)[["level", "area_code", "sbi"]]


def cell_establishments(w: WorldFrames, cells: pd.DataFrame, year: int) -> np.ndarray:
    """Establishments of each of *cells* (level, area_code, sbi) active in *year* (0 if none)."""
    n = _cell_turnover(w, year).set_index(["level", "area_code", "sbi"])["establishments"]
    key = pd.MultiIndex.from_frame(cells[["level", "area_code", "sbi"]])
    return n.reindex(key).fillna(0).to_numpy(np.int32)


def cell_features(snap: Snapshot, cells: pd.DataFrame) -> dict[str, np.ndarray]:
    """Cell features for *cells* (level, area_code, sbi), from year y."""
    w, y = snap.w, snap.y
    f: dict[str, np.ndarray] = {}
    stats = w["area_stats"]
    inh = stats[stats["year"] == y].set_index("area_code")["inhabitants"].astype(np.float64)
    area_inh = inh.reindex(cells["area_code"]).to_numpy()
    for level in ("wijk", "gemeente"):
        mask = (cells["level"] == level).to_numpy()
        ind = snap.area_indicators[level].reindex(cells.loc[mask, "area_code"])
        for col in ind.columns:
            f.setdefault(f"area_{col}", np.full(len(cells), np.nan, dtype=np.float32))
            f[f"area_{col}"][mask] = ind[col].to_numpy(np.float32)
    f["area_level"] = (cells["level"] == "gemeente").to_numpy(np.float32)
    f["branch"] = branch_codes(w, cells["sbi"]).astype(np.float32)
    prev = _cell_turnover(w, y).set_index(["level", "area_code", "sbi"])
    key = pd.MultiIndex.from_frame(cells[["level", "area_code", "sbi"]])
    p = prev.reindex(key)
    n_est = p["establishments"].fillna(0).to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f["branch_establishments_per_1000"] = np.where(
            area_inh > 0, 1000 * n_est / area_inh, np.nan
        ).astype(np.float32)
        f["branch_employees_per_establishment"] = (p["employees"].to_numpy() / n_est).astype(
            np.float32
        )
        employees = p["employees"].fillna(0).to_numpy(np.float64)
        f["branch_employees_per_1000"] = np.where(
            area_inh > 0, 1000 * employees / area_inh, np.nan
        ).astype(np.float32)
        # the cell's own turnover is never used: an anomaly that lasts would become its own
        # expectation; the branch's median rate is out of any one cell's reach
        rate = branch_rates(w, y).reindex(cells["sbi"].astype(str)).to_numpy(np.float64)
        f["branch_turnover_at_branch_rate"] = np.where(
            area_inh > 0, np.log1p(employees * rate / area_inh), np.nan
        ).astype(np.float32)
    areas = w["areas"].set_index("area_code")
    riec = areas["riec_code"].astype(str).reindex(cells["area_code"])
    f["riec_region"] = codes(riec.reset_index(drop=True), RIEC_CODES).astype(np.float32)
    return f


def branch_codes(w: WorldFrames, sbi: pd.Series) -> np.ndarray:
    """Codes of SBI codes in the order of the world's own branch list (``branches.parquet``;
    for a generated world the generator's list). An SBI code outside that list is refused,
    never coded as missing: :class:`WorldFileError` naming the file, column, rule and fix."""
    branch_list = pd.Index(w["branches"]["sbi"].astype(str))
    code = branch_list.get_indexer(pd.Index(sbi.astype(str)))
    if (code < 0).any():
        unknown = sorted(set(sbi.astype(str)[code < 0]))
        raise WorldFileError(
            f"establishments.parquet: column sbi: references branches.sbi: {len(unknown)} SBI "
            f"code(s) not in branches.parquet, e.g. {unknown[:3]}; fix: add them to "
            "branches.parquet or correct the establishments (`zicht world validate` lists "
            "every problem)"
        )
    return code


def cell_labels(w: WorldFrames, cells: pd.DataFrame, t: int) -> np.ndarray:
    """log(1 + turnover per inhabitant) of the cell in year t; empty without inhabitants."""
    cur = _cell_turnover(w, t).set_index(["level", "area_code", "sbi"])
    key = pd.MultiIndex.from_frame(cells[["level", "area_code", "sbi"]])
    turnover = cur["turnover"].reindex(key).fillna(0).to_numpy(np.float64)
    stats = w["area_stats"]
    inh = stats[stats["year"] == t].set_index("area_code")["inhabitants"].astype(np.float64)
    n = inh.reindex(cells["area_code"]).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.log1p(turnover / n), np.nan).astype(np.float32)
