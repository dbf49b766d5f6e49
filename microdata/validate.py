"""Validate a world directory (generated or a real extract) against the schemas.

Every problem becomes one :class:`Problem` with the file, the column, the rule and a fix.
Values are checked batch by batch with pandera (bounded memory at national scale); keys,
references between tables and the area hierarchy are checked across whole columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.parquet as pq

from microdata import params
from microdata.integrity import FIX, HashCache, world_changes
from microdata.schemas import CODE_PATTERNS, OPEN_END, TABLES, Family, TableSpec
from microdata.text import looks_like_formula

BATCH_ROWS = 2_000_000
MAX_EXAMPLES = 3


@dataclass(frozen=True, order=True)
class Problem:
    """One validation finding, printed as ``file: column: rule: detail (fix: …)``."""

    file: str
    column: str
    rule: str
    detail: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.column}: {self.rule}: {self.detail} (fix: {self.fix})"


def _family(t: pa.DataType) -> Family | None:
    if pa.types.is_dictionary(t):
        return _family(t.value_type)
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or isinstance(t, pa.ExtensionType):
        return "binary"
    return None


def column_family(t: pa.DataType) -> Family | None:
    """The schema's type family of an Arrow type (a dictionary of strings is ``str``)."""
    return _family(t)


def _examples(values: Iterable) -> str:
    vals = list(values)[:MAX_EXAMPLES]
    return ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in vals)


def _open(path: Path, spec: TableSpec) -> tuple[pq.ParquetFile | None, list[Problem]]:
    if not path.exists():
        return None, [
            Problem(
                path.name,
                "*",
                "file present",
                f"{path} is missing",
                f"export the {spec.description} table as {spec.file}",
            )
        ]
    try:
        return pq.ParquetFile(path), []
    except (pa.ArrowInvalid, OSError) as exc:
        return None, [
            Problem(
                path.name,
                "*",
                "readable Parquet",
                f"cannot read: {exc}",
                "re-export the file; it is corrupt or not Parquet",
            )
        ]


def _schema_problems(pf: pq.ParquetFile, spec: TableSpec) -> list[Problem]:
    out = []
    schema = pf.schema_arrow
    for name, col in spec.columns.items():
        if name not in schema.names:
            out.append(
                Problem(
                    spec.file,
                    name,
                    "column present",
                    "missing",
                    f"add column {name!r} ({col.family})",
                )
            )
            continue
        fam = _family(schema.field(name).type)
        ok = fam == col.family or (col.family == "float" and fam == "int")
        if not ok:
            out.append(
                Problem(
                    spec.file,
                    name,
                    f"type {col.family}",
                    f"found {schema.field(name).type}",
                    f"cast {name!r} to {col.family}",
                )
            )
    return out


def _value_problems(pf: pq.ParquetFile, spec: TableSpec) -> list[Problem]:
    schema = spec.pandera()
    cols = [c for c in spec.columns if spec.columns[c].family != "binary"]
    found: dict[tuple[str, str], list] = {}
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
        df = batch.to_pandas()
        try:
            schema.validate(df, lazy=True)
        except pandera.errors.SchemaErrors as err:
            fc = err.failure_cases
            for (column, check), grp in fc.groupby(["column", "check"], dropna=False, sort=True):
                key = (str(column), str(check))
                found.setdefault(key, []).extend(grp["failure_case"].head(MAX_EXAMPLES).tolist())
    out = []
    for (column, check), examples in sorted(found.items()):
        rule = "not null" if check == "not_nullable" else check
        fix = (
            "fill or drop the empty values"
            if check == "not_nullable"
            else f"make every value of {column!r} satisfy {check}"
        )
        out.append(Problem(spec.file, column, rule, f"violated, e.g. {_examples(examples)}", fix))
    return out


def _column(world: Path, table: str, column: str) -> np.ndarray | None:
    path = world / TABLES[table].file
    try:
        arr = pq.read_table(path, columns=[column]).column(column)
    except (OSError, pa.ArrowInvalid, KeyError):
        return None
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr.drop_null().to_numpy(zero_copy_only=False)


def _key_problems(world: Path, spec: TableSpec) -> list[Problem]:
    if not spec.key:
        return []
    try:
        df = pq.read_table(world / spec.file, columns=list(spec.key)).to_pandas()
    except (OSError, pa.ArrowInvalid, KeyError):
        return []
    dup = df.duplicated(keep=False)
    if not dup.any():
        return []
    ex = df[dup].head(MAX_EXAMPLES).to_dict("records")
    return [
        Problem(
            spec.file,
            ",".join(spec.key),
            "unique key",
            f"{int(dup.sum())} rows share a key, e.g. {ex}",
            "remove the duplicate rows or fix their ids",
        )
    ]


