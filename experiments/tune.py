"""``zicht tune``: an Optuna study; each trial a nested MLflow run, the best refitted.

Seeded TPE, median pruning on the folds (a trial reports its running CV mean after each
fold). Nested runs are opened by hand (``optuna_integration.MLflowCallback`` is deprecated in
Optuna 5). The parent run is the refit of the best parameters (``zicht.kind=tune``) and
competes for champion; trials (``zicht.kind=trial``) never do. With ``--storage`` the study
lives in a database, so it resumes and several workers can share it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow
import optuna

from experiments import tracking
from experiments.config import ExperimentConfig
from experiments.train import TrainResult, finite, log_evaluation, prepare
from models.evaluation import cv_scores
from models.search import suggest


def tune(
    cfg: ExperimentConfig,
    *,
    model_name: str,
    trials: int,
    data_dir: Path,
    tracking_uri: str,
    storage: str | None = None,
    n_folds: int = 5,
    n_jobs: int = 2,
    progress: Callable[[str], None] = lambda _m: None,
) -> TrainResult:
    prep = prepare(cfg, data_dir=data_dir, tracking_uri=tracking_uri, n_folds=n_folds)
    prep.in_memory("zicht tune")  # refuse a streamed (national) table before the study
    seed = int(prep.seed or 0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"zicht-{cfg.task}-{model_name}-{prep.protocol.hash()}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        storage=storage,
        load_if_exists=True,
    )
    metric = tracking.PRIMARY[cfg.task]
    tags = prep.tags(model_name, "tune")
    with tracking.run(cfg.task, run_name=f"{model_name}-tune", tags=tags) as parent:

        def objective(trial: optuna.Trial) -> float:
            params = suggest(trial, model_name)
            trial_tags = {**tags, "zicht.kind": "trial", "optuna.trial": str(trial.number)}
            with tracking.child_run(
                f"trial-{trial.number}",
                tags=trial_tags,
                detail=f"Trial {trial.number} of the study: CV of the parameters below; "
                "pruned trials stop early (tag optuna.state). The parent run refits the best.",
            ):
                mlflow.log_params(params)

                def report(fold: int, value: float) -> None:
                    trial.report(value, fold)
                    mlflow.log_metric(f"cv_{metric}", value, step=fold)
                    if trial.should_prune():
                        mlflow.set_tag("optuna.state", "pruned")
                        raise optuna.TrialPruned()

                scores = cv_scores(
                    prep.in_memory("zicht tune"),
                    prep.task,
                    prep.features,
                    model_name=model_name,
                    protocol=prep.protocol,
                    params=prep.model_params(model_name, params),
                    report=report,
                    random_state=seed,
                    n_jobs=n_jobs,
                )
                value = float(sum(scores) / len(scores))
                mlflow.log_metric(metric, value)
                left = trials - trial.number - 1
                nxt = f"trial {trial.number + 1}" if left > 0 else "refitting the best"
                progress(f"trial {trial.number}: {metric} {value:.4f} (next: {nxt})")
                return value

        study.optimize(objective, n_trials=trials)
        best = study.best_trial.params
        mlflow.log_params({f"best.{k}": v for k, v in best.items()})
        mlflow.log_metric(f"best_trial_cv_{metric}", study.best_value)
        progress("refitting the best parameters")
        ev = prep.evaluate(model_name, params=best, n_jobs=n_jobs)
        log_evaluation(prep, ev, model_name)
        run_id = parent.info.run_id
    champion = tracking.choose_champion(
        cfg.task, fingerprint=prep.fingerprint, protocol=prep.protocol.hash()
    )
    return TrainResult(run_id, finite(ev.metrics), champion, prep.protocol.hash())
