"""The audit accessor: the only code that reads protected columns, and it returns numbers.

:class:`ProtectedAccess` holds the origin attribute privately and answers questions about
it in aggregate: how strongly does a column determine origin (so the guard can refuse a
relabelled copy, whatever its name)? Later, the reviewer report's proxy audit lives here
too. It never returns rows, ids, or a fitted model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.builders import Snapshot, WorldFrames
from features.world import active_at
from microdata import vocab
from microdata.schemas import TABLES

#: Theil's U of origin given a column at or above which the column counts as a copy.
COPY_THRESHOLD = 0.9
#: |correlation| with an area's origin share at or above which an area column counts as a copy.
AREA_COPY_THRESHOLD = 0.98
SAMPLE_ROWS = 200_000
N_BINS = 64


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def theils_u(z: np.ndarray, x: np.ndarray) -> float:
    """Uncertainty coefficient U(z | x): the share of z's entropy that x explains (0..1).

    *x* is binned into at most ``N_BINS`` quantile bins when it has more distinct values,
    so a continuous column is judged by how well its ranks separate the groups.
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    xk = np.full(len(x), -1, dtype=np.int64)
    uniq = np.unique(x[finite])
    if len(uniq) <= N_BINS:
        xk[finite] = np.searchsorted(uniq, x[finite])
    else:
        edges = np.unique(np.quantile(x[finite], np.linspace(0, 1, N_BINS + 1)[1:-1]))
        xk[finite] = np.searchsorted(edges, x[finite], side="right")
    xk += 1
    zk = np.unique(z, return_inverse=True)[1]
    hz = _entropy(np.bincount(zk))
    if hz == 0:
        return 0.0
    joint = np.bincount(xk * (zk.max() + 1) + zk)
    hxz = _entropy(joint)
    hx = _entropy(np.bincount(xk))
    return float((hz - (hxz - hx)) / hz)


class ProtectedAccess:
    """Reads ``persons.herkomst`` (and any other protected column) for aggregate audits only."""

    def __init__(self, world_dir: Path) -> None:
        spec = TABLES["persons"]
        # read by the schema's protected mark, not by name: this is the one sanctioned reader
        origin = spec.protected_columns[0]
        t = pq.read_table(Path(world_dir) / spec.file, columns=["person_id", origin]).to_pandas()
        categories = list(vocab.PROTECTED_ORIGIN_CATEGORIES)
        codes = pd.Categorical(t[origin].astype(str), categories=categories).codes
        n = int(t["person_id"].max()) + 1
        self.__origin = np.full(n, -1, dtype=np.int8)
        self.__origin[t["person_id"].to_numpy()] = codes

    def __repr__(self) -> str:  # never show the data
        return "ProtectedAccess(<aggregate-only>)"

    def _unit_origin(self, w: WorldFrames, task: str, frame: pd.DataFrame) -> np.ndarray:
        year = int(frame["year"].iloc[0]) - 1
        if task == "jonge_aanwas":
            return self.__origin[frame["person_id"].to_numpy()]
        # a dwelling takes the origin of its resident household's head; vacant is a group too
        snap = Snapshot(w, year)
        members = active_at(w["household_members"], year)
        heads = members[members["role"].astype(str) == "head"]
        head_of = np.full(w.n_households, -1, dtype=np.int64)
        head_of[heads["household_id"].to_numpy()] = heads["person_id"].to_numpy()
        hh = snap.dw_household[frame["dwelling_id"].to_numpy()]
        head = np.where(hh >= 0, head_of[np.maximum(hh, 0)], -1)
        vacant = len(
            vocab.PROTECTED_ORIGIN_CATEGORIES
        )  # vacant dwellings form a group of their own
        return np.where(head >= 0, self.__origin[np.maximum(head, 0)], vacant)

    def _area_shares(self, w: WorldFrames, year: int, codes: pd.Series) -> np.ndarray:
        snap = Snapshot(w, year)
        live = (snap.person_buurt >= 0) & ~snap.dead
        b = w.buurten
        origin = self.__origin[np.flatnonzero(live)]
        buurt = snap.person_buurt[live]
        frame = pd.DataFrame({"origin": origin, "buurt": buurt})
        out = []
        for level_col in ("area_code", "wijk_code", "gemeente_code"):
            area = b[level_col].astype(str).to_numpy()[buurt]
            tab = pd.crosstab(area, frame["origin"].to_numpy(), normalize="index")
            out.append(tab)
        shares = pd.concat(out)
        return shares.reindex(codes.astype(str)).to_numpy(np.float64)

    def copy_scores(
        self, w: WorldFrames, task: str, frame: pd.DataFrame, columns: list[str]
    ) -> dict[str, float]:
        """How strongly each column determines origin (0: not at all, 1: a relabelled copy).

        Unit-level tasks: Theil's U of the unit's origin given the column, on a seeded
        sample. Area cells: the largest |correlation| with any origin share of the area.
        """
        if len(frame) > SAMPLE_ROWS:
            frame = frame.sample(SAMPLE_ROWS, random_state=0)
        if task == "branch_turnover":
            shares = self._area_shares(w, int(frame["year"].iloc[0]) - 1, frame["area_code"])
            out = {}
            for c in columns:
                x = frame[c].to_numpy(np.float64)
                best = 0.0
                for k in range(shares.shape[1]):
                    s = shares[:, k]
                    ok = np.isfinite(x) & np.isfinite(s)
                    if ok.sum() > 2 and np.std(x[ok]) > 0 and np.std(s[ok]) > 0:
                        best = max(best, abs(float(np.corrcoef(x[ok], s[ok])[0, 1])))
                out[c] = best
            return out
        z = self._unit_origin(w, task, frame)
        return {c: theils_u(z, frame[c].to_numpy()) for c in columns}
