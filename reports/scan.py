"""The artifact scanner behind ``zicht audit artifacts``: files in, findings out.

This is the pure core (no MLflow; the edge that finds the files is :mod:`experiments.audit`).
:func:`scan_file` reads one file and returns :class:`Finding` records; :func:`scan_publish`
adds the public zone's manifest checks. A finding names the zone, the file, the check and a
detail made of column names and counts only: never a cell value, which could identify a unit.

Checks (``Finding.check``), as in CONTRACT.md "What `zicht audit artifacts` checks":

``unit_id_column``
    A table column whose *name* looks like a unit id (:func:`is_unit_id_column`).
``unit_id_values``
    A column whose *values* look like unit ids: integer keys (or all-digit strings), all
    distinct, over at least :data:`ID_VALUE_MIN_ROWS` rows.
``unit_rows``
    A table whose row count equals the size of a unit table of the world (persons,
    dwellings, households, establishments; also a task's feature rows, per year, and its
    predictions), from :class:`ScanContext`; or a table that is clearly one row per unit:
    at least :data:`FEATURE_COLUMNS_MIN` feature-catalogue columns over more than
    :data:`MAX_AGGREGATE_ROWS` rows (feature rows or a per-row SHAP dump).
``small_count``
    A row whose count column (``n``, ``units``, ...) is under ``min_count`` while one of its
    measures is not empty. Published tables name their governed measures in ``schema.json``
    (``n`` and ``inhabitants`` are always published); elsewhere every column that is not a
    count, a code, a name or a status is a measure.
``not_in_manifest``, ``checksum``, ``missing_file``, ``no_manifest``
    The public zone against its ``manifest.json``.
``external_asset``
    HTML that loads something from elsewhere: ``src``/``href``/``srcset``/... to
    ``http(s)://`` or protocol-relative ``//``, or CSS ``url(http...)``/``@import``.
``model_outside_secure``
    An MLflow model (``MLmodel``) or a model file (``*.pkl``, ``*.joblib``, ``*.skops``,
    ``*.ubj``, a LightGBM text dump) in the review or public zone.
``input_example``
    An MLflow model with an ``input_example.json``/``serving_input_example.json``: input
    examples are never built from microdata.
``unreadable``
    A file (or a member of an archive) that cannot be parsed; a pickle (never unpickled:
    loading one runs code), unless it is part of a logged model in the secure zone; Excel
    without an engine installed; a ``.png`` that is not a PNG (its content is then read as
    what it is). A readable PNG cannot be checked here: every plot function takes binned
    aggregate frames only (:mod:`reports.plots`, proved by ``tests/test_plots.py``), so PNGs
    are counted, not findings.
``unknown_format``
    Binary content of no known format, or markup that is neither HTML nor SVG.

Formats (:func:`detect_format`) come from the content (the name is only a hint where the
content is not enough), so a renamed file is read as what it is: delimited text
(``,;\t|``, sniffed), JSON and JSON Lines, Parquet, Feather/Arrow IPC (file and stream),
NumPy ``.npy`` (``.npz`` is a zip of them), Excel (``.xlsx``/``.xls``/``.ods``, through
pandas where an engine is installed), gzip/bzip2/xz/Zstandard and zip/tar archives (read
inside, to :data:`MAX_NESTING` levels), HTML. Known kinds without tables are clean: PNG and
SVG images, empty files, a LightGBM text dump and a pickle inside an MLflow model directory
of the secure zone, and plain text named in :data:`SAFE_TEXT_NAMES` /
:data:`SAFE_TEXT_SUFFIXES` (``MLmodel``, ``requirements.txt``, YAML, Markdown...) unless it
sniffs as a delimited table. Any other text is read as a one-column table, one line a row.

Unit-id rule (the *name* check). A column name is split into lower-case tokens (``_``,
``-``, ``.``, spaces, camelCase). It is a unit id when a token is a CBS record key (``rin``,
``rinpersoon``, ``rinobject``, ``bsn``, ``anummer``) or an address (``address``, ``adres``,
``huisnummer``), or when it is exactly ``id`` or ends in ``id``/``nr``/``key`` and the
tokens before that are not bookkeeping (MLflow runs, experiments, models, Optuna trials and
studies, folds, versions) or an area (``buurt``, ``wijk``, ``gemeente``, ``riec``,
``area``, ``region``). So ``person_id``, ``dwelling_id``, ``household_id``,
``establishment_id``, ``mother_id``, ``cell_id``, ``adres_id`` are unit ids; ``run_id``,
``experiment_id``, ``area_code``, ``buurt_code`` and ``gemeente_id`` are not.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from microdata.io import sha256_file

ZONES = ("mlflow", "review", "publish")
CHECKS = (
    "unit_id_column",
    "unit_id_values",
    "unit_rows",
    "small_count",
    "not_in_manifest",
    "checksum",
    "missing_file",
    "no_manifest",
    "external_asset",
    "model_outside_secure",
    "input_example",
    "unreadable",
    "unknown_format",
    "dashboard_content",
)
#: Zones where models may live (the MLflow artifact store is the secure zone).
SECURE_ZONES = frozenset({"mlflow"})

_RECORD_KEYS = frozenset({"rin", "rinpersoon", "rinpersoons", "rinobject", "bsn", "anummer"})
_ADDRESS = frozenset({"address", "addresses", "adres", "adressen", "huisnummer"})
_ID_SUFFIX = frozenset({"id", "nr", "key"})
_BOOKKEEPING = frozenset(
    {"run", "experiment", "model", "trial", "study", "fold", "version", "artifact", "parent"}
)
_AREA = frozenset({"buurt", "wijk", "gemeente", "riec", "area", "region", "regio"})
_TOKEN = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

#: Columns that count the units a row rests on (the same names ``review_table`` checks).
COUNT_COLUMNS = ("n", "units", "n_units", "units_above", "units_below")
#: Columns that are never a measure: place, label, bookkeeping.
META_COLUMNS = frozenset(
    {
        "area_code",
        "area_name",
        "level",
        "parent_code",
        "age_group",
        "branch",
        "branch_name",
        "sbi",
        "year",
        "breakdown",
        "basis",
        "reason",
        "status",
        "geometry",
        "feature",
        "rank",
    }
)
#: Measures that are always published, whatever ``n`` is (see :mod:`disclosure.publish`).
ALWAYS_PUBLISHED = frozenset({"n", "inhabitants"})
#: A table with more rows than this and many feature columns is one row per unit.
MAX_AGGREGATE_ROWS = 500
FEATURE_COLUMNS_MIN = 3
#: Fewest rows for the value-based unit-id check and for a row count to match a unit table.
ID_VALUE_MIN_ROWS = 1000
UNIT_ROWS_MIN = 100
#: Model files (besides a directory with ``MLmodel``).
MODEL_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".skops", ".ubj", ".lgb", ".onnx"})
INPUT_EXAMPLES = frozenset({"input_example.json", "serving_input_example.json"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LIGHTGBM_DUMP = b"tree\n"  # LightGBM's model text: "tree\nversion=v4\n..."
HTML_SUFFIXES = frozenset({".html", ".htm"})
#: ``<script type=...>`` whose content is data, read as JSON
JSON_SCRIPT_TYPES = frozenset({"application/json", "application/geo+json", "application/ld+json"})
JSON_SUFFIXES = frozenset({".json", ".geojson", ".jsonl", ".ndjson"})
#: Delimited text by suffix, and the delimiter when sniffing finds none (one column).
DELIMITED_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".psv": "|"}
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle"})
PICKLE_PROTOCOLS = frozenset(bytes([p]) for p in range(2, 6))
PICKLE_DETAIL = (
    "{what}: never unpickled (loading it can run code), so the audit cannot check it; "
    "save tables as Parquet or CSV, or remove it"
)
#: Formats by their first bytes (the content wins over the suffix).
MAGIC: tuple[tuple[bytes, str], ...] = (
    (PNG_SIGNATURE, "png"),
    (b"PAR1", "parquet"),
    (b"ARROW1", "arrow"),  # Feather v2 = the Arrow IPC file format
    (b"FEA1", "arrow"),  # Feather v1
    (b"\xff\xff\xff\xff", "arrow_stream"),  # the Arrow IPC stream format
    (b"\x93NUMPY", "npy"),
    (b"PK\x03\x04", "zip"),  # also .npz, .xlsx, .ods
    (b"PK\x05\x06", "zip"),  # an empty zip
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "excel"),  # OLE2: .xls
    (LIGHTGBM_DUMP, "lightgbm"),
)
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
COMPRESSIONS = frozenset({"gzip", "bz2", "xz", "zstd"})
#: Formats read as tables by :func:`_read_tables`.
TABLE_FORMATS = frozenset(
    {"delimited", "json", "lines", "parquet", "arrow", "arrow_stream", "npy", "excel"}
)
#: Known kinds that hold no table: nothing to check. (PNGs are counted; HTML is read.)
SAFE_FORMATS = frozenset({"empty", "text", "svg"})
#: Every value of :func:`detect_format`.
FORMATS = TABLE_FORMATS | SAFE_FORMATS | COMPRESSIONS
FORMATS |= {"png", "html", "zip", "tar", "pickle", "lightgbm", "unknown"}
#: Plain text that is known to hold no table (unless it sniffs as a delimited one): MLflow's
#: model metadata and environments, configs, Markdown, code.
SAFE_TEXT_NAMES = frozenset(
    {"MLmodel", "requirements.txt", "conda.yaml", "python_env.yaml", "registered_model_meta"}
)
SAFE_TEXT_SUFFIXES = frozenset({".yaml", ".yml", ".md", ".py", ".toml", ".cfg", ".ini"})
HEAD_BYTES = 64 * 1024
SNIFF_LINES = 50
#: Most bytes a compressed file or an archive member is read to (a zip bomb is unreadable).
MAX_INFLATED = 2 * 1024**3
MAX_NESTING = 3


@dataclass(frozen=True)
class Finding:
    """One thing the audit found. *detail* holds column names and counts, never a value."""

    zone: str
    path: str
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.zone}: {self.path}: {self.check}: {self.detail}"


@dataclass(frozen=True)
class ScanContext:
    """What the checks compare against, gathered by the edge from the secure zone.

    ``unit_counts``: row count -> what has that many rows (``"persons"``, ``"hennep
    features 2021"``...). ``feature_names``: the feature catalogue's names.
    """

    min_count: int = 10
    unit_counts: Mapping[int, str] = field(default_factory=dict)
    feature_names: frozenset[str] = frozenset()


@dataclass
class ScanResult:
    """Findings, and how many files were scanned per zone (and how many PNGs were skipped)."""

    findings: list[Finding] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)
    png: dict[str, int] = field(default_factory=dict)

    def add(self, other: ScanResult) -> None:
        self.findings.extend(other.findings)
        for zone, k in other.scanned.items():
            self.scanned[zone] = self.scanned.get(zone, 0) + k
        for zone, k in other.png.items():
            self.png[zone] = self.png.get(zone, 0) + k

    def by_check(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.check] = out.get(f.check, 0) + 1
        return out


# --------------------------------------------------------------------------- column rules


def _tokens(name: str) -> list[str]:
    return [t.lower() for part in re.split(r"[_\-.\s/]+", name) for t in _TOKEN.findall(part)]


def is_unit_id_column(name: object) -> bool:
    """Whether a column *name* looks like a unit id (the rule is in the module docstring)."""
    tokens = _tokens(str(name))
    if not tokens:
        return False
    if _RECORD_KEYS.intersection(tokens) or _ADDRESS.intersection(tokens):
        return True
    if tokens[-1] not in _ID_SUFFIX:
        return False
    before = tokens[:-1]
    if not before:
        return tokens[-1] == "id"
    return not (_BOOKKEEPING.intersection(before) or _AREA.intersection(before))


def _looks_like_id_values(values: pd.Series) -> bool:
    """Integer keys (or all-digit strings), all distinct, over many rows."""
    v = values.dropna()
    if len(v) < ID_VALUE_MIN_ROWS or len(v) != len(values):
        return False
    if pd.api.types.is_bool_dtype(v) or pd.api.types.is_float_dtype(v):
        return False
    if not pd.api.types.is_integer_dtype(v):
        s = v.astype(str)
        if not s.str.fullmatch(r"\d{1,18}").all():
            return False
        v = s.astype("int64")
    return bool(v.is_unique)


def _empty(values: pd.Series) -> pd.Series:
    return values.isna() | values.astype(str).str.strip().isin(["", "–", "-", "nan", "None"])


# --------------------------------------------------------------------------- table checks


def check_table(
    frame: pd.DataFrame,
    *,
    zone: str,
    path: str,
    ctx: ScanContext,
    measures: Sequence[str] | None = None,
    where: str = "",
) -> list[Finding]:
    """The table checks on one frame: unit-id columns and values, unit rows, small counts.

    *measures*: the columns governed by disclosure control (from ``schema.json``); None
    means every column that is not a count, a code, a name or a status. *where* says which
    table of the file (a JSON path, an HTML table number).
    """
    at = f"{where}: " if where else ""
    out: list[Finding] = []

    def add(check: str, detail: str) -> None:
        out.append(Finding(zone, path, check, at + detail))

    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    ids = [c for c in columns if is_unit_id_column(c)]
    if ids:
        add("unit_id_column", f"column(s) {ids} look like unit ids")
    by_values = [
        c
        for c in columns
        if c not in ids and _looks_like_id_values(frame.iloc[:, columns.index(c)])
    ]
    if by_values:
        add(
            "unit_id_values",
            f"column(s) {by_values} hold {len(frame)} distinct integer keys (like unit ids)",
        )
    rows = len(frame)
    if rows >= UNIT_ROWS_MIN and rows in ctx.unit_counts:
        add("unit_rows", f"{rows} rows: as many as {ctx.unit_counts[rows]}")
    else:
        feats = [c for c in columns if c in ctx.feature_names]
        if rows > MAX_AGGREGATE_ROWS and len(feats) >= FEATURE_COLUMNS_MIN:
            add(
                "unit_rows",
                f"{rows} rows with {len(feats)} feature columns: one row per unit "
                "(feature rows or per-row SHAP values)",
            )
    for detail in _small_counts(frame, columns, ctx.min_count, measures):
        add("small_count", detail)
    return out


def _small_counts(
    frame: pd.DataFrame, columns: list[str], min_count: int, measures: Sequence[str] | None
) -> list[str]:
    """Per count column under *min_count*: which measures still show a value (names only)."""
    counts = [c for c in COUNT_COLUMNS if c in columns]
    if not counts or frame.empty:
        return []
    if measures is None:
        governed = [
            c
            for c in columns
            if c not in COUNT_COLUMNS
            and c not in META_COLUMNS
            and c not in ALWAYS_PUBLISHED
            and not c.startswith(("status_", "reason_"))
            and not c.endswith(("_code", "_name"))
            and not is_unit_id_column(c)
        ]
    else:
        governed = [c for c in measures if c in columns and c not in ALWAYS_PUBLISHED]
    if not governed:
        return []
    filled = ~pd.concat([_empty(frame[c]) for c in governed], axis=1).set_axis(governed, axis=1)
    details = []
    for c in counts:
        k = pd.to_numeric(frame[c], errors="coerce")
        small = (k < min_count).fillna(False).to_numpy(dtype=bool)
        shown = filled[small]
        hit = [g for g in governed if bool(shown[g].any())]
        if hit:
            rows = int(shown.any(axis=1).sum())
            details.append(f"{rows} row(s) with {c} under {min_count} show a value in {hit}")
    return details


# --------------------------------------------------------------------------- readers


def _json_tables(doc: Any, where: str = "$", depth: int = 0) -> Iterator[tuple[str, pd.DataFrame]]:
    """Tabular parts of a JSON document: lists of records, dicts of equal-length lists,
    ``{"columns", "data"}`` (pandas split / MLflow input examples), GeoJSON properties."""
    if depth > 4:
        return
    if isinstance(doc, dict):
        if doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
            props = [f.get("properties") or {} for f in doc["features"] if isinstance(f, dict)]
            yield f"{where}.features[].properties", pd.DataFrame.from_records(props)
            return
        if isinstance(doc.get("columns"), list) and isinstance(doc.get("data"), list):
            data = [r for r in doc["data"] if isinstance(r, list)]
            if len(data) == len(doc["data"]) and all(len(r) == len(doc["columns"]) for r in data):
                yield where, pd.DataFrame(data, columns=[str(c) for c in doc["columns"]])
                return
        values = list(doc.values())
        if len(values) >= 2 and all(isinstance(v, list) for v in values):
            lengths = {len(v) for v in values}
            if (
                len(lengths) == 1
                and lengths != {0}
                and not any(isinstance(x, dict | list) for v in values for x in v)
            ):
                yield where, pd.DataFrame({str(k): v for k, v in doc.items()})
                return
        for key, value in doc.items():
            yield from _json_tables(value, f"{where}.{key}", depth + 1)
    elif isinstance(doc, list) and doc and all(isinstance(r, dict) for r in doc):
        if all(not isinstance(x, dict | list) for r in doc for x in r.values()):
            yield where, pd.DataFrame.from_records(doc)
        else:
            for i, r in enumerate(doc[:50]):
                yield from _json_tables(r, f"{where}[{i}]", depth + 1)


# The stdlib parser: none of lxml, bs4 or html5lib (which pandas.read_html needs) is a
# dependency of the project, and the pages are our own well-formed Jinja2 output.
class _PageParser(HTMLParser):
    """Collects the tables (rows of cell texts, header flags) and the external references."""

    ASSET_ATTRS = frozenset(
        {"src", "href", "srcset", "data", "poster", "action", "formaction", "background"}
    )
    EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.I)
    CSS_EXTERNAL = re.compile(r"@import|url\(\s*['\"]?\s*(?:https?:)?//", re.I)

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[tuple[list[str], bool]]] = []
        self.external: list[str] = []
        self._stack: list[list[tuple[list[str], bool]]] = []
        self._row: list[str] | None = None
        self._row_header = False
        self._cell: list[str] | None = None
        self._in_style = False
        self.json_blocks: list[str] = []
        self._json: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in self.ASSET_ATTRS and any(
                self.EXTERNAL.match(part) for part in value.split(",")
            ):
                self.external.append(f"<{tag} {name}>")
            elif name == "style" and self.CSS_EXTERNAL.search(value):
                self.external.append(f"<{tag} style>")
        if tag == "table":
            self._stack.append([])
        elif tag == "tr" and self._stack:
            self._row, self._row_header = [], True
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._row_header = self._row_header and tag == "th"
        elif tag == "style":
            self._in_style = True
        elif tag == "script" and (dict(attrs).get("type") or "").lower() in JSON_SCRIPT_TYPES:
            self._json = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._stack:
            if self._row:
                self._stack[-1].append((self._row, self._row_header))
            self._row = None
        elif tag == "table" and self._stack:
            self.tables.append(self._stack.pop())
        elif tag == "style":
            self._in_style = False
        elif tag == "script" and self._json is not None:
            self.json_blocks.append("".join(self._json))
            self._json = None

    def handle_data(self, data: str) -> None:
        if self._json is not None:
            self._json.append(data)
            return
        if self._cell is not None:
            self._cell.append(data)
        if self._in_style and self.CSS_EXTERNAL.search(data):
            self.external.append("<style> url()/@import")


def _html_frame(rows: list[tuple[list[str], bool]]) -> pd.DataFrame:
    """A parsed table as a frame: the first row gives the columns when it is all ``<th>``;
    numbers (``1,234``, ``0.5``) become numbers and ``–`` becomes missing."""
    header = rows[0][0] if rows and rows[0][1] else None
    body = [r for r, _ in (rows[1:] if header else rows)]
    width = max([len(header or [])] + [len(r) for r in body])
    columns = list(header or []) + [f"col{i}" for i in range(len(header or []), width)]
    frame = pd.DataFrame([r + [""] * (width - len(r)) for r in body], columns=columns)
    for c in frame.columns:
        text = frame[c].astype(str).str.replace(",", "", regex=False).str.strip()
        text = text.mask(text.isin(["–", "-", ""]))
        num = pd.to_numeric(text, errors="coerce")
        if num.notna().sum() == text.notna().sum():
            frame[c] = num
    return frame


# --------------------------------------------------------------------------- files


def _is_lightgbm_dump(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(64)
    return head.startswith(LIGHTGBM_DUMP)


def is_model_file(path: Path) -> bool:
    """An MLflow ``MLmodel`` or a serialised model (by suffix, or a LightGBM text dump)."""
    if path.name == "MLmodel" or path.suffix.lower() in MODEL_SUFFIXES:
        return True
    return path.suffix.lower() == ".txt" and _is_lightgbm_dump(path)


def is_vendored(path: Path) -> bool:
    """A third-party file of the dashboard (:mod:`reports.vendored`), by its pinned SHA-256."""
    from reports.vendored import DIGESTS, SIZES

    return path.stat().st_size in SIZES and sha256_file(path) in DIGESTS


def _in_model_dir(path: Path) -> bool:
    """Whether *path* belongs to an MLflow model (an ``MLmodel`` up to three levels above)."""
    return any((d / "MLmodel").is_file() for d in list(path.parents)[:3])


def _schema_measures(path: Path) -> list[str] | None:
    """The governed measures of a published level table, from ``schema.json`` beside it."""
    schema = path.parent / "schema.json"
    if not schema.is_file():
        return None
    try:
        doc = json.loads(schema.read_text())
    except (OSError, ValueError):
        return None
    measures = doc.get("measures") if isinstance(doc, dict) else None
    return [str(m) for m in measures] if isinstance(measures, dict | list) else None


def _text_encoding(head: bytes) -> str | None:
    """The encoding of a text file from its first bytes; None for binary content."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        text = head.decode("cp1252", errors="replace")
        odd = sum(1 for ch in text if ch == "\ufffd" or (ch < " " and ch not in "\t\r\n\f"))
        return "cp1252" if odd <= len(text) // 100 else None


def _head_text(head: bytes, encoding: str) -> str:
    return codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)


