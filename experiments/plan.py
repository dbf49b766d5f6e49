"""The main job's plan: which models ``zicht run`` fits at each scale, and on how many rows.

One declarative table, :data:`PLAN`, read by ``zicht run`` (``experiments.pipeline``), which
prints it at the start, and by ``zicht bench scale``. Per scale:

* **models**: the champion candidate (LightGBM, the main model) first, then the baselines it
  is compared with by paired bootstrap intervals over gemeenten (the leaderboard of the bench
  stage). Every scale has at least one baseline, so the main job always leaves a champion with
  an interval against a baseline.
* **folds**: the gemeente-grouped CV folds (part of ``zicht.protocol``: a run and
  ``zicht bench models`` compete for champion only with the same folds, so every scale keeps 5).
* **row caps**: evaluation always scores every unit; the caps bound the rows a *fit* sees.
  LightGBM fits a binary task on every positive and a seeded sample of the negatives, at most
  ``lightgbm_max_fit_rows`` rows, and the sampling's log-odds correction is added to the
  booster (:func:`models.evaluation.negative_sample`); the baselines fit on a seeded uniform
  sample of at most ``baseline_max_rows`` rows (it keeps the base rate).

The full four-model leaderboard stays ``zicht bench models``, on the standalone caps of
``experiments.train`` (``LIGHTGBM_MAX_FIT_ROWS``, ``BASELINE_MAX_ROWS``: they bind only at
national scale), as ``zicht train`` and ``zicht tune`` fit. The plan is a statement, not a tuning
knob: changing it changes what the main job's champion is fitted on, so README.md and
docs/models.md print the same table (:func:`plan_markdown`), and a test holds them to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MAIN_MODEL = "lightgbm"


@dataclass(frozen=True)
class RowCaps:
    """How many rows a fit may see (None: all of them)."""

    lightgbm_max_fit_rows: int | None = None  # binary tasks: positives + sampled negatives
    baseline_max_rows: int | None = None  # baselines: a uniform sample

    def for_model(self, model: str) -> tuple[int | None, int | None]:
        """(max_train_rows, max_fit_rows) for :func:`models.evaluation.evaluate`."""
        if model == MAIN_MODEL:
            return None, self.lightgbm_max_fit_rows
        return self.baseline_max_rows, None


@dataclass(frozen=True)
class ScalePlan:
    """What the main job fits at one scale (see the module doc)."""

    scale: str
    models: tuple[str, ...]
    n_folds: int
    caps: RowCaps
    budget_minutes: int
    why: str

    def __post_init__(self) -> None:
        if not self.models or self.models[0] != MAIN_MODEL:
            raise ValueError(f"plan {self.scale}: the first model must be {MAIN_MODEL}")
        if len(self.models) < 2:
            raise ValueError(f"plan {self.scale}: the main job needs a baseline to compare with")
        if self.n_folds < 2:
            raise ValueError(f"plan {self.scale}: at least 2 folds")

    @property
    def baselines(self) -> tuple[str, ...]:
        return self.models[1:]


PLAN: Mapping[str, ScalePlan] = MappingProxyType(
    {
        "tiny": ScalePlan(
            "tiny",
            ("lightgbm", "logistic"),
            5,
            RowCaps(),
            2,
            "tests and a first look: every row",
        ),
        "region": ScalePlan(
            "region",
            ("lightgbm", "logistic"),
            5,
            RowCaps(lightgbm_max_fit_rows=300_000, baseline_max_rows=300_000),
            5,
            "hennep's 1.1M training rows hold ~750 farms: every farm and a quarter of the "
            "other dwellings fit LightGBM about 4x faster at the same AUC",
        ),
        "national": ScalePlan(
            "national",
            ("lightgbm", "logistic"),
            5,
            RowCaps(lightgbm_max_fit_rows=2_000_000, baseline_max_rows=1_000_000),
            90,
            "hennep's 70M training rows hold ~40k farms: 2M rows keep every farm",
        ),
    }
)


def plan_for(scale: str) -> ScalePlan:
    """The plan of *scale*; a real extract (``real``) is planned as national (the caps bind
    only where a table is larger than them)."""
    key = "national" if scale == "real" else scale
    if key not in PLAN:
        raise ValueError(f"no plan for scale {scale!r}; known: {', '.join(PLAN)}")
    return PLAN[key]


def _rows(n: int | None) -> str:
    return "all" if n is None else f"{n:,}"


def plan_markdown(plan: Mapping[str, ScalePlan] = PLAN) -> str:
    """The plan as a markdown table (printed by ``zicht run``, quoted in the docs)."""
    lines = [
        "| scale | champion | baselines | folds | LightGBM fit rows (binary: every positive + "
        "sampled negatives) | baseline fit rows (uniform sample) | budget |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for p in plan.values():
        lines.append(
            f"| {p.scale} | {p.models[0]} | {', '.join(p.baselines)} | {p.n_folds} | "
            f"{_rows(p.caps.lightgbm_max_fit_rows)} | {_rows(p.caps.baseline_max_rows)} | "
            f"{p.budget_minutes} min |"
        )
    return "\n".join(lines) + "\n"
