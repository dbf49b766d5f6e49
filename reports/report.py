"""The reviewer report: one self-contained HTML page per task, for the review zone.

The core is pure: :class:`TaskReport` holds aggregates only (gathered by the edge,
:mod:`experiments.report`), and :func:`render_task` / :func:`render_index` turn them into
HTML with the Jinja2 templates in ``reports/templates``. Pages carry no external assets:
CSS is inline and plots are base64 PNG data URIs, redrawn by :mod:`reports.plots` from the
run's binned tables. Every embedded table passes :func:`review_table` first: no column that
looks like a unit id, and no count under ``min_count``.
"""

from __future__ import annotations

import base64
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from features.audit import ProxyAudit
from features.catalogue import CATALOGUE
from features.guard import check_selection, protected_sources
from microdata.schemas import TABLES

TEMPLATES = Path(__file__).parent / "templates"
#: Columns that would identify a unit (person, dwelling, household, establishment, cell).
UNIT_ID = re.compile(r"(^|_)(id|person|dwelling|household|establishment|bsn|rin)(_id)?$", re.I)
#: Columns that carry a count of units, which must be >= min_count where shown.
COUNT_COLUMNS = ("units", "n", "n_units")


class ReviewZoneError(ValueError):
    """A table or figure would put unit-level content into the review zone."""


@dataclass(frozen=True)
class Attestation:
    """That no feature of the run is built from a protected column, from the guard's lineage.

    ``protected``: every ``table.column`` the schemas mark protected. ``checked``: the
    features checked, each with its source columns. ``violations``: features whose
    lineage touches a protected column (empty, or the guard would have refused the run).
    """

    protected: tuple[str, ...]
    checked: tuple[tuple[str, tuple[str, ...]], ...]
    violations: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.violations

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({s for _, srcs in self.checked for s in srcs}))


def attest(features: Sequence[str]) -> Attestation:
    """Run the guard's lineage check over *features* and say what it found."""
    protected = tuple(
        sorted(f"{t}.{c}" for t, spec in TABLES.items() for c in spec.protected_columns)
    )
    violations = tuple(
        f"{n} <- {', '.join(protected_sources(CATALOGUE[n]))}"
        for n in features
        if n in CATALOGUE and protected_sources(CATALOGUE[n])
    )
    if not violations:
        check_selection(features)  # unknown names and protected names raise here
    checked = tuple((n, tuple(CATALOGUE[n].sources)) for n in features)
    return Attestation(protected, checked, violations)


def review_table(frame: pd.DataFrame, *, min_count: int = 10) -> pd.DataFrame:
    """*frame* if it may be shown to reviewers; else :class:`ReviewZoneError`.

    Refused: a column that looks like a unit id, and a count column with a value under
    *min_count* (suppressed counts are missing, not small).
    """
    ids = [c for c in frame.columns if UNIT_ID.search(str(c))]
    if ids:
        raise ReviewZoneError(f"column(s) {ids} look like unit ids: the review zone is aggregate")
    for c in COUNT_COLUMNS:
        if c in frame.columns:
            counts = pd.to_numeric(frame[c], errors="coerce").dropna()
            if (counts < min_count).any():
                raise ReviewZoneError(
                    f"column {c!r} has a count under {min_count}: suppress it before reporting"
                )
    return frame