def _delimiter(text: str) -> str | None:
    """The delimiter of a delimited table (``,;\\t|``, sniffed), if every sampled line has the
    same number (at least 2) of fields; None otherwise."""
    lines = [line for line in text.splitlines()[:SNIFF_LINES] if line.strip()]
    if len(text) >= HEAD_BYTES // 2 and len(lines) > 1:
        lines = lines[:-1]  # the last line of a long head may be cut off
    if not lines:
        return None
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return None
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return dialect.delimiter if len(widths) == 1 and widths.pop() >= 2 else None


def _is_safe_text(name: str) -> bool:
    return name in SAFE_TEXT_NAMES or Path(name).suffix.lower() in SAFE_TEXT_SUFFIXES


def detect_format(head: bytes, name: str) -> str:
    """The format of a file from its first bytes; its *name* is only a hint (a renamed file
    is read as what it is). One of :data:`FORMATS`."""
    suffix = Path(name).suffix.lower()
    if not head:
        return "empty"
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if (head[:1] == b"\x80" and head[1:2] in PICKLE_PROTOCOLS) or suffix in PICKLE_SUFFIXES:
        return "pickle"
    if head[257:262] == b"ustar":
        return "tar"
    encoding = _text_encoding(head)
    if encoding is None:
        return "unknown"
    text = _head_text(head, encoding)
    lead = text.lstrip("\ufeff \t\r\n")[:2048].lower()
    if suffix in HTML_SUFFIXES or lead.startswith(("<!doctype html", "<html")):
        return "html"
    if lead.startswith(("<svg", "<?xml", "<!doctype svg")) and "<svg" in lead:
        return "svg"
    if lead.startswith("<"):
        return "unknown"  # XML or markup that is neither HTML nor SVG
    if suffix in JSON_SUFFIXES or lead.startswith(("{", "[")):
        return "json"
    if suffix in DELIMITED_SUFFIXES or _delimiter(text) is not None:
        return "delimited"
    return "text" if _is_safe_text(name) else "lines"


