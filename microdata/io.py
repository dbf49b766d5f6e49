"""The file edge of the world: write tables to Parquet atomically, read them back, manifest.

Layout under ``DATA`` (the secure zone)::

    world/  <table>.parquet … and manifest.json   (what a real CBS extract would look like)
    truth/  <table>.parquet … effects.json, manifest.json   (only benchmarks/evaluation read it)

A generation writes into a hidden temporary directory beside them and renames it into place
only when every table and both manifests are complete, so a killed run never leaves a
half-written world behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pyarrow as pa
import pyarrow.parquet as pq

from microdata import params
from microdata.integrity import (
    GENERATOR,
    HashCache,
    check_world,
    default_cache_dir,
    sha256_file,
)
from microdata.scales import Scale
from microdata.world import generate_world

WORLD_DIR = "world"
TRUTH_DIR = "truth"
MANIFEST = "manifest.json"


class WorldExistsError(FileExistsError):
    """The target already holds a world and ``overwrite`` was not given."""


class ForeignWorldError(WorldExistsError):
    """The target holds files that ``zicht generate`` did not write (a real extract, say):
    nothing may replace them, with or without ``overwrite``."""


def generated_by_us(directory: Path, kind: str) -> tuple[bool, str]:
    """Whether *directory* holds only what the generator wrote there as *kind* (``world`` or
    ``truth``): its ``manifest.json`` names this generator and this kind, and every file in the
    directory is listed in it. Returns ``(ok, why not)``."""
    manifest = directory / MANIFEST
    names = sorted(p.name for p in directory.iterdir())
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    if not manifest.is_file():
        return False, f"{len(names)} file(s) ({shown}) and no manifest.json of zicht generate"
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False, f"a manifest.json that is not zicht generate's (unreadable), with {shown}"
    if not isinstance(doc, dict) or doc.get("generator") != GENERATOR or doc.get("kind") != kind:
        who = doc.get("generator") if isinstance(doc, dict) else None
        return False, (
            f"a manifest.json written by {who or 'something else'} (not {GENERATOR} {kind}), "
            f"with {shown}"
        )
    listed = set(doc.get("files") or {}) | {MANIFEST}
    extra = [n for n in names if n not in listed]
    if extra:
        return False, (
            f"file(s) that the generator's manifest does not list: {', '.join(extra[:4])}"
            + (f" and {len(extra) - 4} more" if len(extra) > 4 else "")
        )
    return True, ""


def check_replaceable(data_dir: Path) -> list[Path]:
    """The non-empty world/truth targets under *data_dir*; raises :class:`ForeignWorldError`
    if one of them holds anything but a world the generator wrote."""
    busy = []
    for kind in (WORLD_DIR, TRUTH_DIR):
        target = Path(data_dir) / kind
        if target.exists() and not target.is_dir():
            raise ForeignWorldError(
                f"{target}: not a directory that zicht generate wrote; it was left as it is; "
                f"fix: to run on a world or extract elsewhere, `zicht run --world-dir PATH`; "
                f"for a synthetic world, pass another --data-dir"
            )
        if not target.exists() or not any(target.iterdir()):
            continue
        ok, why = generated_by_us(target, kind)
        if not ok:
            raise ForeignWorldError(
                f"{target}: holds {why}; zicht never replaces files it did not generate, so "
                f"it was left as it is; fix: to run on these files, `zicht world validate "
                f"--world-dir {target}` then `zicht run --world-dir {target}`; for a synthetic "
                "world, pass another --data-dir (an empty or new directory)"
            )
        busy.append(target)
    return busy


class ParquetSink:
    """Streams table chunks into one Parquet file per table (zstd, deterministic bytes)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._writers: dict[str, pq.ParquetWriter] = {}

    def emit(self, table: str, chunk: pa.Table) -> None:
        if table == "effects":
            doc = json.loads(chunk.column("json")[0].as_py())
            _write_json(self.directory / "effects.json", doc)
            return
        if table == "areas":
            gdf = gpd.GeoDataFrame.from_arrow(chunk)
            gdf.to_parquet(self.directory / "areas.parquet", index=False, compression="zstd")
            return
        writer = self._writers.get(table)
        if writer is None:
            writer = pq.ParquetWriter(
                self.directory / f"{table}.parquet",
                chunk.schema,
                compression="zstd",
                write_statistics=True,
            )
            self._writers[table] = writer
        elif chunk.schema != writer.schema:
            chunk = chunk.cast(writer.schema)
        writer.write_table(chunk, row_group_size=1_000_000)

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


def canonical_json(doc: dict) -> bytes:
    """Sorted keys, fixed separators, trailing newline: the same document, the same bytes."""
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def _write_json(path: Path, doc: dict) -> None:
    path.write_bytes(canonical_json(doc))


