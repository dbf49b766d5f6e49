"""The zones' ground rules, checked by the ``zicht`` command before any work.

* **Zones apart.** The secure zone (``DATA``), the review zone and the public zone (the
  ``PUBLISH`` link, its versions directory ``PUBLISH.d`` and the version it points to) are
  separate directories: none is, or lies inside, another. The MLflow store (a SQLite file or
  a file store) is secure: never inside the review or the public zone.
* **One writer at a time.** A command that writes takes an exclusive lock per data directory
  (``DATA/.zicht/lock``) and, when it publishes, per publish directory
  (``.<name>.zicht.lock`` beside the ``PUBLISH`` link). The lock is ``fcntl.flock`` on an open
  file: the kernel releases it on any exit, a SIGKILL included, so the lock of a dead process
  is taken over without any stale-lock guessing; the file only tells a waiting command who
  holds it and since when. (``flock`` is in the standard library; ``filelock`` is not a
  dependency, and would add nothing on one host. On NFS, ``flock`` may be local only.)
* **Read-only commands find the store, never create it.** :func:`require_store`.

Every refusal is a :class:`ZoneError` (an :class:`~microdata.integrity.IntegrityError`: the
CLI exits 2) naming the directory, the rule and the fix.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from microdata.integrity import IntegrityError

if sys.platform != "win32":
    import fcntl


class ZoneError(IntegrityError):
    """Overlapping zones, a zone held by another command, or a store that is not there."""


# --------------------------------------------------------------------------- zones apart


def _inside(a: Path, b: Path) -> bool:
    """*a* is *b* or lies below it."""
    return a == b or b in a.parents


def store_path(tracking_uri: str) -> Path | None:
    """The local path of a SQLite or file store (None for a server)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(unquote(tracking_uri.removeprefix("sqlite:///")))
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def check_zones(
    *, data_dir: Path, review_dir: Path, publish_dir: Path, tracking_uri: str | None = None
) -> None:
    """Refuse overlapping or nested zones (and a store inside the review or public zone)."""
    link = Path(os.path.abspath(publish_dir))
    public = [link, (link.parent / f"{link.name}.d").resolve()]
    if link.is_symlink():
        public.append(link.resolve())
    places: list[tuple[str, str, Path]] = [
        ("--data-dir", str(data_dir), Path(data_dir).resolve()),
        ("--review-dir", str(review_dir), Path(review_dir).resolve()),
        *(("--publish-dir", str(publish_dir), p) for p in public),
    ]
    fix = (
        "fix: pass three separate directories, none inside another "
        "(the defaults ./data, ./review and ./publish are)"
    )
    for i, (opt_a, given_a, a) in enumerate(places):
        for opt_b, given_b, b in places[i + 1 :]:
            if opt_a == opt_b:
                continue
            if _inside(a, b) or _inside(b, a):
                where = "is" if a == b else ("lies inside" if _inside(a, b) else "holds")
                raise ZoneError(
                    f"{opt_a} {given_a}: {where} {opt_b} {given_b} ({a} / {b}; rule: the "
                    "secure, review and public zones are separate directories, none inside "
                    f"another); {fix}"
                )
    store = store_path(tracking_uri) if tracking_uri else None
    if store is not None:
        resolved = store.resolve()
        for opt, given, zone in places[1:]:
            if _inside(resolved, zone):
                raise ZoneError(
                    f"--tracking-uri {tracking_uri}: the MLflow store lies inside {opt} {given} "
                    "(rule: the store is secure: never in the review or the public zone); "
                    "fix: keep the store beside the data directory, e.g. sqlite:///mlflow.db"
                )


# --------------------------------------------------------------------------- locks


def data_lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / ".zicht" / "lock"


def publish_lock_path(publish_dir: Path) -> Path:
    link = Path(os.path.abspath(publish_dir))
    return link.parent / f".{link.name}.zicht.lock"


def _holder(path: Path) -> str:
    try:
        doc = json.loads(path.read_text())
        return f"`zicht {doc['command']}`, pid {doc['pid']} on {doc['host']}, since {doc['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "since a moment ago"


@contextmanager
def exclusive(path: Path, *, zone: Path, option: str, command: str) -> Iterator[None]:
    """Hold the lock file *path* for *zone* (named by *option*) while the block runs."""
    nothing = (
        "nothing was published and the old version stays in place"
        if option == "--publish-dir"
        else "nothing was written"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        why = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "not writable"
        raise ZoneError(
            f"{zone}: {why}: cannot create the lock {path} ({exc.strerror or exc}; rule: a "
            f"command that writes into {option} holds its lock); {nothing}; fix: "
            f"pass a {option} you can write to"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ZoneError(
                f"{zone}: another zicht command holds {zone} ({_holder(path)}; rule: one "
                f"command writes into a {option} at a time); {nothing}; fix: wait for it to "
                f"finish, or pass another {option}"
            ) from None
        doc = {
            "command": command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(doc).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def zone_locks(*, data_dir: Path | None, publish_dir: Path | None, command: str) -> Iterator[None]:
    """The data directory's lock and, given *publish_dir*, the publish directory's."""
    with _maybe(data_dir, data_lock_path, "--data-dir", command):
        with _maybe(publish_dir, publish_lock_path, "--publish-dir", command):
            yield


@contextmanager
def _maybe(zone: Path | None, where: object, option: str, command: str) -> Iterator[None]:
    if zone is None:
        yield
        return
    lock = where(zone)  # type: ignore[operator]
    with exclusive(lock, zone=zone, option=option, command=command):
        yield


@contextmanager
def store_creation_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise the creation of a local SQLite store (and of its experiments): MLflow's
    schema migration is not safe against a second process doing the same. Blocking: the
    other command waits the second or two it takes. A server store needs nothing."""
    path = store_path(tracking_uri) if tracking_uri.startswith("sqlite:") else None
    if path is None or sys.platform == "win32":
        yield
        return
    lock = path.with_name(f".{path.name}.zicht.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield  # cannot lock beside it: MLflow reports the store's own problem
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the store


def require_store(tracking_uri: str, command: str, *, train: str = "zicht train <task>") -> None:
    """A read-only command refuses a local store that does not exist (MLflow would create an
    empty one and the command would pass on nothing). *train* is the command the fix names."""
    path = store_path(tracking_uri)
    if path is None:  # a tracking server: fail fast when nothing answers (MLflow retries)
        from experiments.tracking import TrackingError, probe_server

        try:
            probe_server(tracking_uri)
        except TrackingError as exc:
            raise ZoneError(str(exc)) from None
        return
    sqlite = tracking_uri.startswith("sqlite:")
    missing = not path.is_file() or path.stat().st_size == 0 if sqlite else not path.is_dir()
    if missing:
        raise ZoneError(
            f"--tracking-uri {tracking_uri}: no MLflow store at {path} (rule: `zicht "
            f"{command}` reads the store and never creates one); fix: pass the --tracking-uri "
            f"(or MLFLOW_TRACKING_URI) your runs were logged to, or run `{train}` first"
        )