class _Unreadable(Exception):
    """Content the scan cannot read; the message says what it is and what to do."""


@dataclass(frozen=True)
class _Blob:
    """A file, or a member of an archive or a compressed file: a name (its suffix is a hint)
    and a way to open its bytes."""

    name: str
    open: Callable[[], BinaryIO]

    @classmethod
    def of_bytes(cls, name: str, data: bytes) -> _Blob:
        return cls(name, lambda: io.BytesIO(data))

    def head(self) -> bytes:
        with self.open() as fh:
            return fh.read(HEAD_BYTES)

    def text(self) -> str:
        with self.open() as fh:
            data = fh.read()
        return data.decode(_text_encoding(data[:HEAD_BYTES]) or "utf-8")


def _read_capped(fh: Any, what: str) -> bytes:
    data = fh.read(MAX_INFLATED + 1)
    if len(data) > MAX_INFLATED:
        raise _Unreadable(f"{what} inflates to more than {MAX_INFLATED >> 20} MiB; not read")
    return data


def _inflate(blob: _Blob, kind: str) -> bytes:
    """The content of a gzip, bzip2, xz or Zstandard file (Zstandard through pyarrow)."""
    with blob.open() as raw:
        stream: Any  # a pyarrow stream or a file object of the standard library
        if kind == "zstd":
            stream = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd")
        elif kind == "gzip":
            stream = gzip.GzipFile(fileobj=raw)
        else:
            stream = bz2.BZ2File(raw) if kind == "bz2" else lzma.LZMAFile(raw)
        with stream:
            return _read_capped(stream, f"the {kind} stream")


