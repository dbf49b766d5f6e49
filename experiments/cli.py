"""The ``zicht`` command: parse, validate, dispatch. Nothing else lives here.

Exit codes (see CONTRACT.md): 0 ok; 1 unexpected failure; 2 bad input or usage, with a
message that names the file, the column, the rule and the fix; 3 disclosure control refused;
4 ``audit artifacts`` found something.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from microdata.integrity import IntegrityError
from microdata.scales import SCALES, get_scale

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_AUDIT = 0, 1, 2, 3, 4
#: OS errors of a write that bad input (a read-only or full disk) explains: exit 2
WRITE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)

err_console = Console(stderr=True)


class BadInput(click.ClickException):
    """Bad input or usage: exit 2 with one clear message."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        err_console.print(f"[bold red]error:[/] {self.message}", highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Zones:
    """Where the three zones and the MLflow store are, from the common options."""

    data_dir: Path
    publish_dir: Path
    review_dir: Path
    tracking_uri: str

    @property
    def world_dir(self) -> Path:
        return self.data_dir / "world"


def _default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every subcommand takes (CONTRACT.md), gathered into a :class:`Zones`."""

    @click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=Path("data"),
        show_default=True,
        help="The secure zone: world, features, predictions.",
    )
    @click.option(
        "--publish-dir",
        type=click.Path(path_type=Path),
        default=Path("publish"),
        show_default=True,
        help="The public zone (written only by disclosure control).",
    )
    @click.option(
        "--review-dir",
        type=click.Path(path_type=Path),
        default=Path("review"),
        show_default=True,
        help="The review zone (aggregates that pass the primary rules).",
    )
    @click.option(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db].",
    )
    @functools.wraps(func)
    def wrapper(
        *args: Any,
        data_dir: Path,
        publish_dir: Path,
        review_dir: Path,
        tracking_uri: str | None,
        **kwargs: Any,
    ) -> Any:
        from experiments.zones import check_zones

        zones = Zones(data_dir, publish_dir, review_dir, tracking_uri or _default_tracking_uri())
        check_zones(
            data_dir=data_dir,
            review_dir=review_dir,
            publish_dir=publish_dir,
            tracking_uri=zones.tracking_uri,
        )
        return func(*args, zones=zones, **kwargs)

    return wrapper


def zone_rules(
    *,
    data: bool = False,
    publish: bool = False,
    creates: bool = False,
    store: bool = False,
    generates: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Below :func:`common_options`: hold the lock of DATA (*data*; only when DATA exists,
    unless the command *creates* it) and of PUBLISH (*publish*) while the command runs, and
    refuse a local MLflow store that does not exist (*store*: read-only commands).

    *generates*: the command writes a synthetic world into DATA (unless given
    ``--world-dir``). A DATA that holds a world or extract the generator did not write is
    refused *before* the lock is taken, so the refused command leaves DATA byte for byte as
    it was (not even a lock file); the command checks again under the lock."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, zones: Zones, **kwargs: Any) -> Any:
            from experiments.zones import require_store, zone_locks

            name = click.get_current_context().command_path.removeprefix("zicht ")
            if store:
                task = kwargs.get("task") or kwargs.get("tasks")
                if isinstance(task, tuple) and len(task) == 1:
                    task = task[0]
                train = f"zicht train {task}" if isinstance(task, str) else "zicht train <task>"
                require_store(zones.tracking_uri, name, train=train)
            if generates and kwargs.get("world_dir") is None and zones.data_dir.is_dir():
                from microdata.io import WorldExistsError, check_replaceable

                try:
                    check_replaceable(zones.data_dir)
                except WorldExistsError as exc:
                    raise BadInput(str(exc)) from None
            locked = data and (creates or zones.data_dir.is_dir())
            with zone_locks(
                data_dir=zones.data_dir if locked else None,
                publish_dir=zones.publish_dir if publish else None,
                command=name,
            ):
                return func(*args, zones=zones, **kwargs)

        return wrapper

    return decorate


def stage_progress(total: int, title: str) -> Any:
    """The live stage line of a command (:mod:`experiments.progress`): a live line in a
    terminal, timestamped lines with a heartbeat in a log file. Call it to start the next
    step; ``.detail(message)`` says what runs inside the current one."""
    from experiments.progress import stage_line

    return stage_line(total, title, console=err_console)


def cluster_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--cluster ADDRESS`` (default ``$DASK_SCHEDULER_ADDRESS``): the heavy stages on Dask."""
    return click.option(
        "--cluster",
        "cluster_address",
        envvar="DASK_SCHEDULER_ADDRESS",
        default=None,
        metavar="ADDRESS",
        help="Run the heavy stages on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786; `local` or `local:N` starts N worker processes here) "
        "[default: $DASK_SCHEDULER_ADDRESS; unset: this machine only]. See docs/distributed.md.",
    )(func)


@contextmanager
def dask_client(address: str | None, zones: Zones, *extra: Path) -> Iterator[Any]:
    """A Dask client for *address* whose workers reach DATA (and *extra*); None without one.
    A cluster that cannot be used is bad input (exit 2)."""
    if address is None:
        yield None
        return
    from experiments.distributed import ClusterError, cluster

    try:
        with cluster(address, reachable=[zones.data_dir, *extra]) as client:
            yield client
    except ClusterError as exc:
        raise BadInput(str(exc)) from None


HELP = """Zicht: area risk scores against organised crime ("ondermijning"), from linked
microdata, with strict output control. Everything runs on a seeded synthetic world of
CBS-like tables, or on real extracts that meet the same schemas.

\b
Start here:
  zicht generate --scale tiny        make a small synthetic world in ./data (seconds)
  zicht world validate               check a world or a real extract against the schemas
  zicht features hennep              point-in-time features of a task (hennep, jonge_aanwas,
                                     branch_turnover) into ./data/features

\b
Zones: ./data is the secure zone (microdata; analysts only), ./review the review zone
(aggregates that pass the primary rules), ./publish the public zone.
"""


def explain_new_champion(task: str, zones: Zones, client: Any = None) -> None:
    """SHAP for the champion of *task* when it has none yet (explain runs when a champion is
    set); a failure here is reported, not fatal: the training run itself succeeded."""
    from experiments.explain import explain_run
    from experiments.predict import PredictError, champion_run

    try:
        run = champion_run(task, zones.tracking_uri)
        if run.data.tags.get("zicht.explained") == "true":
            return
        with stage_progress(3, f"explain champion {task}") as advance:
            result = explain_run(
                task,
                data_dir=zones.data_dir,
                tracking_uri=zones.tracking_uri,
                progress=advance,
                client=client,
            )
    except PredictError as exc:
        err_console.print(f"champion of {task} not explained: {exc}")
        return
    click.echo(f"champion {result.run_id} explained; profiles in {result.profiles_path}")


