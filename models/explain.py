"""SHAP for every model of the zoo: exact values, binned global views and area driver profiles.

Pure: fitted estimators and arrays in, arrays and small frames out; no plotting, no files.

**What is explained.** The model's *raw* output:

* ``lightgbm``: the booster's raw score (log-odds for ``hennep`` and ``jonge_aanwas``),
  through LightGBM's native TreeSHAP (``pred_contrib``), which ``shap.TreeExplainer``
  reproduces exactly (a test checks it to 1e-6);
* ``histgb``: the raw score (log-odds) through ``shap.TreeExplainer``;
* ``tree``: the decision tree's output (the leaf's event rate; a tree has no log-odds)
  through ``shap.TreeExplainer``;
* ``logistic``: the decision function (log-odds) through ``shap.LinearExplainer``, relative
  to the training mean (the scaler centres every column, so the training mean is 0 and
  each feature's value is ``coef × scaled value``). A feature's missing-value indicator
  is added to the feature it belongs to.

In every case ``base + values.sum(axis=1)`` equals the raw output (additivity is tested).
The calibration map (:mod:`models.calibration`) is monotone and separate; it is not
explained.

**Driver indicator.** A feature's *indicator* is present for a unit when the unit's value
lies in the feature's risk-raising range: the value bins (see :func:`binned_summary`) whose
mean SHAP is positive. For a 0/1 feature with a positive effect that is "value 1"; for a
continuous one, e.g. "household income in its lowest bins". Area profiles report, per top
driver, the share of the area's units with the indicator against the national share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from microdata.vocab import AREA_CODE_COLUMN, AREA_LEVELS

#: Bins per feature of the binned summary and dependence views (fewer for few values).
N_BINS = 10


class ExplainError(ValueError):
    """The model cannot be explained (an unknown kind of estimator, mismatched features)."""


@dataclass(frozen=True)
class ShapValues:
    """Exact SHAP values of a set of units (secure zone: never logged as rows)."""

    values: np.ndarray  # (n, p) float64
    base: float
    data: np.ndarray  # (n, p) the feature values explained
    features: tuple[str, ...]
    output: str  # "log-odds", "probability" or "raw"

    def raw(self) -> np.ndarray:
        """The explained output, rebuilt from the values: ``base + Σ values``."""
        return self.base + self.values.sum(axis=1)

    def to_frame(self) -> pd.DataFrame:
        """Tidy long frame: ``row``, ``feature``, ``value``, ``shap`` (unit level: secure)."""
        n, p = self.values.shape
        return pd.DataFrame(
            {
                "row": np.repeat(np.arange(n), p),
                "feature": np.tile(np.asarray(self.features, dtype=object), n),
                "value": self.data.astype(np.float64).ravel(),
                "shap": self.values.ravel(),
            }
        )

    def to_explanation(self) -> Any:
        """The same values as a ``shap.Explanation`` (for shap's own tools, in the secure zone)."""
        import shap

        return shap.Explanation(
            values=self.values,
            base_values=np.full(len(self.values), self.base),
            data=self.data,
            feature_names=list(self.features),
        )


def explain(model: Any, X: np.ndarray, features: Sequence[str], *, n_jobs: int = 2) -> ShapValues:
    """Exact SHAP values of *model* on *X* (columns in the order of *features*)."""
    X = np.asarray(X, dtype=np.float32)
    features = tuple(features)
    if X.ndim != 2 or X.shape[1] != len(features):
        raise ExplainError(f"X has shape {X.shape}, but {len(features)} features were named")
    if isinstance(model, lgb.LGBMModel):
        contrib = model.booster_.predict(X, pred_contrib=True, num_threads=n_jobs)
        contrib = np.asarray(contrib, dtype=np.float64)
        output = "log-odds" if isinstance(model, lgb.LGBMClassifier) else "raw"
        return ShapValues(contrib[:, :-1], float(contrib[0, -1]), X, features, output)
    if isinstance(model, Pipeline):
        head = model.steps[-1][1]
        Z = model[:-1].transform(X)
        name = type(head).__name__
        if name.startswith("DecisionTree"):
            return _tree(head, np.asarray(Z, dtype=np.float64), X, features)
        if hasattr(head, "coef_"):
            return _linear(model, head, np.asarray(Z, dtype=np.float64), X, features)
    name = type(model).__name__
    if name.startswith("HistGradientBoosting"):
        return _hist(model, X, features)
    raise ExplainError(f"cannot explain a {type(model).__name__}; the zoo's models only")


def _tree(head: Any, Z: np.ndarray, X: np.ndarray, features: tuple[str, ...]) -> ShapValues:
    import shap

    explainer = shap.TreeExplainer(head)
    vals = np.asarray(explainer.shap_values(Z, check_additivity=False), dtype=np.float64)
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    if vals.ndim == 3:  # classifier: (n, p, classes); explain the event class
        vals, b = vals[:, :, 1], float(base[1])
        output = "probability"
    else:
        b, output = float(base[0]), "raw"
    return ShapValues(vals, b, X, features, output)


def _hist(model: Any, X: np.ndarray, features: tuple[str, ...]) -> ShapValues:
    import shap

    explainer = shap.TreeExplainer(model)
    vals = np.asarray(
        explainer.shap_values(X.astype(np.float64), check_additivity=False), dtype=np.float64
    )
    if vals.ndim == 3:
        vals = vals[:, :, -1]
    base = float(np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))[-1])
    output = "log-odds" if hasattr(model, "classes_") else "raw"
    return ShapValues(vals, base, X, features, output)