def _members(blob: _Blob, kind: str) -> Iterator[_Blob]:
    """The regular files of a zip or tar archive, each read into memory."""
    with blob.open() as raw:
        if kind == "zip":
            with zipfile.ZipFile(raw) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        with zf.open(info) as fh:
                            yield _Blob.of_bytes(info.filename, _read_capped(fh, info.filename))
        else:
            with tarfile.open(fileobj=raw) as tf:
                for member in tf.getmembers():
                    data = tf.extractfile(member) if member.isfile() else None
                    if data is not None:
                        yield _Blob.of_bytes(member.name, _read_capped(data, member.name))


def _zip_kind(blob: _Blob) -> str:
    """``excel`` for an Office Open XML or OpenDocument spreadsheet, else ``zip``."""
    with blob.open() as raw, zipfile.ZipFile(raw) as zf:
        names = set(zf.namelist())
        if "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names):
            return "excel"
        if "mimetype" in names and zf.read("mimetype").startswith(ODS_MIMETYPE):
            return "excel"
    return "zip"


def _array_frame(array: np.ndarray) -> pd.DataFrame:
    """A NumPy array as a table: a structured array has named columns; a plain one gives
    its rows (and numbered columns, up to two dimensions)."""
    if array.dtype.names:
        return pd.DataFrame.from_records(array.reshape(-1))
    if array.ndim == 1:
        return pd.DataFrame({"values": array})
    if array.ndim == 2:
        return pd.DataFrame(array, columns=[f"col{i}" for i in range(array.shape[1])])
    return pd.DataFrame(index=pd.RangeIndex(array.shape[0] if array.ndim else 0))