@click.group(
    help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(package_name="zicht", prog_name="zicht")
def cli() -> None:
    pass


@cli.command(short_help="Generate the synthetic world into DATA/world and DATA/truth.")
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="region",
    show_default=True,
    help="tiny: ~30k persons, seconds (tests); region: ~300k persons, under a minute; "
    "national: ~17.9M persons, about 6 minutes and 6 GiB.",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Same seed and scale, same bytes."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing world in DATA.")
@common_options
@zone_rules(data=True, creates=True, generates=True)
def generate(scale: str, seed: int, overwrite: bool, zones: Zones) -> None:
    """Generate the seeded synthetic world.

    Writes CBS-like Parquet tables and a canonical manifest.json to DATA/world, and the
    planted ground truth (true probabilities, anomalous cells, effect sizes) to DATA/truth.
    The write is atomic: a failed or killed run leaves the old world untouched.
    """
    from microdata.io import WorldExistsError, write_world
    from microdata.world import STAGES

    spec = get_scale(scale)
    start = time.perf_counter()
    try:
        with stage_progress(len(STAGES), f"generate {scale}") as advance:
            world = write_world(
                zones.data_dir, spec, seed=seed, overwrite=overwrite, progress=advance
            )
    except WorldExistsError as exc:
        raise BadInput(str(exc)) from None
    except PermissionError as exc:
        raise BadInput(
            f"{exc.filename}: not writable; choose a --data-dir you can write to"
        ) from None
    from microdata.io import data_fingerprint

    click.echo(
        f"world ({scale}, seed {seed}) written to {world} in {time.perf_counter() - start:.1f} s; "
        f"fingerprint {data_fingerprint(world)[:16]}"
    )


@cli.group(short_help="Inspect and validate a world or a real extract.")
def world() -> None:
    """Commands about the world tables (DATA/world)."""


@world.command("validate")
@click.option(
    "--world-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory with the extract's Parquet files [default: DATA/world].",
)
@common_options
def world_validate(world_dir: Path | None, zones: Zones) -> None:
    """Validate every table against the schemas: columns, types, values, keys, references
    and the area hierarchy. Prints one line per problem (file: column: rule: detail (fix))
    and exits 2 if there is any.
    """
    from microdata.extract import area_notes
    from microdata.integrity import HashCache, default_cache_dir
    from microdata.schemas import TABLES
    from microdata.validate import validate_world

    target = world_dir or zones.world_dir
    # the hash cache lives in the secure zone: only for DATA/world, never beside an extract
    cache = HashCache(default_cache_dir(target) if world_dir is None else None)
    with stage_progress(len(TABLES) + 2, "validate") as advance:
        problems = validate_world(target, progress=advance, hashes=cache)
    for note in area_notes(target / "areas.parquet"):
        click.echo(f"note: {note}", err=True)
    if problems:
        for p in problems:
            click.echo(str(p), err=True)
        raise BadInput(f"{target}: {len(problems)} problem(s); the world does not meet the schemas")
    click.echo(f"{target}: valid ({len(TABLES)} tables)")


TASK_CHOICE = click.Choice(["hennep", "jonge_aanwas", "branch_turnover"])


def task_config(task: str, config_path: Path | None) -> Any:
    """The experiment config for *task* (default: the shipped one); ConfigError if it is for
    another task."""
    from experiments.config import ConfigError, default_config_path, load_config
    from features.guard import ProtectedAttributeError, UnknownFeatureError, check_selection

    path = config_path or default_config_path(task)
    cfg = load_config(path)
    if cfg.task != task:
        raise ConfigError(f"{path}: task is {cfg.task!r} but the command asks for {task!r}")
    try:  # the guard's refusal, naming the config file
        check_selection(cfg.features)
    except (ProtectedAttributeError, UnknownFeatureError) as exc:
        raise type(exc)(f"{path}: features: {exc}") from None
    return cfg


@cli.command(short_help="Build the feature table of a task into DATA/features/TASK.parquet.")
@click.argument("task", type=TASK_CHOICE)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment YAML [default: experiments/configs/TASK.yaml].",
)
@cluster_option
@common_options
@zone_rules(data=True)
def features(
    task: str, config_path: Path | None, cluster_address: str | None, zones: Zones
) -> None:
    """Build point-in-time features for every reference year of TASK.

    Features for reference year t use data up to the end of t - 1 only. The protected-
    attribute guard refuses any feature built from origin or migration background, by name,
    by lineage, as a stray column or as a relabelled copy (exit 2).
    """
    from experiments.config import ConfigError
    from features.audit import AREA_COPY_THRESHOLD, COPY_THRESHOLD, ProtectedAccess
    from features.guard import ProtectedAttributeError, UnknownFeatureError, check_stray_copies
    from features.partitioned import write_partitioned
    from features.tables import world_years, write_feature_table
    from features.world import WorldFileError

    try:
        cfg = task_config(task, config_path)
        from features.guard import check_selection

        check_selection(cfg.features)
        world_dir = zones.world_dir
        if not (world_dir / "persons.parquet").exists():
            raise WorldFileError(
                f"{world_dir}: no world here; run `zicht generate` first or pass --data-dir"
            )
        access = ProtectedAccess(world_dir)
        check_stray_copies(
            access.stray_copy_scores(world_dir), world_dir=world_dir, threshold=COPY_THRESHOLD
        )
        years = world_years(world_dir).reference_years(task)
        out = zones.data_dir / "features" / f"{task}.parquet"
        start = time.perf_counter()
        with (
            dask_client(cluster_address, zones) as client,
            stage_progress(len(years) + 1, f"features {task}") as advance,
        ):
            write = write_feature_table if client is None else partial(write_partitioned, client)
            write(
                world_dir,
                out,
                task,
                cfg.features,
                audit=lambda w, frame: access.copy_scores(w, task, frame, list(cfg.features)),
                copy_threshold=AREA_COPY_THRESHOLD if task == "branch_turnover" else COPY_THRESHOLD,
                progress=advance,
                config=cfg.model_dump(mode="json"),
            )
    except (ConfigError, ProtectedAttributeError, UnknownFeatureError, WorldFileError) as exc:
        raise BadInput(str(exc)) from None
    import pyarrow.parquet as pq

    rows = pq.read_metadata(out).num_rows
    click.echo(
        f"{task}: {rows:,} rows x {len(cfg.features)} features for years "
        f"{years[0]}-{years[-1]} written to {out} in {time.perf_counter() - start:.1f} s"
    )


