"""``zicht audit artifacts``: the edge that finds every artifact and hands it to the scanner.

Sources, each scanned by :mod:`reports.scan` (the pure core):

- **mlflow** (secure zone): every artifact of every run of every experiment (active and
  deleted), and every logged model's artifacts (MLflow 3 keeps them apart from the run's).
  A local artifact store (``file:`` or a plain path, as with ``sqlite:///mlflow.db`` and
  ``./mlruns``) is read in place; any other store is downloaded to a temporary directory.
- **review**: every file under ``REVIEW/``.
- **publish**: the version the ``PUBLISH`` link points to (its versioned directory), file by file
  and against its ``manifest.json``. A ``PUBLISH`` that is a plain directory is scanned as it
  is.

The comparison counts (:class:`reports.scan.ScanContext`) come from the secure zone: the
world's unit tables (``DATA/world/manifest.json`` ``files.<table>.rows``, else the Parquet
metadata), the unit-level feature tables per year and the predictions.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq

from reports.scan import (
    Finding,
    ScanContext,
    ScanResult,
    iter_files,
    scan_file,
    scan_publish_dashboard,
    scan_publish_manifest,
)

#: The world's unit tables: a table with as many rows is one row per unit.
UNIT_TABLES = ("persons", "dwellings", "households", "establishments")
UNIT_KEYS = ("person_id", "dwelling_id", "household_id", "establishment_id")
T = TypeVar("T")


class AuditError(RuntimeError):
    """The MLflow store cannot be read; the message names the URI and the fix (exit 2)."""


@dataclass(frozen=True)
class Target:
    """One file to scan: its zone, where it is on disk, and how findings name it."""

    zone: str
    path: Path
    name: str


@dataclass
class Sources:
    """Everything to scan: the files, and the public version checked against its manifest."""

    targets: list[Target] = field(default_factory=list)
    publish_version: Path | None = None
    zones: tuple[str, ...] = ()


# --------------------------------------------------------------------------- context


def scan_context(data_dir: Path, *, min_count: int | None = None) -> ScanContext:
    """Row counts of unit-level tables in the secure zone, the catalogue, ``min_count``."""
    from disclosure.settings import RuleSettings
    from features.catalogue import CATALOGUE

    counts: dict[int, str] = {}

    def note(rows: int, what: str) -> None:
        if rows > 0:
            counts.setdefault(int(rows), what)

    world = data_dir / "world"
    manifest = world / "manifest.json"
    files = {}
    if manifest.is_file():
        files = json.loads(manifest.read_text()).get("files", {})
    for table in UNIT_TABLES:
        rows = files.get(f"{table}.parquet", {}).get("rows")
        path = world / f"{table}.parquet"
        if rows is None and path.is_file():
            rows = pq.read_metadata(path).num_rows
        if rows is not None:
            note(int(rows), f"the world's {table}")
    for kind in ("features", "predictions"):
        for path in sorted((data_dir / kind).glob("*.parquet")):
            schema = pq.read_schema(path)
            if not set(UNIT_KEYS) & set(schema.names):
                continue  # cells (branch_turnover), not units
            note(pq.read_metadata(path).num_rows, f"{kind}/{path.name}")
            if "year" in schema.names:
                years = pq.read_table(path, columns=["year"]).column("year").to_pandas()
                for year, k in years.value_counts().items():
                    note(int(k), f"{kind}/{path.name} rows of {year}")
    return ScanContext(
        min_count=RuleSettings().min_count if min_count is None else min_count,
        unit_counts=counts,
        feature_names=frozenset(CATALOGUE),
    )


# --------------------------------------------------------------------------- sources


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def _artifact_root(uri: str, stack: ExitStack, tracking_uri: str | None = None) -> Path:
    """The artifacts at *uri* on local disk: in place, or downloaded to a temporary dir."""
    local = _local_path(uri)
    if local is not None:
        return local
    import mlflow

    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="zicht-audit-"))
    if not mlflow.artifacts.list_artifacts(artifact_uri=uri, tracking_uri=tracking_uri):
        # a run that logged nothing (a trial killed before its first artifact): a tracking
        # server answers 404 to downloading its empty root, and there is nothing to scan
        return Path(tmp)
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri
        )
    )


def _paged(fetch: Callable[[str | None], Sequence[T]]) -> Iterator[T]:
    """Every item of a paged MLflow search (``PagedList.token`` is the next page)."""
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def mlflow_targets(tracking_uri: str, stack: ExitStack) -> list[Target]:
    """Every run artifact and logged-model artifact in the store at *tracking_uri*."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        experiments = list(
            _paged(lambda t: client.search_experiments(view_type=ViewType.ALL, page_token=t))
        )
    except Exception as exc:
        raise AuditError(
            f"MLflow store {tracking_uri!r} cannot be read ({type(exc).__name__}: {exc}); "
            "check --tracking-uri / MLFLOW_TRACKING_URI"
        ) from exc
    targets: list[Target] = []

    def add(uri: str, prefix: str) -> None:
        root = _artifact_root(uri, stack, tracking_uri)
        if root.is_dir():
            for p in iter_files(root):
                targets.append(Target("mlflow", p, f"{prefix}/{p.relative_to(root).as_posix()}"))

    for exp in experiments:
        ids = [exp.experiment_id]

        def runs(token: str | None, ids: list[str] = ids) -> Sequence[Any]:
            return client.search_runs(
                ids, run_view_type=ViewType.ALL, max_results=1000, page_token=token
            )

        def models(token: str | None, ids: list[str] = ids) -> Sequence[Any]:
            return client.search_logged_models(ids, max_results=1000, page_token=token)

        for run in _paged(runs):
            add(run.info.artifact_uri, f"{exp.name}/{run.info.run_id}")
        for model in _paged(models):
            add(model.artifact_location, f"{exp.name}/models/{model.model_id}")
    return targets


