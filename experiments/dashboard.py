"""``zicht dashboard``: where the current public version's dashboard is, and a local server.

The dashboard is built by the gate (:func:`disclosure.publish.publish`) inside each version;
nothing here builds or writes anything. :func:`make_server` serves the public zone read-only
on 127.0.0.1: GET and HEAD only, files under the current version only (no directory
listings, no link out of it), with a Content-Security-Policy that lets the page reach no
other host.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"
#: :data:`reports.dashboard.SITE`, named here so that printing a path or starting the server
#: does not import geopandas (seconds); a test keeps the two equal
SITE = "dashboard"
#: the headers of every answer: nothing is cached, nothing leaves for another host
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'none'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class DashboardUnavailable(LookupError):
    """No public version, one without a dashboard, or a port that cannot be had: the message
    names the fix (exit 2)."""


def dashboard_page(publish_dir: Path) -> Path:
    """``<current version>/dashboard/index.html``; :class:`DashboardUnavailable` if none."""
    publish_dir = Path(publish_dir)
    if not (publish_dir / "manifest.json").is_file():
        raise DashboardUnavailable(
            f"{publish_dir}: nothing published yet (no manifest.json); fix: run `zicht publish` "
            "(or `zicht run`), which builds the dashboard"
        )
    page = publish_dir / SITE / "index.html"
    if not page.is_file():
        version = json.loads((publish_dir / "manifest.json").read_text()).get("version", "?")
        raise DashboardUnavailable(
            f"{page}: the public version {version} has no dashboard (published before "
            "dashboards were built); fix: run `zicht publish` to publish a new version"
        )
    return page


class _ReadOnlyHandler(SimpleHTTPRequestHandler):
    """Files of one directory, GET and HEAD only; ``/`` goes to the dashboard."""

    server_version = "zicht-dashboard"
    sys_version = ""

    def __init__(self, *args: object, publish_dir: Path, **kwargs: object) -> None:
        self.root = Path(publish_dir).resolve()  # the version current at this request
        super().__init__(*args, directory=str(self.root), **kwargs)  # type: ignore[arg-type]

    def end_headers(self) -> None:
        for name, value in HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("", "/"):
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", f"/{SITE}/index.html")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self._outside():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if self._outside():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        super().do_HEAD()

    def _outside(self) -> bool:
        """A path that is not a file inside the served version (a directory, a link out)."""
        rel = posixpath.normpath(unquote(urlsplit(self.path).path)).lstrip("/")
        target = (self.root / rel).resolve()
        return not target.is_file() or not target.is_relative_to(self.root)

    def list_directory(self, path: str) -> None:  # type: ignore[override]
        self.send_error(HTTPStatus.NOT_FOUND)
        return None

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the command prints where it serves


def make_server(publish_dir: Path, *, port: int = 8000) -> ThreadingHTTPServer:
    """A server of the public zone on 127.0.0.1:*port* (0: any free port).

    Each request is answered from the version the ``PUBLISH`` link points to at that moment,
    so a new publication is served without a restart.
    """
    dashboard_page(publish_dir)  # refuse at once when there is nothing to serve
    handler = partial(_ReadOnlyHandler, publish_dir=Path(publish_dir))
    return ThreadingHTTPServer((HOST, port), handler)


def serve_until_stopped(
    publish_dir: Path, *, port: int = 8000, echo: Callable[[str], None] = print
) -> None:
    """:func:`make_server`, run until Ctrl-C (or SIGTERM)."""
    try:
        server = make_server(publish_dir, port=port)
    except OSError as exc:
        raise DashboardUnavailable(
            f"{HOST}:{port}: cannot listen ({exc.strerror or exc}); fix: pass another --port"
        ) from exc
    bound = server.server_address[1]
    echo(f"dashboard on http://{HOST}:{bound}/{SITE}/index.html (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
