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
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
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


def html_table(frame: pd.DataFrame, *, min_count: int = 10, digits: int = 3) -> str:
    """An escaped HTML table of an aggregate frame (checked by :func:`review_table`)."""
    review_table(frame, min_count=min_count)
    shown = frame.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = shown[c].map(lambda v: "–" if pd.isna(v) else f"{v:.{digits}g}")
    return shown.to_html(index=False, na_rep="–", border=0, classes="tbl", escape=True)


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
    env.filters["num"] = _num
    return env


def _num(v: object, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _tables(report: TaskReport) -> dict[str, str | None]:
    m = report.min_count

    def maybe(frame: pd.DataFrame | None) -> str | None:
        return None if frame is None or frame.empty else html_table(frame, min_count=m)

    audit = report.audit
    return {
        "years": maybe(report.years),
        "catalogue": maybe(report.catalogue),
        "metrics": maybe(report.metrics),
        "leaderboard": maybe(report.leaderboard),
        "shap": maybe(report.shap),
        "suppressed": maybe(report.suppressed),
        "proxy": maybe(audit.proxy if audit else None),
        "groups": maybe(audit.groups if audit else None),
        "gaps": maybe(audit.area_gaps if audit else None),
    }


SECTIONS = (
    ("data", "Data and population"),
    ("features", "Features and attestation"),
    ("audit", "Proxy audit"),
    ("performance", "Performance"),
    ("shap", "Explanations (SHAP)"),
    ("disclosure", "Disclosure control"),
    ("reproducibility", "Reproducibility"),
)


def render_task(report: TaskReport) -> str:
    """The task's page: a self-contained HTML document."""
    html = (
        _environment()
        .get_template("task.html")
        .render(r=report, t=_tables(report), sections=SECTIONS, title=f"Zicht: {report.task}")
    )
    check_self_contained(html)
    return html


def render_index(entries: Iterable[Mapping[str, str]]) -> str:
    """``REVIEW/index.html``: one line per task page (``task``, ``run_id``, ``audit``)."""
    html = (
        _environment()
        .get_template("index.html")
        .render(entries=list(entries), title="Zicht: reviewer reports", sections=())
    )
    check_self_contained(html)
    return html


_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def check_self_contained(html: str) -> None:
    """Refuse a page that loads anything from elsewhere (src/href to http(s) or //)."""
    if _EXTERNAL.search(html) or re.search(r"@import|url\(\s*['\"]?https?:", html, re.I):
        raise ReviewZoneError("the page refers to an external asset; inline it")
