"""``zicht run``: everything, for all three tasks, reusing what is already there and valid.

Stages: generate (or, with ``world_dir``, validate an existing world or real extract) →
features → bench (LightGBM and the baselines of the scale's plan, ``experiments/plan.py``,
printed first: which models, how many folds, how many rows each fit sees; the main model's run
competes for champion) → explain the champion → predict → publish → report.

**Reuse.** Each stage writes a stamp (``DATA/stamps/<stage>.json``) with the key of its
inputs: the world's scale, seed and fingerprint, the experiment config, the zicht version
and, downstream, the champion's run id. A stage whose key is unchanged and whose output
still exists is skipped, and the run says so. Changing the seed, a config or the release
reruns what depends on it; ``--fresh`` reruns everything (after editing the code).

**Extracts.** ``zicht run --world-dir PATH`` runs every stage but generate on the world in
PATH (a real extract, say): it validates PATH first (reused while its fingerprint is
unchanged) and stops with :class:`ExtractInvalid` (exit 2) on any problem; the stamps are
keyed on the data fingerprint as for a generated world. Nothing is written into PATH.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.config import default_config_path
from experiments.plan import ScalePlan, plan_for, plan_markdown
from experiments.resources import cpu_seconds, peak_gib, reset_peak

if TYPE_CHECKING:
    from features.audit import ProtectedAccess

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")


class ExtractInvalid(ValueError):
    """The world given to ``zicht run --world-dir`` does not meet the schemas (exit 2); the
    message lists every problem (file, column, rule, fix)."""


@dataclass
class StageLog:
    """What each stage did (ran or reused) and how long it took."""

    rows: list[dict[str, object]] = field(default_factory=list)

    def add(
        self,
        stage: str,
        task: str,
        action: str,
        seconds: float,
        detail: str = "",
        peak_gib: float | None = None,
        cpu_seconds: float | None = None,
    ) -> None:
        self.rows.append(
            {
                "stage": stage,
                "task": task,
                "action": action,
                "seconds": round(seconds, 1),
                "peak_gib": None if peak_gib is None else round(peak_gib, 2),
                "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 1),
                "detail": detail,
            }
        )

    def markdown(self) -> str:
        """The stage table: wall time, peak resident memory and CPU time of every stage
        (CPU seconds of all threads: on a shared machine they say what wall time cannot)."""
        lines = [
            "| stage | task | action | seconds | peak GiB | CPU s |",
            "|---|---|---|---:|---:|---:|",
        ]
        for r in self.rows:
            peak = "–" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
            cpu = "–" if r.get("cpu_seconds") is None else f"{r['cpu_seconds']}"
            lines.append(
                f"| {r['stage']} | {r['task'] or 'all'} | {r['action']} | {r['seconds']} | "
                f"{peak} | {cpu} |"
            )
        return "\n".join(lines) + "\n"


def code_version() -> str:
    """The zicht release: a stage reruns when it changes (``--fresh`` forces a rerun)."""
    return metadata.version("zicht")


class Stamps:
    """Keys of completed stages, in ``DATA/stamps/``."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "stamps"

    @staticmethod
    def key(**parts: object) -> str:
        doc = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]

    def fresh(self, stage: str, key: str, *outputs: Path) -> bool:
        path = self.dir / f"{stage}.json"
        if not path.exists() or not all(p.exists() for p in outputs):
            return False
        return bool(json.loads(path.read_text()).get("key") == key)

    def done(self, stage: str, key: str, **info: object) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{stage}.json").write_text(json.dumps({"key": key, **info}, default=str))

    def clear(self) -> None:
        for p in self.dir.glob("*.json"):
            p.unlink()


@dataclass(frozen=True)
class RunSettings:
    scale: str = "region"
    seed: int = 7
    models: tuple[str, ...] | None = None  # None: the plan's (experiments/plan.py)
    n_boot: int = 200
    fresh: bool = False  # rerun every stage, reusing nothing


