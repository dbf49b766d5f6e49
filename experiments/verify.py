"""``zicht verify --run-id ID``: rerun a recorded run and compare every metric.

The run's tags, params and logged config say what to rerun: the task, the model, the
protocol (folds, years, window), the config's features and, for a ``tune`` run, the best
parameters (``best.*``). The current world must be the one the run was made on (its
``zicht.data_fingerprint``); otherwise the answer is exit 2 and how to regenerate it.

Verification is **read-only**: it writes nothing to the MLflow store (no new run, no tag on
the verified run), so it can be pointed at any store, and a stale "verified" tag can never
outlive the code or world it was checked against. The answer is the printed table and the
exit code (0 all match, 1 MISMATCH).

Comparison: every logged metric against the recomputed one, equal up to a relative 1e-9
(LightGBM is deterministic for the same threads and seed; the tolerance only covers float
text round-trips); timing metrics (``fit_seconds``) aside; ``fold_*`` metrics over their
whole logged history (one step per fold); and the logged ``model.*`` and sample-size params.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Metrics that measure time, not the model: never compared.
TIMING_SUFFIXES = ("_seconds", "_per_second")
#: Metrics a rerun of the evaluation does not recompute (the tuning study's own summary).
NOT_RECOMPUTED_PREFIXES = ("best_trial_cv_",)
#: Relative tolerance for floats that went through text (params) or the store.
REL_TOL = 1e-9
#: Model params that describe the machine, not the model.
MACHINE_PARAMS = ("model.n_jobs", "model.verbose", "model.verbosity")


class VerifyInputError(ValueError):
    """The run cannot be verified here (unknown id, other world, wrong kind): exit 2."""


@dataclass(frozen=True)
class Check:
    """One compared item: a metric, a fold metric step or a param."""

    item: str
    recorded: str
    recomputed: str
    status: str  # "match", "MISMATCH", or "skipped: <why>"

    @property
    def ok(self) -> bool:
        return self.status != "MISMATCH"


@dataclass
class VerifyResult:
    run_id: str
    task: str
    model: str
    kind: str
    checks: list[Check] = field(default_factory=list)

    @property
    def mismatches(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def matched(self) -> int:
        return sum(c.status == "match" for c in self.checks)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.matched > 0


def is_timing(name: str) -> bool:
    return name.endswith(TIMING_SUFFIXES) or name.startswith("fold_fit_seconds")


def same(a: float, b: float) -> bool:
    """Equal up to :data:`REL_TOL` (NaN equals NaN)."""
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def parse_param(text: str) -> Any:
    """A logged param back to its value: int, float, bool, None or the string."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _same_param(recorded: str, recomputed: Any) -> bool:
    a, b = parse_param(recorded), parse_param(str(recomputed))
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return same(float(a), float(b))
    return bool(a == b)


def compare_metrics(
    recorded: Mapping[str, float],
    recomputed: Mapping[str, float],
    *,
    history: Callable[[str], list[tuple[int, float]]] | None = None,
    folds: list[dict[str, float]] | None = None,
) -> list[Check]:
    """Compare every recorded metric with the recomputed one (pure; see the module doc).

    *history* gives a fold metric's logged ``(step, value)`` pairs; *folds* the recomputed
    per-fold metrics. A metric on one side only is a mismatch, unless it is timing or one a
    rerun does not recompute.
    """
    checks: list[Check] = []
    fold_recomputed: dict[str, list[tuple[int, float]]] = {}
    logs_folds = any(name.startswith("fold_") for name in recorded)  # bench runs do not
    for step, fm in enumerate(folds if logs_folds and folds else []):
        for k, v in fm.items():
            if isinstance(v, float | int) and math.isfinite(v):
                fold_recomputed.setdefault(f"fold_{k}", []).append((step, float(v)))
    names = sorted(set(recorded) | set(recomputed) | set(fold_recomputed))
    for name in names:
        rec = recorded.get(name)
        if is_timing(name) or is_timing(name.removeprefix("fold_")):
            checks.append(Check(name, _fmt(rec), "–", "skipped: timing"))
            continue
        if name.startswith(NOT_RECOMPUTED_PREFIXES):
            checks.append(Check(name, _fmt(rec), "–", "skipped: the study's own summary"))
            continue
        if name.startswith("fold_") and (name in fold_recomputed or rec is not None):
            logged = history(name) if history is not None else []
            if not logged and rec is not None:
                logged = [(len(fold_recomputed.get(name, [])) - 1, rec)]
            was, now = dict(logged), dict(fold_recomputed.get(name, []))
            for step in sorted(set(was) | set(now)):
                a, b = was.get(step), now.get(step)
                ok = a is not None and b is not None and same(a, b)
                checks.append(
                    Check(f"{name} step {step}", _fmt(a), _fmt(b), "match" if ok else "MISMATCH")
                )
            continue
        new = recomputed.get(name)
        if rec is None or new is None:
            checks.append(Check(name, _fmt(rec), _fmt(new), "MISMATCH"))
            continue
        checks.append(Check(name, _fmt(rec), _fmt(new), "match" if same(rec, new) else "MISMATCH"))
    return checks


