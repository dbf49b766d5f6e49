"""Screenshots of the MLflow UI and the reviewer report, in headless Chromium, into docs/img/.

What a new user sees, taken the way they would see it: ``zicht ui`` (the lean MLflow server)
on a store made by ``zicht run``, and the review zone's pages from disk. Not part of CI (it
needs Chromium and takes a few minutes); rerun it when the UI or the report changes::

    make browser                                   # Debian's Chromium, when missing
    .venv/bin/python docs/screenshots.py --root /tmp/zicht-shots

``--root`` holds the zones of a ``zicht run`` (``data/``, ``publish/``, ``review/``,
``mlflow.db``); when it holds none, a tiny run (seed 7, LightGBM and logistic) is made there
first (minutes). Written into ``--out`` (default ``docs/img``):

* ``mlflow_experiments.png``: the experiments, with their descriptions;
* ``mlflow_runs.png``: the run table of ``zicht/hennep``, searched for champions and baselines
  side by side (the search of docs/models.md);
* ``mlflow_champion_run.png``: the champion run (description, tags, metrics);
* ``mlflow_model.png``: the registered model ``zicht-hennep`` with its ``champion`` alias;
* ``report_index.png`` and ``report_<task>.png``: the reviewer report at 1280 px.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def _zones(root: Path) -> list[str]:
    return [
        "--data-dir",
        str(root / "data"),
        "--publish-dir",
        str(root / "publish"),
        "--review-dir",
        str(root / "review"),
        "--tracking-uri",
        f"sqlite:///{root / 'mlflow.db'}",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise SystemExit(f"the MLflow UI did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def shoot(browser: str, url: str, png: Path, *, size: str, profile: Path, wait_ms: int) -> None:
    """One screenshot of *url* after *wait_ms* of (virtual) time for the page's scripts."""
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={size}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={png}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    print(f"  {png}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="zones of a zicht run")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--task", default="hennep")
    parser.add_argument("--wait-ms", type=int, default=20_000, help="time for the UI to render")
    args = parser.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed: run `make browser` (Debian's Chromium)")
    root, out = args.root.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    if not (root / "mlflow.db").exists():
        print(f"no store in {root}: making a tiny run there (minutes)")
        root.mkdir(parents=True, exist_ok=True)
        cmd = [str(BIN / "zicht"), "run", "--scale", "tiny", "--models", "lightgbm,logistic"]
        subprocess.run([*cmd, *_zones(root)], check=True, cwd=root, env=env)

    import mlflow
    from mlflow.tracking import MlflowClient

    from experiments.tracking import SIDE_BY_SIDE

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name(f"zicht/{args.task}")
    if exp is None:
        raise SystemExit(f"{root / 'mlflow.db'}: no experiment zicht/{args.task}")
    champion = client.get_model_version_by_alias(f"zicht-{args.task}", "champion")

    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "zicht"), "ui", "--port", str(port), *_zones(root)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port)
        base = f"http://127.0.0.1:{port}/#"
        # MLflow 3's UI opens on GenAI views unless told "model training" (the sidebar's switch)
        ml = "workflowType=machine_learning"
        search = urllib.parse.quote(SIDE_BY_SIDE)
        with tempfile.TemporaryDirectory() as tmp:
            profile = Path(tmp) / "profile"
            shots = {
                "mlflow_experiments.png": f"{base}/experiments?{ml}",
                "mlflow_runs.png": (
                    f"{base}/experiments/{exp.experiment_id}/runs?{ml}&searchFilter={search}"
                ),
                "mlflow_champion_run.png": (
                    f"{base}/experiments/{exp.experiment_id}/runs/{champion.run_id}?{ml}"
                ),
                "mlflow_model.png": f"{base}/models/zicht-{args.task}?{ml}",
            }
            print("MLflow UI:")
            for name, url in shots.items():
                shoot(
                    browser, url, out / name, size="1440,900", profile=profile, wait_ms=args.wait_ms
                )
            print("reviewer report:")
            review = root / "review"
            shoot(
                browser,
                (review / "index.html").as_uri(),
                out / "report_index.png",
                size="1280,900",
                profile=profile,
                wait_ms=2000,
            )
            for page in sorted(review.glob("*/index.html")):
                shoot(
                    browser,
                    page.as_uri(),
                    out / f"report_{page.parent.name}.png",
                    size="1280,2400",
                    profile=profile,
                    wait_ms=2000,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