def announce_plan(
    plan: ScalePlan, models: tuple[str, ...] | None, say: Callable[[str], None]
) -> None:
    """Print the main job's plan for this scale (experiments/plan.py) before anything runs;
    *models* from ``--models`` replace the plan's (None: the plan's)."""
    row = [line for line in plan_markdown().splitlines() if line.startswith(f"| {plan.scale} |")]
    say(f"plan for {plan.scale} (experiments/plan.py; the full leaderboard: zicht bench models):")
    for line in [*plan_markdown().splitlines()[:2], *row]:
        say(f"  {line}")
    if models is not None and models != plan.models:
        say(f"  models from --models: {', '.join(models)}")


def run_all(
    settings: RunSettings,
    *,
    data_dir: Path,
    publish_dir: Path,
    review_dir: Path,
    tracking_uri: str,
    progress: Callable[[str], None] = lambda _m: None,
    say: Callable[[str], None] = print,
    world_dir: Path | None = None,
    detail: Callable[[str], None] = lambda _m: None,
    client: Any = None,
) -> StageLog:
    """Run every stage for every task; returns what ran and what was reused.

    Without *world_dir* the world is generated into DATA/world (scale and seed of
    *settings*); with it, the world or extract in *world_dir* is validated and used as it is.
    *progress* is called as each stage starts (``"bench hennep (next: explain hennep)"``),
    *detail* with what runs inside a long stage (a model, a fold, a SHAP step).
    With a Dask *client*, features, LightGBM's fits, SHAP and scoring run on its cluster;
    the baselines, roll-up, disclosure control, publish and the reports stay here.
    """
    from experiments.bench import bench_models
    from experiments.config import load_config
    from experiments.explain import explain_run
    from experiments.predict import predict
    from experiments.publish import publish_tasks
    from experiments.report import build_report, write_index
    from experiments.train import world_identity
    from features.audit import COPY_THRESHOLD, ProtectedAccess
    from features.guard import check_stray_copies
    from microdata.io import check_replaceable, write_world
    from microdata.scales import get_scale

    log = StageLog()
    stamps = Stamps(data_dir)
    if settings.fresh:
        stamps.clear()
    code = code_version()
    given = world_dir is not None
    world_dir = Path(world_dir) if world_dir is not None else data_dir / "world"
    stages = stage_plan(validate=given)  # for the progress line's "next: ..."

    def stage(
        name: str,
        task: str,
        key: str | None,
        run: Callable[[], object],
        why: str,
        *outputs: Path,
        valid: bool = True,
    ) -> None:
        """Run *name* unless *valid* and its stamp matches *key* (None: no stamp, *valid*
        alone decides) and its outputs exist; log which."""
        progress(f"{name} {task}".strip() + f" (next: {next_stage(stages, name, task)})")
        stamp = "-".join(filter(None, (name, task)))
        if valid and (key is None or stamps.fresh(stamp, key, *outputs)):
            say(f"  {' '.join(filter(None, (name, task)))}: reusing {why}")
            log.add(name, task, "reused", 0.0, why)
            return
        reset_peak()
        t0, c0 = time.perf_counter(), cpu_seconds()
        run()
        log.add(name, task, "ran", time.perf_counter() - t0, "", peak_gib(), cpu_seconds() - c0)
        if key is not None:
            stamps.done(stamp, key)

    if given:
        # 1. an existing world or extract: validated first, never written to
        fingerprint, plan = _validate_stage(
            world_dir, stage, say, announce=lambda p: announce_plan(p, settings.models, say)
        )
    else:
        plan = plan_for(settings.scale)
        announce_plan(plan, settings.models, say)
        # 1. the world: its own key is the manifest (a new world invalidates every stamp).
        # Files the generator did not write (an extract) are never replaced:
        # ForeignWorldError, exit 2.
        check_replaceable(data_dir)
        manifest = world_dir / "manifest.json"
        same_world = False
        if manifest.exists():
            doc = json.loads(manifest.read_text())
            same_world = doc.get("scale") == settings.scale and doc.get("seed") == settings.seed

        def generate() -> None:
            stamps.clear()
            write_world(data_dir, get_scale(settings.scale), seed=settings.seed, overwrite=True)

        stage(
            "generate",
            "",
            None,
            generate,
            f"the {settings.scale} world with seed {settings.seed}",
            valid=same_world and not settings.fresh,
        )
        fingerprint, _, _ = world_identity(world_dir)

    # 2-5. per task: features, bench (champion), explain, predict
    champions: dict[str, str] = {}
    access: list[ProtectedAccess] = []  # read once, for the first task that needs it

    def features(task: str, feats: list[str], out: Path, config: dict) -> None:
        if not access:
            access.append(ProtectedAccess(world_dir))
            # an undeclared column that copies origin stops the run (as `zicht features`)
            check_stray_copies(
                access[0].stray_copy_scores(world_dir),
                world_dir=world_dir,
                threshold=COPY_THRESHOLD,
            )
        _features(world_dir, task, feats, out, access[0], config, client)

    for task in TASKS:
        cfg = load_config(default_config_path(task))
        cfg_key = cfg.model_dump(mode="json")
        out = data_dir / "features" / f"{task}.parquet"
        key = Stamps.key(world=fingerprint, config=cfg_key, code=code)
        stage(
            "features",
            task,
            key,
            partial(features, task, list(cfg.features), out, cfg_key),
            "the feature table of this world and config",
            out,
        )

        champion = _champion_id(task, tracking_uri)
        models = settings.models or plan.models
        stage(
            "bench",
            task,
            Stamps.key(
                key=key,
                models=models,
                n_boot=settings.n_boot,
                n_folds=plan.n_folds,
                caps=plan.caps,
            ),
            partial(
                bench_models,
                task,
                list(models),
                data_dir=data_dir,
                tracking_uri=tracking_uri,
                n_boot=settings.n_boot,
                world_dir=world_dir,
                progress=detail,
                detail=detail,
                client=client,
                caps=plan.caps,
                n_folds=plan.n_folds,
            ),
            f"the benchmark and champion run {(champion or '')[:12]}",
            valid=champion is not None,
        )
        champion = _champion_id(task, tracking_uri)
        if champion is None:
            raise RuntimeError(f"{task}: the benchmark left no champion")
        champions[task] = champion

        ekey = Stamps.key(champion=champion, code=code)
        stage(
            "explain",
            task,
            ekey,
            partial(
                explain_run,
                task,
                data_dir=data_dir,
                tracking_uri=tracking_uri,
                world_dir=world_dir,
                progress=detail,
                client=client,
            ),
            f"the SHAP of champion run {champion[:12]}",
            data_dir / "explain" / f"{task}_profiles.parquet",
        )
        stage(
            "predict",
            task,
            ekey,
            partial(
                predict,
                task,
                data_dir=data_dir,
                tracking_uri=tracking_uri,
                world_dir=world_dir,
                client=client,
            ),
            f"the predictions of champion run {champion[:12]}",
            data_dir / "predictions" / f"{task}.parquet",
        )

    # 6. publish, all tasks at once (all or nothing)
    stage(
        "publish",
        "",
        Stamps.key(champions=champions, code=code),
        partial(
            publish_tasks,
            list(TASKS),
            data_dir=data_dir,
            publish_dir=publish_dir,
            tracking_uri=tracking_uri,
            world_dir=world_dir,
            progress=detail,
        ),
        "the published version of these champions",
        publish_dir / "manifest.json",
    )

    # 7. the reviewer reports
    def reports() -> None:
        for task in TASKS:
            detail(task)
            build_report(
                task,
                data_dir=data_dir,
                review_dir=review_dir,
                publish_dir=publish_dir,
                tracking_uri=tracking_uri,
                world_dir=world_dir,
            )
        write_index(review_dir)

    published = (publish_dir / "manifest.json").read_bytes() if publish_dir.exists() else b""
    stage(
        "report",
        "",
        Stamps.key(champions=champions, code=code, publish=hashlib.sha256(published).hexdigest()),
        reports,
        "the reviewer reports of these champions and this publication",
        review_dir / "index.html",
    )
    return log


