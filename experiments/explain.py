"""``zicht explain``: SHAP for a tracked run, written into that run, and area driver profiles.

* **Global** (into the run, contract names): ``shap/global_importance.csv``,
  ``shap/importance_bar.png``, ``shap/summary.png`` (a binned summary), plus
  ``shap/binned_summary.csv``, ``shap/dependence_<feature>.png`` for the top features and
  ``shap/settings.json``. Computed on a seeded sample of the publication year, stratified by
  gemeente and label, whose size is a setting. Every table row and plotted mark rests on at
  least ``min_count`` units; no unit rows are logged.
* **Area driver profiles** (secure zone): ``DATA/explain/<task>_profiles.parquet`` — per
  buurt, wijk, gemeente, RIEC region and the Netherlands (and age group for
  ``jonge_aanwas``) the mean SHAP per feature, the top 3 drivers and their prevalence
  against the national value. SHAP is exact for every unit up to ``profile_budget``
  units; beyond that (national scale) it runs on a seeded sample of at most
  ``max_per_area`` units per buurt, the largest cap within the budget, weighted so that
  area totals add up exactly; prevalences always count every unit. They leave the secure
  zone only through disclosure control.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from experiments.files import write_parquet_atomic
from experiments.predict import load_run_model, publication_frame
from models import explain as E
from models.tasks import get_task
from reports import plots


@dataclass(frozen=True)
class ExplainSettings:
    """How much to explain; every number is a named setting, logged with the result."""

    global_sample: int = 20_000  # units for the global views
    # units per buurt for the profiles; None: every unit, up to profile_budget units in all
    max_per_area: int | None = None
    profile_budget: int = 1_000_000
    top_dependence: int = 4  # dependence plots for the most important features
    min_count: int = 10
    random_state: int = 0
    n_jobs: int = 2


@dataclass(frozen=True)
class ExplainResult:
    run_id: str
    importance: pd.DataFrame
    profiles_path: Path
    global_rows: int
    profile_rows: int
    rows_per_second: float
    seconds: float


def categorical(features: list[str]) -> dict[str, tuple[str, ...]]:
    """The categorical features among *features*, with their category names (the catalogue's):
    SHAP bins them per category, never as a range of codes."""
    from features.catalogue import CATALOGUE

    return {
        f: CATALOGUE[f].categories for f in features if f in CATALOGUE and CATALOGUE[f].categories
    }


def _areas(task: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Area columns of the units, and the strata a per-area sample is drawn within: the
    smallest area (and age group), so that the weights restore the units of every area."""
    if task == "branch_turnover":
        code = frame["area_code"].astype(str)
        wijk = (frame["level"].astype(str) == "wijk").to_numpy()
        gm = np.where(code.str.startswith("GM"), code, "GM" + code.str[2:6])
        areas = pd.DataFrame(
            {
                "wijk_code": code.where(wijk, None).to_numpy(),
                "gemeente_code": gm,
                "riec_code": frame["riec_code"].astype(str).to_numpy(),
                "cell_level": np.where(wijk, "wijk", "gemeente"),
            }
        )
        # wijk cells restore their wijk, gemeente cells their gemeente
        return areas, np.where(wijk, "wk|" + code.to_numpy(), "gm|" + gm).astype(str)
    cols = ["buurt_code", "wijk_code", "gemeente_code", "riec_code"]
    if task == "jonge_aanwas":
        cols.append("age_group")
    areas = frame[cols].astype(str).reset_index(drop=True)
    strata = areas["buurt_code"].to_numpy()
    if task == "jonge_aanwas":
        strata = strata + "|" + areas["age_group"].to_numpy()
    return areas, strata


def profiles(
    task: str,
    model: object,
    frame: pd.DataFrame,
    features: list[str],
    settings: ExplainSettings,
) -> tuple[pd.DataFrame, int, float]:
    """Area driver profiles of the units in *frame*; (profiles, rows explained, seconds)."""
    areas, strata = _areas(task, frame)
    X = frame[features].to_numpy(np.float32)
    cap = settings.max_per_area
    if cap is None and len(strata) > settings.profile_budget:
        cap = E.cap_for_budget(strata, settings.profile_budget)
    rows, weight = E.sample_per_area(
        strata,
        max_per_area=cap,
        random_state=settings.random_state,
    )
    t0 = time.perf_counter()
    sv = E.explain(model, X[rows], features, n_jobs=settings.n_jobs)
    seconds = time.perf_counter() - t0
    ind = E.indicators(sv, X, min_count=settings.min_count, categories=categorical(features))
    totals = profile_totals(task, sv, weight, areas.iloc[rows], ind, areas)
    return profiles_from_totals(task, totals, features), len(rows), seconds


def _group(task: str) -> str | None:
    return "age_group" if task == "jonge_aanwas" else None


def profile_totals(
    task: str,
    sv: E.ShapValues,
    weight: np.ndarray,
    areas_s: pd.DataFrame,
    ind: np.ndarray,
    areas: pd.DataFrame,
) -> pd.DataFrame:
    """The area sums behind the profiles (:func:`models.explain.area_totals`), with a
    ``cells`` column: turnover sums wijk x branch cells and gemeente x branch cells apart
    ("wijk", "gemeente"); the unit tasks have one set ("all"). Sums of disjoint units add up
    (:func:`models.explain.add_totals`), so cluster partitions each return their own."""
    if task != "branch_turnover":
        totals = E.area_totals(sv, weight, areas_s, ind, areas, group=_group(task))
        return totals.assign(cells="all")
    parts = []
    for level in ("wijk", "gemeente"):
        on = (areas["cell_level"] == level).to_numpy()
        on_s = (areas_s["cell_level"] == level).to_numpy()
        sub = E.ShapValues(sv.values[on_s], sv.base, sv.data[on_s], sv.features, sv.output)
        cols = (
            ["wijk_code", "gemeente_code", "riec_code"]
            if level == "wijk"
            else ["gemeente_code", "riec_code"]
        )
        totals = E.area_totals(sub, weight[on_s], areas_s.loc[on_s, cols], ind[on], areas[on][cols])
        parts.append(totals.assign(cells=level))
    return pd.concat(parts, ignore_index=True)


def profiles_from_totals(task: str, totals: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The area driver profiles from :func:`profile_totals`; turnover takes its wijk rows
    from the wijk x branch cells and the rest from the gemeente x branch cells."""
    if task != "branch_turnover":
        return E.profiles_from_totals(totals.drop(columns="cells"), features, group=_group(task))
    parts = []
    for level, keep in (("wijk", ("wijk",)), ("gemeente", ("gemeente", "riec", "nederland"))):
        sub = totals[totals["cells"] == level].drop(columns="cells").reset_index(drop=True)
        prof = E.profiles_from_totals(sub, features)
        parts.append(prof[prof["level"].isin(keep)])
    return pd.concat(parts, ignore_index=True)


def explain_run(
    task: str,
    *,
    data_dir: Path,
    tracking_uri: str,
    run_id: str | None = None,
    settings: ExplainSettings | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    world_dir: Path | None = None,
    client: Any = None,
) -> ExplainResult:
    """Explain the champion of *task* (or *run_id*): global views into the run, profiles to
    DATA. With a Dask *client*: on the cluster, exact for every unit
    (:func:`experiments.distributed.explain_table`)."""
    if client is not None:
        from experiments.distributed import explain_table

        return explain_table(
            client,
            task,
            data_dir=data_dir,
            tracking_uri=tracking_uri,
            run_id=run_id,
            settings=settings,
            progress=progress,
            world_dir=world_dir,
        )
    settings = settings or ExplainSettings()
    spec = get_task(task)
    t_start = time.perf_counter()
    progress("loading the model and the publication year")
    scored = load_run_model(
        task, data_dir=data_dir, tracking_uri=tracking_uri, run_id=run_id, world_dir=world_dir
    )
    rid = scored.run.info.run_id
    frame = publication_frame(task, scored, data_dir).reset_index(drop=True)
    features = scored.features
    model_name = scored.run.data.tags.get("zicht.model", "?")

    progress("global SHAP on a stratified sample")
    strata = spec.groups(frame) + "|" + frame["label"].astype(str).to_numpy()
    if spec.kind == "regression":
        strata = spec.groups(frame)
    sample = E.stratified_sample(strata, settings.global_sample, random_state=settings.random_state)
    X = frame[features].to_numpy(np.float32)
    t0 = time.perf_counter()
    sv = E.explain(scored.model, X[sample], features, n_jobs=settings.n_jobs)
    global_seconds = time.perf_counter() - t0
    importance = E.global_importance(sv)
    binned = E.binned_summary(sv, min_count=settings.min_count, categories=categorical(features))
    _log_global(rid, task, model_name, sv, importance, binned, settings, global_seconds)

    progress("area driver profiles")
    prof, n_rows, prof_seconds = profiles(task, scored.model, frame, features, settings)
    prof.insert(0, "run_id", rid)
    target = data_dir / "explain" / f"{task}_profiles.parquet"
    write_parquet_atomic(prof, target)
    rate = (len(sample) + n_rows) / max(global_seconds + prof_seconds, 1e-9)
    return ExplainResult(
        rid,
        importance,
        target,
        len(sample),
        n_rows,
        rate,
        time.perf_counter() - t_start,
    )


def _log_global(
    run_id: str,
    task: str,
    model_name: str,
    sv: E.ShapValues,
    importance: pd.DataFrame,
    binned: pd.DataFrame,
    settings: ExplainSettings,
    seconds: float,
) -> None:
    client = MlflowClient()
    title = f"{task} ({model_name})"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "shap"
        d.mkdir()
        importance[["feature", "mean_abs_shap", "rank"]].to_csv(
            d / "global_importance.csv", index=False
        )
        binned.to_csv(d / "binned_summary.csv", index=False)
        out = sv.output
        plots.shap_importance_plot(importance, d / "importance_bar.png", title=title, output=out)
        order = importance["feature"].tolist()[:20]
        plots.shap_summary_plot(binned, d / "summary.png", title=title, order=order, output=out)
        for f in importance["feature"].head(settings.top_dependence):
            plots.shap_dependence_plot(
                binned, d / f"dependence_{f}.png", feature=f, title=title, output=out
            )
        (d / "settings.json").write_text(
            json.dumps(
                {
                    **asdict(settings),
                    "explained_output": sv.output,
                    "base_value": sv.base,
                    "global_rows": len(sv.values),
                    "rows_per_second": len(sv.values) / max(seconds, 1e-9),
                },
                indent=2,
                sort_keys=True,
            )
        )
        client.log_artifacts(run_id, str(d), artifact_path="shap")
    client.set_tag(run_id, "zicht.explained", "true")