def round_number(v: object) -> str:
    """A number as a reader wants it: thousands separated, at most 3 decimals, no
    scientific notation (a small rate keeps two significant digits)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
        return str(v)
    x = float(v)
    if isinstance(v, int | np.integer) or (x.is_integer() and abs(x) >= 10):
        return f"{x:,.0f}"
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01:
        return f"{x:.3f}"
    return f"{x:.{max(2, 1 - math.floor(math.log10(a)))}f}"


def interval_text(v: object, lo: object, hi: object) -> str:
    """``0.846 [0.828, 0.873]``: a value with its 95% interval (the value alone without one)."""
    if not _finite(v):
        return "–"
    if not (_finite(lo) and _finite(hi)):
        return round_number(v)
    return f"{round_number(v)} [{round_number(lo)}, {round_number(hi)}]"


def _finite(v: object) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and math.isfinite(float(v))


@dataclass(frozen=True)
class Term:
    """A column or metric as a reviewer reads it: a short label and a definition."""

    label: str
    definition: str


def _age_terms() -> dict[str, Term]:
    out = {}
    for g in ("8_12", "13_19", "20_23"):
        ages = g.replace("_", "–")
        out[f"roc_auc_{g}"] = Term(
            f"ROC AUC, ages {ages}",
            f"ROC AUC within the age group {ages} (a pooled AUC mostly ranks by age).",
        )
        out[f"oracle_ratio_{g}"] = Term(
            f"Oracle ratio, ages {ages}", f"ROC AUC ÷ oracle ROC AUC within the age group {ages}."
        )
    return out


#: Every metric and column a page may show, with its label and definition (the glossary).
GLOSSARY: dict[str, Term] = {
    # discrimination
    "roc_auc": Term(
        "ROC AUC",
        "The chance that a random unit with an event scores higher than a random unit "
        "without one: 0.5 is chance, 1 a perfect ranking.",
    ),
    "pr_auc": Term(
        "PR AUC",
        "Area under the precision–recall curve (average precision); its chance level is the "
        "base rate, not 0.5.",
    ),
    **_age_terms(),
    "r2_log": Term(
        "R² (log scale)",
        "Share of the variance of log(1 + turnover per inhabitant) the model explains.",
    ),
    "rmse_log": Term(
        "RMSE (log scale)", "Root mean squared error on log(1 + turnover per inhabitant)."
    ),
    "mae_log": Term("MAE (log scale)", "Mean absolute error on log(1 + turnover per inhabitant)."),
    # calibration
    "brier": Term(
        "Brier score",
        "Mean squared difference between the predicted probability and the outcome (0/1); "
        "lower is better.",
    ),
    "brier_skill": Term(
        "Brier skill score",
        "1 − Brier ÷ the Brier score of predicting the base rate for everyone: above 0 beats "
        "the base rate, 1 is perfect.",
    ),
    "log_loss": Term(
        "Log loss",
        "Mean negative log-likelihood of the outcomes under the predicted probabilities.",
    ),
    "ece": Term(
        "ECE",
        "Expected calibration error: over 10 equal-count bins of the score, the mean "
        "|mean predicted − observed rate|, weighted by units; 0 is perfectly calibrated.",
    ),
    # operational
    "capture_at_1pct": Term(
        "Capture, top 1%", "Share of all events among the 1% of units with the highest scores."
    ),
    "capture_at_5pct": Term(
        "Capture, top 5%", "Share of all events among the 5% of units with the highest scores."
    ),
    "capture_at_10pct": Term(
        "Capture, top 10%", "Share of all events among the 10% of units with the highest scores."
    ),
    "pai_at_10pct": Term(
        "PAI, top 10% of area",
        "Predictive accuracy index: rank buurten by predicted events per km², take the top "
        "buurten that cover 10% of the land area; PAI = their share of all events ÷ their share "
        "of the land area (1 is chance; higher is a smaller search area for the same events).",
    ),
    "anomaly_precision_at_k": Term(
        "Anomaly precision at k",
        "Of the k cells with the largest deviation, the share that are planted anomalies "
        "(k = the number of planted anomalous cells).",
    ),
    "anomaly_recall_at_k": Term(
        "Anomaly recall at k",
        "Share of the planted anomalous cells among the k cells flagged first.",
    ),
    # against the oracle
    "oracle_roc_auc": Term(
        "Oracle ROC AUC",
        "ROC AUC of the world's true probabilities on the same units: the best any model "
        "could reach (synthetic worlds only).",
    ),
    "oracle_ratio": Term(
        "Oracle ratio",
        "ROC AUC ÷ oracle ROC AUC: the share of the attainable discrimination the model "
        "reaches (1 = as good as the truth).",
    ),
    "oracle_r2_log": Term(
        "Oracle R² (log scale)", "R² of the world's true expected turnover on the same cells."
    ),
    "fit_seconds": Term("Fit time (s)", "Wall time of the fold fits and the final fit."),
    # columns
    "units": Term("units", "Units (persons, dwellings or cells) a figure rests on; always ≥ 10."),
    "base rate": Term("base rate", "Share of units with an event."),
    "mean label": Term("mean label", "Mean of the label (log turnover per inhabitant)."),
    "cross-validated": Term(
        "cross-validated", "Mean over gemeente-grouped folds of the training years."
    ),
    "hold-out": Term(
        "hold-out", "On the last complete year, by the model fitted on earlier years only."
    ),
    "95% interval (bench)": Term(
        "95% interval (bench)",
        "Percentile interval of the metric over 200 paired bootstrap resamples of gemeenten "
        "(from the benchmark).",
    ),
    "mean_score": Term("mean score", "Mean predicted probability of the group's units."),
    "observed_rate": Term("observed rate", "Share of the group's units with an event."),
    "relative_calibration": Term(
        "calibration vs NL",
        "The group's predicted ÷ observed events, divided by the same ratio nationally: 1 is "
        "as well calibrated as the country; above 1 over-predicts, below 1 under-predicts.",
    ),
    "fpr_elevated": Term(
        "false-positive rate",
        "Share of the group's units without an event whose score is above the elevated-risk "
        "threshold (the national top-decile score).",
    ),
    "judgement": Term(
        "judgement",
        "ok; flagged (material and significant miscalibration); not judged (too few events "
        "to say); suppressed (too few units to show).",
    ),
    "group_kind": Term("kind", "origin: an origin group; other: a group that is not one."),
    "score_gap": Term(
        "score gap",
        "Mean score in buurten with a high share of the group minus that in buurten with a "
        "low share (top vs bottom quartile).",
    ),
    "observed_gap": Term("observed gap", "The same gap for the observed rate."),
    "excess_gap": Term(
        "score gap − observed gap",
        "How much more the scores differ between such buurten than the events do; an "
        "interval that excludes 0 says the scores follow the group's share beyond the events.",
    ),
    "roc_auc_ovr_macro": Term(
        "proxy AUC",
        "One-vs-rest macro ROC AUC of a small model that predicts origin from the given "
        "features, cross-validated over gemeenten.",
    ),
    "mean_abs_shap": Term(
        "mean |SHAP|",
        "Mean absolute SHAP value: how far the feature moves a unit's score on average, on "
        "the booster's log-odds scale for the classifiers (raw output for turnover).",
    ),
    "rank": Term("rank", "Rank by mean |SHAP| (1 = most important)."),
}


def term(name: str) -> Term:
    """The glossary entry of *name* (its own name when it has none)."""
    return GLOSSARY.get(name, Term(name.replace("_", " "), ""))


#: Metric groups of the performance section, in reading order.
METRIC_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Discrimination",
        "How well the scores rank units with events above units without.",
        (
            "roc_auc",
            "pr_auc",
            "roc_auc_8_12",
            "roc_auc_13_19",
            "roc_auc_20_23",
            "r2_log",
            "rmse_log",
            "mae_log",
        ),
    ),
    (
        "Calibration",
        "Whether predicted probabilities match observed rates.",
        ("brier", "brier_skill", "log_loss", "ece"),
    ),
    (
        "Operational",
        "What a municipality gets when it looks at the highest scores first.",
        (
            "capture_at_1pct",
            "capture_at_5pct",
            "capture_at_10pct",
            "pai_at_10pct",
            "anomaly_precision_at_k",
            "anomaly_recall_at_k",
        ),
    ),
    (
        "Against the oracle",
        "The model against the world's true probabilities (the ceiling).",
        (
            "oracle_roc_auc",
            "oracle_ratio",
            "oracle_ratio_8_12",
            "oracle_ratio_13_19",
            "oracle_ratio_20_23",
            "oracle_r2_log",
        ),
    ),
    ("Cost", "", ("fit_seconds",)),
)


@dataclass(frozen=True)
class MetricGroup:
    name: str
    about: str
    table: pd.DataFrame  # metric (label), cross-validated, hold-out[, 95% interval (bench)]
    terms: tuple[str, ...]  # the metric keys shown, for the glossary


def metric_groups(metrics: pd.DataFrame) -> list[MetricGroup]:
    """The performance table (``metric``, ``cross-validated``, ``hold-out`` and optionally
    ``95% interval (bench)``, one row per metric key) split into :data:`METRIC_GROUPS`,
    labelled and rounded; metrics in no group go last, under "Other"."""
    by_key = metrics.set_index("metric")
    used: set[str] = set()
    groups = []
    known = [
        *METRIC_GROUPS,
        (
            "Other",
            "",
            tuple(
                k for k in by_key.index if k not in {m for _, _, ms in METRIC_GROUPS for m in ms}
            ),
        ),
    ]
    for name, about, keys in known:
        keys = tuple(k for k in keys if k in by_key.index and k not in used)
        if not keys:
            continue
        used.update(keys)
        part = by_key.loc[list(keys)].reset_index()
        shown = pd.DataFrame({"metric": [term(k).label for k in keys]})
        for col in part.columns[1:]:
            shown[col] = [v if isinstance(v, str) else round_number(v) for v in part[col].tolist()]
        groups.append(MetricGroup(name, about, shown, keys))
    return groups


def leaderboard_view(board: pd.DataFrame, metric: str, kind: str) -> pd.DataFrame:
    """The benchmark leaderboard as a reader wants it: one column per claim, each value with
    its 95% interval, rounded."""
    label = term(metric).label
    oracle = "ratio to oracle" if kind == "binary" else "minus oracle R²"
    rows = []
    for _, r in board.iterrows():
        rows.append(
            {
                "model": r["model"],
                f"{label} [95% CI]": interval_text(
                    r.get(metric), r.get(f"{metric}_lo"), r.get(f"{metric}_hi")
                ),
                "minus best baseline [95% CI]": interval_text(
                    r.get("vs_best_baseline"),
                    r.get("vs_best_baseline_lo"),
                    r.get("vs_best_baseline_hi"),
                ),
                f"{oracle} [95% CI]": interval_text(
                    r.get("vs_oracle"), r.get("vs_oracle_lo"), r.get("vs_oracle_hi")
                ),
                f"hold-out {label}": round_number(r.get(f"holdout_{metric}")),
                "fit time (s)": round_number(r.get("fit_seconds")),
            }
        )
    return pd.DataFrame(rows)


def _judgement(status: object) -> str:
    return "–" if not isinstance(status, str) else status


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column of *frame*, or all missing when the table has none (every row suppressed)."""
    return frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)