def _linear(
    pipe: Pipeline, head: Any, Z: np.ndarray, X: np.ndarray, features: tuple[str, ...]
) -> ShapValues:
    import shap

    p = len(features)
    # the scaler centres every column on the training data, so the training mean of Z is 0:
    # an independent masker at 0 gives phi = coef * z, exactly the interventional SHAP value
    explainer = shap.LinearExplainer(head, shap.maskers.Independent(np.zeros((1, Z.shape[1]))))
    phi = np.asarray(explainer.shap_values(Z), dtype=np.float64)
    if phi.ndim == 3:
        phi = phi[:, :, -1]
    values = phi[:, :p].copy()
    imputer = pipe.steps[0][1]
    indicator = getattr(imputer, "indicator_", None)
    if indicator is not None and phi.shape[1] > p:
        for k, j in enumerate(indicator.features_):
            values[:, j] += phi[:, p + k]
    base = float(np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))[-1])
    output = "log-odds" if hasattr(head, "predict_proba") else "raw"
    return ShapValues(values, base, X, features, output)


def raw_output(model: Any, X: np.ndarray) -> np.ndarray:
    """The output that :func:`explain` explains (for additivity checks)."""
    X = np.asarray(X, dtype=np.float32)
    if isinstance(model, lgb.LGBMModel):
        return np.asarray(model.predict(X, raw_score=True), dtype=np.float64)
    if isinstance(model, Pipeline):
        head = model.steps[-1][1]
        if type(head).__name__.startswith("DecisionTree"):
            out = model.predict_proba(X)[:, 1] if hasattr(head, "predict_proba") else None
            return np.asarray(out if out is not None else model.predict(X), dtype=np.float64)
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(X), dtype=np.float64)
    return np.asarray(model.predict(X), dtype=np.float64)


# --------------------------------------------------------------------------- global views


def global_importance(sv: ShapValues) -> pd.DataFrame:
    """``feature``, ``mean_abs_shap``, ``rank`` (1 = most important), ``units`` explained."""
    imp = np.abs(sv.values).mean(axis=0)
    order = np.argsort(-imp, kind="stable")
    rank = np.empty(len(imp), dtype=np.int64)
    rank[order] = np.arange(1, len(imp) + 1)
    frame = pd.DataFrame(
        {"feature": list(sv.features), "mean_abs_shap": imp, "rank": rank, "units": len(sv.values)}
    )
    return frame.sort_values("rank", kind="stable").reset_index(drop=True)