def _reference_problems(
    world: Path, spec: TableSpec, cache: dict[tuple[str, str], np.ndarray | None]
) -> list[Problem]:
    out = []
    for column, target in spec.references.items():
        t_table, t_col = target.split(".")
        if (t_table, t_col) not in cache:
            cache[(t_table, t_col)] = _column(world, t_table, t_col)
        known = cache[(t_table, t_col)]
        values = _column(world, spec.name, column)
        if known is None or values is None:
            continue
        uniq = np.unique(values)
        missing = uniq[~np.isin(uniq, known)]
        if len(missing):
            out.append(
                Problem(
                    spec.file,
                    column,
                    f"references {target}",
                    f"{len(missing)} unknown value(s), e.g. {_examples(missing)}",
                    f"add them to {TABLES[t_table].file} or correct {column!r}",
                )
            )
    return out


def _spell_problems(pf: pq.ParquetFile, spec: TableSpec) -> list[Problem]:
    bad = 0
    examples: list = []
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=["valid_from", "valid_to"]):
        vf = batch.column("valid_from").to_numpy(zero_copy_only=False)
        vt = batch.column("valid_to").to_numpy(zero_copy_only=False)
        wrong = vt < vf
        bad += int(wrong.sum())
        examples.extend(
            zip(vf[wrong][:MAX_EXAMPLES].tolist(), vt[wrong][:MAX_EXAMPLES].tolist(), strict=True)
        )
    if not bad:
        return []
    return [
        Problem(
            spec.file,
            "valid_to",
            "valid_to >= valid_from",
            f"{bad} spells end before they start, e.g. {examples[:MAX_EXAMPLES]}",
            f"swap or correct the years; use {OPEN_END} for open spells",
        )
    ]


def _hierarchy_problems(world: Path) -> list[Problem]:
    path = world / TABLES["areas"].file
    try:
        areas = pq.read_table(path, columns=["area_code", "level", "parent_code"]).to_pandas()
    except (OSError, pa.ArrowInvalid, KeyError):
        return []
    out = []
    levels = ["riec", "gemeente", "wijk", "buurt"]
    for level, pattern in CODE_PATTERNS.items():
        rows = areas[areas["level"] == level]
        bad = rows[~rows["area_code"].astype(str).str.match(pattern)]
        if len(bad):
            out.append(
                Problem(
                    "areas.parquet",
                    "area_code",
                    f"{level} code format {pattern}",
                    f"{len(bad)} codes, e.g. {_examples(bad['area_code'])}",
                    f"use CBS codes for level {level}",
                )
            )
    codes = dict(zip(areas["area_code"], areas["level"], strict=False))
    child = areas[areas["level"] != "riec"]
    parent_level = child["level"].map(
        lambda lv: levels[levels.index(lv) - 1] if lv in levels else None
    )
    found_level = child["parent_code"].map(codes)
    orphan = child[found_level.isna()]
    if len(orphan):
        out.append(
            Problem(
                "areas.parquet",
                "parent_code",
                "parent exists",
                f"{len(orphan)} areas whose parent is not in the file, e.g. "
                f"{_examples(orphan['area_code'] + ' -> ' + orphan['parent_code'].astype(str))}",
                "add the parent areas or correct parent_code",
            )
        )
    wrong = child[found_level.notna() & (found_level != parent_level)]
    if len(wrong):
        out.append(
            Problem(
                "areas.parquet",
                "parent_code",
                "parent one level up",
                f"{len(wrong)} areas, e.g. {_examples(wrong['area_code'])}",
                "a buurt's parent is a wijk, a wijk's a gemeente, a gemeente's a RIEC region",
            )
        )
    # A wijk code carries its gemeente's digits, a buurt code its wijk's.
    nested = child[child["level"].isin(["wijk", "buurt"]) & found_level.notna()]
    digits = nested["area_code"].str[2:-2]
    parent_digits = nested["parent_code"].astype(str).str[2:]
    mismatch = nested[digits.to_numpy() != parent_digits.to_numpy()]
    if len(mismatch):
        out.append(
            Problem(
                "areas.parquet",
                "area_code",
                "code nests in parent code",
                f"{len(mismatch)} areas, e.g. {_examples(mismatch['area_code'])}",
                "WK codes start with their gemeente's 4 digits, BU codes with their wijk's 6",
            )
        )
    return out


def _empty_area_problems(world: Path) -> list[Problem]:
    """Empty areas: a buurt, wijk or gemeente without key figures (no ``area_stats`` row) in
    a year the table covers, and a wijk, gemeente or RIEC region without any area below it.
    Features and roll-ups would silently treat such an area as missing."""
    try:
        areas = pq.read_table(
            world / TABLES["areas"].file, columns=["area_code", "level", "parent_code"]
        ).to_pandas()
        stats = pq.read_table(
            world / TABLES["area_stats"].file, columns=["area_code", "year"]
        ).to_pandas()
    except (OSError, pa.ArrowInvalid, KeyError):
        return []
    out = []
    codes = areas["area_code"].astype(str)
    have = set(zip(stats["area_code"].astype(str), stats["year"].astype(int), strict=True))
    years = sorted(set(stats["year"].astype(int)))
    for level in ("buurt", "wijk", "gemeente"):
        mine = codes[areas["level"] == level]
        empty = [c for c in mine if any((c, y) not in have for y in years)]
        if empty:
            out.append(
                Problem(
                    "area_stats.parquet",
                    "area_code",
                    f"every {level} has key figures each year",
                    f"{len(empty)} {level}(en) of areas.parquet without a row in some year, "
                    f"e.g. {_examples(empty)}",
                    "add their rows (0 inhabitants is a valid row) or drop them from areas.parquet",
                )
            )
    parents = set(areas["parent_code"].dropna().astype(str))
    for level in ("riec", "gemeente", "wijk"):
        childless = [c for c in codes[areas["level"] == level] if c not in parents]
        if childless:
            out.append(
                Problem(
                    "areas.parquet",
                    "parent_code",
                    f"every {level} has areas below it",
                    f"{len(childless)} empty {level}(s), e.g. {_examples(childless)}",
                    "add the areas below them or drop them from areas.parquet",
                )
            )
    return out