def _with_interval(frame: pd.DataFrame, name: str) -> list[str]:
    """Column *name* with its ``_lo``/``_hi`` interval, as text per row."""
    return [
        interval_text(v, lo, hi)
        for v, lo, hi in zip(
            _column(frame, name),
            _column(frame, f"{name}_lo"),
            _column(frame, f"{name}_hi"),
            strict=True,
        )
    ]


def audit_group_view(groups: pd.DataFrame) -> pd.DataFrame:
    """The proxy audit's group table: judgement next to the group, intervals inline."""
    g = groups
    return pd.DataFrame(
        {
            "group": g["group"],
            "kind": _column(g, "group_kind").fillna("origin"),
            "judgement": [_judgement(v) for v in _column(g, "status")],
            "units": _column(g, "units"),
            "mean score": [round_number(v) for v in _column(g, "mean_score")],
            "observed rate": [round_number(v) for v in _column(g, "observed_rate")],
            "calibration vs NL [95% CI]": _with_interval(g, "relative_calibration"),
            "false-positive rate [95% CI]": _with_interval(g, "fpr_elevated"),
        }
    )


def audit_gap_view(gaps: pd.DataFrame) -> pd.DataFrame:
    """The area-gap table: share of the group, the two gaps and their difference, each with
    its gemeente-bootstrap interval."""
    g = gaps
    high, low = _column(g, "share_high"), _column(g, "share_low")
    return pd.DataFrame(
        {
            "group": g["group"],
            "judgement": [_judgement(v) for v in _column(g, "status")],
            "group's share, high / low buurten": [
                "–" if not _finite(h) else f"{round_number(h)} / {round_number(lo)}"
                for h, lo in zip(high, low, strict=True)
            ],
            "score gap [95% CI]": _with_interval(g, "score_gap"),
            "observed gap [95% CI]": _with_interval(g, "observed_gap"),
            "score gap − observed gap [95% CI]": _with_interval(g, "excess_gap"),
        }
    )