@cli.command(short_help="One tracked training run: CV, temporal hold-out and final fit.")
@click.argument("task", type=TASK_CHOICE)
@click.option(
    "--model",
    "model_name",
    type=click.Choice(["lightgbm", "tree", "logistic", "histgb"]),
    default="lightgbm",
    show_default=True,
    help="Estimator of the zoo.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment YAML [default: experiments/configs/TASK.yaml].",
)
@click.option(
    "--folds",
    type=click.IntRange(2, 20),
    default=5,
    show_default=True,
    help="Gemeente-grouped folds over the training years.",
)
@cluster_option
@common_options
@zone_rules(data=True)
def train(
    task: str,
    model_name: str,
    config_path: Path | None,
    folds: int,
    cluster_address: str | None,
    zones: Zones,
) -> None:
    """Train MODEL on TASK and log one MLflow run to experiment zicht/TASK.

    Evaluation: K folds grouped by gemeente over the training years, and a temporal hold-out
    on the last complete year with a model fitted on earlier years only (that model is the
    one logged and registered as zicht-TASK; the best comparable run gets alias champion).
    """
    from experiments.config import ConfigError
    from experiments.tracking import TrackingError
    from experiments.train import TrainInputError
    from experiments.train import train as run_training
    from features.guard import ProtectedAttributeError, UnknownFeatureError

    if cluster_address is not None and model_name != "lightgbm":
        # lightgbm.dask is the only distributed fit; the baselines fit here, as they do in
        # `zicht run --cluster`
        err_console.print(f"note: --model {model_name} fits on this machine; --cluster is not used")
        cluster_address = None
    try:
        cfg = task_config(task, config_path)
        with (
            dask_client(cluster_address, zones) as client,
            stage_progress(3, f"train {task} {model_name}") as advance,
        ):
            result = run_training(
                cfg,
                model_name=model_name,
                data_dir=zones.data_dir,
                tracking_uri=zones.tracking_uri,
                n_folds=folds,
                progress=advance,
                detail=advance.detail,
                client=client,
            )
    except (
        ConfigError,
        ProtectedAttributeError,
        UnknownFeatureError,
        TrainInputError,
        TrackingError,
    ) as exc:
        raise BadInput(str(exc)) from None
    from experiments.tracking import PRIMARY

    primary = PRIMARY[task]
    shown = {
        k: round(v, 4)
        for k, v in result.metrics.items()
        if k in (primary, f"holdout_{primary}", "oracle_ratio", "oracle_r2_log", "fit_seconds")
    }
    click.echo(f"run {result.run_id} ({task}, {model_name}): {shown}")
    click.echo(f"champion: run {result.champion_run_id}")
    with dask_client(cluster_address, zones) as client:
        explain_new_champion(task, zones, client)


@cli.command(short_help="Champion predictions for the publication year (secure zone).")
@click.argument("task", type=TASK_CHOICE)
@cluster_option
@common_options
@zone_rules(data=True, store=True)
def predict(task: str, cluster_address: str | None, zones: Zones) -> None:
    """Score the publication year (the last year with complete labels) with the champion of
    TASK, which was fitted on earlier years only, into DATA/predictions/TASK.parquet.
    Refuses (exit 2) a champion trained on another world.
    """
    from experiments.predict import PredictError
    from experiments.predict import predict as run_predict
    from experiments.tracking import TrackingError

    try:
        with dask_client(cluster_address, zones) as client:
            out = run_predict(
                task, data_dir=zones.data_dir, tracking_uri=zones.tracking_uri, client=client
            )
    except (PredictError, TrackingError) as exc:
        raise BadInput(str(exc)) from None
    import pyarrow.parquet as pq

    click.echo(f"{task}: {pq.read_metadata(out).num_rows:,} predictions written to {out}")


@cli.command(short_help="SHAP for a run (default: the champion) and area driver profiles.")
@click.argument("task", type=TASK_CHOICE)
@click.option("--run-id", default=None, help="The run to explain (default: the champion).")
@click.option(
    "--sample",
    type=click.IntRange(100, 10_000_000),
    default=20_000,
    show_default=True,
    help="Units of the publication year for the global views (stratified, seeded).",
)
@click.option(
    "--max-per-area",
    type=click.IntRange(10, 10_000_000),
    default=None,
    help="Units per buurt explained for the area profiles (weighted; prevalences count "
    "every unit). Default: every unit, up to --profile-budget units in all.",
)
@click.option(
    "--profile-budget",
    type=click.IntRange(1_000, 100_000_000),
    default=1_000_000,
    show_default=True,
    help="Most units explained for the profiles; beyond it, the largest per-buurt cap that fits.",
)
@cluster_option
@common_options
@zone_rules(data=True, store=True)
def explain(
    task: str,
    run_id: str | None,
    sample: int,
    max_per_area: int | None,
    profile_budget: int,
    cluster_address: str | None,
    zones: Zones,
) -> None:
    """SHAP on the raw model output (log-odds for classifiers) for RUN (default: the champion
    of TASK), written into that run (shap/global_importance.csv, shap/importance_bar.png,
    shap/summary.png, dependence plots), and area driver profiles to
    DATA/explain/TASK_profiles.parquet (secure zone). Refuses a run from another world (exit 2).
    """
    from experiments.explain import ExplainSettings, explain_run
    from experiments.predict import PredictError
    from experiments.tracking import TrackingError

    settings = ExplainSettings(
        global_sample=sample, max_per_area=max_per_area, profile_budget=profile_budget
    )
    try:
        with (
            dask_client(cluster_address, zones) as client,
            stage_progress(3, f"explain {task}") as advance,
        ):
            result = explain_run(
                task,
                data_dir=zones.data_dir,
                tracking_uri=zones.tracking_uri,
                run_id=run_id,
                settings=settings,
                progress=advance,
                client=client,
            )
    except (PredictError, TrackingError) as exc:
        raise BadInput(str(exc)) from None
    top = ", ".join(result.importance["feature"].head(5))
    click.echo(
        f"{task}: run {result.run_id} explained ({result.global_rows:,} units global, "
        f"{result.profile_rows:,} for profiles, {result.rows_per_second:,.0f} rows/s); "
        f"top drivers: {top}"
    )
    click.echo(f"area driver profiles: {result.profiles_path}")