def _manifest_problems(world: Path) -> list[Problem]:
    path = world / "manifest.json"
    if not path.exists():
        return []  # a real extract has no manifest: that is allowed
    from microdata.io import generator_manifest

    if generator_manifest(world) is None:
        return []  # nor is a manifest of its own (not the generator's): it is not read
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [
            Problem(
                "manifest.json",
                "*",
                "readable JSON",
                str(exc),
                "regenerate the world with `zicht generate --overwrite`",
            )
        ]
    out = []
    version = str(doc.get("generator_version", ""))
    if version.split(".")[0] != params.GENERATOR_VERSION.split(".")[0]:
        out.append(
            Problem(
                "manifest.json",
                "generator_version",
                f"major version {params.GENERATOR_VERSION.split('.')[0]}",
                f"world made by generator {version or 'unknown'}, this is "
                f"{params.GENERATOR_VERSION}",
                "regenerate the world with `zicht generate --overwrite`",
            )
        )
    return out


def _checksum_problems(world: Path, cache: HashCache | None) -> list[Problem]:
    """World files that differ from the SHA-256 in ``manifest.json`` (a generated world only;
    a missing table is reported as ``file present`` by the table checks)."""
    out = []
    for change in world_changes(world, cache):
        if change.what == "missing" and change.file.removesuffix(".parquet") in TABLES:
            continue
        rule = {
            "changed": "SHA-256 as in manifest.json",
            "missing": "file present (listed in manifest.json)",
            "added": "listed in manifest.json",
        }[change.what]
        out.append(Problem(change.file, "*", rule, f"{change.what}: {change.detail}", FIX))
    return out


#: the names that reach the public tables as text: (table, column)
PUBLISHED_NAMES = (("areas", "area_name"), ("branches", "branch_name"))


def _formula_problems(world: Path, readable: list[TableSpec]) -> list[Problem]:
    """Names that a spreadsheet would read as a formula (they reach the public CSV files)."""
    out = []
    names = {s.name for s in readable}
    for table, column in PUBLISHED_NAMES:
        if table not in names:
            continue
        values = pd.unique(read_table(world, table, [column])[column].astype(str))
        for value in sorted(v for v in values if looks_like_formula(v))[:MAX_EXAMPLES]:
            out.append(
                Problem(
                    TABLES[table].file,
                    column,
                    "no spreadsheet formula",
                    f"{value!r} starts with {value[:1]!r}, which a spreadsheet reads as a "
                    "formula when the public CSV files are opened",
                    "rename it so that it starts with a letter or digit (zicht publish "
                    "prefixes such names with ' in the CSV files, as OWASP advises)",
                )
            )
    return out


def validate_world(
    world: Path,
    *,
    progress: Callable[[str], None] = lambda _m: None,
    hashes: HashCache | None = None,
) -> list[Problem]:
    """All problems of the world in *world* (empty list: valid); for a generated world, also
    every file whose SHA-256 differs from its ``manifest.json`` (hashes cached in *hashes*)."""
    world = Path(world)
    if not world.is_dir():
        return [
            Problem(
                str(world),
                "*",
                "directory exists",
                "no such directory",
                "run `zicht generate` first or pass --world-dir",
            )
        ]
    problems = _manifest_problems(world)
    progress("checksums")
    problems += _checksum_problems(world, hashes)
    readable: list[TableSpec] = []
    for spec in TABLES.values():
        progress(spec.name)
        pf, errs = _open(world / spec.file, spec)
        problems += errs
        if pf is None:
            continue
        schema_errs = _schema_problems(pf, spec)
        problems += schema_errs
        if schema_errs:
            continue
        problems += _value_problems(pf, spec)
        if spec.time == "spells":
            problems += _spell_problems(pf, spec)
        readable.append(spec)
    progress("keys and references")
    cache: dict[tuple[str, str], np.ndarray | None] = {}
    for spec in readable:
        problems += _key_problems(world, spec)
        problems += _reference_problems(world, spec, cache)
    problems += _formula_problems(world, readable)
    if any(s.name == "areas" for s in readable):
        problems += _hierarchy_problems(world)
        if any(s.name == "area_stats" for s in readable):
            problems += _empty_area_problems(world)
    return sorted(set(problems))


def read_table(world: Path, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read one world table as pandas (dictionary columns become categoricals)."""
    return pq.read_table(Path(world) / TABLES[name].file, columns=columns).to_pandas()
