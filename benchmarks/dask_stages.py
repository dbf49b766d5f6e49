"""The heavy stages on a Dask LocalCluster against the single-process path, per stage.

    .venv/bin/python benchmarks/dask_stages.py --data-dir DATA [--workers 2] [--tasks ...]

DATA holds a generated world (``zicht generate``). For each task: the feature table
(single process, then per partition on the cluster; the SHA-256 of both is compared),
LightGBM's training run (``zicht train``; the cluster's ``lightgbm.dask`` run goes to a
store of its own), and with the single-process champion the predictions and the SHAP
profiles (single process, then on the cluster). Each stage reports its wall time, the
client's peak resident memory, and the workers' summed peak (VmHWM of every worker
process). Writes ``benchmarks/results/dask_<scale>.md`` (``--out`` to change).

The load of the machine is part of the result: the table states the load average at the
start and at the end (other jobs share the cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TASKS = ("hennep", "jonge_aanwas", "branch_turnover")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure(fn: Callable[[], object], client: object | None = None) -> tuple[object, dict]:
    """Run *fn*; wall seconds, the client's peak GiB and the workers' summed peak GiB."""
    from experiments.resources import peak_gib, reset_peak

    reset_peak()
    if client is not None:
        client.run(reset_peak)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    workers = sum(client.run(peak_gib).values()) if client is not None else None  # type: ignore[attr-defined]
    return out, {"seconds": seconds, "client_gib": peak_gib(), "workers_gib": workers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--trees", type=int, default=None, help="LightGBM trees (default: the config's)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from distributed import Client, LocalCluster

    from experiments.config import default_config_path, load_config
    from experiments.distributed import explain_table
    from experiments.explain import explain_run
    from experiments.predict import predict
    from experiments.train import train
    from features.partitioned import write_partitioned
    from features.tables import write_feature_table

    data = args.data_dir.resolve()
    scale = json.loads((data / "world" / "manifest.json").read_text())["scale"]
    single_store = f"sqlite:///{data / 'bench_single.db'}"
    cluster_store = f"sqlite:///{data / 'bench_cluster.db'}"
    load_start = os.getloadavg()
    rows: list[dict] = []

    out = args.out or ROOT / "benchmarks" / "results" / f"dask_{scale}.md"
    startup = 0.0

    def add(stage: str, task: str, path: str, m: dict, note: str = "") -> None:
        rows.append({"stage": stage, "task": task, "path": path, **m, "note": note})
        # written after every stage: a long run that is stopped keeps what it measured
        out.write_text(
            _markdown(scale, args, startup, load_start, os.getloadavg(), rows, done=False)
        )
        w = "" if m["workers_gib"] is None else f", workers {m['workers_gib']:.2f} GiB"
        print(f"{stage} {task} {path}: {m['seconds']:.1f} s, client {m['client_gib']:.2f} GiB{w}")

    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        startup = time.perf_counter() - t0
        for task in args.tasks:
            cfg = load_config(default_config_path(task))
            if args.trees is not None:
                params = {**cfg.params, "lightgbm": {**cfg.model_params("lightgbm")}}
                params["lightgbm"]["n_estimators"] = args.trees
                cfg = cfg.model_copy(update={"params": params})
            feats = list(cfg.features)
            one = data / "features" / f"{task}.parquet"
            many = data / "bench_cluster" / f"{task}.parquet"
            _, m = measure(lambda: write_feature_table(data / "world", one, task, feats))  # noqa: B023
            add("features", task, "single process", m)
            _, m = measure(
                lambda: write_partitioned(client, data / "world", many, task, feats),  # noqa: B023
                client,
            )
            add("features", task, "cluster", m, "same SHA-256" if _sha(one) == _sha(many) else "")

            kw = {"model_name": "lightgbm", "data_dir": data}
            r1, m = measure(lambda: train(cfg, tracking_uri=single_store, **kw))  # noqa: B023
            add("train", task, "single process", m, _metric(r1))
            r2, m = measure(
                lambda: train(cfg, tracking_uri=cluster_store, client=client, **kw),  # noqa: B023
                client,
            )
            add("train", task, "cluster", m, _metric(r2))

            kw = {"data_dir": data, "tracking_uri": single_store}
            _, m = measure(lambda: predict(task, **kw))  # noqa: B023
            add("predict", task, "single process", m)
            _, m = measure(lambda: predict(task, client=client, **kw), client)  # noqa: B023
            add("predict", task, "cluster", m)
            e1, m = measure(lambda: explain_run(task, **kw))  # noqa: B023
            add("explain", task, "single process", m, f"{e1.profile_rows:,} units")  # type: ignore[attr-defined]
            e2, m = measure(lambda: explain_table(client, task, **kw), client)  # noqa: B023
            add("explain", task, "cluster", m, f"{e2.profile_rows:,} units")  # type: ignore[attr-defined]

    out.write_text(_markdown(scale, args, startup, load_start, os.getloadavg(), rows, done=True))
    print(f"written to {out}")
    return 0


def _metric(result: object) -> str:
    metrics = getattr(result, "metrics", {})
    key = "r2_log" if "r2_log" in metrics else "roc_auc"
    return f"{key} {metrics.get(key, float('nan')):.4f}"


def _markdown(
    scale: str,
    args: argparse.Namespace,
    startup: float,
    load0: tuple,
    load1: tuple,
    rows: list[dict],
    *,
    done: bool,
) -> str:
    trees = "the configs' trees" if args.trees is None else f"{args.trees} trees"
    lines = [
        f"# Dask LocalCluster against one process, `{scale}` world",
        "",
        f"`benchmarks/dask_stages.py{'' if args.trees is None else f' --trees {args.trees}'}`: "
        f"LightGBM with {trees}; a LocalCluster of {args.workers} worker processes with one "
        f"thread each (started in {startup:.1f} s) on a machine with {os.cpu_count()} cores. "
        f"Load average (1, 5, 15 min) at the start {load0[0]:.1f}, {load0[1]:.1f}, "
        f"{load0[2]:.1f} and at the end {load1[0]:.1f}, {load1[1]:.1f}, {load1[2]:.1f}: "
        "other jobs shared the cores, so the times are upper bounds and their ratios rough. "
        "The client's peak includes the scheduler (a LocalCluster runs it in the client).",
        "",
        "" if done else "**Partial: the run was still going when this was written.**",
        "",
        "| stage | task | path | seconds | client peak GiB | workers' peak GiB (sum) | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        w = "–" if r["workers_gib"] is None else f"{r['workers_gib']:.2f}"
        lines.append(
            f"| {r['stage']} | {r['task']} | {r['path']} | {r['seconds']:.1f} | "
            f"{r['client_gib']:.2f} | {w} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