def file_entries(directory: Path) -> dict[str, dict]:
    """Rows, columns, size and SHA-256 of every file in *directory* (manifest excluded)."""
    files: dict[str, dict] = {}
    for path in sorted(directory.iterdir()):
        if path.name == MANIFEST or not path.is_file():
            continue
        entry: dict = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        if path.suffix == ".parquet":
            meta = pq.read_metadata(path)
            entry["rows"] = meta.num_rows
            entry["columns"] = {f.name: str(f.type) for f in meta.schema.to_arrow_schema()}
        files[path.name] = entry
    return files


def world_manifest(directory: Path, *, scale: Scale, seed: int, kind: str) -> dict:
    return {
        "generator": GENERATOR,
        "generator_version": params.GENERATOR_VERSION,
        "kind": kind,
        "scale": scale.name,
        "seed": seed,
        "rate_multiplier": scale.rate_multiplier,
        "first_year": params.FIRST_YEAR,
        "last_year": params.LAST_YEAR,
        "history_from": params.HISTORY_FROM,
        "window": params.WINDOW,
        "files": file_entries(directory),
    }


def generator_manifest(world_dir: Path) -> dict | None:
    """The ``manifest.json`` of *world_dir* when the generator wrote it (it names
    ``zicht.microdata``), else None: a real extract may carry a manifest of its own, which
    says nothing about scale, seed or years and does not stand for the files' contents. A
    manifest that is not JSON counts as the generator's (the validator reports it)."""
    path = Path(world_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("generator") != GENERATOR:
        return None
    return doc


def world_hash_cache(world_dir: Path) -> HashCache:
    """Where the SHA-256 of *world_dir*'s files are remembered: ``DATA/.zicht`` beside a world
    the generator wrote; for an extract nowhere (nothing is ever written beside a user's
    files), so an extract is hashed in full each time it is fingerprinted."""
    if generator_manifest(world_dir) is None:
        return HashCache(None)
    return HashCache(default_cache_dir(world_dir))


def data_fingerprint(world_dir: Path, *, cache: HashCache | None = None, check: bool = True) -> str:
    """SHA-256 of the generator's ``manifest.json``; for an extract without one (or with a
    manifest of its own), of its files' contents.

    With *check* (the default) every file of a generated world is first compared with the
    SHA-256 its manifest records (:func:`microdata.integrity.check_world`, hashes cached in
    *cache*): a world edited after generation raises
    :class:`~microdata.integrity.IntegrityError`, so the fingerprint stands for the files,
    not for the manifest bytes alone.
    """
    manifest = world_dir / MANIFEST
    if generator_manifest(world_dir) is not None:
        if check:
            check_world(world_dir, cache)
        return hashlib.sha256(manifest.read_bytes()).hexdigest()
    cache = cache or HashCache(None)
    h = hashlib.sha256()
    for path in sorted(world_dir.iterdir()):  # a foreign manifest.json is left out
        if path.is_file() and path.name != MANIFEST:
            h.update(f"{path.name}:{cache.sha256(path)}\n".encode())
    cache.save()
    return h.hexdigest()


def write_world(
    data_dir: Path,
    scale: Scale,
    *,
    seed: int,
    overwrite: bool = False,
    progress: Callable[[str], None] = lambda _m: None,
) -> Path:
    """Generate and atomically place ``DATA/world`` and ``DATA/truth``. Returns the world dir.

    Only an empty or missing ``DATA/world``/``DATA/truth``, or one this generator wrote (its
    manifest says so and lists every file), is ever replaced.

    Raises
    ------
    ForeignWorldError
        If ``DATA/world`` or ``DATA/truth`` holds anything the generator did not write (a
        real extract, say), whatever *overwrite* says.
    WorldExistsError
        If ``DATA/world`` or ``DATA/truth`` holds a generated world and *overwrite* is false.
    """
    data_dir = Path(data_dir)
    targets = [data_dir / WORLD_DIR, data_dir / TRUTH_DIR]
    busy = check_replaceable(data_dir)
    if busy and not overwrite:
        raise WorldExistsError(
            f"{busy[0]} already holds a world; pass --overwrite to replace it "
            "or choose another --data-dir"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".generate-", dir=data_dir))
    try:
        world, truth = tmp / WORLD_DIR, tmp / TRUTH_DIR
        world.mkdir()
        truth.mkdir()
        wsink, tsink = ParquetSink(world), ParquetSink(truth)
        try:
            generate_world(scale, seed=seed, sink=wsink, truth=tsink, progress=progress)
        finally:
            wsink.close()
            tsink.close()
        progress("manifests")
        _write_json(world / MANIFEST, world_manifest(world, scale=scale, seed=seed, kind="world"))
        truth_doc = world_manifest(truth, scale=scale, seed=seed, kind="truth")
        # ties the truth to its world: a mismatched pair is detectable
        truth_doc["world_fingerprint"] = data_fingerprint(world, check=False)
        _write_json(truth / MANIFEST, truth_doc)
        check_replaceable(data_dir)  # again: files may have arrived while it generated
        trash = Path(tempfile.mkdtemp(prefix=".replaced-", dir=data_dir))
        for src, dst in zip((world, truth), targets, strict=True):
            if dst.exists():
                os.replace(dst, trash / dst.name)
            os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return targets[0]
