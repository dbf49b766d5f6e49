"""Evaluation metrics exactly as CONTRACT.md defines them. Pure: arrays in, floats out.

Classification: ROC AUC, PR AUC, Brier (and its skill against the base rate), log loss, ECE
on 10 equal-count bins, capture@k (recall among the top k% of units by score), and PAI at
10% of land area (buurten ranked by predicted events per km²). Regression (turnover, on
log(1 + turnover per inhabitant)): RMSE, MAE and R², and anomaly precision/recall at k.

**One sort.** Every classification metric that depends on the order of the scores reads it
from one :class:`Ranked`: the labels and scores sorted once by score (stable, so tied scores
keep their input order). ROC AUC and PR AUC come from the positives and negatives per
distinct score (ties count as sklearn counts them), capture@k from the top of the order, ECE
from equal-count slices of it; a subset (a fold, an age group, the hold-out) keeps the order
of the whole, so a whole evaluation sorts each score once, not once per metric and fold.
PAI sums per buurt with ``bincount`` on integer area codes (:class:`AreaCodes`), never on
strings. The values are those of sklearn's ``roc_auc_score`` and ``average_precision_score``
and of the plain definitions (tests compare them on random data with ties).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, r2_score

EPS = 1e-12


@dataclass(frozen=True, eq=False)
class Ranked:
    """Labels and scores sorted once by score (ascending; ties in input order).

    ``order`` holds each sorted element's position in the input arrays, so metrics that
    group units (PAI per buurt) and subsets (:meth:`subset`) refer back to the input rows.
    """

    order: np.ndarray
    y: np.ndarray  # labels (0/1, float64) in score order
    p: np.ndarray  # scores (float64), ascending

    @classmethod
    def of(cls, y: np.ndarray, score: np.ndarray, *, positions: np.ndarray | None = None) -> Ranked:
        """Sort *score* once (stable); *y* are 0/1 labels aligned with it. *positions*
        (increasing) name the units' rows in a larger table that masks and area codes then
        refer to (default: 0, 1, ...)."""
        score = np.asarray(score, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if score.shape != y.shape or score.ndim != 1:
            raise ValueError(f"labels {y.shape} and scores {score.shape} must be 1-d and aligned")
        if np.isnan(score).any():
            raise ValueError(
                f"{int(np.isnan(score).sum())} score(s) are NaN; metrics need a score per unit"
            )
        order = np.argsort(score, kind="stable")
        at = order if positions is None else np.asarray(positions)[order]
        return cls(at, y[order], score[order])

    def __len__(self) -> int:
        return len(self.p)

    def subset(self, mask: np.ndarray) -> Ranked:
        """The units where *mask* (over the input positions) is true, still sorted: no sort."""
        keep = np.asarray(mask, dtype=bool)[self.order]
        return Ranked(self.order[keep], self.y[keep], self.p[keep])

    def clipped(self, lo: float, hi: float) -> Ranked:
        """Scores clipped to [lo, hi] (as the metrics see probabilities). Clipping is monotone,
        so the order stands; only the scores that become tied at either end are put back in
        input order, as a sort of the clipped scores would leave them."""
        p = np.clip(self.p, lo, hi)
        order, y = self.order.copy(), self.y.copy()
        n_lo = int(np.searchsorted(p, lo, side="right"))
        n_hi = len(p) - int(np.searchsorted(p, hi, side="left"))
        for part in (slice(0, n_lo), slice(len(p) - n_hi, len(p))):
            if part.stop - part.start > 1:
                by_input = np.argsort(order[part], kind="stable")
                order[part], y[part] = order[part][by_input], y[part][by_input]
        return Ranked(order, y, p)

    # ------------------------------------------------------------------ tie groups

    @cached_property
    def _groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first sorted position, units, positives) of every distinct score, ascending."""
        n = len(self.p)
        if n == 0:
            empty = np.zeros(0)
            return np.zeros(0, dtype=np.int64), empty, empty
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(self.p[1:], self.p[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        units = np.diff(np.append(starts, n)).astype(np.float64)
        return starts, units, np.add.reduceat(self.y, starts)

    @property
    def n_pos(self) -> float:
        return float(self.y.sum())

    # ------------------------------------------------------------------ metrics

    def roc_auc(self) -> float:
        """ROC AUC (tied scores count one half: the area under sklearn's ROC curve)."""
        _, units, pos = self._groups
        neg = units - pos
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float(np.sum(pos * (below + 0.5 * neg)) / (n_pos * n_neg))

    def average_precision(self) -> float:
        """PR AUC as sklearn's ``average_precision_score``: precision at each distinct score
        (from the top), weighted by the recall it adds."""
        _, units, pos = self._groups
        n_pos = pos.sum()
        if n_pos == 0:
            return float("nan")
        pos_d, units_d = pos[::-1], units[::-1]
        precision = np.cumsum(pos_d) / np.cumsum(units_d)
        return float(np.sum(pos_d * precision) / n_pos)

    def capture_at(self, k: float) -> float:
        """Share of all positives among the top ``ceil(k * n)`` units by score; ties at the cut
        are taken in input order (as a stable sort of the negated scores takes them)."""
        n, n_pos = len(self.p), self.n_pos
        if n_pos == 0:
            return float("nan")
        top = int(np.ceil(k * n))
        if top <= 0:
            return 0.0
        if top >= n:
            return 1.0
        starts, units, pos = self._groups
        seen = np.cumsum(units[::-1])  # units at or above each distinct score, from the top
        j = int(np.searchsorted(seen, top, side="left"))  # the tie group the cut falls in
        g = len(starts) - 1 - j  # its index in ascending order
        above = float(pos[g + 1 :].sum())
        taken = top - int(seen[j] - units[g])
        caught = above + float(self.y[starts[g] : starts[g] + taken].sum())
        return caught / n_pos

    def bins(self, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(units, sum of scores, sum of labels) of *n_bins* equal-count slices of the order
        (``np.array_split`` sizes: the first ``n % n_bins`` one larger); empty ones dropped."""
        n = len(self.p)
        size = np.full(n_bins, n // n_bins, dtype=np.int64)
        size[: n % n_bins] += 1
        size = size[size > 0]
        if not len(size):
            return np.zeros(0), np.zeros(0), np.zeros(0)
        starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        return (
            size.astype(np.float64),
            np.add.reduceat(self.p, starts),
            np.add.reduceat(self.y, starts),
        )

    def ece(self, n_bins: int = 10) -> float:
        """ECE on *n_bins* equal-count bins: the count-weighted mean |observed - predicted|."""
        units, sum_p, sum_y = self.bins(n_bins)
        n = len(self.p)
        return float(np.sum(units / n * np.abs(sum_y / units - sum_p / units)))

    def y_descending(self) -> np.ndarray:
        """The labels in descending score order, ties in input order (the order of a stable
        sort of the negated scores), without sorting again."""
        starts, units, _ = self._groups
        n = len(self.p)
        ends = starts + units.astype(np.int64)
        g = np.repeat(np.arange(len(starts)), units.astype(np.int64))
        pos = n - ends[g] + (np.arange(n) - starts[g])
        out = np.empty(n, dtype=np.float64)
        out[pos] = self.y
        return out


@dataclass(frozen=True, eq=False)
class AreaCodes:
    """Every unit's buurt as an integer code, and the land area (km²) per code.

    Codes follow the sorted buurt codes, so code order is the order of the buurt codes (PAI
    breaks ties between buurten by it); a buurt without a known area has NaN.
    """

    codes: np.ndarray  # int64, per unit
    km2: np.ndarray  # float64, per code

    @classmethod
    def of(cls, buurt: np.ndarray | pd.Series, area_km2: Mapping[str, float]) -> AreaCodes:
        column = pd.Series(buurt) if not isinstance(buurt, pd.Series) else buurt
        if isinstance(column.dtype, pd.CategoricalDtype):
            names = np.array([str(c) for c in column.cat.categories], dtype=object)
            by_name = np.argsort(names, kind="stable")
            rank = np.empty(len(names), dtype=np.int64)
            rank[by_name] = np.arange(len(names))
            raw = column.cat.codes.to_numpy()
            if (raw < 0).any():
                raise ValueError("buurt_code: missing buurt codes; every unit needs its buurt")
            codes, names = rank[raw], names[by_name]
        else:
            codes, uniques = pd.factorize(column.astype(str), sort=True)
            names = np.asarray(uniques, dtype=object)
        km2 = pd.Series(area_km2, dtype=np.float64).reindex(names).to_numpy(np.float64)
        return cls(codes.astype(np.int64), km2)


def pai_codes(
    y: np.ndarray, p: np.ndarray, codes: np.ndarray, km2: np.ndarray, share: float = 0.10
) -> float:
    """PAI at *share* of land area from integer buurt *codes* (indices into *km2*): see
    :func:`pai_at`."""
    k = len(km2)
    units = np.bincount(codes, minlength=k)
    ys = np.bincount(codes, weights=np.asarray(y, dtype=np.float64), minlength=k)
    ps = np.bincount(codes, weights=np.asarray(p, dtype=np.float64), minlength=k)
    ok = (units > 0) & (km2 > 0)  # NaN (unknown area) is not > 0
    ys, ps, area = ys[ok], ps[ok], km2[ok]
    total_y, total_area = ys.sum(), area.sum()
    if total_y == 0 or total_area == 0:
        return float("nan")
    rank = np.argsort(-(ps / area), kind="stable")  # ties: by buurt code
    ys, area = ys[rank], area[rank]
    budget = share * total_area
    cum_before = np.cumsum(area) - area
    take = np.clip((budget - cum_before) / area, 0.0, 1.0)
    return float((ys * take).sum() / total_y) / share


def capture_at(y: np.ndarray, score: np.ndarray, k: float) -> float:
    """Share of all positives among the top *k* (fraction) of units by *score* (recall@k).

    Ties at the cut are broken by a stable order of the scores, so the top set has exactly
    ``ceil(k * n)`` units.
    """
    return Ranked.of(y, score).capture_at(k)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE on *bins* equal-count bins: the count-weighted mean |observed - predicted|."""
    return Ranked.of(y, p).ece(bins)


def pai_at(
    y: np.ndarray,
    p: np.ndarray,
    buurt: np.ndarray,
    area_km2: Mapping[str, float],
    share: float = 0.10,
) -> float:
    """Predictive accuracy index at *share* of land area.

    Buurten are ranked by predicted events per km² (sum of *p* / land area); the top buurten
    that together cover *share* of the land area are taken (the last one partly, by its
    area); PAI = their share of all positives ÷ their share of the area.
    """
    areas = AreaCodes.of(buurt, area_km2)
    return pai_codes(y, p, areas.codes, areas.km2, share)


def classification_metrics(
    y: np.ndarray,
    p: np.ndarray,
    *,
    buurt: np.ndarray | None = None,
    area_km2: Mapping[str, float] | None = None,
    oracle: np.ndarray | None = None,
) -> dict[str, float]:
    """The contract's classification metrics for labels *y* and probabilities *p*."""
    y = np.asarray(y).astype(np.int64)
    ranked = Ranked.of(y, np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS))
    areas = AreaCodes.of(buurt, area_km2) if buurt is not None and area_km2 is not None else None
    return ranked_metrics(
        ranked, areas=areas, oracle=None if oracle is None else Ranked.of(y, oracle)
    )


def ranked_metrics(
    ranked: Ranked, *, areas: AreaCodes | None = None, oracle: Ranked | None = None
) -> dict[str, float]:
    """The classification metrics of *ranked* (probabilities already clipped to
    [EPS, 1 - EPS]); *areas* and *oracle* refer to the same input positions (the oracle
    ranked over the same units)."""
    n = len(ranked)
    if n == 0:
        raise ValueError("classification metrics need at least one unit")
    y, p = ranked.y, ranked.p
    n_pos = ranked.n_pos
    both = 0 < n_pos < n
    out: dict[str, float] = {}
    out["roc_auc"] = ranked.roc_auc() if both else float("nan")
    out["pr_auc"] = ranked.average_precision() if both else float("nan")
    out["brier"] = float(np.mean((y - p) ** 2))
    base = n_pos / n
    ref = base * (1 - base)
    out["brier_skill"] = float(1 - out["brier"] / ref) if ref > 0 else float("nan")
    out["log_loss"] = float(-np.mean(np.where(y == 1, np.log(p), np.log(1 - p))))
    out["ece"] = ranked.ece()
    for k, name in ((0.01, "1pct"), (0.05, "5pct"), (0.10, "10pct")):
        out[f"capture_at_{name}"] = ranked.capture_at(k)
    if areas is not None:
        out["pai_at_10pct"] = pai_codes(y, p, areas.codes[ranked.order], areas.km2)
    if oracle is not None and both:
        if len(oracle) != n:
            raise ValueError(f"oracle ranks {len(oracle)} units, the scores {n}")
        out["oracle_roc_auc"] = oracle.roc_auc()
        ratio = out["roc_auc"] / out["oracle_roc_auc"] if out["oracle_roc_auc"] else np.nan
        out["oracle_ratio"] = float(ratio)
    return out


def regression_metrics(
    y: np.ndarray, pred: np.ndarray, *, oracle: np.ndarray | None = None
) -> dict[str, float]:
    """RMSE, MAE and R² on the log scale, and the oracle's R² when the truth is known."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(pred)
    out = {
        "rmse_log": float(np.sqrt(np.mean((y[ok] - pred[ok]) ** 2))),
        "mae_log": float(mean_absolute_error(y[ok], pred[ok])),
        "r2_log": float(r2_score(y[ok], pred[ok])),
    }
    if oracle is not None:
        o = np.asarray(oracle, dtype=np.float64)
        okk = ok & np.isfinite(o)
        out["oracle_r2_log"] = float(r2_score(y[okk], o[okk]))
    return out


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 · MAD): a z-score that a few anomalies cannot inflate."""
    x = np.asarray(x, dtype=np.float64)
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    return (x - med) / (mad if mad > 0 else EPS)


#: the largest size class of :func:`size_classes` (cells of 32 or more establishments)
TOP_SIZE_CLASS = 6
#: the fewest cells a size class needs for its own robust z; smaller classes join a neighbour
MIN_CLASS_CELLS = 30


def size_classes(n: np.ndarray) -> np.ndarray:
    """The size class of a cell of *n* establishments: 0 for none, then powers of two (1, 2-3,
    4-7, 8-15, 16-31, 32 or more: classes 1 to 6). The noise of a cell's turnover shrinks about
    as 1/sqrt(n), so cells in one class deviate about equally by chance."""
    n = np.nan_to_num(np.asarray(n, dtype=np.float64), nan=0.0)
    with np.errstate(divide="ignore"):
        cls = np.floor(np.log2(np.maximum(n, 1))) + 1
    return np.where(n >= 1, np.minimum(cls, TOP_SIZE_CLASS), 0).astype(np.int64)


def merged_classes(classes: np.ndarray, *, min_cells: int = MIN_CLASS_CELLS) -> np.ndarray:
    """*classes* (ordered integers) with every class of fewer than *min_cells* members joined
    to the next larger one (the last to the one before), so that each has a stable median and
    MAD; when all together are fewer than *min_cells*, one class."""
    classes = np.asarray(classes, dtype=np.int64)
    values, counts = np.unique(classes, return_counts=True)
    group = np.zeros(len(values), dtype=np.int64)
    g, filled = 0, 0
    for i, c in enumerate(counts):
        group[i] = g
        filled += c
        if filled >= min_cells:
            g, filled = g + 1, 0
    if filled and g > 0:  # the last classes fell short: they join the group before
        group[group == g] = g - 1
    return group[np.searchsorted(values, classes)]


def robust_z_within(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """:func:`robust_z` computed separately within each group of *groups*."""
    x = np.asarray(x, dtype=np.float64)
    groups = np.asarray(groups)
    z = np.full(len(x), np.nan)
    for g in np.unique(groups):
        m = groups == g
        z[m] = robust_z(x[m])
    return z


def anomaly_at_k(
    truth: np.ndarray, score: np.ndarray, k: int, *, among: np.ndarray | None = None
) -> tuple[float, float]:
    """Precision and recall of the *k* highest scores against the planted anomalies.

    With *among* (a subset of the anomalies, e.g. one kind), the recall is that subset's:
    the share of it among the *k* highest scores (the precision stays that of all *truth*).
    """
    truth = np.asarray(truth, dtype=bool)
    among = truth if among is None else np.asarray(among, dtype=bool) & truth
    if k <= 0 or truth.sum() == 0:
        return float("nan"), float("nan")
    order = np.argsort(
        -np.nan_to_num(np.asarray(score, dtype=np.float64), nan=-np.inf), kind="stable"
    )[:k]
    recall = among[order].sum() / among.sum() if among.any() else float("nan")
    return float(truth[order].sum() / k), float(recall)
