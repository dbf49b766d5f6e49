"""``zicht report``: the reviewer report of a task's champion, into the review zone.

The edge of :mod:`reports.report`: it gathers aggregates from the champion's MLflow run
(metrics, binned curve tables, leaderboard, SHAP), the world manifest, the feature table
(counts and base rates per year), the proxy audit (``features.audit``, on the champion's
predictions) and the public zone's manifest; renders ``REVIEW/<task>/index.html`` and
``REVIEW/index.html`` atomically; and logs the page to the champion run under ``report/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient

from experiments import tracking
from experiments.predict import PredictError, champion_run
from experiments.publish import release_states_dir
from experiments.train import world_identity
from features.audit import AuditSettings, ProtectedAccess, ProxyAudit
from features.tables import META, UNIT_ID, check_feature_table, load_world, world_years
from microdata.integrity import HashCache
from models.tasks import get_task
from reports import plots
from reports.report import (
    TaskReport,
    attention,
    attest,
    plot_uri,
    png_data_uri,
    render_index,
    render_task,
    round_number,
)

SUMMARY = "summary.json"


class ReportError(ValueError):
    """No champion, or inputs the report cannot use (exit 2); the message says the fix."""


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # reviewers read it (mkstemp makes it owner-only)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _artifacts(run_id: str, dst: Path) -> Path:
    """Download the run's small aggregate artifact folders (never the model)."""
    client = MlflowClient()
    top = {a.path for a in client.list_artifacts(run_id)}
    for folder in ("features", "metrics", "plots", "shap", "leaderboard"):
        if folder in top:
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=folder, dst_path=str(dst)
            )
    return dst


