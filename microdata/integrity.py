"""Tamper evidence for the secure zone's inputs: file hashes checked against what we wrote.

* **The world.** ``manifest.json`` records the SHA-256 of every world file. :func:`world_changes`
  compares the files on disk with it (changed, missing and added files), and
  :func:`microdata.io.data_fingerprint` refuses a world that differs, so the fingerprint
  (the SHA-256 of the manifest) stands for the files' contents, not for the manifest alone.
* **Hashing once.** :class:`HashCache` keeps each file's SHA-256 under its
  ``(path, size, mtime_ns, ctime_ns, inode)`` in the secure zone (``DATA/.zicht/hashes.json``):
  an unchanged file is not read again. ``ctime`` cannot be set by a user (``os.utime`` sets
  only mtime and atime and bumps ctime), so an edit that restores the old mtime still rehashes.

Every refusal is an :class:`IntegrityError` (bad input: the CLI exits 2) naming the file,
the rule and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
GENERATOR = "zicht.microdata"  # the "generator" of a manifest.json that zicht generate wrote
CACHE_FILE = "hashes.json"


class IntegrityError(ValueError):
    """An input differs from what the suite wrote or recorded (exit 2); the message names the
    file, the rule and the fix."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir(world_dir: Path) -> Path:
    """``DATA/.zicht`` for the world ``DATA/world``: the hash cache lives in the secure zone."""
    return Path(world_dir).parent / ".zicht"


class HashCache:
    """SHA-256 per file, remembered under the file's identity; *directory* None: no cache.

    Writing the cache is best effort (a read-only secure zone just hashes every time) and
    atomic (temporary file, then ``os.replace``), so concurrent readers never see half a file.
    """

    def __init__(self, directory: Path | None) -> None:
        self.path = None if directory is None else Path(directory) / CACHE_FILE
        self._entries: dict[str, dict[str, object]] | None = None
        self._dirty = False

    @staticmethod
    def _identity(path: Path) -> list[int]:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def _load(self) -> dict[str, dict[str, object]]:
        if self._entries is None:
            self._entries = {}
            if self.path is not None and self.path.is_file():
                try:
                    doc = json.loads(self.path.read_text())
                    if isinstance(doc, dict):
                        self._entries = doc
                except (OSError, ValueError):
                    self._entries = {}
        return self._entries

    def sha256(self, path: Path) -> str:
        path = Path(path).absolute()
        key = str(path)
        ident = self._identity(path)
        entries = self._load()
        hit = entries.get(key)
        if isinstance(hit, dict) and hit.get("id") == ident and isinstance(hit.get("sha256"), str):
            return str(hit["sha256"])
        digest = sha256_file(path)
        if self._identity(path) == ident:  # unchanged while we read it
            entries[key] = {"id": ident, "sha256": digest}
            self._dirty = True
        return digest

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".hashes.", dir=self.path.parent)
            with os.fdopen(fd, "w") as f:
                json.dump(self._entries, f, sort_keys=True)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            pass  # a cache, not a record: hashing again next time is correct, only slower


@dataclass(frozen=True, order=True)
class Change:
    """One world file that differs from ``manifest.json``."""

    file: str
    what: str  # "changed", "missing" or "added"
    detail: str


def world_changes(world_dir: Path, cache: HashCache | None = None) -> list[Change]:
    """Files of *world_dir* that differ from its ``manifest.json`` (empty: as generated, or no
    manifest of the generator at all, as with a real extract, which may carry a manifest of
    its own: that one records nothing zicht can check)."""
    world_dir = Path(world_dir)
    manifest = world_dir / MANIFEST
    if not manifest.is_file():
        return []
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return [Change(MANIFEST, "changed", "not readable JSON")]
    if not isinstance(doc, dict) or doc.get("generator") != GENERATOR:
        return []  # a real extract's own manifest: its contents are fingerprinted instead
    files = doc.get("files", {})
    if not isinstance(files, dict):
        return [Change(MANIFEST, "changed", "no 'files' mapping")]
    cache = cache or HashCache(None)
    out: list[Change] = []
    for name, entry in sorted(files.items()):
        path = world_dir / name
        want = entry.get("sha256") if isinstance(entry, dict) else None
        if not path.is_file():
            out.append(Change(name, "missing", "listed in manifest.json but not there"))
            continue
        have = cache.sha256(path)
        if have != want:
            out.append(
                Change(
                    name,
                    "changed",
                    f"SHA-256 {have[:12]}… differs from {str(want)[:12]}… in manifest.json",
                )
            )
    for path in sorted(world_dir.iterdir()):
        if path.name == MANIFEST or path.name.startswith(".") or path.name in files:
            continue
        out.append(Change(path.name, "added", "not listed in manifest.json"))
    cache.save()
    return out


FIX = (
    "regenerate the world with `zicht generate --overwrite` (or restore the file); an edited "
    "extract is a real extract: remove manifest.json so its contents are fingerprinted"
)


def check_world(world_dir: Path, cache: HashCache | None = None) -> None:
    """Raise :class:`IntegrityError` naming the first file that differs from the manifest."""
    changes = world_changes(world_dir, cache)
    if changes:
        c = changes[0]
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        raise IntegrityError(
            f"{Path(world_dir) / c.file}: column *: {c.what} since the world was generated "
            f"({c.detail}){more}; rule: every world file matches the SHA-256 recorded in "
            f"manifest.json; fix: {FIX}"
        )