def stage_plan(*, validate: bool = False) -> list[tuple[str, str]]:
    """Every stage of ``zicht run`` in order, as ``(stage, task)``."""
    first = [("validate" if validate else "generate", "")]
    per_task = [(s, t) for t in TASKS for s in ("features", "bench", "explain", "predict")]
    return [*first, *per_task, ("publish", ""), ("report", "")]


def next_stage(stages: list[tuple[str, str]], name: str, task: str) -> str:
    """The stage after *name* *task* in *stages*, in words (``the end`` after the last)."""
    try:
        k = stages.index((name, task))
    except ValueError:
        return "?"
    return " ".join(filter(None, stages[k + 1])) if k + 1 < len(stages) else "the end"


def _validate_stage(
    world_dir: Path,
    stage: Callable[..., None],
    say: Callable[[str], None],
    announce: Callable[[ScalePlan], None],
) -> tuple[str, ScalePlan]:
    """Validate the world in *world_dir* (reused while its fingerprint is unchanged); returns
    the fingerprint and the plan of its scale (*announce*d before validating). Raises
    :class:`ExtractInvalid` listing every problem."""
    from experiments.train import world_identity
    from microdata.extract import area_notes
    from microdata.validate import validate_world

    if not world_dir.is_dir():
        raise ExtractInvalid(
            f"{world_dir}: no such directory (rule: --world-dir names a directory with the "
            "world's Parquet files); fix: pass the directory of the extract"
        )
    fingerprint, scale, _ = world_identity(world_dir)
    plan = plan_for(scale)
    announce(plan)
    for note in area_notes(world_dir / "areas.parquet"):
        say(f"  note: {note}")

    def validate() -> None:
        problems = validate_world(world_dir)
        if problems:
            lines = "\n".join(f"  {p}" for p in problems)
            raise ExtractInvalid(
                f"{world_dir}: {len(problems)} problem(s); the world does not meet the schemas "
                f"and nothing was run:\n{lines}\nfix: correct what is listed (`zicht world "
                f"validate --world-dir {world_dir}` checks again), then rerun"
            )

    stage(
        "validate",
        "",
        Stamps.key(world=fingerprint, code=code_version()),
        validate,
        f"the validation of {world_dir} ({scale}, fingerprint {fingerprint[:12]})",
    )
    return fingerprint, plan


def _features(
    world_dir: Path,
    task: str,
    feats: list[str],
    out: Path,
    access: ProtectedAccess,
    config: dict | None = None,
    client: Any = None,
) -> None:
    from features.audit import AREA_COPY_THRESHOLD, COPY_THRESHOLD
    from features.partitioned import write_partitioned
    from features.tables import world_years, write_feature_table

    write = write_feature_table if client is None else partial(write_partitioned, client)
    write(
        world_dir,
        out,
        task,
        feats,
        audit=lambda w, frame: access.copy_scores(w, task, frame, feats),
        copy_threshold=AREA_COPY_THRESHOLD if task == "branch_turnover" else COPY_THRESHOLD,
        years=world_years(world_dir).reference_years(task),
        config=config,
    )


def _champion_id(task: str, tracking_uri: str) -> str | None:
    """The run id of the task's champion, or None when there is none yet."""
    from experiments.predict import PredictError, champion_run

    try:
        return str(champion_run(task, tracking_uri).info.run_id)
    except PredictError:
        return None
