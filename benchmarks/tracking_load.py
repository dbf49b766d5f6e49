"""Load on the tracking store: 2,000 runs with the contract's tags and metrics, then the
champion lookups and the UI's run table, on a ``zicht server`` (PostgreSQL) and on SQLite.

    .venv/bin/python benchmarks/tracking_load.py [--runs 2000] [--repeats 15]

Writes ``benchmarks/results/tracking_load.md``. The runs are synthetic but shaped like
zicht's: three tasks (``zicht/<task>``), kinds train / tune / trial / bench, two worlds
(fingerprints) and two protocols, the contract's CV and hold-out metrics (per-fold values as
steps on train runs), a dozen params, and a registered model version for every train and
tune run. Measured, as the median of *repeats* calls each:

* ``choose_champion``: experiments/tracking.py, the search over comparable runs that every
  train and tune ends with (tag filters on fingerprint and protocol, status FINISHED);
* ``champion_run``: experiments/predict.py, alias to run (predict, explain, publish, report);
* the UI's run table: ``search_runs`` over the three experiments ordered by a metric, 100
  rows; and ordered by start time (the UI's default), 100 rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from experiments import tracking  # noqa: E402
from experiments.predict import champion_run  # noqa: E402
from experiments.server import free_port  # noqa: E402

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")
CLASSIFICATION = (
    "roc_auc pr_auc brier brier_skill log_loss ece capture_at_1pct capture_at_5pct "
    "capture_at_10pct pai_at_10pct oracle_roc_auc oracle_ratio"
).split()
REGRESSION = (
    "rmse_log mae_log r2_log oracle_r2_log anomaly_precision_at_k anomaly_recall_at_k"
).split()
KINDS = ("train",) * 3 + ("tune",) + ("trial",) * 5 + ("bench",)
FINGERPRINTS = ("a" * 64, "b" * 64)
PROTOCOLS = ("p" * 16, "q" * 16)


def fake_runs(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        task = TASKS[i % 3]
        kind = rng.choice(KINDS)
        names = REGRESSION if task == "branch_turnover" else CLASSIFICATION
        metrics = {m: rng.random() for m in names}
        metrics |= {f"holdout_{m}": rng.random() for m in names}
        metrics["fit_seconds"] = rng.uniform(1, 100)
        folds = (
            [{f"fold_{m}": rng.random() for m in names} for _ in range(5)]
            if kind == "train"
            else []
        )
        out.append(
            {
                "task": task,
                "tags": {
                    "zicht.task": task,
                    "zicht.model": rng.choice(("lightgbm", "tree", "logistic", "histgb")),
                    "zicht.kind": kind,
                    "zicht.scale": "region",
                    "zicht.seed": "7",
                    "zicht.data_fingerprint": FINGERPRINTS[i % 7 == 0],
                    "zicht.protocol": PROTOCOLS[i % 11 == 0],
                },
                "params": {f"model.p{j}": str(rng.randint(1, 500)) for j in range(12)},
                "metrics": metrics,
                "folds": folds,
            }
        )
    return out


def log_runs(uri: str, runs: list[dict]) -> float:
    """Log *runs* into *uri*; seconds per run."""
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exps = {}
    for task in TASKS:
        exps[task] = tracking.connect(uri, task)
        try:
            client.create_registered_model(tracking.registered_name(task))
        except mlflow.exceptions.MlflowException:
            pass
    start = time.perf_counter()
    now = int(time.time() * 1000)
    for i, r in enumerate(runs):
        run = client.create_run(exps[r["task"]], start_time=now + i, tags=r["tags"])
        rid = run.info.run_id
        metrics = [Metric(k, v, now + i, 0) for k, v in r["metrics"].items()]
        metrics += [
            Metric(k, v, now + i, step) for step, fm in enumerate(r["folds"]) for k, v in fm.items()
        ]
        client.log_batch(
            rid, metrics=metrics, params=[Param(k, v) for k, v in r["params"].items()], tags=[]
        )
        if r["tags"]["zicht.kind"] in tracking.COMPETING_KINDS:
            client.create_model_version(
                tracking.registered_name(r["task"]), f"runs:/{rid}/model", run_id=rid
            )
        client.set_terminated(rid, "FINISHED", end_time=now + i + 1)
    return (time.perf_counter() - start) / len(runs)


def median_ms(fn, repeats: int) -> float:
    fn()  # warm: connections, caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def measure(uri: str, repeats: int) -> dict[str, float]:
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp_ids = [
        client.get_experiment_by_name(tracking.experiment_name(t)).experiment_id for t in TASKS
    ]
    task = "hennep"
    fp, proto = FINGERPRINTS[False], PROTOCOLS[False]
    assert tracking.choose_champion(task, fingerprint=fp, protocol=proto) is not None

    def every_comparable_run() -> None:  # what choose_champion did before (commit 80bed64)
        client.search_runs(
            [client.get_experiment_by_name(tracking.experiment_name(task)).experiment_id],
            filter_string=tracking.comparable_filter(fp, proto),
            max_results=10_000,
        )

    return {
        "champion search, every comparable run (before)": median_ms(every_comparable_run, repeats),
        "choose_champion": median_ms(
            lambda: tracking.choose_champion(task, fingerprint=fp, protocol=proto), repeats
        ),
        "champion_run": median_ms(lambda: champion_run(task, uri), repeats),
        "run table by roc_auc (100 rows)": median_ms(
            lambda: client.search_runs(
                exp_ids, "", order_by=["metrics.roc_auc DESC"], max_results=100
            ),
            repeats,
        ),
        "run table by start time (100 rows)": median_ms(
            lambda: client.search_runs(
                exp_ids, "", order_by=["attributes.start_time DESC"], max_results=100
            ),
            repeats,
        ),
    }


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "experiments.cli", "server", "--data-dir", str(root / "data")]
    out = (root / "server.out").open("wb")
    proc = subprocess.Popen([*cmd, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit((root / "server.out").read_text())
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return proc, uri
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit("zicht server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/tracking_load.md")
    args = ap.parse_args()
    runs = fake_runs(args.runs)
    root = Path(tempfile.mkdtemp(prefix="zicht-load-"))
    root.chmod(0o755)  # as root, PostgreSQL runs as user postgres, who must reach it
    results: dict[str, dict[str, float]] = {}
    per_run: dict[str, float] = {}
    try:
        sqlite = f"sqlite:///{root / 'mlflow.db'}"
        per_run["SQLite"] = log_runs(sqlite, runs)
        results["SQLite"] = measure(sqlite, args.repeats)
        proc, uri = start_server(root)
        try:
            per_run["server"] = log_runs(uri, runs)
            results["server"] = measure(uri, args.repeats)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait()  # PostgreSQL stopped before its directory goes, however long it takes
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write(args, results, per_run)


def write(args: argparse.Namespace, results: dict, per_run: dict) -> None:
    lines = [
        f"# Tracking store under load: {args.runs:,} runs, `zicht server` (PostgreSQL) vs SQLite",
        "",
        f"Command: `.venv/bin/python benchmarks/tracking_load.py --runs {args.runs} "
        f"--repeats {args.repeats}`. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, MLflow {mlflow.__version__}. Median of "
        f"{args.repeats} calls after one warm-up; the server is `zicht server` on a local "
        "cluster (one uvicorn worker) on the same machine, so every call is an HTTP request.",
        "",
        "| what | SQLite ms | server ms | server / SQLite |",
        "|---|---:|---:|---:|",
    ]
    for name in results["SQLite"]:
        a, b = results["SQLite"][name], results["server"][name]
        lines.append(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    a, b = 1000 * per_run["SQLite"], 1000 * per_run["server"]
    lines.append(
        f"| logging one run (create, batch, version, end) | {a:.1f} | {b:.1f} | {b / a:.2f} |"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