def _leaderboard(run: Any, local: Path, dst: Path) -> pd.DataFrame | None:
    """The champion's leaderboard, else the latest bench run's on the same world and protocol."""
    path = local / "leaderboard" / "leaderboard.csv"
    if not path.exists():
        tags = run.data.tags
        runs = MlflowClient().search_runs(
            [run.info.experiment_id],
            filter_string=(
                "tags.`zicht.kind` = 'bench' and "
                f"tags.`zicht.data_fingerprint` = '{tags.get('zicht.data_fingerprint', '')}' and "
                f"tags.`zicht.protocol` = '{tags.get('zicht.protocol', '')}'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
        for r in runs:
            names = {a.path for a in MlflowClient().list_artifacts(r.info.run_id, "leaderboard")}
            if "leaderboard/leaderboard.csv" in names:
                path = Path(
                    mlflow.artifacts.download_artifacts(
                        run_id=r.info.run_id,
                        artifact_path="leaderboard/leaderboard.csv",
                        dst_path=str(dst / "bench"),
                    )
                )
                break
    return pd.read_csv(path) if path.exists() else None


def _metrics(run: Any, board: pd.DataFrame | None) -> pd.DataFrame:
    m = run.data.metrics
    names = sorted(k for k in m if not k.startswith(("fold_", "holdout_")))
    table = pd.DataFrame(
        {
            "metric": names,
            "cross-validated": [m[k] for k in names],
            "hold-out": [m.get(f"holdout_{k}", np.nan) for k in names],
        }
    )
    model = run.data.tags.get("zicht.model")
    if board is not None and model in set(board["model"]):
        row = board[board["model"] == model].iloc[0]
        lo = [row.get(f"{k}_lo", np.nan) for k in names]
        hi = [row.get(f"{k}_hi", np.nan) for k in names]
        table["95% interval (bench)"] = [
            "–" if pd.isna(a) else f"[{round_number(a)}, {round_number(b)}]"
            for a, b in zip(lo, hi, strict=True)
        ]
    return table


def _years(path: Path, run: Any, kind: str, min_count: int) -> pd.DataFrame:
    frame = pq.read_table(path, columns=["year", "label"]).to_pandas()
    by = frame.groupby("year")["label"]
    table = pd.DataFrame(
        {"units": by.size(), "base rate" if kind == "binary" else "mean label": by.mean()}
    )
    table = table.reset_index()
    holdout = int(run.data.params.get("holdout_year", -1))
    table["role"] = np.where(table["year"] == holdout, "hold-out / publication", "training")
    keep = table["units"] >= min_count
    return table[keep].astype({"year": str})


def _audit(
    task: str,
    run_id: str,
    features: list[str],
    data_dir: Path,
    year: int,
    min_count: int,
    world: Path,
) -> tuple[ProxyAudit | None, str]:
    if get_task(task).kind != "binary":
        return None, (
            "Not applicable: branch_turnover's units are area × branch cells, which have no "
            "origin. The guard's copy check (zicht features) refuses any cell feature that "
            "tracks an area's origin mix."
        )
    pred_path = data_dir / "predictions" / f"{task}.parquet"
    if not pred_path.exists():
        return (
            None,
            f"Not yet audited: the audit needs the champion's scores; run `zicht predict {task}`.",
        )
    unit = UNIT_ID[task]
    pred = pd.read_parquet(pred_path, columns=[unit, "year", "probability", "run_id"])
    if set(pred["run_id"].unique()) != {run_id}:
        return None, (
            f"Not audited: {pred_path} holds another run's scores; run `zicht predict {task}` "
            "for the current champion."
        )
    frame = pd.read_parquet(
        data_dir / "features" / f"{task}.parquet",
        columns=[*META[task], *features],
        filters=[("year", "==", year)],
    )
    frame = frame.merge(pred[[unit, "year", "probability"]], on=[unit, "year"], how="inner")
    if frame.empty:
        return None, f"Not audited: no predictions for {year}; run `zicht predict {task}`."
    w = load_world(world) if task == "hennep" else None
    access = ProtectedAccess(world)
    audit = access.proxy_audit(
        w,
        task,
        frame.drop(columns=["probability"]),
        frame["probability"].to_numpy(np.float64),
        features=features,
        settings=AuditSettings(min_count=min_count),
    )
    return audit, ""


def _disclosure(
    task: str, publish_dir: Path, run_id: str, data_dir: Path
) -> tuple[dict[str, Any] | None, pd.DataFrame | None, str]:
    manifest = publish_dir / "manifest.json"
    note = f"Not yet published: run `zicht publish {task}`."
    if not manifest.exists():
        return None, None, note
    doc = json.loads(manifest.read_text())
    if task not in doc.get("runs", {}):
        return None, None, note
    info: dict[str, Any] = {
        "published version": doc.get("version", "?"),
        "created at": doc.get("created_at", "?"),
        "published run": doc["runs"][task],
        "published run is the champion": "yes" if doc["runs"][task] == run_id else "NO",
    }
    info.update({f"rule: {k}": v for k, v in sorted(doc.get("rule_settings", {}).items())})
    rows = [
        {"level": level, "reason": reason, "suppressed cells": int(k)}
        for level, reasons in doc.get("suppressed", {}).get(task, {}).items()
        for reason, k in reasons.items()
    ]
    # the public zone says only "suppressed"; reviewers get the counts by primary reason
    # from the version's secure state (counts per level: aggregates, no cell)
    state = release_states_dir(data_dir) / str(doc.get("version", "")) / f"{task}.parquet"
    if state.is_file():
        st = pd.read_parquet(state, columns=["level", "status", "reason"])
        hidden = st[(st["status"] != "published") & (st["reason"] != "not_released")]
        why = hidden.assign(reason=hidden["reason"].str.split(";")).explode("reason")
        counts = why.groupby(["level", "reason"]).size()
        rows = [
            {"level": str(lv), "reason": str(r), "suppressed cells": int(k)}
            for (lv, r), k in counts.items()
        ]
    ledger = publish_dir / task / "ledger.csv"
    if ledger.exists():
        led = pd.read_csv(ledger, usecols=["status"])
        info["ledger decisions"] = len(led)
        info["published cells"] = int((led["status"] == "published").sum())
    return info, pd.DataFrame(rows) if rows else None, ""


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _reproduce_world(scale: str, seed: str, world: Path, data_dir: Path) -> dict[str, str]:
    """How to get this world and rerun the main job on it: a generated world is regenerated
    from scale and seed; a real extract (scale ``real``, no seed) is run where it lies."""
    if scale == "real" or not seed:
        return {
            "rerun the main job on this extract": (
                f"zicht world validate --world-dir {world} && "
                f"zicht run --world-dir {world} --data-dir {data_dir}"
            )
        }
    return {"regenerate the world": f"zicht generate --scale {scale} --seed {seed}"}


def build_report(
    task: str,
    *,
    data_dir: Path,
    review_dir: Path,
    publish_dir: Path,
    tracking_uri: str,
    min_count: int = 10,
    world_dir: Path | None = None,
) -> Path:
    """Render and write ``REVIEW/<task>/index.html``; log it to the champion run. *world_dir*
    is the world or extract of the run (default DATA/world)."""
    spec = get_task(task)
    try:
        run = champion_run(task, tracking_uri)
    except PredictError as exc:
        raise ReportError(str(exc)) from None
    run_id = run.info.run_id
    tags, params = run.data.tags, run.data.params
    world = Path(world_dir) if world_dir is not None else data_dir / "world"
    fingerprint, scale, seed = world_identity(world)
    feature_path = data_dir / "features" / f"{task}.parquet"
    if not feature_path.exists():
        raise ReportError(f"{feature_path}: no feature table; run `zicht features {task}` first")
    with tempfile.TemporaryDirectory() as tmp:
        local = _artifacts(run_id, Path(tmp))
        catalogue = pd.read_csv(local / "features" / "catalogue.csv")
        features = catalogue["feature"].tolist()
        check_feature_table(
            feature_path,
            task,
            features,
            fingerprint=fingerprint,
            cache=HashCache(data_dir / ".zicht"),
        )
        board = _leaderboard(run, local, Path(tmp))
        title = f"{task} ({tags.get('zicht.model', '?')})"
        figures = {}
        for name, draw in (
            ("calibration", plots.calibration_plot),
            ("capture", plots.capture_plot),
            ("roc_pr", plots.roc_pr_plot),
        ):
            csv = local / "plots" / f"{name}.csv"
            if csv.exists():
                figures[name] = plot_uri(draw, pd.read_csv(csv), title=f"{title}, out of fold")
        shap_csv = local / "shap" / "global_importance.csv"
        shap = pd.read_csv(shap_csv) if shap_csv.exists() else None
        shap_figs = {
            p.stem: png_data_uri(p.read_bytes()) for p in sorted((local / "shap").glob("*.png"))
        }
    world_manifest = world / "manifest.json"
    manifest = json.loads(world_manifest.read_text()) if world_manifest.exists() else {}
    years_of_world = world_years(world)  # from the manifest, or from an extract's data
    year = int(params["holdout_year"])
    audit, audit_note = _audit(task, run_id, features, data_dir, year, min_count, world)
    disclosure, suppressed, disclosure_note = _disclosure(task, publish_dir, run_id, data_dir)
    world_matches = tags.get("zicht.data_fingerprint") == fingerprint
    report = TaskReport(
        task=task,
        description=spec.description,
        unit_name=spec.unit_name,
        kind=spec.kind,
        data={
            "world fingerprint": fingerprint,
            "champion trained on this world": "yes" if world_matches else "NO: retrain",
            "scale": scale,
            "seed": seed,
            "world years": f"{years_of_world.first}–{years_of_world.last}",
            "rate multiplier": manifest.get("rate_multiplier", 1.0) if manifest else "–",
            "training years": params.get("train_years", "?"),
            "hold-out year": str(year),
            "training units": params.get("n_train", "?"),
            "hold-out units": params.get("n_holdout", "?"),
        },
        years=_years(feature_path, run, spec.kind, min_count),
        catalogue=catalogue[["feature", "level", "definition_en", "unit", "sources"]]
        .assign(sources=catalogue["sources"].map(sources_by_table))
        .rename(columns={"definition_en": "definition"}),
        attestation=attest(features),
        metrics=_metrics(run, board),
        reproducibility={
            "run id": run_id,
            "model": tags.get("zicht.model", "?"),
            "git commit (of the run)": tags.get("mlflow.source.git.commit", "not recorded"),
            "git commit (of this report)": _git_commit(),
            "data fingerprint": tags.get("zicht.data_fingerprint", "?"),
            "protocol": tags.get("zicht.protocol", "?"),
            "rerun and compare": f"zicht verify --run-id {run_id}",
            "retrain": f"zicht train {task} --model {tags.get('zicht.model', 'lightgbm')}",
            **_reproduce_world(scale, seed, world, data_dir),
        },
        audit=audit,
        leaderboard=board,
        figures=figures,
        shap=None if shap is None else shap[["rank", "feature", "mean_abs_shap"]],
        shap_figures=shap_figs,
        disclosure=disclosure,
        suppressed=suppressed,
        notes={
            "audit": audit_note,
            "leaderboard": f"No leaderboard yet: run `zicht bench models {task}`.",
            "shap": f"Not yet explained: run `zicht explain {task}`.",
            "disclosure": disclosure_note,
        },
        min_count=min_count,
    )
    page = review_dir / task / "index.html"
    _atomic_write(page, render_task(report))
    summary = {
        "task": task,
        "run_id": run_id,
        "fingerprint": fingerprint[:16],
        "audit": audit_status(audit),
        "attention": [list(a) for a in attention(report)],
    }
    _atomic_write(review_dir / task / SUMMARY, json.dumps(summary, sort_keys=True) + "\n")
    tracking.connect(tracking_uri, task)
    MlflowClient().log_artifact(run_id, str(page), artifact_path="report")
    return page


def sources_by_table(sources: object) -> str:
    """``a.x; a.y; b.z`` as ``a (x, y); b (z)``: a feature's source columns, table by table."""
    tables: dict[str, list[str]] = {}
    for src in str(sources).split(";"):
        table, _, column = src.strip().partition(".")
        if table:
            tables.setdefault(table, [])
            if column and column not in tables[table]:
                tables[table].append(column)
    return "; ".join(f"{t} ({', '.join(c)})" if c else t for t, c in tables.items())


def audit_status(audit: ProxyAudit | None) -> str:
    """The proxy audit in a few words for the index: what was flagged, what was not judged."""
    if audit is None:
        return "not run"
    parts = []
    if audit.flagged_origin:
        parts.append(f"origin groups {', '.join(audit.flagged_origin)}")
    if audit.flagged_other:
        parts.append(f"{', '.join(audit.flagged_other)} (not an origin group)")
    head = f"FLAGGED: {'; '.join(parts)}" if parts else "passed"
    if audit.not_judged:
        head += f"; not judged: {', '.join(audit.not_judged)} (too few events)"
    return head


def write_index(review_dir: Path) -> Path:
    """``REVIEW/index.html``: every task page under *review_dir*."""
    entries = [json.loads(p.read_text()) for p in sorted(review_dir.glob(f"*/{SUMMARY}"))]
    path = review_dir / "index.html"
    _atomic_write(path, render_index(entries))
    return path