def compare_params(recorded: Mapping[str, str], recomputed: Mapping[str, Any]) -> list[Check]:
    """The logged ``model.*`` and sample-size params against the rerun's."""
    checks = []
    for name in sorted(recomputed):
        if name in MACHINE_PARAMS:
            continue
        rec, new = recorded.get(name), recomputed[name]
        if rec is None:  # e.g. a bench run logs metrics only
            continue
        ok = _same_param(rec, new)
        checks.append(Check(f"param {name}", rec, str(new), "match" if ok else "MISMATCH"))
    return checks


def _fmt(v: float | None) -> str:
    return "–" if v is None else repr(float(v))


def verify_run(
    run_id: str,
    *,
    data_dir: Path,
    tracking_uri: str,
    progress: Callable[[str], None] = lambda _m: None,
) -> VerifyResult:
    """Rerun *run_id*'s evaluation on the world in *data_dir* and compare (read-only)."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from experiments.train import FIT_PARAMS, finite, prepare, world_identity

    progress("reading the run")
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise VerifyInputError(
            f"run {run_id!r}: not in the MLflow store {tracking_uri}; check the id (the "
            "report's reproducibility section or `zicht ui` shows it) or pass the "
            "--tracking-uri of the store that holds it"
        ) from None
    tags, params = run.data.tags, run.data.params
    task, model, kind = (tags.get(f"zicht.{k}", "") for k in ("task", "model", "kind"))
    if not task or not model or not kind:
        raise VerifyInputError(
            f"run {run_id}: has no zicht.task/zicht.model/zicht.kind tags; only runs made by "
            "`zicht train`, `zicht tune` or `zicht bench models` can be verified"
        )
    if run.info.status != "FINISHED":
        raise VerifyInputError(
            f"run {run_id}: status {run.info.status}, not FINISHED (a killed or failed run has "
            f"partial metrics); rerun it with `zicht train {task} --model {model}`"
        )
    if kind == "trial":
        parent = tags.get("mlflow.parentRunId", "?")
        raise VerifyInputError(
            f"run {run_id}: a tune trial (zicht.kind=trial; pruned trials stop early); verify "
            f"the tune run that refitted the best trial instead: --run-id {parent}"
        )
    if kind not in ("train", "tune", "bench") or (kind == "bench" and "," in model):
        children = client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'",
            max_results=100,
        )
        ids = ", ".join(f"{c.info.run_id} ({c.data.tags.get('zicht.model')})" for c in children)
        raise VerifyInputError(
            f"run {run_id}: zicht.kind={kind} with model {model!r} holds no model metrics of "
            f"its own; verify its nested runs instead: {ids or 'none found'}"
        )

    world_dir = data_dir / "world"
    want = tags.get("zicht.data_fingerprint", "")
    scale, seed = tags.get("zicht.scale", "?"), tags.get("zicht.seed", "?")
    regenerate = f"`zicht generate --scale {scale} --seed {seed} --overwrite`"
    if not world_dir.exists():
        raise VerifyInputError(
            f"{world_dir}: no world here; run {run_id} was made on the {scale} world with seed "
            f"{seed}; run {regenerate} (then `zicht features {task}`) or point --data-dir at it"
        )
    manifest = world_dir / "manifest.json"
    if manifest.exists() and scale != "real":
        # the manifest names another world: say so before hashing its files (a missing or
        # edited file would otherwise hide that the world is simply not the run's)
        doc = json.loads(manifest.read_text())
        if (str(doc.get("scale")), str(doc.get("seed"))) != (scale, seed):
            raise VerifyInputError(
                f"{manifest}: the {doc.get('scale')} world with seed {doc.get('seed')}, but run "
                f"{run_id} was made on the {scale} world with seed {seed}; run {regenerate} and "
                f"`zicht features {task}`, or point --data-dir at that world"
            )
    have, have_scale, have_seed = world_identity(world_dir)
    if have != want:
        raise VerifyInputError(
            f"{world_dir / 'manifest.json'}: data fingerprint {have[:16]} ({have_scale} world, "
            f"seed {have_seed or '-'}) differs from the run's zicht.data_fingerprint "
            f"{want[:16]} ({scale} world, seed {seed}); run {regenerate} and "
            f"`zicht features {task}`, or point --data-dir at that world"
        )

    cfg = _config(run_id, task)
    n_folds = int(params.get("n_folds", "5"))
    progress("reading features")
    prep = prepare(cfg, data_dir=data_dir, tracking_uri=tracking_uri, n_folds=n_folds)
    if prep.protocol.hash() != tags.get("zicht.protocol"):
        raise VerifyInputError(
            f"{data_dir / 'features' / f'{task}.parquet'}: gives protocol {prep.protocol.hash()} "
            f"(years {prep.protocol.train_years} + hold-out {prep.protocol.holdout_year}, "
            f"{n_folds} folds), not the run's zicht.protocol {tags.get('zicht.protocol')}; "
            f"rebuild it with `zicht features {task}`"
        )
    best = {k.removeprefix("best."): parse_param(v) for k, v in params.items() if k[:5] == "best."}
    n_jobs = parse_param(params.get("model.n_jobs", "2"))
    progress(f"rerunning {model} ({kind})")
    ev = prep.evaluate(
        model,
        params=best or None,
        n_jobs=n_jobs if isinstance(n_jobs, int) and n_jobs > 0 else 2,
        caps=logged_caps(params),
    )
    result = VerifyResult(run_id, task, model, kind)

    def history(name: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in client.get_metric_history(run_id, name)]

    result.checks = compare_metrics(
        run.data.metrics, finite(ev.metrics), history=history, folds=ev.fold_metrics
    )
    mine: dict[str, Any] = {
        f"model.{k}": v
        for k, v in ev.model.get_params().items()
        if isinstance(v, str | int | float | bool)
    }
    for k in ("n_train", "n_holdout", *FIT_PARAMS):
        if k in ev.extra:
            mine[k] = ev.extra[k]
    mine.update({k: v for k, v in ev.extra.items() if k.startswith("anomaly_k")})
    result.checks += compare_params(params, mine)
    return result


def logged_caps(params: Mapping[str, str]) -> Any:
    """The row caps a run's fits ran under (params ``max_fit_rows``, ``max_train_rows``, as
    the plan of ``zicht run`` set them); None (the standalone caps) for a run that logged
    none (made before the caps were logged, or by ``zicht train``/``bench models`` then)."""
    from experiments.plan import RowCaps

    if "max_fit_rows" not in params and "max_train_rows" not in params:
        return None
    fit, train = (parse_param(params.get(k, "None")) for k in ("max_fit_rows", "max_train_rows"))
    return RowCaps(lightgbm_max_fit_rows=fit, baseline_max_rows=train)


def _config(run_id: str, task: str) -> Any:
    """The run's logged config (``config/experiment.yaml``), else the shipped one (bench)."""
    import mlflow
    import yaml

    from experiments.config import ExperimentConfig, default_config_path, load_config

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/config/experiment.yaml")
    except Exception:  # no such artifact: a bench run uses the shipped config
        return load_config(default_config_path(task))
    return ExperimentConfig(**yaml.safe_load(text))