def proxy_view(proxy: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "reference point": proxy["reference"],
            "features": proxy["features"],
            "proxy AUC": [round_number(v) for v in proxy["roc_auc_ovr_macro"]],
        }
    )


def html_table(frame: pd.DataFrame, *, min_count: int = 10, classes: str = "tbl") -> str:
    """An escaped HTML table of an aggregate frame (checked by :func:`review_table`), its
    numbers rounded by :func:`round_number` and its columns labelled from the glossary."""
    review_table(frame, min_count=min_count)
    shown = frame.copy()
    for c in shown.columns:
        if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c]):
            shown[c] = [round_number(v) if pd.notna(v) else "–" for v in shown[c]]
    shown.columns = [term(str(c)).label if str(c) in GLOSSARY else str(c) for c in shown.columns]
    return shown.to_html(index=False, na_rep="–", border=0, classes=classes, escape=True)


def png_data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so the page needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plot_uri(draw: Callable[..., Path], table: pd.DataFrame, *, title: str) -> str:
    """Draw *table* with a :mod:`reports.plots` function and return the PNG as a data URI."""
    with tempfile.TemporaryDirectory() as tmp:
        path = draw(table, Path(tmp) / "plot.png", title=title)
        return png_data_uri(path.read_bytes())


@dataclass(frozen=True)
class TaskReport:
    """Everything one task's page shows; aggregates only.

    Optional parts are ``None`` when their producer has not run yet; the page then says
    which command makes them (``notes``).
    """

    task: str
    description: str
    unit_name: str
    kind: str
    data: Mapping[str, Any]
    years: pd.DataFrame
    catalogue: pd.DataFrame
    attestation: Attestation
    metrics: pd.DataFrame
    reproducibility: Mapping[str, str]
    audit: ProxyAudit | None = None
    leaderboard: pd.DataFrame | None = None
    figures: Mapping[str, str] = field(default_factory=dict)
    shap: pd.DataFrame | None = None
    shap_figures: Mapping[str, str] = field(default_factory=dict)
    disclosure: Mapping[str, Any] | None = None
    suppressed: pd.DataFrame | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    min_count: int = 10


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["num"] = round_number
    return env


