"""The audit accessor: the only code that reads protected columns, and it returns numbers.

:class:`ProtectedAccess` holds the origin attribute privately and answers questions about
it in aggregate: how strongly does a column determine origin (so the guard can refuse a
relabelled copy, whatever its name)? And the reviewer report's proxy audit
(:meth:`ProtectedAccess.proxy_audit`): how well the model's features predict origin, how
the scores fare per origin group, and whether the scores follow buurten's origin mix more
than the observed rates do. It never returns rows, ids, or a fitted model: only
:class:`ProxyAudit`, whose tables are aggregates over at least ``min_count`` units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.builders import Snapshot, WorldFrames
from features.catalogue import CATALOGUE
from features.world import IdSpace, active_at, id_array
from microdata import vocab
from microdata.schemas import TABLES, is_protected_name

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
        path = Path(world_dir) / spec.file
        t = pq.read_table(path, columns=["person_id", origin])
        ids = id_array(t, path, "person_id")
        categories = list(vocab.PROTECTED_ORIGIN_CATEGORIES)
        codes = pd.Categorical(t.column(origin).to_pandas().astype(str), categories=categories)
        # by person id, sorted: memory follows the rows, not the size of the ids
        order = np.argsort(ids, kind="stable")
        self.__ids = IdSpace(ids[order])
        self.__by_code = np.asarray(codes.codes, dtype=np.int8)[order]

    def __repr__(self) -> str:  # never show the data
        return "ProtectedAccess(<aggregate-only>)"

    def _origin(self, person_ids: np.ndarray) -> np.ndarray:
        """Origin codes of persons by their extract ids (-1: unknown person)."""
        code = self.__ids.codes(person_ids)
        return np.where(code >= 0, self.__by_code[np.maximum(code, 0)], -1).astype(np.int8)

    def _unit_origin(self, w: WorldFrames | None, task: str, frame: pd.DataFrame) -> np.ndarray:
        year = int(frame["year"].iloc[0]) - 1
        if task == "jonge_aanwas":
            return self._origin(frame["person_id"].to_numpy())
        if w is None:
            raise ValueError(f"{task}: the unit's origin needs the world frames (households)")
        # a dwelling takes the origin of its resident household's head; vacant is a group too
        snap = Snapshot(w, year)
        members = active_at(w["household_members"], year)
        heads = members[members["role"].astype(str) == "head"]
        head_of = np.full(w.n_households, -1, dtype=np.int64)
        head_of[heads["household_id"].to_numpy()] = heads["person_id"].to_numpy()
        dw = w.unit_codes("dwelling", frame["dwelling_id"].to_numpy())
        hh = np.where(dw >= 0, snap.dw_household[np.maximum(dw, 0)], -1)
        head = np.where(hh >= 0, head_of[np.maximum(hh, 0)], -1)
        vacant = len(
            vocab.PROTECTED_ORIGIN_CATEGORIES
        )  # vacant dwellings form a group of their own
        origin = self._origin(w.original_ids("person", np.maximum(head, 0)))
        return np.where(head >= 0, origin, vacant)

    def _area_shares(self, w: WorldFrames, year: int, codes: pd.Series) -> np.ndarray:
        snap = Snapshot(w, year)
        live = (snap.person_buurt >= 0) & ~snap.dead
        b = w.buurten
        origin = self._origin(w.original_ids("person", np.flatnonzero(live)))
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

    def stray_copy_scores(self, world_dir: Path) -> dict[tuple[str, str], float]:
        """How strongly each *undeclared* column of the world's tables determines origin:
        ``{(file, column): score}``. A column named like a protected attribute scores 1;
        one in a table with ``person_id`` gets Theil's U of the person's origin given the
        column (seeded sample). Columns of tables without ``person_id`` are judged by name
        only. The reader never hands undeclared columns to a builder; this catches an
        extract that carries a renamed or relabelled copy of origin all the same.
        """
        out: dict[tuple[str, str], float] = {}
        for spec in TABLES.values():
            path = Path(world_dir) / spec.file
            try:
                names = pq.read_schema(path).names
            except (OSError, pa.ArrowInvalid):  # missing or unreadable: the reader says so
                continue
            stray = [c for c in names if c not in spec.columns and not c.startswith("__")]
            for col in stray:
                if is_protected_name(col):
                    out[(spec.file, col)] = 1.0
                elif "person_id" in names and col != "person_id":
                    t = pq.read_table(path, columns=["person_id", col]).to_pandas()
                    if len(t) > SAMPLE_ROWS:
                        t = t.sample(SAMPLE_ROWS, random_state=0)
                    ids = t["person_id"].to_numpy(np.int64)
                    z = self._origin(ids)
                    ok = z >= 0
                    z = z[ok]
                    x = t[col][ok]
                    numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
                    values = x.to_numpy(np.float64) if numeric else pd.factorize(x)[0] * 1.0
                    out[(spec.file, col)] = theils_u(z, values) if len(z) else 0.0
        return out

    def group_names(self, task: str) -> tuple[str, ...]:
        """The origin groups of *task*'s units, in code order (hennep adds vacant dwellings)."""
        names = tuple(vocab.PROTECTED_ORIGIN_CATEGORIES)
        return (*names, "vacant dwelling") if task == "hennep" else names

    def proxy_audit(
        self,
        w: WorldFrames | None,
        task: str,
        frame: pd.DataFrame,
        scores: np.ndarray,
        *,
        features: list[str],
        settings: AuditSettings | None = None,
    ) -> ProxyAudit:
        """The proxy audit of *scores* for the units of *frame* (one reference year).

        *frame* is the task's feature table for that year (meta columns and *features*),
        *scores* the model's predicted probabilities for its rows, in order. *w* (the world
        frames) is needed for hennep, whose units take their household head's origin.
        """
        if task == "branch_turnover":
            raise ValueError(
                "branch_turnover: cells are area × branch, not persons or dwellings; the proxy "
                "audit is unit-level (use copy_scores for the cells' association with origin)"
            )
        if frame["year"].nunique() != 1:
            raise ValueError("proxy_audit: pass one reference year of the feature table")
        if len(scores) != len(frame):
            raise ValueError(f"proxy_audit: {len(scores)} scores for {len(frame)} units")
        origin = self._unit_origin(w, task, frame)
        area = [f for f in features if CATALOGUE[f].level == "area"]
        return proxy_audit(
            origin.astype(np.int64),
            labels=frame["label"].to_numpy(np.float64),
            scores=np.asarray(scores, dtype=np.float64),
            features=frame[features].to_numpy(np.float32),
            area_columns=[features.index(f) for f in area],
            gemeente=frame["gemeente_code"].astype(str).to_numpy(),
            buurt=frame["buurt_code"].astype(str).to_numpy(),
            group_names=self.group_names(task),
            settings=settings or AuditSettings(),
            other_groups=("vacant dwelling",) if task == "hennep" else (),
        )


