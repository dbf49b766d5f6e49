"""``zicht server``: a team's MLflow tracking server on PostgreSQL, on 127.0.0.1.

The server is part of the secure zone. It listens on 127.0.0.1 only, keeps its artifacts in
``DATA/mlartifacts`` (``--serve-artifacts``: analysts upload and download through the server,
never by path), runs one worker and no job execution. Its store is PostgreSQL: the database
``--db`` names, or a local cluster that it initialises in ``DATA/.zicht/pg`` on first use,
starts, and stops again when the server stops (Ctrl-C, SIGTERM or SIGHUP).

The local cluster:

* is made with ``initdb``/``pg_ctl`` of Debian's ``postgresql`` package (found on PATH or under
  ``/usr/lib/postgresql/*/bin``; ``ZICHT_PG_BIN`` names another directory);
* listens on 127.0.0.1 only (no Unix socket), on a port chosen once at ``initdb`` and kept;
* has one role, ``zicht``, with a random password (SCRAM) written to ``DATA/.zicht/pgpass``
  (mode 0600, libpq's pgpass format): point ``PGPASSFILE`` at it and no URL carries the
  password (URLs show up in ``ps`` and in shell histories);
* holds two databases, ``mlflow`` (the tracking store) and ``optuna`` (for
  ``zicht tune --storage``).

``initdb`` refuses to run as root. Started as root (CI, containers), zicht runs ``initdb``,
``pg_ctl`` and so PostgreSQL itself as the Debian package's system user ``postgres`` (through
``runuser``), which then owns ``DATA/.zicht/pg``; every directory above it must let that user
through, or the command exits 2 saying so. An analyst's own account needs nothing of this.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from experiments.zones import ZoneError, exclusive

#: the role of a local cluster, and its databases
PG_ROLE = "zicht"
DATABASES = ("mlflow", "optuna")
#: the system user that runs PostgreSQL when zicht runs as root (initdb refuses root)
ROOT_RUNS_AS = "postgres"
#: seconds the MLflow server may take to answer /health
READY_TIMEOUT_S = 120.0


class ServerError(ZoneError):
    """The server or its database cannot be started (exit 2); names the cause and the fix."""


# --------------------------------------------------------------------------- PostgreSQL


def pg_bin() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``: ``ZICHT_PG_BIN``, else PATH, else the
    newest ``/usr/lib/postgresql/<version>/bin`` (Debian puts them there, off PATH)."""
    named = os.environ.get("ZICHT_PG_BIN")
    candidates = [Path(named)] if named else []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += versions
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    raise ServerError(
        "no PostgreSQL found: initdb and pg_ctl are neither in $ZICHT_PG_BIN, on PATH nor "
        "under /usr/lib/postgresql/*/bin (rule: without --db, zicht server runs a local "
        "cluster); fix: `apt-get install postgresql` (Debian; `make test` does it), or pass "
        "--db postgresql://USER@HOST:PORT/DB for an existing server"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass(frozen=True)
class LocalCluster:
    """A PostgreSQL cluster in *directory*, its role's password in *pgpass* (0600)."""

    directory: Path
    pgpass: Path

    @classmethod
    def in_zone(cls, data_dir: Path) -> LocalCluster:
        """The cluster of a secure zone: ``DATA/.zicht/pg`` and ``DATA/.zicht/pgpass``."""
        base = Path(data_dir).resolve() / ".zicht"
        return cls(base / "pg", base / "pgpass")

    # ------------------------------------------------------------------ who runs it
    @property
    def owner(self) -> str | None:
        """The system user that runs PostgreSQL: None (this process's user), or ``postgres``
        when this process is root."""
        return ROOT_RUNS_AS if os.geteuid() == 0 else None

    def _cmd(self, *args: str) -> list[str]:
        owner = self.owner
        return ["runuser", "-u", owner, "--", *args] if owner else list(args)

    def _run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        done = subprocess.run(
            self._cmd(*args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",  # the owner may not be allowed into our working directory
        )
        if done.returncode != 0:
            raise ServerError(
                f"{self.directory}: `{Path(args[0]).name} {' '.join(args[1:3])} …` failed "
                f"(exit {done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}; "
                f"fix: see {self.log} and the message above"
            )
        return done.stdout

    # ------------------------------------------------------------------ state
    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def initialised(self) -> bool:
        return (self.directory / "PG_VERSION").is_file()

    @property
    def port(self) -> int:
        """The port written into ``postgresql.conf`` at initdb (the last ``port =`` line)."""
        text = (self.directory / "postgresql.conf").read_text()
        found = re.findall(r"^port = (\d+)", text, re.MULTILINE)
        if not found:
            raise ServerError(
                f"{self.directory / 'postgresql.conf'}: no `port = N` line (rule: zicht writes "
                "the port at initdb); fix: add one, or move the cluster away and start again"
            )
        return int(found[-1])

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of *database*, without the password (libpq reads pgpass)."""
        return f"postgresql://{PG_ROLE}@127.0.0.1:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        """What a client of this cluster needs in its environment."""
        return {"PGPASSFILE": str(self.pgpass)}

    def password(self) -> str:
        try:
            line = self.pgpass.read_text().strip().splitlines()[-1]
        except (OSError, IndexError):
            raise ServerError(
                f"{self.pgpass}: missing or empty (rule: the password of role {PG_ROLE} of "
                f"the cluster {self.directory} is kept there, written at initdb); fix: "
                "restore it from your backup, or move the cluster away (it is initialised "
                "anew) and restore the databases from a dump"
            ) from None
        return line.split(":", 4)[4]

    def running(self) -> bool:
        pg_ctl = str(pg_bin() / "pg_ctl")
        done = subprocess.run(
            self._cmd(pg_ctl, "status", "-D", str(self.directory)),
            capture_output=True,
            cwd="/",
        )
        return done.returncode == 0

    # ------------------------------------------------------------------ lifecycle
    def init(self, port: int | None = None) -> None:
        """``initdb`` with SCRAM authentication for role ``zicht`` and a fresh password
        (written to :attr:`pgpass` first, 0600), listening on 127.0.0.1:*port* only."""
        bin_dir = pg_bin()
        self.directory.mkdir(parents=True, exist_ok=True)
        if any(self.directory.iterdir()):
            raise ServerError(
                f"{self.directory}: not empty and not a PostgreSQL cluster (rule: zicht "
                "initialises its cluster only into an empty directory); fix: move its "
                "contents away"
            )
        self.directory.chmod(0o700)
        owner = self.owner
        if owner:
            try:
                who = pwd.getpwnam(owner)
            except KeyError:
                raise ServerError(
                    f"running as root, and there is no user {owner!r} to run PostgreSQL as "
                    "(rule: initdb refuses root); fix: `apt-get install postgresql` creates "
                    "it, or run zicht server as an ordinary user"
                ) from None
            os.chown(self.directory, who.pw_uid, who.pw_gid)
            reach = subprocess.run(
                ["runuser", "-u", owner, "--", "test", "-w", str(self.directory)], cwd="/"
            )
            if reach.returncode != 0:
                raise ServerError(
                    f"{self.directory}: user {owner} cannot reach it (rule: as root, zicht runs "
                    f"PostgreSQL as user {owner}, since initdb refuses root, and every "
                    "directory above the cluster must let that user through); fix: run zicht "
                    f"server as an ordinary user, `chmod o+x` the directories above "
                    f"{self.directory}, or pass --db for an existing PostgreSQL"
                )
        password = secrets.token_urlsafe(24)
        self.pgpass.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"127.0.0.1:*:*:{PG_ROLE}:{password}\n")
        # initdb reads the password from a file its user can open: one beside the cluster,
        # 0600, removed at once (a pipe cannot be reopened by another user)
        pwfile = self.directory.parent / f".{self.directory.name}.pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(password + "\n")
            if owner:
                os.chown(pwfile, who.pw_uid, who.pw_gid)
            self._run(
                str(bin_dir / "initdb"),
                "-D",
                str(self.directory),
                "-U",
                PG_ROLE,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.directory / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# zicht: 127.0.0.1 only, no Unix socket, a port of its own\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                f"port = {port or free_port()}\n"
            )

    def start(self) -> None:
        if port_taken(self.port):
            raise ServerError(
                f"{self.directory}: port {self.port} on 127.0.0.1 is taken by another program "
                "(rule: the cluster keeps the port chosen at initdb, so that the Optuna "
                f"storage URL stays the same); fix: stop that program, or change `port =` at "
                f"the end of {self.directory / 'postgresql.conf'}"
            )
        self._run(
            str(pg_bin() / "pg_ctl"),
            "start",
            "-D",
            str(self.directory),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-s",
        )

    def stop(self) -> None:
        self._run(str(pg_bin() / "pg_ctl"), "stop", "-D", str(self.directory), "-m", "fast", "-w")

    def create_databases(self, names: tuple[str, ...] = DATABASES) -> None:
        """Create each of *names* that does not exist yet."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=PG_ROLE,
            password=self.password(),
            dbname="postgres",
            connect_timeout=10,
            autocommit=True,
        ) as conn:
            for name in names:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                    continue
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    @contextmanager
    def running_cluster(self, *, log: Callable[[str], None] = lambda _m: None) -> Iterator[None]:
        """Initialise (once), start, create the databases; stop on leaving. A postmaster left
        by a zicht server that was killed (the caller holds the server lock, so no live one
        owns it) is taken over and stopped on leaving too."""
        if not self.initialised:
            log(f"initialising a PostgreSQL cluster in {self.directory}")
            self.init()
        if self.running():
            log(f"taking over the PostgreSQL left running in {self.directory}")
        else:
            self.start()
        try:
            self.create_databases()
            yield
        finally:
            self.stop()
            log(f"PostgreSQL in {self.directory} stopped")


# --------------------------------------------------------------------------- --db


def masked(url: str) -> str:
    """*url* with any password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_database(url: str, *, option: str = "--db") -> None:
    """Refuse a URL that is not PostgreSQL, or a database that does not answer in 5 s."""
    scheme = urlsplit(url).scheme
    if scheme.split("+")[0] != "postgresql":
        raise ServerError(
            f"{option} {masked(url)}: not a PostgreSQL URL (rule: postgresql://USER@HOST:PORT/"
            "DB, the password in ~/.pgpass or $PGPASSFILE); fix: pass such a URL, or leave "
            f"{option} out for a local cluster in DATA/.zicht/pg"
        )
    import psycopg

    dsn = url.replace(f"{scheme}://", "postgresql://", 1)
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServerError(
            f"{option} {masked(url)}: cannot connect ({reason}; rule: the database exists "
            "and answers within 5 s); fix: start PostgreSQL, create the database "
            "(`createdb`), and put the password in ~/.pgpass or $PGPASSFILE"
        ) from None


# --------------------------------------------------------------------------- the server


def mlflow_command(*, port: int, artifacts: Path) -> list[str]:
    """The lean tracking server: 127.0.0.1, one worker, artifacts served from *artifacts*.
    The store comes from ``MLFLOW_BACKEND_STORE_URI`` (no URL on the command line)."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts),
    ]