def _read_npy(blob: _Blob) -> pd.DataFrame:
    with blob.open() as fh:
        try:
            array = np.load(fh, allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise _Unreadable(PICKLE_DETAIL.format(what="a NumPy array of objects")) from exc
            raise
    return _array_frame(array)


def _read_delimited(blob: _Blob, head: bytes) -> pd.DataFrame:
    encoding = _text_encoding(head) or "utf-8"
    sep = _delimiter(_head_text(head, encoding))
    if sep is None:
        sep = DELIMITED_SUFFIXES.get(Path(blob.name).suffix.lower(), ",")
    with blob.open() as fh:
        return pd.read_csv(
            fh, sep=sep, encoding=encoding, keep_default_na=False, na_values=[""], low_memory=False
        )


def _read_json(blob: _Blob) -> Iterator[tuple[str, pd.DataFrame]]:
    """A JSON document, or JSON Lines (one value per line, read as a list of them)."""
    text = blob.text()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = [json.loads(line) for line in text.splitlines() if line.strip()]
    yield from _json_tables(doc)


def _read_lines(blob: _Blob) -> pd.DataFrame:
    """Plain text of no known kind, as a one-column table (its first line the header)."""
    lines = [line.strip() for line in blob.text().splitlines() if line.strip()]
    if lines and lines[0].isdigit():  # no header: the first line is a value
        lines.insert(0, "line")
    return pd.DataFrame({lines[0]: lines[1:]}) if lines else pd.DataFrame()


def _read_excel(blob: _Blob) -> Iterator[tuple[str, pd.DataFrame]]:
    try:
        with blob.open() as fh:
            sheets = pd.read_excel(fh, sheet_name=None)
    except ImportError as exc:
        raise _Unreadable(
            "unreadable: no engine for Excel here (openpyxl, xlrd or odfpy is not installed); "
            "export it as CSV or Parquet, or remove it"
        ) from exc
    for sheet, frame in sheets.items():
        yield f"sheet {sheet}", frame


def _read_tables(blob: _Blob, kind: str, head: bytes) -> Iterator[tuple[str, pd.DataFrame]]:
    """The tables of a table format (one of :data:`TABLE_FORMATS`)."""
    if kind == "delimited":
        yield "", _read_delimited(blob, head)
    elif kind == "json":
        yield from _read_json(blob)
    elif kind == "lines":
        yield "", _read_lines(blob)
    elif kind == "npy":
        yield "", _read_npy(blob)
    elif kind == "excel":
        yield from _read_excel(blob)
    else:
        with blob.open() as fh:
            if kind == "parquet":
                table = pq.read_table(fh)
            elif kind == "arrow":  # Feather v1 and v2 (= the Arrow IPC file format)
                table = feather.read_table(fh)
            else:
                table = ipc.open_stream(fh).read_all()
        yield "", table.to_pandas()


@dataclass
class _FileScan:
    """The content checks on one file (and the members of an archive, recursively)."""

    zone: str
    name: str
    ctx: ScanContext
    measures: Sequence[str] | None
    result: ScanResult
    model_dir: bool = False

    def add(self, check: str, detail: str, where: str = "") -> None:
        self.result.findings.append(Finding(self.zone, self.name, check, _at(where) + detail))

    def scan(self, blob: _Blob, where: str = "", depth: int = 0) -> None:
        kind = "file"
        try:
            head = blob.head()
            kind = detect_format(head, blob.name)
            if kind == "zip":
                kind = _zip_kind(blob)
            self._scan_kind(blob, kind, head, where, depth)
        except _Unreadable as exc:
            self.add("unreadable", f"{exc}", where)
        except Exception as exc:  # any reader error: the content cannot be checked
            self.add(
                "unreadable",
                f"cannot be read as {kind} ({type(exc).__name__}): the audit cannot check it; "
                "repair it or remove it",
                where,
            )

    def _scan_kind(self, blob: _Blob, kind: str, head: bytes, where: str, depth: int) -> None:
        if kind in SAFE_FORMATS:
            return
        if kind in ("pickle", "lightgbm") and self.zone in SECURE_ZONES and self.model_dir:
            return  # part of a logged model in the secure zone
        if kind == "lightgbm":
            if self.zone not in SECURE_ZONES:
                self.add(
                    "model_outside_secure",
                    "a LightGBM model; models stay in the MLflow store",
                    where,
                )
        elif kind == "png":
            self.result.png[self.zone] = self.result.png.get(self.zone, 0) + 1
        elif kind == "unknown":
            self.add(
                "unknown_format",
                "not a table, image or text format the audit can read (content unknown); "
                "convert it to CSV or Parquet, or remove it",
                where,
            )
        elif kind == "pickle":
            raise _Unreadable(PICKLE_DETAIL.format(what="a pickle"))
        elif kind == "html":
            self.result.findings.extend(
                scan_html(blob.text(), zone=self.zone, path=self.name, ctx=self.ctx, where=where)
            )
        elif depth >= MAX_NESTING:
            raise _Unreadable(f"archives nested more than {MAX_NESTING} deep; not read")
        elif kind in COMPRESSIONS:
            inner = Path(blob.name).stem  # x.csv.gz -> x.csv
            self.scan(_Blob.of_bytes(inner, _inflate(blob, kind)), where, depth + 1)
        elif kind in ("zip", "tar"):
            for member in _members(blob, kind):
                self.scan(member, _join(where, member.name), depth + 1)
        else:
            for part, frame in _read_tables(blob, kind, head):
                self.result.findings.extend(
                    check_table(
                        frame,
                        zone=self.zone,
                        path=self.name,
                        ctx=self.ctx,
                        measures=self.measures,
                        where=_join(where, part, sep=" "),
                    )
                )


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def _join(where: str, part: str, sep: str = "/") -> str:
    return sep.join(w for w in (where, part) if w)


def scan_file(path: Path, *, zone: str, name: str, ctx: ScanContext) -> ScanResult:
    """All checks on one file. *name* is how findings refer to it (relative to its zone).

    The format comes from the content (:func:`detect_format`); a file that cannot be read,
    or whose format is unknown, is a finding.
    """
    result = ScanResult(scanned={zone: 1})

    def add(check: str, detail: str) -> None:
        result.findings.append(Finding(zone, name, check, detail))

    if path.name in INPUT_EXAMPLES and (path.parent / "MLmodel").exists():
        add("input_example", "the model was logged with an input example (unit rows)")
    try:
        if is_model_file(path):
            if zone not in SECURE_ZONES:
                add("model_outside_secure", "a model file; models stay in the MLflow store")
                return result
            if _in_model_dir(path):
                return result  # a logged model in the secure zone
        if is_vendored(path):
            return result  # a pinned third-party file of the dashboard: code, not a table
        measures = _schema_measures(path) if zone == "publish" else None
        blob = _Blob(path.name, lambda: path.open("rb"))
        if path.suffix.lower() == ".png" and not blob.head().startswith(PNG_SIGNATURE):
            add("unreadable", "not a PNG file (its content is checked as what it is)")
        _FileScan(zone, name, ctx, measures, result, _in_model_dir(path)).scan(blob)
    except OSError as exc:
        add("unreadable", f"cannot be opened ({type(exc).__name__})")
    return result


def scan_html(
    html: str, *, zone: str, path: str, ctx: ScanContext, where: str = ""
) -> list[Finding]:
    """External assets, and every embedded ``<table>`` and every table in embedded JSON
    (``<script type="application/json">``, as the dashboard carries its data) checked as a
    table (*where*: the member of an archive)."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    out: list[Finding] = []
    if parser.external:
        refs = sorted(set(parser.external))
        out.append(
            Finding(
                zone,
                path,
                "external_asset",
                f"{_at(where)}{len(parser.external)} external ref(s): {refs}",
            )
        )
    for i, rows in enumerate(parser.tables, start=1):
        if rows:
            out.extend(
                check_table(
                    _html_frame(rows),
                    zone=zone,
                    path=path,
                    ctx=ctx,
                    where=_join(where, f"table {i}", sep=" "),
                )
            )
    for i, block in enumerate(parser.json_blocks, start=1):
        at = _join(where, f"script {i}", sep=" ")
        try:
            doc = json.loads(block)
        except ValueError as exc:
            out.append(
                Finding(
                    zone,
                    path,
                    "unreadable",
                    f"{_at(at)}embedded JSON cannot be read ({type(exc).__name__}): the audit "
                    "cannot check it; repair it or remove it",
                )
            )
            continue
        for part, frame in _json_tables(doc):
            out.extend(
                check_table(frame, zone=zone, path=path, ctx=ctx, where=_join(at, part, sep=" "))
            )
    return out


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file under *root* (following directory links), sorted."""
    for p in sorted(root.rglob("*")):
        if p.is_file():
            yield p


def scan_tree(root: Path, *, zone: str, ctx: ScanContext, prefix: str = "") -> ScanResult:
    """:func:`scan_file` on every file under *root*."""
    result = ScanResult(scanned={zone: 0})
    for p in iter_files(root):
        result.add(scan_file(p, zone=zone, name=prefix + p.relative_to(root).as_posix(), ctx=ctx))
    return result


def scan_publish_manifest(version: Path, *, zone: str = "publish") -> list[Finding]:
    """The public zone against its manifest: strays, changed files, missing files."""
    manifest = version / "manifest.json"
    if not manifest.is_file():
        return [Finding(zone, "manifest.json", "no_manifest", "the version has no manifest.json")]
    try:
        files = json.loads(manifest.read_text()).get("files", {})
        if not isinstance(files, dict):
            raise ValueError("files is not an object")
    except (ValueError, AttributeError) as exc:
        return [Finding(zone, "manifest.json", "unreadable", f"manifest ({type(exc).__name__})")]
    out = []
    on_disk = {p.relative_to(version).as_posix() for p in iter_files(version)}
    for rel in sorted(on_disk - set(files) - {"manifest.json"}):
        out.append(Finding(zone, rel, "not_in_manifest", "a file the manifest does not list"))
    for rel, digest in sorted(files.items()):
        path = version / rel
        if not path.is_file():
            out.append(Finding(zone, rel, "missing_file", "listed in the manifest, not on disk"))
        elif sha256_file(path) != digest:
            out.append(Finding(zone, rel, "checksum", "SHA-256 differs from the manifest"))
    return out


def scan_publish_dashboard(version: Path, *, zone: str = "publish") -> list[Finding]:
    """The dashboard of a public version against its published tables: every table it
    embeds must equal one of them, and it may name no other host
    (:func:`reports.dashboard.check_dashboard`). A version without one has nothing to check."""
    if not (version / "dashboard").is_dir():
        return []
    from reports.dashboard import SITE, DashboardError, check_dashboard

    try:
        doc = json.loads((version / "manifest.json").read_text())
        years = {t: d.get("year") for t, d in dict(doc.get("tasks", {})).items()}
        problems = check_dashboard(version, years=years)
    except (OSError, ValueError, AttributeError, DashboardError) as exc:
        problems = [f"{version / SITE}: cannot be checked ({type(exc).__name__})"]
    out = []
    for line in problems:
        where, _, detail = line.partition(": ")
        inside = where.startswith(str(version))
        rel = Path(where).relative_to(version).as_posix() if inside else where
        out.append(Finding(zone, rel, "dashboard_content", detail))
    return out


def summary_rows(result: ScanResult) -> Iterable[tuple[str, int, int, int]]:
    """Per zone: files scanned, PNGs (not readable; covered by the plot tests), findings."""
    for zone in ZONES:
        if zone in result.scanned:
            found = sum(1 for f in result.findings if f.zone == zone)
            yield zone, result.scanned[zone], result.png.get(zone, 0), found