def _tables(report: TaskReport) -> dict[str, str | None]:
    m = report.min_count

    def maybe(frame: pd.DataFrame | None) -> str | None:
        return None if frame is None or frame.empty else html_table(frame, min_count=m)

    audit = report.audit
    board = report.leaderboard
    metric = "roc_auc" if report.kind == "binary" else "r2_log"
    catalogue = report.catalogue
    return {
        "years": maybe(report.years),
        "catalogue": maybe(catalogue),
        "leaderboard": maybe(
            leaderboard_view(board, metric, report.kind) if board is not None else None
        ),
        "shap": maybe(report.shap),
        "suppressed": maybe(report.suppressed),
        "proxy": maybe(proxy_view(audit.proxy) if audit else None),
        "groups": maybe(audit_group_view(audit.groups) if audit else None),
        "gaps": maybe(audit_gap_view(audit.area_gaps) if audit else None),
    }


SECTIONS = (
    ("data", "Data and population"),
    ("features", "Features and attestation"),
    ("audit", "Proxy audit"),
    ("performance", "Performance"),
    ("shap", "Explanations (SHAP)"),
    ("disclosure", "Disclosure control"),
    ("reproducibility", "Reproducibility"),
    ("glossary", "Glossary"),
)

#: Glossary entries of the columns every page uses, besides the metrics it shows.
PAGE_TERMS = (
    "units",
    "cross-validated",
    "hold-out",
    "95% interval (bench)",
    "mean_abs_shap",
    "rank",
)
#: and of the proxy audit's columns (binary tasks only: turnover cells have no origin).
AUDIT_TERMS = (
    "roc_auc_ovr_macro",
    "judgement",
    "group_kind",
    "mean_score",
    "observed_rate",
    "relative_calibration",
    "fpr_elevated",
    "score_gap",
    "observed_gap",
    "excess_gap",
)