# ------------------------------------------------------------------ the proxy audit (pure core)


@dataclass(frozen=True)
class AuditSettings:
    """Settings of the proxy audit (named, passed in; never module globals).

    Attributes
    ----------
    min_count:
        Every reported aggregate rests on at least this many units; else it is suppressed.
        A calibration ratio is judged only where the group has this many events too.
    tolerance:
        A group's relative calibration (its predicted ÷ observed events, divided by the
        same ratio nationally) is *material* outside ``[1 / tolerance, tolerance]``.
    n_boot:
        Gemeente bootstrap resamples for the calibration intervals.
    n_folds:
        Gemeente-grouped folds of the proxy model.
    max_rows:
        The proxy model fits on a seeded sample of at most this many units.
    elevated_quantile:
        Scores above this national quantile count as elevated risk (the top decile).
    n_jobs:
        Threads of the proxy models. One: a multiclass booster grows one small tree per group
        and round (8 x 60 per fit), so a second thread mostly waits at OpenMP barriers, and on
        a busy machine each barrier waits for a descheduled thread. On region hennep's hold-out
        year (144,289 units, load about 10 on 2 cores) one proxy took 18 CPU s / 36 s wall with
        one thread against 110 CPU s / 282 s with two, same AUC: the reviewer report stage's
        minutes went there.
    """

    min_count: int = 10
    tolerance: float = 1.25
    n_boot: int = 200
    n_folds: int = 3
    max_rows: int = SAMPLE_ROWS
    elevated_quantile: float = 0.9
    random_state: int = 0
    n_jobs: int = 1


#: How a proxy AUC for origin reads (lower bound of each band; one-vs-rest macro ROC AUC).
#: The conventional discrimination bands (Hosmer & Lemeshow, *Applied Logistic Regression*):
#: below 0.6 the features hardly tell the groups apart; 0.9 and above they nearly copy origin.
PROXY_BANDS = (
    (0.0, "hardly"),
    (0.6, "weakly"),
    (0.7, "moderately"),
    (0.8, "strongly"),
    (0.9, "almost completely"),
)