def value_bins(x: np.ndarray, *, n_bins: int = N_BINS, min_count: int = 10) -> np.ndarray:
    """Bin index of every value: quantile bins (each >= *min_count* units); -1 for missing.

    Few distinct values get a bin each; neighbouring bins merge until every bin holds at
    least *min_count* units, so no bin describes a single unit.
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    out = np.full(len(x), -1, dtype=np.int64)
    if not finite.any():
        return out
    xf = x[finite]
    edges = _bin_edges(xf, np.unique(xf), n_bins)
    idx = np.searchsorted(edges, xf, side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    out[finite] = _merge_small(counts, min_count)[idx]
    return out


def _bin_edges(xf: np.ndarray, uniq: np.ndarray, n_bins: int) -> np.ndarray:
    """Upper-exclusive bin edges of the finite values *xf* (sorted unique values *uniq*)."""
    if len(uniq) <= n_bins:
        return uniq[1:]
    return np.unique(np.quantile(xf, np.linspace(0, 1, n_bins + 1)[1:-1]))


def _merge_small(counts: np.ndarray, min_count: int) -> np.ndarray:
    """New bin of each raw bin: small bins merge into a neighbour, walking left to right and
    carrying a small remainder; a small tail joins the last full bin."""
    new = np.empty(len(counts), dtype=np.int64)
    current, acc = 0, 0
    for b, c in enumerate(counts):
        new[b] = current
        acc += c
        if acc >= min_count:
            current, acc = current + 1, 0
    if acc and current > 0:
        new[new == current] = current - 1
    return new


#: ``category`` label of the pooled bin of categories that each hold fewer than min_count units
OTHER_CATEGORIES = "other categories"


def category_bins(
    x: np.ndarray, *, min_count: int = 10
) -> tuple[np.ndarray, dict[int, float | None]]:
    """Bins of a categorical feature: one per category code, never ordered or merged with a
    neighbour. Categories with fewer than *min_count* units share one pooled bin (code
    ``None``). Returns each unit's bin (-1: missing) and ``{bin: code}``.
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    out = np.full(len(x), -1, dtype=np.int64)
    codes, inverse, counts = np.unique(x[finite], return_inverse=True, return_counts=True)
    big = counts >= min_count
    mapping: dict[int, float | None] = {}
    bin_of = np.empty(len(codes), dtype=np.int64)
    for b, c in enumerate(codes[big]):
        mapping[b] = float(c)
    bin_of[big] = np.arange(int(big.sum()))
    if (~big).any():
        pooled = int(big.sum())
        mapping[pooled] = None
        bin_of[~big] = pooled
    out[finite] = bin_of[inverse]
    return out, mapping


def _category_label(code: float | None, names: Sequence[str]) -> str:
    if code is None:
        return OTHER_CATEGORIES
    k = int(code)
    return names[k] if 0 <= k < len(names) else str(k)