def glossary(report: TaskReport, groups: Sequence[MetricGroup]) -> list[Term]:
    """The terms of the page: its metrics in the order shown, then the columns it uses."""
    keys = [k for g in groups for k in g.terms]
    keys += [*PAGE_TERMS, *(AUDIT_TERMS if report.audit is not None else ())]
    return [term(k) for k in dict.fromkeys(keys) if term(k).definition]


def attention(report: TaskReport) -> list[tuple[str, str]]:
    """What a reviewer must see first: ``(kind, sentence)``, kind ``flag`` or ``note``."""
    out: list[tuple[str, str]] = []
    if not report.attestation.clean:
        out.append(("flag", "Attestation failed: features are built from protected columns."))
    if str(report.data.get("champion trained on this world", "")).startswith("NO"):
        out.append(("flag", "The champion was trained on another world: retrain it."))
    if report.disclosure and report.disclosure.get("published run is the champion") == "NO":
        out.append(("flag", "The published version was made by another run than the champion."))
    if report.audit is not None:
        out += [(k, t) for k, t in report.audit.headline() if k != "ok"]
    shown = {"audit": report.audit, "shap": report.shap, "disclosure": report.disclosure}
    for key, present in shown.items():
        note = report.notes.get(key, "")  # what makes the section: only while it is missing
        if note and present is None:
            out.append(("note", note))
    return out


def render_task(report: TaskReport) -> str:
    """The task's page: a self-contained HTML document."""
    groups = metric_groups(report.metrics)
    metric_tables = [
        (g, html_table(g.table, min_count=report.min_count, classes="tbl metrics")) for g in groups
    ]
    html = (
        _environment()
        .get_template("task.html")
        .render(
            r=report,
            t=_tables(report),
            metric_tables=metric_tables,
            glossary=glossary(report, groups),
            attention=attention(report),
            sections=SECTIONS,
            title=f"Zicht: {report.task}",
        )
    )
    check_self_contained(html)
    return html


def render_index(entries: Iterable[Mapping[str, Any]]) -> str:
    """``REVIEW/index.html``: what is flagged first, then one line per task page (``task``,
    ``run_id``, ``audit``, ``fingerprint`` and ``attention``: a list of ``[kind, text]``)."""
    html = (
        _environment()
        .get_template("index.html")
        .render(
            entries=[{"attention": [], **e} for e in entries],
            title="Zicht: reviewer reports",
            sections=(),
        )
    )
    check_self_contained(html)
    return html


_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def check_self_contained(html: str) -> None:
    """Refuse a page that loads anything from elsewhere (src/href to http(s) or //)."""
    if _EXTERNAL.search(html) or re.search(r"@import|url\(\s*['\"]?https?:", html, re.I):
        raise ReviewZoneError("the page refers to an external asset; inline it")
