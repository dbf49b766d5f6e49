"""The heavy stages on a Dask cluster: ``--cluster ADDRESS`` (or ``DASK_SCHEDULER_ADDRESS``).

Without an address nothing here runs and every command works on one machine as before.
With one, :func:`cluster` connects (``local`` or ``local:N`` starts a ``LocalCluster`` of N
worker processes with one thread each on this machine), checks that every worker reaches
the secure zone's files at the paths the client uses and runs the same zicht, and hands a
``distributed.Client`` to the stages:

* features: per partition of the units (:mod:`features.partitioned`);
* training: ``lightgbm.dask`` on every training row (:mod:`models.dask_fit`);
* scoring and calibration (:func:`score_table`) and SHAP (:func:`explain_table`): one task
  per slice of a row group of the publication year; SHAP is LightGBM's exact TreeSHAP
  (``pred_contrib``) for every unit, and the area profiles add up sums per partition;
* roll-up, disclosure control, publish and report stay on the client: they read small
  tables.

**What moves over the network.** Tasks carry file paths, row-group numbers, the model and
small settings to the workers, and return aggregates (area sums, value counts, the rows of
the global SHAP sample) or, for ``predict``, the prediction rows the client writes to
``DATA/predictions``. Unit rows move only between the machines of the cluster, which all
sit inside the secure zone; nothing is logged but task names (``docs/distributed.md``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from experiments.explain import (
    ExplainResult,
    ExplainSettings,
    _areas,
    _log_global,
    profile_totals,
    profiles_from_totals,
)
from experiments.files import write_parquet_atomic
from experiments.predict import PredictError, Scored, checked_table, load_run_model, score_rows
from features.tables import META, FeatureTableError
from models import explain as E
from models.tasks import get_task

ENV_ADDRESS = "DASK_SCHEDULER_ADDRESS"
#: seconds to wait for a scheduler to answer, and for its first worker
CONNECT_TIMEOUT = 30
#: rows per scoring task (a row group of the feature table holds up to 1M)
PREDICT_ROWS = 1_000_000
#: rows per SHAP task (exact TreeSHAP runs at about 650 rows/s per thread: about a minute)
SHAP_ROWS = 50_000


class ClusterError(ValueError):
    """No usable cluster at the address, or workers that cannot do the work (exit 2); the
    message names the address or worker, the rule and the fix."""


def cluster_address(option: str | None) -> str | None:
    """The cluster to use: ``--cluster``, else ``$DASK_SCHEDULER_ADDRESS``, else None."""
    return option or os.environ.get(ENV_ADDRESS) or None


@contextmanager
def cluster(address: str | None, *, reachable: Sequence[Path] = ()) -> Iterator[Any]:
    """A ``distributed.Client`` for *address* (None: yields None, nothing starts); every
    worker must reach the paths *reachable*. ``local`` / ``local:N`` starts a LocalCluster
    (N worker processes, default the CPU count, one thread each) for as long as it is open."""
    if address is None:
        yield None
        return
    from distributed import Client, LocalCluster

    local = None
    if address == "local" or address.startswith("local:"):
        n = address.partition(":")[2]
        if n and not n.isdigit():
            raise ClusterError(f"--cluster {address}: local:N takes a number of workers")
        local = LocalCluster(
            n_workers=int(n) if n else os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: 8787 may be taken
        )
        client = Client(local)
    else:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"--cluster {address}: a Dask scheduler answers there (rule: --cluster or "
                f"${ENV_ADDRESS} names a running scheduler): {type(exc).__name__}: {exc}; fix: "
                f"start one (`dask scheduler`, then `dask worker {address}` on each machine), "
                f"or leave out --cluster and unset {ENV_ADDRESS} to run on this machine"
            ) from None
    try:
        check_workers(client, address, reachable)
        yield client
    finally:
        client.close()
        if local is not None:
            local.close()


def _missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.exists(p)]


def _zicht_version() -> str:
    return metadata.version("zicht")


def check_workers(client: Any, address: str, paths: Sequence[Path]) -> None:
    """Refuse a cluster without workers, with a worker that cannot see one of *paths* at the
    same path, or with a worker that runs another zicht (:class:`ClusterError`)."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        raise ClusterError(
            f"--cluster {address}: at least one worker (rule: the scheduler has workers): none "
            f"joined within {CONNECT_TIMEOUT} s; fix: start workers (`dask worker {address}`)"
        ) from None
    wanted = [str(Path(p).resolve()) for p in paths]
    for worker, missing in client.run(_missing, wanted).items():
        if missing:
            raise ClusterError(
                f"{missing[0]}: reachable from worker {worker} (rule: workers read and write "
                "the secure zone at the paths the client uses): it is not there; fix: mount "
                "the data directory on every worker at the same path (docs/distributed.md)"
            )
    mine = _zicht_version()
    for worker, version in client.run(_zicht_version).items():
        if version != mine:
            raise ClusterError(
                f"worker {worker}: zicht {mine} as on the client (rule: one code version per "
                f"run): it runs zicht {version}; fix: install the same zicht on every worker"
            )