def zone_targets(root: Path, zone: str) -> list[Target]:
    return [Target(zone, p, p.relative_to(root).as_posix()) for p in iter_files(root)]


@contextmanager
def gather(*, review_dir: Path, publish_dir: Path, tracking_uri: str | None) -> Iterator[Sources]:
    """The files of the three sources (temporary downloads live until the block ends).

    *tracking_uri* None leaves the MLflow store out.
    """
    with ExitStack() as stack:
        sources = Sources()
        zones = []
        if tracking_uri is not None:
            sources.targets += mlflow_targets(tracking_uri, stack)
            zones.append("mlflow")
        if review_dir.is_dir():
            sources.targets += zone_targets(review_dir, "review")
            zones.append("review")
        if publish_dir.is_dir():  # a link to the current version, or a plain directory
            version = publish_dir.resolve()
            sources.targets += zone_targets(version, "publish")
            sources.publish_version = version
            zones.append("publish")
        sources.zones = tuple(zones)
        yield sources


def scan(
    sources: Sources, ctx: ScanContext, *, progress: Callable[[str], None] = lambda _m: None
) -> ScanResult:
    """Scan every target, then the public version against its manifest."""
    result = ScanResult(scanned={z: 0 for z in sources.zones})
    for target in sources.targets:
        result.add(scan_file(target.path, zone=target.zone, name=target.name, ctx=ctx))
        progress(target.name)
    if sources.publish_version is not None:
        result.findings.extend(scan_publish_manifest(sources.publish_version))
        result.findings.extend(scan_publish_dashboard(sources.publish_version))
    return result


def audit_artifacts(
    *,
    data_dir: Path,
    review_dir: Path,
    publish_dir: Path,
    tracking_uri: str | None,
    progress: Callable[[str], None] = lambda _m: None,
) -> list[Finding]:
    """Every finding in the MLflow store, ``REVIEW/`` and ``PUBLISH/`` (empty when clean)."""
    ctx = scan_context(data_dir)
    with gather(review_dir=review_dir, publish_dir=publish_dir, tracking_uri=tracking_uri) as s:
        return scan(s, ctx, progress=progress).findings


def require_zicht_store(tracking_uri: str) -> None:
    """Refuse (exit 2) a store that does not exist or holds no ``zicht/*`` experiment: the
    audit would scan nothing and print clean. Creates nothing."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    from experiments.zones import ZoneError, require_store

    require_store(tracking_uri, "audit artifacts")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        names = [
            e.name
            for e in _paged(
                lambda t: client.search_experiments(view_type=ViewType.ALL, page_token=t)
            )
        ]
    except Exception as exc:
        raise AuditError(
            f"MLflow store {tracking_uri!r} cannot be read ({type(exc).__name__}: {exc}); "
            "check --tracking-uri / MLFLOW_TRACKING_URI"
        ) from exc
    if not any(n.startswith("zicht/") for n in names):
        raise ZoneError(
            f"--tracking-uri {tracking_uri}: holds no zicht experiment (zicht/hennep, …; rule: "
            "the audit scans the runs zicht logged, and a store without them would pass on "
            "nothing); fix: pass the --tracking-uri your runs were logged to, or --no-mlflow "
            "to scan only the review and public zones"
        )