def proxy_band(auc: float) -> str:
    """The plain word for how well a proxy AUC separates the origin groups."""
    word = PROXY_BANDS[0][1]
    for lower, name in PROXY_BANDS:
        if auc >= lower:
            word = name
    return word


@dataclass(frozen=True)
class ProxyAudit:
    """The proxy audit's aggregates; no rows about units, no fitted model.

    ``proxy``: the reference points of the proxy AUC (one-vs-rest macro ROC AUC for origin,
    cross-validated over gemeenten): ``chance``, ``area features only`` and ``all model
    features``.
    ``groups``: per group, its kind (``origin``, or ``other`` for a group that is not an
    origin group, such as hennep's vacant dwellings), units, mean score, observed rate,
    calibration and its gemeente-bootstrap interval, false-positive rate at the elevated
    threshold with its interval, and ``status``: ``ok``, ``flagged``, ``not judged: …``
    (too few events to judge calibration) or ``suppressed: …`` (too few units to show).
    ``area_gaps``: per origin group, the mean score and observed rate in buurten with a high
    versus a low share of the group (top vs bottom quartile of share), their gaps and the
    difference of the gaps, each with a gemeente-bootstrap interval.
    ``flags``: why the audit flags the model (empty: it passes).
    """

    proxy: pd.DataFrame
    groups: pd.DataFrame
    area_gaps: pd.DataFrame
    flags: tuple[str, ...]
    settings: AuditSettings = field(default_factory=AuditSettings)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def _names(self, status: str, kind: str | None = None) -> tuple[str, ...]:
        g = self.groups
        sel = g["status"].astype(str).str.startswith(status)
        if kind is not None:
            sel &= g["group_kind"] == kind
        return tuple(g.loc[sel, "group"].astype(str))

    @property
    def flagged_origin(self) -> tuple[str, ...]:
        """Origin groups whose calibration is flagged."""
        return self._names("flagged", "origin")

    @property
    def flagged_other(self) -> tuple[str, ...]:
        """Flagged groups that are not origin groups (hennep's vacant dwellings)."""
        return self._names("flagged", "other")

    @property
    def not_judged(self) -> tuple[str, ...]:
        """Groups shown, but with too few events to judge their calibration."""
        return self._names("not judged")

    @property
    def suppressed(self) -> tuple[str, ...]:
        """Groups with too few units to show at all."""
        return self._names("suppressed")

    @property
    def judged_origin(self) -> tuple[str, ...]:
        return tuple(
            n for n in self._names("", "origin") if n not in self.not_judged + self.suppressed
        )

    def headline(self) -> tuple[tuple[str, str], ...]:
        """What the audit found, in plain words: ``(kind, sentence)`` with kind ``flag``,
        ``ok`` or ``note``. Origin groups are named as flagged only when one is."""
        m = self.settings.min_count
        out: list[tuple[str, str]] = []
        if self.flagged_origin:
            out.append(
                (
                    "flag",
                    "Flagged: the scores are miscalibrated for origin group(s) "
                    f"{_join(self.flagged_origin)}, as a direct effect of origin on the label "
                    "would leave them.",
                )
            )
        if self.flagged_other:
            out.append(
                (
                    "flag",
                    f"Flagged: the scores are miscalibrated for {_join(self.flagged_other)} "
                    "(not an origin group).",
                )
            )
        judged = [n for n in self.judged_origin if n not in self.flagged_origin]
        if judged:
            out.append(
                (
                    "ok",
                    f"Passed for {_join(judged)}: no judged origin group's calibration differs "
                    "materially and significantly from the national calibration."
                    if not self.flagged_origin
                    else f"Calibrated for {_join(judged)}.",
                )
            )
        elif not self.flagged_origin:
            out.append(("note", "No origin group had enough events to judge its calibration."))
        if self.not_judged:
            out.append(
                (
                    "note",
                    f"Not judged: {_join(self.not_judged)}: fewer than {m} events, too few "
                    "to say whether the scores are calibrated for them.",
                )
            )
        if self.suppressed:
            out.append(("note", f"Not shown: {_join(self.suppressed)}: fewer than {m} units."))
        return tuple(out)

    def proxy_reading(self) -> str:
        """The proxy AUC against its reference points, in plain language."""
        table = self.proxy.set_index("reference")["roc_auc_ovr_macro"]
        full = float(table.get("all model features", np.nan))
        area = float(table.get("area features only", np.nan))
        if not np.isfinite(full):
            return "Not judged: fewer than two origin groups are large enough to fit a proxy."
        text = (
            f"The model's features tell origin groups apart {proxy_band(full)} "
            f"(AUC {full:.2f}; 0.5 is chance, 1 a perfect copy of origin)."
        )
        if np.isfinite(area):
            extra = full - area
            text += (
                f" Area features alone reach {area:.2f} ({proxy_band(area)}): that much "
                "follows from where people live, which any area figure carries. "
                + (
                    f"The unit-level features add {extra:.2f}."
                    if extra >= 0.005
                    else "The unit-level features add nothing to it."
                )
            )
        return (
            text + " A proxy AUC alone does not make scores unfair; the calibration per group "
            "below says whether the scores serve every group alike."
        )