@cli.command(short_help="Open the MLflow UI for the store, on 127.0.0.1.")
@click.option("--port", type=int, default=5000, show_default=True)
@common_options
@zone_rules(store=True)
def ui(port: int, zones: Zones) -> None:
    """Start the MLflow UI (lean settings: one worker, no job execution) on 127.0.0.1."""
    if zones.tracking_uri.startswith(("http://", "https://")):
        raise BadInput(
            f"--tracking-uri {zones.tracking_uri}: a tracking server, which serves the UI itself "
            f"(rule: `zicht ui` serves a local store); fix: open {zones.tracking_uri} in a browser"
        )
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        zones.tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    click.echo(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C to stop)")
    # replace this process, so Ctrl-C and kill reach the server (no orphaned server)
    os.execve(sys.executable, cmd, env)


@cli.command(short_help="A team's MLflow tracking server on PostgreSQL, on 127.0.0.1.")
@click.option(
    "--db",
    default=None,
    metavar="URL",
    help="An existing PostgreSQL database (postgresql://USER@HOST:PORT/DB; the password in "
    "~/.pgpass or $PGPASSFILE) [default: a local cluster in DATA/.zicht/pg].",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@common_options
def server(db: str | None, port: int, zones: Zones) -> None:
    """Run an MLflow tracking server for a team on 127.0.0.1:PORT until Ctrl-C or SIGTERM.

    Its store is PostgreSQL: --db, or a local cluster that it initialises in DATA/.zicht/pg
    (role zicht, password in DATA/.zicht/pgpass), starts, and stops again on exit. Artifacts
    live in DATA/mlartifacts and are served through it (one worker, no job execution).
    Every zicht command then takes --tracking-uri http://127.0.0.1:PORT. See docs/team.md.
    """
    from experiments.server import Serving, serve

    def ready(s: Serving) -> None:
        click.echo(f"MLflow tracking server on {s.tracking_uri} (Ctrl-C to stop)")
        click.echo(f"  artifacts    {s.artifacts}")
        click.echo(f"  zicht ...    --tracking-uri {s.tracking_uri}")
        if s.optuna_storage and s.pgpass:
            click.echo(f"  export PGPASSFILE={s.pgpass}")
            click.echo(f"  zicht tune ... --workers 2 --storage {s.optuna_storage}")

    serve(data_dir=zones.data_dir, port=port, db=db, log=click.echo, on_ready=ready)
    click.echo("server stopped")


@cli.command(short_help="The public dashboard: its path, or --serve it on 127.0.0.1.")
@click.option("--serve", is_flag=True, help="Serve the public zone read-only on 127.0.0.1.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@common_options
def dashboard(serve: bool, port: int, zones: Zones) -> None:
    """Print the path of the current public version's dashboard (built by `zicht publish`;
    this command builds nothing), or serve PUBLISH on 127.0.0.1 with --serve."""
    from experiments.dashboard import DashboardUnavailable, dashboard_page, serve_until_stopped

    try:
        if serve:
            serve_until_stopped(zones.publish_dir, port=port, echo=click.echo)
        else:
            click.echo(str(dashboard_page(zones.publish_dir)))
    except DashboardUnavailable as exc:
        raise BadInput(str(exc)) from None


@cli.command(short_help="An Optuna study; each trial a nested run, the best refitted.")
@click.argument("task", type=TASK_CHOICE)
@click.option("--trials", type=click.IntRange(1, 10_000), required=True, help="Number of trials.")
@click.option(
    "--model",
    "model_name",
    type=click.Choice(["lightgbm", "tree", "logistic", "histgb"]),
    default="lightgbm",
    show_default=True,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment YAML [default: experiments/configs/TASK.yaml].",
)
@click.option(
    "--storage",
    default=None,
    metavar="URL",
    help="Optuna storage (e.g. sqlite:///optuna.db, or postgresql://USER@HOST:PORT/DB for "
    "--workers) to resume or share a study.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes on one study (one thread each); needs a PostgreSQL --storage.",
)
@common_options
@zone_rules(data=True)
def tune(
    task: str,
    trials: int,
    model_name: str,
    config_path: Path | None,
    storage: str | None,
    workers: int,
    zones: Zones,
) -> None:
    """Tune MODEL on TASK with seeded TPE and pruning on the folds. Each trial is a nested
    MLflow run (zicht.kind=trial); the parent run refits the best parameters (zicht.kind=tune)
    and competes for champion. With --workers K, K processes share the study in --storage;
    a killed worker's trial is queued again, and rerunning the command resumes the study.
    """
    from experiments.config import ConfigError
    from experiments.tracking import TrackingError
    from experiments.train import TrainInputError
    from experiments.tune import tune as run_tune
    from features.guard import ProtectedAttributeError, UnknownFeatureError

    try:
        cfg = task_config(task, config_path)
        with stage_progress(trials + 1, f"tune {task} {model_name}") as advance:
            result = run_tune(
                cfg,
                model_name=model_name,
                trials=trials,
                data_dir=zones.data_dir,
                tracking_uri=zones.tracking_uri,
                storage=storage,
                workers=workers,
                progress=advance,
            )
    except (
        ConfigError,
        ProtectedAttributeError,
        UnknownFeatureError,
        TrainInputError,
        TrackingError,
    ) as exc:
        raise BadInput(str(exc)) from None
    from experiments.tracking import PRIMARY

    primary = PRIMARY[task]
    click.echo(
        f"tune run {result.run_id}: {primary} {result.metrics.get(primary, float('nan')):.4f}; "
        f"champion: run {result.champion_run_id}"
    )
    explain_new_champion(task, zones)


class PublishRefusedExit(BadInput):
    """Disclosure control refused: exit 3, nothing was published."""

    exit_code = EXIT_REFUSED


@cli.command(short_help="Roll-up, disclosure control and export to PUBLISH.")
@click.argument("tasks", nargs=-1, type=TASK_CHOICE)
@common_options
@zone_rules(data=True, publish=True)
def publish(tasks: tuple[str, ...], zones: Zones) -> None:
    """Roll the predictions of TASKS (default: all three) up to area scores, apply disclosure
    control (primary rules, secondary suppression, audit) and export a new version of
    PUBLISH atomically. All or nothing: on any refusal (exit 3) the old version stays.
    Missing predictions or predictions from another world: exit 2.
    """
    from disclosure.publish import PublishRefused, PublishWriteError
    from disclosure.settings import DisclosureInputError
    from experiments.publish import PublishInputError, publish_tasks

    chosen = list(dict.fromkeys(tasks)) or ["hennep", "jonge_aanwas", "branch_turnover"]
    try:
        with stage_progress(3 * len(chosen) + 2, "publish") as advance:
            version = publish_tasks(
                chosen,
                data_dir=zones.data_dir,
                publish_dir=zones.publish_dir,
                tracking_uri=zones.tracking_uri,
                progress=advance,
            )
    except (PublishInputError, DisclosureInputError, PublishWriteError) as exc:
        raise BadInput(str(exc)) from None
    except PublishRefused as exc:
        raise PublishRefusedExit(
            f"disclosure control refused; nothing was published: {exc}"
        ) from None
    click.echo(f"published {', '.join(chosen)}: {zones.publish_dir} -> {version}")
    _say_published(version)


def _say_published(version: Path | None) -> None:
    """Cells published per task and level, and a warning where fewer than half are."""
    from disclosure.publish import publication_lines

    if version is None or not version.is_dir():
        return
    for line in publication_lines(version):
        click.echo(line, err=line.startswith("warning"))


@cli.command(short_help="Reviewer report of each task's champion, to REVIEW/TASK/index.html.")
@click.argument("tasks", nargs=-1, type=TASK_CHOICE)
@common_options
@zone_rules(data=True, store=True)
def report(tasks: tuple[str, ...], zones: Zones) -> None:
    """Write a self-contained HTML report per TASK (default: every task with a champion)
    to REVIEW/TASK/index.html, plus REVIEW/index.html, and log it to the champion run.

    Sections: data and population, features with the protected-attribute attestation,
    proxy audit, performance, SHAP, disclosure control, reproducibility. Aggregates only;
    exit 2 when a task has no champion (train it first).
    """
    from experiments.report import ReportError, build_report, write_index
    from experiments.tracking import TrackingError

    names = list(tasks) or list(TASK_CHOICE.choices)
    written: list[str] = []
    try:
        for task in names:
            try:
                page = build_report(
                    task,
                    data_dir=zones.data_dir,
                    review_dir=zones.review_dir,
                    publish_dir=zones.publish_dir,
                    tracking_uri=zones.tracking_uri,
                )
            except ReportError:
                if tasks:  # asked for by name: a missing champion is an error
                    raise
                continue
            click.echo(f"{task}: report written to {page}")
            written.append(task)
        if not written:
            raise ReportError(
                f"no task has a champion in {zones.tracking_uri}; run `zicht train TASK` first"
            )
    except (ReportError, TrackingError) as exc:
        raise BadInput(str(exc)) from None
    index = write_index(zones.review_dir)
    click.echo(f"index: {index}")


@cli.group(short_help="Benchmarks: models against baselines and the oracle.")
def bench() -> None:
    """Benchmarks (``zicht bench models``)."""


@bench.command("models")
@click.argument("tasks", nargs=-1, type=TASK_CHOICE)
@click.option(
    "--models",
    "model_list",
    default="lightgbm,tree,logistic,histgb",
    show_default=True,
    help="Comma-separated models of the zoo.",
)
@click.option(
    "--bootstrap",
    "n_boot",
    type=click.IntRange(20, 5000),
    default=200,
    show_default=True,
    help="Paired bootstrap resamples over gemeenten.",
)
@common_options
@zone_rules(data=True)
def bench_models_cmd(tasks: tuple[str, ...], model_list: str, n_boot: int, zones: Zones) -> None:
    """All models on identical gemeente-grouped folds; prints and logs the leaderboard with
    95% paired bootstrap intervals over gemeenten (model minus best baseline, model over oracle).
    """
    from experiments.bench import bench_models, leaderboard_markdown
    from experiments.tracking import PRIMARY, TrackingError
    from experiments.train import TrainInputError
    from models.tasks import get_task

    models = [m.strip() for m in model_list.split(",") if m.strip()]
    unknown = [m for m in models if m not in ("lightgbm", "tree", "logistic", "histgb")]
    if unknown:
        raise BadInput(
            f"--models: unknown model(s) {unknown}; choose from lightgbm, tree, logistic, histgb"
        )
    for task in tasks or ("hennep", "jonge_aanwas", "branch_turnover"):
        try:
            with stage_progress(len(models) + 1, f"bench {task}") as advance:
                board = bench_models(
                    task,
                    models,
                    data_dir=zones.data_dir,
                    tracking_uri=zones.tracking_uri,
                    n_boot=n_boot,
                    progress=advance,
                    detail=advance.detail,
                )
        except (TrainInputError, TrackingError) as exc:
            raise BadInput(str(exc)) from None
        click.echo(f"\n## {task}\n")
        click.echo(leaderboard_markdown(board, PRIMARY[task], get_task(task).kind))
        explain_new_champion(task, zones)


@bench.command("sdc")
@click.option(
    "--units",
    type=click.IntRange(1_000),
    default=1_000_000,
    show_default=True,
    help="Synthetic units (establishments) in the table.",
)
@click.option(
    "--gemeenten",
    type=click.IntRange(1),
    default=120,
    show_default=True,
    help="Gemeenten (wijken and buurten follow from the seed).",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the units.")
@click.option(
    "--anchors/--no-anchors",
    default=None,
    help="Also run tau-ARGUS (MOD) and ACRO. Default: when their environment .bench-venv/ "
    "exists or can be created (uv, from benchmarks/sdc-anchors.txt).",
)
@click.option(
    "--rerun-anchors",
    is_flag=True,
    help="Run the anchors again instead of reusing .bench-venv/cache/ for the same units.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("benchmarks/results"),
    show_default=True,
    help="Where sdc.csv and sdc.md go.",
)
def bench_sdc_cmd(
    units: int,
    gemeenten: int,
    seed: int,
    anchors: bool | None,
    rerun_anchors: bool,
    out_dir: Path,
) -> None:
    """Our disclosure core against tau-ARGUS (MOD) and ACRO on one synthetic table: secondary
    suppressions, protection, audit and primary-check times, ACRO agreement. Prints the ratio
    table (ours / theirs) and writes OUT/sdc.csv and OUT/sdc.md.
    """
    from disclosure.bench import anchors_venv, run_sdc_bench

    python = None
    if anchors is not False:
        python = anchors_venv()
        if python is None and anchors:
            raise BadInput(
                "--anchors: cannot create .bench-venv/ from benchmarks/sdc-anchors.txt (see the "
                "message above). Fix: check that PyPI is reachable, or pass --no-anchors"
            )
    table = run_sdc_bench(
        n_units=units,
        n_gemeenten=gemeenten,
        random_state=seed,
        anchors_python=python,
        out_dir=out_dir,
        rerun_anchors=rerun_anchors,
    )
    click.echo(table.to_string(index=False))
    click.echo(f"written: {out_dir / 'sdc.csv'}, {out_dir / 'sdc.md'}")


@bench.command("shap")
@click.argument("tasks", nargs=-1, type=TASK_CHOICE)
@click.option(
    "--rows",
    type=click.IntRange(200, 1_000_000),
    default=5_000,
    show_default=True,
    help="Hold-out rows explained for the speed comparison.",
)
@click.option(
    "--max-per-area",
    type=click.IntRange(10, 100_000),
    default=200,
    show_default=True,
    help="Per-buurt sample of the area profiles (against exact profiles).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("benchmarks/results"),
    show_default=True,
    help="Where to write shap_<scale>.csv and .md.",
)
@common_options
@zone_rules(data=True)
def bench_shap_cmd(
    tasks: tuple[str, ...], rows: int, max_per_area: int, out: Path, zones: Zones
) -> None:
    """The project's SHAP path (exact TreeSHAP of its LightGBM) against exact TreeSHAP of the
    unconstrained reference model (200 trees, 63 leaves, no depth limit) on the same rows:
    rows/s, the AUC cost with a paired bootstrap interval, and the time and error of the
    sampled area profiles against exact ones. Default task: hennep.
    """
    from experiments.bench_shap import bench_shap, markdown
    from experiments.explain import ExplainSettings
    from experiments.tracking import TrackingError
    from experiments.train import TrainInputError, world_identity

    chosen = list(dict.fromkeys(tasks)) or ["hennep"]
    settings = ExplainSettings(max_per_area=max_per_area)
    tables = []
    try:
        for task in chosen:
            with stage_progress(6, f"bench shap {task}") as advance:
                tables.append(
                    bench_shap(
                        task,
                        data_dir=zones.data_dir,
                        tracking_uri=zones.tracking_uri,
                        rows=rows,
                        settings=settings,
                        progress=advance,
                    )
                )
    except (TrainInputError, TrackingError) as exc:
        raise BadInput(str(exc)) from None
    import pandas as pd

    table = pd.concat(tables, ignore_index=True)
    _, scale, _ = world_identity(zones.world_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"shap_{scale}.csv", index=False)
    md = markdown(table)
    (out / f"shap_{scale}.md").write_text(md)
    click.echo(md)
    click.echo(f"written to {out / f'shap_{scale}.md'}")


@bench.command("scale")
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="national",
    show_default=True,
    help="Scale of the synthetic world.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the world.")
@click.option(
    "--models",
    "model_list",
    default=None,
    help="Models of the benchmark stage, lightgbm among them (default: the plan's, "
    "experiments/plan.py).",
)
@click.option(
    "--reuse", is_flag=True, help="Keep stages whose stamps match (default: rerun every stage)."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("benchmarks/results"),
    show_default=True,
    help="Where to write scale_<scale>.md.",
)
@common_options
@zone_rules(data=True, publish=True, creates=True, generates=True)
def bench_scale_cmd(
    scale: str, seed: int, model_list: str | None, reuse: bool, out: Path, zones: Zones
) -> None:
    """``zicht run`` at *scale* with every stage measured: wall time, peak resident memory and
    CPU time per stage (generate, features, bench, explain, predict per task; publish;
    report), as ratios to the budget (90 minutes, 16 GiB on a 2-core, 24 GiB machine).
    """
    from experiments.pipeline import RunSettings
    from experiments.plan import plan_for

    models = _run_models(model_list) or plan_for(scale).models
    start = time.perf_counter()
    log = _pipeline(RunSettings(scale=scale, seed=seed, models=models, fresh=not reuse), zones)
    total = time.perf_counter() - start
    ran = [r for r in log.rows if r["action"] == "ran"]
    peak = max((float(r["peak_gib"] or 0.0) for r in ran), default=0.0)
    budget_s, budget_gib = 90 * 60, 16.0
    md = (
        f"# `zicht bench scale --scale {scale} --seed {seed}`\n\n"
        f"{os.cpu_count()} cores; models {', '.join(models)}; "
        f"{'stamped stages reused' if reuse else 'every stage rerun'}.\n\n"
        + log.markdown()
        + f"\n| total | budget | ratio |\n|---|---:|---:|\n"
        f"| wall time | {budget_s / 60:.0f} min | {total / budget_s:.2f} ({total / 60:.1f} min) |\n"
        f"| peak memory | {budget_gib:.0f} GiB | {peak / budget_gib:.2f} ({peak:.2f} GiB) |\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scale_{scale}.md").write_text(md)
    click.echo(md)
    click.echo(f"written to {out / f'scale_{scale}.md'}")


def _run_models(model_list: str | None) -> tuple[str, ...] | None:
    """``--models`` of ``zicht run`` and ``bench scale``: None (the plan's) or a checked list."""
    if model_list is None:
        return None
    models = tuple(m.strip() for m in model_list.split(",") if m.strip())
    if "lightgbm" not in models or set(models) - {"lightgbm", "tree", "logistic", "histgb"}:
        raise BadInput(
            f"--models {model_list!r}: list models of lightgbm, tree, logistic, histgb, "
            "including lightgbm"
        )
    return models


def _pipeline(
    settings: Any, zones: Zones, world_dir: Path | None = None, cluster_address: str | None = None
) -> Any:
    """``zicht run``'s stages (experiments.pipeline.run_all) with its errors as exit codes."""
    from disclosure.publish import PublishRefused, PublishWriteError
    from disclosure.settings import DisclosureInputError
    from experiments.pipeline import TASKS, ExtractInvalid, run_all
    from experiments.predict import PredictError
    from experiments.publish import PublishInputError
    from experiments.report import ReportError
    from experiments.tracking import TrackingError
    from experiments.train import TrainInputError
    from features.guard import ProtectedAttributeError
    from features.world import WorldFileError
    from microdata.io import WorldExistsError

    try:
        title = (
            f"zicht run ({settings.scale}, seed {settings.seed})"
            if world_dir is None
            else f"zicht run on {world_dir}"
        )
        extra = [world_dir] if world_dir is not None else []
        with (
            dask_client(cluster_address, zones, *extra) as client,
            stage_progress(3 + 4 * len(TASKS), title) as advance,
        ):
            log = run_all(
                settings,
                data_dir=zones.data_dir,
                publish_dir=zones.publish_dir,
                review_dir=zones.review_dir,
                tracking_uri=zones.tracking_uri,
                progress=advance,
                detail=advance.detail,
                say=click.echo,
                world_dir=world_dir,
                client=client,
            )
    except (
        PredictError,
        PublishInputError,
        ReportError,
        TrackingError,
        TrainInputError,
        DisclosureInputError,
        PublishWriteError,
        WorldExistsError,
        ExtractInvalid,
        WorldFileError,
        ProtectedAttributeError,
    ) as exc:
        raise BadInput(str(exc)) from None
    except PublishRefused as exc:
        raise PublishRefusedExit(
            f"disclosure control refused; nothing was published: {exc}"
        ) from None
    return log


@cli.command("run", short_help="Everything, for all three tasks (the main job).")
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="region",
    show_default=True,
    help="Scale of the synthetic world.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the world.")
@click.option(
    "--models",
    "model_list",
    default=None,
    help="Models of the benchmark stage (LightGBM must be one: it becomes the champion; "
    "default: the plan of the scale, experiments/plan.py, printed at the start).",
)
@click.option("--fresh", is_flag=True, help="Rerun every stage (e.g. after editing the code).")
@click.option(
    "--world-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run on the world or real extract in this directory instead of generating one "
    "(validated first; --scale and --seed are then not used).",
)
@cluster_option
@common_options
@zone_rules(data=True, publish=True, creates=True, generates=True)
def run_cmd(
    scale: str,
    seed: int,
    model_list: str | None,
    fresh: bool,
    world_dir: Path | None,
    cluster_address: str | None,
    zones: Zones,
) -> None:
    """Generate the world, build the features, benchmark LightGBM against the baselines of
    the scale's plan (experiments/plan.py, printed first; its run becomes the champion),
    explain the champion with SHAP, predict the publication year, publish through disclosure
    control and write the reviewer reports, for all three tasks. Reuses every stage whose
    inputs are unchanged, and says so.

    With --world-dir PATH: every stage but generate, on the world or extract in PATH.
    With --cluster ADDRESS: features, LightGBM, SHAP and scoring on that Dask cluster.
    """
    models = _run_models(model_list)
    from experiments.pipeline import RunSettings

    start = time.perf_counter()
    log = _pipeline(
        RunSettings(scale=scale, seed=seed, models=models, fresh=fresh),
        zones,
        world_dir,
        cluster_address,
    )
    ran = [r for r in log.rows if r["action"] == "ran"]
    click.echo(log.markdown())
    click.echo(
        f"done in {time.perf_counter() - start:.0f} s "
        f"({len(ran)} stages ran, {len(log.rows) - len(ran)} reused)"
    )
    from disclosure.publish import current_version

    click.echo("Published cells per task and level:")
    _say_published(current_version(zones.publish_dir))
    uri = zones.tracking_uri
    click.echo("Where to look:")
    if uri.startswith(("http://", "https://")):  # a tracking server serves its own UI
        click.echo(f"  experiments  {uri}")
    else:
        click.echo(f"  experiments  zicht ui --tracking-uri {uri}   (then http://127.0.0.1:5000)")
    click.echo(f"  public zone  {zones.publish_dir}/  (manifest.json, <task>/*.csv, maps)")
    click.echo(
        f"  dashboard    {zones.publish_dir / 'dashboard' / 'index.html'}   "
        "(or zicht dashboard --serve)"
    )
    click.echo(f"  review zone  {zones.review_dir / 'index.html'}")


class AuditFoundExit(click.ClickException):
    """``audit artifacts`` found something: exit 4 (the findings are already printed)."""

    exit_code = EXIT_AUDIT

    def show(self, file: Any = None) -> None:
        err_console.print(f"[bold red]audit:[/] {self.message}", highlight=False)


@cli.group(short_help="Audits of what left the secure zone.")
def audit() -> None:
    """Audits (``zicht audit artifacts``)."""


@audit.command("artifacts")
@click.option("--no-mlflow", is_flag=True, help="Leave the MLflow store out of the scan.")
@common_options
def audit_artifacts_cmd(no_mlflow: bool, zones: Zones) -> None:
    """Scan every MLflow artifact (runs and logged models), REVIEW/ and the current PUBLISH/
    version for unit-level content: unit-id columns or values, tables with one row per unit,
    measures on cells under min_count, files not in (or changed since) the publish manifest,
    HTML with external assets, models outside the secure zone, model input examples and
    unreadable files. Exit 0 when clean, 4 when anything is found (see docs/audit.md).
    """
    from rich.table import Table

    from experiments.audit import AuditError, gather, scan, scan_context
    from reports.scan import summary_rows

    if not no_mlflow:  # an audit of an empty or mistyped store would pass on nothing
        from experiments.audit import require_zicht_store

        require_zicht_store(zones.tracking_uri)
    try:
        ctx = scan_context(zones.data_dir)
        with gather(
            review_dir=zones.review_dir,
            publish_dir=zones.publish_dir,
            tracking_uri=None if no_mlflow else zones.tracking_uri,
        ) as sources:
            with stage_progress(len(sources.targets), "audit artifacts") as advance:
                result = scan(sources, ctx, progress=advance)
    except AuditError as exc:
        raise BadInput(str(exc)) from None
    out = Console(highlight=False, soft_wrap=True)
    table = Table(title="zicht audit artifacts")
    for col in ("zone", "files", "png (plot tests)", "findings"):
        table.add_column(col, justify="left" if col == "zone" else "right")
    for zone, files, png, found in summary_rows(result):
        table.add_row(zone, str(files), str(png), str(found))
    out.print(table)
    for check, k in sorted(result.by_check().items()):
        out.print(f"  {check}: {k}")
    for finding in result.findings:
        out.print(str(finding), markup=False)
    if result.findings:
        raise AuditFoundExit(f"{len(result.findings)} finding(s); see above")
    click.echo("audit: clean (0 findings)")


@audit.command("release")
@click.option(
    "--also",
    "also",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="An earlier release directory (a publish version) that is out in the world too.",
)
@common_options
def audit_release_cmd(also: tuple[Path, ...], zones: Zones) -> None:
    """Attack the public zone as an intruder with only its files: every version in
    PUBLISH.d (and any --also release) together, each published figure at its stated
    precision, the hierarchy, the breakdowns and n. Reports every cell under the threshold
    known to within one unit, and every count known to cover 90% or more of its units.
    Shares no code with the disclosure audit. Exit 0 when nothing is found, 4 otherwise.
    """
    from disclosure.attack import attack, bases_of, read_versions

    versions = read_versions(zones.publish_dir, also)
    if not versions:
        raise BadInput(
            f"{zones.publish_dir}: no published version to attack (rule: the versions live in "
            f"{zones.publish_dir.parent / (zones.publish_dir.name + '.d')}); fix: `zicht publish` "
            "first, or pass the right --publish-dir"
        )
    tasks = sorted({t for v in versions for t in v.tables})
    steps = sum(len(bases_of(versions, t)) for t in tasks)
    with stage_progress(steps, "audit release") as advance:
        got = attack(versions, progress=advance)
    out = Console(highlight=False, soft_wrap=True)
    out.print(
        f"audit release: {len(versions)} version(s), {len(tasks)} task(s), {len(got)} "
        f"unpublished cell values attacked, {int(got['recomputed'].sum())} recomputed to "
        f"within one unit (complements of safe cells may be), {int(got['finding'].sum())} "
        "finding(s)"
    )
    found = got[got["finding"]]
    for row in found.itertuples(index=False):
        out.print(
            f"  {row.version} {row.task} {row.level} {row.area_code} {row.breakdown} "
            f"{row.basis}: n={int(row.n)}, known in [{row.lower:.6g}, {row.upper:.6g}]",
            markup=False,
        )
    if len(found):
        raise AuditFoundExit(f"{len(found)} finding(s); see above")
    click.echo("audit release: clean (0 findings)")


class VerifyMismatchExit(click.ClickException):
    """``verify`` recomputed a metric that differs from the recorded one: exit 1."""

    exit_code = EXIT_FAILURE

    def show(self, file: Any = None) -> None:
        err_console.print(f"[bold red]MISMATCH:[/] {self.message}", highlight=False)


@cli.command(short_help="Rerun a recorded run and compare every metric (read-only).")
@click.option("--run-id", required=True, help="The MLflow run to rerun and compare.")
@common_options
@zone_rules(store=True)
def verify(run_id: str, zones: Zones) -> None:
    """Rerun RUN-ID's evaluation from its tags, params and logged config on the current world
    (which must have the run's data fingerprint, else exit 2 with the world to regenerate),
    and compare every logged metric (fold_* over all steps) and model param with the rerun's,
    fit_seconds aside. Writes nothing to the MLflow store. Exit 0 when everything matches;
    exit 1 with a MISMATCH line when anything differs.
    """
    from rich.table import Table

    from experiments.config import ConfigError
    from experiments.tracking import TrackingError
    from experiments.train import TrainInputError
    from experiments.verify import VerifyInputError, verify_run

    try:
        with stage_progress(3, f"verify {run_id[:12]}") as advance:
            result = verify_run(
                run_id, data_dir=zones.data_dir, tracking_uri=zones.tracking_uri, progress=advance
            )
    except (VerifyInputError, TrainInputError, TrackingError, ConfigError) as exc:
        raise BadInput(str(exc)) from None
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"zicht verify {run_id} ({result.task}, {result.model}, {result.kind})")
    for col in ("metric", "recorded", "recomputed", "match"):
        table.add_column(col, overflow="fold")
    for c in result.checks:
        table.add_row(c.item, c.recorded, c.recomputed, c.status)
    out.print(table)
    if not result.ok:
        bad = [c.item for c in result.mismatches] or ["nothing was compared"]
        raise VerifyMismatchExit(
            f"{len(result.mismatches)} of {len(result.checks)} item(s) differ: {', '.join(bad)}"
        )
    click.echo(f"OK: all {result.matched} compared items match (timing aside)")