def wait_ready(url: str, proc: subprocess.Popen, *, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"the MLflow server exited at start (exit {proc.returncode}); fix: see {log}: "
                f"{tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise ServerError(
        f"the MLflow server did not answer {url}/health in {timeout:.0f} s; fix: see {log}"
    )


def tail(path: Path, chars: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return "(no log)"


def stop_process_group(proc: subprocess.Popen, *, grace: float = 15.0) -> None:
    """SIGTERM the server's process group (uvicorn runs below ``mlflow server``), then
    SIGKILL what is left after *grace* seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    try:  # children that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt once while open; later ones are
    ignored, so that a second signal (``timeout`` signals its whole process group too, an
    impatient second Ctrl-C) cannot cut the stopping of the server and the cluster short."""
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def interrupt(signum: int, _frame: object) -> None:
        for s in stopping:
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in stopping}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@dataclass(frozen=True)
class Serving:
    """What analysts point their zicht at (printed when the server is up)."""

    tracking_uri: str
    optuna_storage: str | None
    pgpass: Path | None
    artifacts: Path


def serve(
    *,
    data_dir: Path,
    port: int,
    db: str | None = None,
    log: Callable[[str], None] = print,
    on_ready: Callable[[Serving], None] = lambda _s: None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run the tracking server until it is stopped (Ctrl-C, SIGTERM, SIGHUP); then stop the
    local cluster. Returns normally on such a stop; raises :class:`ServerError` when the
    server cannot start or dies."""
    data_dir = Path(data_dir).resolve()
    artifacts = data_dir / "mlartifacts"
    if port_taken(port):
        raise ServerError(
            f"--port {port}: 127.0.0.1:{port} is taken (rule: the server listens on 127.0.0.1 "
            "only); fix: pass another --port, or stop what listens there (`zicht ui`?)"
        )
    lock = data_dir / ".zicht" / "server.lock"
    with _signals_interrupt(), ExitStack() as stack:
        try:
            stack.enter_context(
                exclusive(lock, zone=data_dir, option="--data-dir", command="server")
            )
            child_env = {
                **os.environ,
                **(env or {}),
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "MLFLOW_DISABLE_TELEMETRY": "true",
            }
            child_env.pop("MLFLOW_TRACKING_URI", None)
            if db is None:
                cluster = LocalCluster.in_zone(data_dir)
                stack.enter_context(cluster.running_cluster(log=log))
                backend, storage, pgpass = (
                    cluster.url("mlflow"),
                    cluster.url("optuna"),
                    cluster.pgpass,
                )
                child_env.update(cluster.env())
            else:
                check_database(db)
                backend, storage, pgpass = db, None, None
            child_env["MLFLOW_BACKEND_STORE_URI"] = backend
            artifacts.mkdir(parents=True, exist_ok=True)
            server_log = data_dir / ".zicht" / "mlflow-server.log"
            out = stack.enter_context(server_log.open("ab"))
            proc = subprocess.Popen(
                mlflow_command(port=port, artifacts=artifacts),
                env=child_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: stopped as one, and not by our Ctrl-C
            )
            stack.callback(stop_process_group, proc)
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, proc, timeout=READY_TIMEOUT_S, log=server_log)
            on_ready(Serving(url, storage, pgpass, artifacts))
            code = proc.wait()
            raise ServerError(
                f"the MLflow server stopped by itself (exit {code}); fix: see {server_log}"
            )
        except KeyboardInterrupt:
            log("stopping")