def _join(names: tuple[str, ...] | list[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _ovr_macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    aucs = []
    for k, c in enumerate(classes):
        pos = y == c
        if 0 < pos.sum() < len(y):
            aucs.append(roc_auc_score(pos, proba[:, k]))
    return float(np.mean(aucs)) if aucs else float("nan")


def proxy_auc(
    origin: np.ndarray,
    X: np.ndarray,
    gemeente: np.ndarray,
    *,
    settings: AuditSettings,
) -> float:
    """Cross-validated (gemeente-grouped) one-vs-rest macro AUC of a small model for origin.

    Only groups with at least ``min_count`` units per fold on average take part; units of
    smaller groups are left out of both fitting and scoring.
    """
    import lightgbm as lgb
    from sklearn.model_selection import GroupKFold

    rng = np.random.default_rng(settings.random_state)
    idx = np.arange(len(origin))
    if len(idx) > settings.max_rows:
        idx = np.sort(rng.choice(idx, settings.max_rows, replace=False))
    y, X, g = origin[idx], X[idx], gemeente[idx]
    values, counts = np.unique(y, return_counts=True)
    keep_classes = values[counts >= settings.min_count * settings.n_folds]
    keep = np.isin(y, keep_classes)
    y, X, g = y[keep], X[keep], g[keep]
    n_folds = min(settings.n_folds, len(np.unique(g)))
    if len(keep_classes) < 2 or n_folds < 2:
        return float("nan")
    proba = np.zeros((len(y), len(keep_classes)))
    for train, test in GroupKFold(n_splits=n_folds).split(X, y, g):
        present = np.unique(y[train])
        model = lgb.LGBMClassifier(
            n_estimators=60,
            num_leaves=15,
            learning_rate=0.1,
            min_child_samples=max(20, settings.min_count),
            subsample=0.8,
            subsample_freq=1,
            random_state=settings.random_state,
            n_jobs=settings.n_jobs,
            verbose=-1,
        )
        if len(present) < 2:
            proba[np.ix_(test, np.searchsorted(keep_classes, present))] = 1.0
            continue
        model.fit(X[train], y[train])
        proba[np.ix_(test, np.searchsorted(keep_classes, present))] = model.predict_proba(X[test])
    return _ovr_macro_auc(y, proba, keep_classes)


def _boot_weights(n_gemeenten: int, settings: AuditSettings) -> np.ndarray:
    """(n_boot, n_gemeenten) multiplicities of a seeded bootstrap over gemeenten."""
    rng = np.random.default_rng(settings.random_state)
    draws = rng.integers(0, n_gemeenten, (settings.n_boot, n_gemeenten))
    return np.stack([np.bincount(d, minlength=n_gemeenten) for d in draws]).astype(np.float64)


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of the finite bootstrap values (NaN when none)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float("nan"), float("nan")
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def _group_table(
    origin: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    gemeente: np.ndarray,
    names: tuple[str, ...],
    other: tuple[str, ...],
    settings: AuditSettings,
) -> pd.DataFrame:
    k = len(names)
    m = settings.min_count
    units = np.bincount(origin, minlength=k).astype(np.float64)
    events = np.bincount(origin, weights=labels, minlength=k)
    predicted = np.bincount(origin, weights=scores, minlength=k)
    national = scores.sum() / max(labels.sum(), 1e-12)
    threshold = np.quantile(scores, settings.elevated_quantile)
    neg = labels == 0
    negatives = np.bincount(origin[neg], minlength=k).astype(np.float64)
    false_pos = np.bincount(origin[neg & (scores > threshold)], minlength=k).astype(np.float64)
    # gemeente x group sums, so a bootstrap resample is one weighted sum
    g_codes, g_idx = np.unique(gemeente, return_inverse=True)
    cell = g_idx * k + origin
    size = len(g_codes) * k

    def per_gemeente(weights: np.ndarray | None, sel: np.ndarray | None = None) -> np.ndarray:
        c = cell if sel is None else cell[sel]
        return np.bincount(c, weights=weights, minlength=size).reshape(-1, k).astype(np.float64)

    pred_gk, obs_gk = per_gemeente(scores), per_gemeente(labels)
    neg_gk, fp_gk = per_gemeente(None, neg), per_gemeente(None, neg & (scores > threshold))
    wts = _boot_weights(len(g_codes), settings)
    p, o = wts @ pred_gk, wts @ obs_gk
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = (p / o) / (p.sum(axis=1) / o.sum(axis=1))[:, None]
        boot_fpr = (wts @ fp_gk) / (wts @ neg_gk)
    rows = []
    for j, name in enumerate(names):
        kind = "other" if name in other else "origin"
        row: dict[str, object] = {"group": name, "group_kind": kind}
        if units[j] < m:  # not even the count is shown
            row["status"] = f"suppressed: fewer than {m} units"
            rows.append(row)
            continue
        row["units"] = int(units[j])
        row["mean_score"] = predicted[j] / units[j]
        row["observed_rate"] = events[j] / units[j]
        if negatives[j] >= m:
            row["fpr_elevated"] = false_pos[j] / negatives[j]
            row["fpr_elevated_lo"], row["fpr_elevated_hi"] = _interval(boot_fpr[:, j])
        if events[j] < m:
            row["status"] = f"not judged: fewer than {m} events"
            rows.append(row)
            continue
        rel = (predicted[j] / events[j]) / national
        lo, hi = _interval(boot[:, j])
        material = rel > settings.tolerance or rel < 1 / settings.tolerance
        significant = lo > 1 or hi < 1
        row.update(
            {
                "calibration": predicted[j] / events[j],
                "relative_calibration": rel,
                "relative_calibration_lo": lo,
                "relative_calibration_hi": hi,
                "flagged": bool(material and significant),
                "status": "flagged" if material and significant else "ok",
            }
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    out["flagged"] = out.get("flagged", pd.Series(False, index=out.index)).fillna(False)
    return out.astype({"flagged": bool})


def _area_gaps(
    origin: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    buurt: np.ndarray,
    gemeente: np.ndarray,
    names: tuple[str, ...],
    other: tuple[str, ...],
    settings: AuditSettings,
) -> pd.DataFrame:
    """Score and observed-rate gaps between buurten with a high and a low share of each origin
    group, with 95% intervals from a bootstrap over gemeenten (the buurten's quartile classes
    stay fixed; each resample reweights whole gemeenten)."""
    m = settings.min_count
    codes, b_idx = np.unique(buurt, return_inverse=True)
    nb, k = len(codes), len(names)
    n = np.bincount(b_idx, minlength=nb).astype(np.float64)
    s = np.bincount(b_idx, weights=scores, minlength=nb)
    o = np.bincount(b_idx, weights=labels, minlength=nb)
    counts = np.bincount(b_idx * k + origin, minlength=nb * k).reshape(nb, k)
    # each buurt's gemeente (a buurt lies in one gemeente)
    g_codes, g_idx = np.unique(gemeente, return_inverse=True)
    buurt_gm = np.zeros(nb, dtype=np.int64)
    buurt_gm[b_idx] = g_idx
    wts = _boot_weights(len(g_codes), settings)
    ok = n >= m  # a buurt's share is only taken where it rests on min_count units
    rows = []
    for j, name in enumerate(names):
        if name in other:
            continue
        share = counts[ok, j] / n[ok]
        row: dict[str, object] = {"group": name}
        if ok.sum() < 4 or counts[:, j].sum() < m:
            row["status"] = f"suppressed: fewer than {m} units or 4 buurten"
            rows.append(row)
            continue
        q25, q75 = np.quantile(share, [0.25, 0.75])
        if q75 <= q25:
            row["status"] = "no contrast: buurten's shares do not differ"
            rows.append(row)
            continue
        high, low = np.zeros(nb, bool), np.zeros(nb, bool)
        high[np.flatnonzero(ok)[share >= q75]] = True
        low[np.flatnonzero(ok)[share <= q25]] = True
        nh, nl = n[high].sum(), n[low].sum()
        if nh < m or nl < m:
            row["status"] = f"suppressed: fewer than {m} units"
            rows.append(row)
            continue
        score_h, score_l = s[high].sum() / nh, s[low].sum() / nl
        obs_h, obs_l = o[high].sum() / nh, o[low].sum() / nl

        def by_gm(values: np.ndarray, sel: np.ndarray) -> np.ndarray:
            return np.bincount(buurt_gm[sel], weights=values[sel], minlength=len(g_codes))

        with np.errstate(divide="ignore", invalid="ignore"):
            bn_h, bn_l = wts @ by_gm(n, high), wts @ by_gm(n, low)
            b_score = wts @ by_gm(s, high) / bn_h - wts @ by_gm(s, low) / bn_l
            b_obs = wts @ by_gm(o, high) / bn_h - wts @ by_gm(o, low) / bn_l
        row.update(
            {
                "buurten_high": int(high.sum()),
                "buurten_low": int(low.sum()),
                "share_high": float(counts[high, j].sum() / nh),
                "share_low": float(counts[low, j].sum() / nl),
                "score_high": score_h,
                "score_low": score_l,
                "observed_high": obs_h,
                "observed_low": obs_l,
                "score_gap": score_h - score_l,
                "score_gap_lo": _interval(b_score)[0],
                "score_gap_hi": _interval(b_score)[1],
                "observed_gap": obs_h - obs_l,
                "observed_gap_lo": _interval(b_obs)[0],
                "observed_gap_hi": _interval(b_obs)[1],
                "excess_gap": (score_h - score_l) - (obs_h - obs_l),
                "excess_gap_lo": _interval(b_score - b_obs)[0],
                "excess_gap_hi": _interval(b_score - b_obs)[1],
                "status": "ok",
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def proxy_audit(
    origin: np.ndarray,
    *,
    labels: np.ndarray,
    scores: np.ndarray,
    features: np.ndarray,
    area_columns: list[int],
    gemeente: np.ndarray,
    buurt: np.ndarray,
    group_names: tuple[str, ...],
    settings: AuditSettings,
    other_groups: tuple[str, ...] = (),
) -> ProxyAudit:
    """The proxy audit from unit-level arrays (pure: arrays in, aggregates out).

    *origin* holds each unit's group code (an index into *group_names*); *other_groups*
    names groups that are not origin groups (hennep's vacant dwellings): they are judged
    like the others but never called an origin group, and have no area gaps. The flag
    rule: a group whose relative calibration (predicted ÷ observed events, over the same
    ratio nationally) is both material (outside ``[1/tolerance, tolerance]``) and
    significant (its 95% gemeente-bootstrap interval excludes 1). A group with fewer than
    ``min_count`` events is *not judged* (said so, never passed). Where origin acts only
    through features the model sees (area, income), the scores are calibrated within every
    group and nothing is flagged; a direct effect of origin on the label leaves the groups
    miscalibrated.
    """
    origin = np.asarray(origin, dtype=np.int64)
    if (origin < 0).any() or (origin >= len(group_names)).any():
        raise ValueError("proxy_audit: an origin code outside the group names")
    unknown = [g for g in other_groups if g not in group_names]
    if unknown:
        raise ValueError(f"proxy_audit: other_groups {unknown} are not among the group names")
    # the proxy predicts origin groups only: units of other groups are left out of it
    is_origin = ~np.isin(origin, [group_names.index(g) for g in other_groups])
    X, y, gm = features[is_origin], origin[is_origin], gemeente[is_origin]
    full = proxy_auc(y, X, gm, settings=settings)
    area = proxy_auc(y, X[:, area_columns], gm, settings=settings) if area_columns else np.nan
    proxy = pd.DataFrame(
        {
            "reference": ["chance", "area features only", "all model features"],
            "features": [0, len(area_columns), features.shape[1]],
            "roc_auc_ovr_macro": [0.5, area, full],
            "units": [len(y), len(y), len(y)],
        }
    )
    groups = _group_table(origin, labels, scores, gemeente, group_names, other_groups, settings)
    gaps = _area_gaps(origin, labels, scores, buurt, gemeente, group_names, other_groups, settings)
    flags = tuple(
        f"{r.group}: predicted ÷ observed events is {r.relative_calibration:.2f} × the national "
        f"ratio (95% gemeente-bootstrap interval {r.relative_calibration_lo:.2f}–"
        f"{r.relative_calibration_hi:.2f}, outside 1/{settings.tolerance}–{settings.tolerance})"
        for r in groups.itertuples()
        if r.flagged
    )
    return ProxyAudit(proxy, groups, gaps, flags, settings)