# --------------------------------------------------------------------------- slices


@dataclass(frozen=True)
class Slice:
    """Rows ``start:stop`` of row group *row_group*; *offset*: the first row's position among
    the year's rows (in table order)."""

    row_group: int
    start: int
    stop: int
    offset: int


def year_slices(path: Path, year: int, max_rows: int) -> list[Slice]:
    """Slices of at most *max_rows* rows covering the rows of *year*, in table order. A
    feature table holds one reference year per row group (the statistics say which)."""
    meta = pq.ParquetFile(path).metadata
    col = meta.schema.to_arrow_schema().get_field_index("year")
    out: list[Slice] = []
    offset = 0
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        stats = rg.column(col).statistics
        if stats is None or not stats.has_min_max or stats.min != stats.max:
            raise FeatureTableError(
                f"{path}: column year: one reference year per row group (rule: as `zicht "
                f"features` writes it): row group {i} has no or mixed years; fix: rebuild it "
                "with `zicht features`"
            )
        if stats.min != year:
            continue
        for start in range(0, rg.num_rows, max_rows):
            stop = min(start + max_rows, rg.num_rows)
            out.append(Slice(i, start, stop, offset))
            offset += stop - start
    return out


def read_slice(path: str, part: Slice, columns: list[str]) -> pd.DataFrame:
    """The rows of *part* (as ``pd.read_parquet`` gives them)."""
    table = pq.ParquetFile(path).read_row_group(part.row_group, columns=columns)
    return table.slice(part.start, part.stop - part.start).to_pandas()


def _slices_of(path: Path, scored: Scored, max_rows: int) -> list[Slice]:
    parts = year_slices(path, scored.year, max_rows)
    if not parts:
        raise PredictError(
            f"{path}: column year: rows of the publication year {scored.year}; fix: rebuild "
            "the table with `zicht features`"
        )
    return parts


# --------------------------------------------------------------------------- predict


def _score_slice(
    path: str, part: Slice, task: str, model: Any, features: list[str], calibrator: Any
) -> pd.DataFrame:
    frame = read_slice(path, part, [*META[task], *features])
    return score_rows(task, model, frame, features, calibrator)


def score_table(
    client: Any,
    task: str,
    scored: Scored,
    data_dir: Path,
    calibrator: Any,
    *,
    max_rows: int = PREDICT_ROWS,
) -> pd.DataFrame:
    """:func:`experiments.predict.score_rows` of the publication year, one task per slice;
    the rows in table order (the frame single-machine scoring gives)."""
    path = checked_table(task, scored, data_dir)
    model = client.scatter(scored.model, broadcast=True)
    futures = [
        client.submit(
            _score_slice, str(path), part, task, model, scored.features, calibrator, pure=False
        )
        for part in _slices_of(path, scored, max_rows)
    ]
    try:
        return pd.concat(client.gather(futures), ignore_index=True)
    finally:
        client.cancel([*futures, model])


# --------------------------------------------------------------------------- explain


def _threads() -> int:
    from distributed import get_worker

    try:
        return int(get_worker().state.nthreads)
    except (ValueError, AttributeError):
        return 1


@dataclass(frozen=True)
class _Explained:
    """One slice's units on a worker: their areas and exact SHAP (never sent to the client)."""

    areas: pd.DataFrame
    sv: E.ShapValues
    additivity: float  # max |base + sum(SHAP) - raw output|


def _shap_slice(path: str, part: Slice, task: str, model: Any, features: list[str]) -> _Explained:
    frame = read_slice(path, part, [*META[task], *features])
    X = frame[features].to_numpy(np.float32)
    sv = E.explain(model, X, features, n_jobs=_threads())
    err = float(np.abs(sv.raw() - E.raw_output(model, X)).max()) if len(X) else 0.0
    return _Explained(_areas(task, frame)[0], sv, err)