@cli.command(short_help="Write the feature catalogue to docs/features.md.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("docs/features.md"),
    show_default=True,
    help="Where to write the Markdown catalogue.",
)
def catalogue(out: Path) -> None:
    """Render the feature catalogue (definitions, units, sources, builders) as Markdown."""
    from features.catalogue import render_markdown

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown() + "\n")
    click.echo(f"catalogue written to {out}")


def _bad_input(exc: BaseException) -> bool:
    """Whether *exc* is bad input by its type: an integrity refusal, or the guard's (whose
    module is only looked at when loaded: an unloaded module raised nothing)."""
    if isinstance(exc, IntegrityError):
        return True
    guard = sys.modules.get("features.guard")
    kinds = (guard.ProtectedAttributeError, guard.UnknownFeatureError) if guard else ()
    return isinstance(exc, kinds)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code instead of raising SystemExit."""
    try:
        cli.main(args=argv, prog_name="zicht", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        return EXIT_FAILURE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            return _unexpected(exc)
        # a write the command did not expect to fail: the OS's reason, the file and the fix
        why = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "not writable"
        BadInput(
            f"{exc.filename or 'a file'}: {why}: {exc.strerror or exc} (rule: zicht writes "
            "only where it may, and atomically: nothing half-written stays); fix: "
            + (
                "free space on that disk and run the command again"
                if why == "disk full"
                else "pass a --data-dir, --review-dir or --publish-dir you can write to"
            )
        ).show()
        return EXIT_BAD_INPUT
    except Exception as exc:
        return _unexpected(exc)
    return EXIT_OK


def _unexpected(exc: Exception) -> int:
    """Exit 2 for bad input recognised by its type, else exit 1 (unexpected failure)."""
    if _bad_input(exc):
        # found below a command's own error handling (an edited world or feature table,
        # a held lock, overlapping zones): exit 2 with its message
        BadInput(str(exc)).show()
        return EXIT_BAD_INPUT
    err_console.print(f"[bold red]unexpected failure:[/] {type(exc).__name__}: {exc}")
    if os.environ.get("ZICHT_DEBUG"):
        raise exc
    err_console.print("set ZICHT_DEBUG=1 for the traceback")
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
