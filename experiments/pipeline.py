"""``zicht run``: everything, for all three tasks, reusing what is already there and valid.

Stages: generate → features → bench (LightGBM and the baselines; the main model's run
competes for champion) → explain the champion → predict → publish → report.

**Reuse.** Each stage writes a stamp (``DATA/stamps/<stage>.json``) with the key of its
inputs: the world's scale, seed and fingerprint, the experiment config, the zicht version
and, downstream, the champion's run id. A stage whose key is unchanged and whose output
still exists is skipped, and the run says so. Changing the seed, a config or the release
reruns what depends on it; ``--fresh`` reruns everything (after editing the code).
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

from experiments.config import default_config_path

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")
BENCH_MODELS = ("lightgbm", "tree", "logistic", "histgb")


@dataclass
class StageLog:
    """What each stage did (ran or reused) and how long it took."""

    rows: list[dict[str, object]] = field(default_factory=list)

    def add(self, stage: str, task: str, action: str, seconds: float, detail: str = "") -> None:
        self.rows.append(
            {
                "stage": stage,
                "task": task,
                "action": action,
                "seconds": round(seconds, 1),
                "detail": detail,
            }
        )


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
    models: tuple[str, ...] = BENCH_MODELS
    n_boot: int = 200
    fresh: bool = False  # rerun every stage, reusing nothing


def run_all(
    settings: RunSettings,
    *,
    data_dir: Path,
    publish_dir: Path,
    review_dir: Path,
    tracking_uri: str,
    progress: Callable[[str], None] = lambda _m: None,
    say: Callable[[str], None] = print,
) -> StageLog:
    """Run every stage for every task; returns what ran and what was reused."""
    from experiments.bench import bench_models
    from experiments.explain import explain_run
    from experiments.predict import champion_run, predict
    from experiments.publish import publish_tasks
    from experiments.report import build_report, write_index
    from experiments.train import world_identity
    from features.audit import ProtectedAccess
    from microdata.io import write_world
    from microdata.scales import get_scale

    log = StageLog()
    stamps = Stamps(data_dir)
    if settings.fresh:
        stamps.clear()
    code = code_version()
    world_dir = data_dir / "world"

    def timed(stage: str, task: str, fn: Callable[[], object], detail: str = "") -> None:
        progress(f"{stage} {task}".strip())
        t0 = time.perf_counter()
        fn()
        log.add(stage, task, "ran", time.perf_counter() - t0, detail)

    def reused(stage: str, task: str, why: str) -> None:
        progress(f"{stage} {task}".strip())
        say(f"  {' '.join(filter(None, (stage, task)))}: reusing {why}")
        log.add(stage, task, "reused", 0.0, why)

    # 1. the world
    manifest = world_dir / "manifest.json"
    same_world = False
    if manifest.exists():
        doc = json.loads(manifest.read_text())
        same_world = doc.get("scale") == settings.scale and doc.get("seed") == settings.seed
    if same_world and not settings.fresh:
        reused("generate", "", f"the {settings.scale} world with seed {settings.seed}")
    else:
        stamps.clear()
        timed(
            "generate",
            "",
            lambda: write_world(
                data_dir, get_scale(settings.scale), seed=settings.seed, overwrite=True
            ),
        )
    fingerprint, _, _ = world_identity(world_dir)

    # 2-5. per task: features, bench (champion), explain, predict
    champions: dict[str, str] = {}
    access: ProtectedAccess | None = None
    for task in TASKS:
        from experiments.config import load_config

        cfg = load_config(default_config_path(task))
        cfg_key = cfg.model_dump(mode="json")
        out = data_dir / "features" / f"{task}.parquet"
        key = Stamps.key(world=fingerprint, config=cfg_key, code=code)
        if stamps.fresh(f"features-{task}", key, out):
            reused("features", task, "the feature table of this world and config")
        else:
            if access is None:
                access = ProtectedAccess(world_dir)
            timed(
                "features",
                task,
                partial(_features, world_dir, task, list(cfg.features), out, access),
            )
            stamps.done(f"features-{task}", key)

        bkey = Stamps.key(
            world=fingerprint,
            config=cfg_key,
            code=code,
            models=settings.models,
            n_boot=settings.n_boot,
        )
        champion = _champion_id(task, tracking_uri, champion_run)
        if champion and stamps.fresh(f"bench-{task}", bkey):
            reused("bench", task, f"the benchmark and champion run {champion[:12]}")
        else:
            timed(
                "bench",
                task,
                partial(
                    bench_models,
                    task,
                    list(settings.models),
                    data_dir=data_dir,
                    tracking_uri=tracking_uri,
                    n_boot=settings.n_boot,
                ),
            )
            champion = _champion_id(task, tracking_uri, champion_run)
            if champion is None:
                raise RuntimeError(f"{task}: the benchmark left no champion")
            stamps.done(f"bench-{task}", bkey, champion=champion)
        assert champion is not None
        champions[task] = champion

        ekey = Stamps.key(champion=champion, code=code)
        profiles = data_dir / "explain" / f"{task}_profiles.parquet"
        if stamps.fresh(f"explain-{task}", ekey, profiles):
            reused("explain", task, f"the SHAP of champion run {champion[:12]}")
        else:
            timed(
                "explain",
                task,
                partial(explain_run, task, data_dir=data_dir, tracking_uri=tracking_uri),
            )
            stamps.done(f"explain-{task}", ekey)

        pred = data_dir / "predictions" / f"{task}.parquet"
        if stamps.fresh(f"predict-{task}", ekey, pred):
            reused("predict", task, f"the predictions of champion run {champion[:12]}")
        else:
            timed(
                "predict",
                task,
                partial(predict, task, data_dir=data_dir, tracking_uri=tracking_uri),
            )
            stamps.done(f"predict-{task}", ekey)

    # 6. publish, all tasks at once (all or nothing)
    pkey = Stamps.key(champions=champions, code=code)
    if stamps.fresh("publish", pkey, publish_dir / "manifest.json"):
        reused("publish", "", "the published version of these champions")
    else:
        timed(
            "publish",
            "",
            lambda: publish_tasks(
                list(TASKS), data_dir=data_dir, publish_dir=publish_dir, tracking_uri=tracking_uri
            ),
        )
        stamps.done("publish", pkey)

    # 7. the reviewer reports
    published = (publish_dir / "manifest.json").read_bytes() if publish_dir.exists() else b""
    rkey = Stamps.key(champions=champions, code=code, publish=hashlib.sha256(published).hexdigest())
    if stamps.fresh("report", rkey, review_dir / "index.html"):
        reused("report", "", "the reviewer reports of these champions and this publication")
    else:

        def reports() -> None:
            for task in TASKS:
                build_report(
                    task,
                    data_dir=data_dir,
                    review_dir=review_dir,
                    publish_dir=publish_dir,
                    tracking_uri=tracking_uri,
                )
            write_index(review_dir)

        timed("report", "", reports)
        stamps.done("report", rkey)
    return log


def _features(world_dir: Path, task: str, feats: list[str], out: Path, access: object) -> None:
    from features.audit import AREA_COPY_THRESHOLD, COPY_THRESHOLD
    from features.tables import world_years, write_feature_table

    write_feature_table(
        world_dir,
        out,
        task,
        feats,
        audit=lambda w, frame: access.copy_scores(w, task, frame, feats),  # type: ignore[attr-defined]
        copy_threshold=AREA_COPY_THRESHOLD if task == "branch_turnover" else COPY_THRESHOLD,
        years=world_years(world_dir).reference_years(task),
    )


def _champion_id(
    task: str, tracking_uri: str, champion_run: Callable[[str, str], object]
) -> str | None:
    from experiments.predict import PredictError

    try:
        run = champion_run(task, tracking_uri)
    except PredictError:
        return None
    return str(run.info.run_id)  # type: ignore[attr-defined]