def _value_stats(ex: _Explained) -> tuple[E.ValueStats, float, float, str]:
    return E.value_stats(ex.sv), ex.additivity, ex.sv.base, ex.sv.output


def _sample_rows(ex: _Explained, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ex.sv.values[rows], ex.sv.data[rows]


def _totals(ex: _Explained, task: str, ranges: E.IndicatorRanges) -> pd.DataFrame:
    ind = ranges.apply(ex.sv.data)
    return profile_totals(task, ex.sv, np.ones(len(ex.areas)), ex.areas, ind, ex.areas)


def explain_table(
    client: Any,
    task: str,
    *,
    data_dir: Path,
    tracking_uri: str,
    run_id: str | None = None,
    settings: ExplainSettings | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    world_dir: Path | None = None,
    max_rows: int = SHAP_ROWS,
) -> ExplainResult:
    """:func:`experiments.explain.explain_run` on the cluster: the same global views (the
    same stratified sample, its SHAP rows gathered from the slices) and area driver profiles
    from exact SHAP of **every** unit (no per-area sample, whatever the budget): the
    indicator ranges come from value counts added over the slices and the area means from
    area sums added over the slices."""
    settings = settings or ExplainSettings()
    spec = get_task(task)
    t_start = time.perf_counter()
    progress("loading the model and the publication year")
    scored = load_run_model(
        task, data_dir=data_dir, tracking_uri=tracking_uri, run_id=run_id, world_dir=world_dir
    )
    rid = scored.run.info.run_id
    path = checked_table(task, scored, data_dir)
    meta = pd.read_parquet(path, columns=list(META[task]), filters=[("year", "==", scored.year)])
    parts = _slices_of(path, scored, max_rows)
    model = client.scatter(scored.model, broadcast=True)
    features = scored.features
    t0 = time.perf_counter()
    explained = [
        client.submit(_shap_slice, str(path), part, task, model, features, pure=False)
        for part in parts
    ]
    try:
        progress("global SHAP on a stratified sample")
        strata = spec.groups(meta)
        if spec.kind == "binary":
            strata = strata + "|" + meta["label"].astype(str).to_numpy()
        sample = E.stratified_sample(
            strata, settings.global_sample, random_state=settings.random_state
        )
        picked = []
        for part, ex in zip(parts, explained, strict=True):
            rows = sample[(sample >= part.offset) & (sample < part.offset + part.stop - part.start)]
            picked.append(client.submit(_sample_rows, ex, rows - part.offset, pure=False))
        values, data = zip(*client.gather(picked), strict=True)
        stats, errors, bases, outputs = zip(
            *client.gather([client.submit(_value_stats, ex, pure=False) for ex in explained]),
            strict=True,
        )
        sv = E.ShapValues(
            np.concatenate(values), bases[0], np.concatenate(data), tuple(features), outputs[0]
        )
        importance = E.global_importance(sv)
        binned = E.binned_summary(sv, min_count=settings.min_count)
        model_name = scored.run.data.tags.get("zicht.model", "?")

        progress("area driver profiles")
        ranges = E.indicator_ranges(E.merge_value_stats(stats), min_count=settings.min_count)
        totals = client.gather(
            [client.submit(_totals, ex, task, ranges, pure=False) for ex in explained]
        )
        seconds = time.perf_counter() - t0
        _log_global(rid, task, model_name, sv, importance, binned, settings, seconds)
    finally:
        client.cancel([*explained, model])
    prof = profiles_from_totals(task, E.add_totals(totals, extra=("cells",)), features)
    prof.insert(0, "run_id", rid)
    target = data_dir / "explain" / f"{task}_profiles.parquet"
    write_parquet_atomic(prof, target)
    result = ExplainResult(
        rid,
        importance,
        target,
        len(sample),
        len(meta),
        (len(sample) + len(meta)) / max(seconds, 1e-9),
        time.perf_counter() - t_start,
    )
    return DistributedExplain(**vars(result), additivity=max(errors))


@dataclass(frozen=True)
class DistributedExplain(ExplainResult):
    """:class:`ExplainResult` and the largest additivity error over every unit (SHAP sums
    against the model's raw output)."""

    additivity: float = 0.0