def binned_summary(
    sv: ShapValues,
    *,
    features: Sequence[str] | None = None,
    min_count: int = 10,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Per feature and value bin: units, mean value, mean and SD of SHAP (aggregates only).

    Columns ``feature``, ``bin`` (-1 = missing), ``units``, ``value_mean``, ``value_rank``
    (the bin's position among the feature's units, 0..1, for colouring), ``shap_mean``,
    ``shap_sd`` and ``category``. A feature named in *categories* (feature -> category
    names, code *i* meaning ``names[i]``) is binned per category (:func:`category_bins`):
    ``category`` holds the category's name, ``value_rank`` is empty (categories have no
    order). Bins under *min_count* units are left out, so every row rests on at least
    *min_count* units.
    """
    names = list(features) if features is not None else list(sv.features)
    categories = categories or {}
    pos = {f: i for i, f in enumerate(sv.features)}
    parts = []
    for f in names:
        j = pos[f]
        x = sv.data[:, j].astype(np.float64)
        labels: dict[int, str] = {}
        if f in categories:
            b, mapping = category_bins(x, min_count=min_count)
            labels = {k: _category_label(c, categories[f]) for k, c in mapping.items()}
        else:
            b = value_bins(x, min_count=min_count)
        frame = pd.DataFrame({"bin": b, "x": x, "s": sv.values[:, j]})
        g = frame.groupby("bin", sort=True)
        agg = pd.DataFrame(
            {
                "units": g.size(),
                "value_mean": g["x"].mean(),
                "shap_mean": g["s"].mean(),
                "shap_sd": g["s"].std(ddof=0),
            }
        ).reset_index()
        agg = agg[agg["units"] >= min_count]
        agg["value_rank"] = np.nan
        agg["category"] = None
        if f in categories:
            agg["category"] = [labels.get(int(k), "missing") for k in agg["bin"]]
            agg.loc[agg["category"] == OTHER_CATEGORIES, "value_mean"] = np.nan
        else:
            seen = agg[agg["bin"] >= 0]
            cum = seen["units"].cumsum() - seen["units"] / 2
            agg.loc[seen.index, "value_rank"] = (cum / max(seen["units"].sum(), 1)).to_numpy()
        agg.insert(0, "feature", f)
        parts.append(agg)
    cols = [
        "feature",
        "bin",
        "units",
        "value_mean",
        "value_rank",
        "shap_mean",
        "shap_sd",
        "category",
    ]
    return pd.concat(parts, ignore_index=True)[cols]


# --------------------------------------------------------------------------- area profiles


def indicators(
    sv: ShapValues,
    X_all: np.ndarray,
    *,
    min_count: int = 10,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """Boolean (n_all, p): each unit's value lies in the feature's risk-raising range.

    The range is learnt on the explained units *sv* (the bins with positive mean SHAP) and
    applied to every unit of *X_all*, so prevalences count all units, not a sample. A
    feature named in *categories* has a risk-raising *set* of categories, never a range:
    its bins are :func:`category_bins` (a category not seen among the explained units
    takes the pooled bin's sign).
    """
    if not categories or not set(categories) & set(sv.features):
        # no categorical feature: the ranges that a cluster learns too (ValueStats add up)
        return indicator_ranges(value_stats(sv), min_count=min_count).apply(X_all)
    X_all = np.asarray(X_all, dtype=np.float64)
    categories = categories or {}
    out = np.zeros(X_all.shape, dtype=bool)
    for j, name in enumerate(sv.features):
        x = sv.data[:, j].astype(np.float64)
        finite = np.isfinite(x)
        s = sv.values[:, j]
        if not finite.any():
            continue
        xa = X_all[:, j]
        fa = np.isfinite(xa)
        if name in categories:
            b, mapping = category_bins(x, min_count=min_count)
            nb = len(mapping)
            sums = np.bincount(b[finite], weights=s[finite], minlength=nb)
            cnt = np.bincount(b[finite], minlength=nb)
            positive = sums / np.maximum(cnt, 1) > 0
            pooled = next((k for k, c in mapping.items() if c is None), None)
            rising = {c for k, c in mapping.items() if c is not None and positive[k]}
            out[fa, j] = np.isin(xa[fa], list(rising))
            if pooled is not None and positive[pooled] and cnt[pooled] >= min_count:
                known = [c for c in mapping.values() if c is not None]
                out[fa, j] |= ~np.isin(xa[fa], known)
        else:
            b = value_bins(x, min_count=min_count)
            nb = int(b.max()) + 1
            sums = np.bincount(b[finite], weights=s[finite], minlength=nb)
            cnt = np.bincount(b[finite], minlength=nb)
            positive = sums / np.maximum(cnt, 1) > 0
            # bin upper edges on the explained sample, applied to all units
            upper = np.array([x[finite][b[finite] == k].max() for k in range(nb)])
            k = np.minimum(np.searchsorted(upper, xa[fa], side="left"), nb - 1)
            out[fa, j] = positive[k]
        miss = ~finite
        if miss.sum() >= min_count and not fa.all():
            out[~fa, j] = s[miss].mean() > 0
    return out


@dataclass(frozen=True)
class ValueStats:
    """Per feature, what :func:`indicators` learns from: the explained units' distinct finite
    values (sorted) with their unit counts and SHAP sums, and the missing values' count and
    SHAP sum. Stats of disjoint sets of units add up (:func:`merge_value_stats`), so a
    cluster can learn the same ranges as one process without gathering unit rows."""

    values: tuple[np.ndarray, ...]
    counts: tuple[np.ndarray, ...]
    shap_sums: tuple[np.ndarray, ...]
    missing: np.ndarray  # (p,) units with a missing value
    missing_shap: np.ndarray  # (p,) their SHAP sum


def value_stats(sv: ShapValues) -> ValueStats:
    """The :class:`ValueStats` of the explained units *sv*."""
    vals, cnts, sums = [], [], []
    p = len(sv.features)
    missing, missing_shap = np.zeros(p), np.zeros(p)
    for j in range(p):
        x = sv.data[:, j].astype(np.float64)
        finite = np.isfinite(x)
        u, inv, c = np.unique(x[finite], return_inverse=True, return_counts=True)
        vals.append(u)
        cnts.append(c.astype(np.int64))
        sums.append(np.bincount(inv, weights=sv.values[finite, j], minlength=len(u)))
        missing[j] = (~finite).sum()
        missing_shap[j] = sv.values[~finite, j].sum()
    return ValueStats(tuple(vals), tuple(cnts), tuple(sums), missing, missing_shap)


def merge_value_stats(parts: Sequence[ValueStats]) -> ValueStats:
    """The stats of the union of disjoint sets of units."""
    p = len(parts[0].values)
    vals, cnts, sums = [], [], []
    for j in range(p):
        v = np.concatenate([s.values[j] for s in parts])
        u, inv = np.unique(v, return_inverse=True)
        vals.append(u)
        c = np.concatenate([s.counts[j] for s in parts])
        cnts.append(np.bincount(inv, weights=c, minlength=len(u)).astype(np.int64))
        w = np.concatenate([s.shap_sums[j] for s in parts])
        sums.append(np.bincount(inv, weights=w, minlength=len(u)))
    missing = np.sum([s.missing for s in parts], axis=0)
    missing_shap = np.sum([s.missing_shap for s in parts], axis=0)
    return ValueStats(tuple(vals), tuple(cnts), tuple(sums), missing, missing_shap)


@dataclass(frozen=True)
class IndicatorRanges:
    """Per feature the risk-raising range learnt by :func:`indicator_ranges`: the bins'
    upper edges, which bins raise the risk, and whether a missing value does."""

    upper: tuple[np.ndarray, ...]
    positive: tuple[np.ndarray, ...]
    missing: tuple[bool | None, ...]  # None: leave missing values off the indicator

    def apply(self, X_all: np.ndarray) -> np.ndarray:
        """Boolean (n, p): each unit's value lies in the feature's risk-raising range."""
        X_all = np.asarray(X_all, dtype=np.float64)
        out = np.zeros(X_all.shape, dtype=bool)
        for j in range(X_all.shape[1]):
            upper, positive = self.upper[j], self.positive[j]
            if len(upper) == 0:
                continue
            xa = X_all[:, j]
            fa = np.isfinite(xa)
            k = np.minimum(np.searchsorted(upper, xa[fa], side="left"), len(upper) - 1)
            out[fa, j] = positive[k]
            if self.missing[j] is not None and not fa.all():
                out[~fa, j] = self.missing[j]
        return out


def indicator_ranges(stats: ValueStats, *, min_count: int = 10) -> IndicatorRanges:
    """The ranges :func:`indicators` learns, from :class:`ValueStats`: the same quantile
    bins (the sorted values, repeated by their counts, have the quantiles of the units) and
    the bins whose mean SHAP is positive. Missing values count when at least *min_count*
    explained units have one (and are then judged by their mean SHAP)."""
    uppers, positives, missing = [], [], []
    for j, (u, c, s) in enumerate(zip(stats.values, stats.counts, stats.shap_sums, strict=True)):
        if not len(u):
            uppers.append(np.empty(0))
            positives.append(np.empty(0, dtype=bool))
        else:
            edges = _bin_edges(np.repeat(u, c), u, N_BINS)
            idx = np.searchsorted(edges, u, side="right")
            b = _merge_small(np.bincount(idx, weights=c, minlength=len(edges) + 1), min_count)[idx]
            nb = int(b.max()) + 1
            sums = np.bincount(b, weights=s, minlength=nb)
            cnt = np.bincount(b, weights=c, minlength=nb)
            positives.append(sums / np.maximum(cnt, 1) > 0)
            uppers.append(np.array([u[b == k].max() for k in range(nb)]))
        miss = stats.missing[j]
        missing.append(bool(stats.missing_shap[j] / miss > 0) if miss >= min_count else None)
    return IndicatorRanges(tuple(uppers), tuple(positives), tuple(missing))


def _random_rank(
    strata: np.ndarray, random_state: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's seeded random rank within its stratum; (rank, stratum index, stratum sizes)."""
    n = len(strata)
    _, inv, counts = np.unique(strata, return_inverse=True, return_counts=True)
    key = np.random.default_rng(random_state).random(n)
    order = np.lexsort((key, inv))
    start = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(start, counts)
    return rank, inv, counts


def sample_per_area(
    areas: np.ndarray, *, max_per_area: int | None, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of at most *max_per_area* units per area, and each row's weight.

    Returns ``(rows, weight)``: the sampled row positions (sorted) and, per sampled row,
    ``n_area / m_area`` so that weighted sums estimate area totals without bias and add up
    exactly to the units of every area. ``None`` takes every unit (weight 1).
    """
    n = len(areas)
    if max_per_area is None:
        return np.arange(n), np.ones(n)
    rank, inv, counts = _random_rank(areas, random_state)
    rows = np.flatnonzero(rank < max_per_area)
    m = np.minimum(counts, max_per_area)
    return rows, (counts / m)[inv[rows]]


def cap_for_budget(areas: np.ndarray, budget: int) -> int:
    """The largest per-area cap whose sample, Σ min(n_area, cap), stays within *budget*."""
    counts = np.sort(np.unique(areas, return_counts=True)[1])
    lo, hi = 1, int(counts.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(counts, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def stratified_sample(strata: np.ndarray, size: int, *, random_state: int = 0) -> np.ndarray:
    """Row positions of a seeded sample of about *size* rows, proportional within strata."""
    n = len(strata)
    if n <= size:
        return np.arange(n)
    rank, inv, counts = _random_rank(strata, random_state)
    take = np.maximum(1, np.round(counts * size / n)).astype(np.int64)
    return np.flatnonzero(rank < take[inv])


def area_profiles(
    sv: ShapValues,
    weight: np.ndarray,
    areas: pd.DataFrame,
    indicator: np.ndarray,
    all_areas: pd.DataFrame,
    *,
    group: str | None = None,
    top: int = 3,
) -> pd.DataFrame:
    """Mean SHAP per feature, top drivers and their prevalence, per area (secure zone).

    *sv*, *weight* and *areas* describe the explained (sampled) units: their SHAP values,
    their weights from :func:`sample_per_area` (drawn within buurt × *group*, so that the
    weights restore the units of every area and group; checked) and their area codes
    (``buurt_code``, ``wijk_code``, ``gemeente_code``, ``riec_code`` and, when *group* is
    given, that column).
    *indicator* and *all_areas* describe every unit of the population (for ``n`` and the
    prevalences, which are exact counts). Means are weighted, so ``mean × n`` summed over
    the areas of a level equals the national total exactly.
    """
    totals = area_totals(sv, weight, areas, indicator, all_areas, group=group)
    return profiles_from_totals(totals, list(sv.features), group=group, top=top)


def area_totals(
    sv: ShapValues,
    weight: np.ndarray,
    areas: pd.DataFrame,
    indicator: np.ndarray,
    all_areas: pd.DataFrame,
    *,
    group: str | None = None,
) -> pd.DataFrame:
    """The sums behind :func:`area_profiles`, one row per (group, level, area): ``n`` (all
    units), ``wsum`` (the explained units' weights), ``shap__<f>`` (weighted SHAP sums) and
    ``count__<f>`` (units with the indicator). Totals of disjoint sets of units add up, so
    partitions of a cluster can each return their own (``group`` is "total" for all)."""
    feats = list(sv.features)
    p = len(feats)
    groups = [None] if group is None else [None, *sorted(all_areas[group].dropna().unique())]
    rows = []
    for g in groups:
        sel = np.ones(len(areas), dtype=bool) if g is None else (areas[group] == g).to_numpy()
        asel = np.ones(len(all_areas), bool) if g is None else (all_areas[group] == g).to_numpy()
        for level in AREA_LEVELS:
            col = AREA_CODE_COLUMN.get(level)
            if col is not None and col not in all_areas.columns:
                continue
            keys_s = (
                np.zeros(sel.sum(), dtype=object)
                if col is None
                else areas.loc[sel, col].astype(str).to_numpy()
            )
            keys_a = (
                np.zeros(asel.sum(), dtype=object)
                if col is None
                else all_areas.loc[asel, col].astype(str).to_numpy()
            )
            codes, ka = np.unique(keys_a.astype(str), return_inverse=True)
            ks = np.searchsorted(codes, keys_s.astype(str))
            w = weight[sel]
            shap_sum = np.zeros((len(codes), p))
            for j in range(p):
                shap_sum[:, j] = np.bincount(
                    ks, weights=w * sv.values[sel, j], minlength=len(codes)
                )
            counts = np.zeros((len(codes), p))
            ind = indicator[asel]
            for j in range(p):
                counts[:, j] = np.bincount(ka, weights=ind[:, j], minlength=len(codes))
            frame = pd.DataFrame(
                {
                    "group": "total" if g is None else g,
                    "level": level,
                    "area_code": "NL" if col is None else codes,
                    "n": np.bincount(ka, minlength=len(codes)),
                    "wsum": np.bincount(ks, weights=w, minlength=len(codes)),
                }
            )
            shap_cols = pd.DataFrame(shap_sum, columns=[f"shap__{f}" for f in feats])
            count_cols = pd.DataFrame(counts, columns=[f"count__{f}" for f in feats])
            rows.append(pd.concat([frame, shap_cols, count_cols], axis=1))
    return pd.concat(rows, ignore_index=True)


def add_totals(parts: Sequence[pd.DataFrame], *, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The :func:`area_totals` of the union of disjoint sets of units, in the order
    :func:`area_totals` gives (group "total" first, then the levels, then the codes), within
    the *extra* key columns (in order of appearance)."""
    frame = pd.concat(parts, ignore_index=True)
    keys = [*extra, "group", "level", "area_code"]
    out = frame.groupby(keys, sort=False).sum().reset_index()
    level_rank = {lv: i for i, lv in enumerate(AREA_LEVELS)}
    order = pd.DataFrame(
        {
            **{f"x{i}": pd.factorize(out[c])[0] for i, c in enumerate(extra)},
            "g": (out["group"] != "total").astype(int),
            "gv": out["group"],
            "lv": out["level"].map(level_rank),
            "code": out["area_code"],
        }
    )
    idx = order.sort_values(list(order.columns), kind="stable").index
    return out.loc[idx, list(frame.columns)].reset_index(drop=True)


def profiles_from_totals(
    totals: pd.DataFrame, features: list[str], *, group: str | None = None, top: int = 3
) -> pd.DataFrame:
    """Area driver profiles (see :func:`area_profiles`) from :func:`area_totals`."""
    feats = list(features)
    shap_cols = [f"shap__{f}" for f in feats]
    count_cols = [f"count__{f}" for f in feats]
    nl = totals[(totals["group"] == "total") & (totals["level"] == "nederland")]
    national_prev = nl[count_cols].to_numpy(np.float64)[0] / nl["n"].to_numpy()[0]
    rows = []
    for (g, level), part in totals.groupby(["group", "level"], sort=False):
        n_all = part["n"].to_numpy()
        wsum = part["wsum"].to_numpy(np.float64)
        if not np.allclose(wsum, n_all):
            raise ExplainError(
                f"the sample weights do not restore the units of every {level} area; draw "
                "the sample within the smallest area (and group) with sample_per_area"
            )
        mean_shap = part[shap_cols].to_numpy(np.float64) / np.maximum(wsum, 1e-12)[:, None]
        counts = part[count_cols].to_numpy(np.float64)
        m = len(part)
        frame = pd.DataFrame(
            {
                "level": level,
                "area_code": part["area_code"].to_numpy(),
                **({group: g} if group else {}),
                "n": n_all,
            }
        )
        frame = pd.concat(
            [
                frame,
                pd.DataFrame(mean_shap, columns=shap_cols),
                pd.DataFrame(counts, columns=count_cols),
            ],
            axis=1,
        )
        order = np.argsort(-mean_shap, axis=1, kind="stable")[:, :top]
        for k in range(top):
            jk = order[:, k]
            positive = mean_shap[np.arange(m), jk] > 0
            names = np.where(positive, np.asarray(feats, dtype=object)[jk], "")
            cnt = counts[np.arange(m), jk]
            frame[f"driver_{k + 1}"] = names
            frame[f"driver_count_{k + 1}"] = np.where(positive, cnt, np.nan)
            frame[f"driver_prevalence_{k + 1}"] = np.where(
                positive, cnt / np.maximum(n_all, 1), np.nan
            )
            frame[f"driver_national_{k + 1}"] = np.where(positive, national_prev[jk], np.nan)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)
