"""`zicht audit artifacts`: clean after a tiny end-to-end run; every planted leak is found.

The clean run is the session's shared tiny `zicht run` (``tiny_run`` in conftest.py). Every
planted file goes into copies of its zones (or a temporary MLflow store), never into the
shared ones.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc
import pytest
from mlflow.tracking import MlflowClient

from experiments.audit import scan_context
from experiments.cli import main
from reports.scan import (
    ScanContext,
    check_table,
    detect_format,
    is_unit_id_column,
    scan_file,
)


def _audit(*args: str) -> int:
    return main(["audit", "artifacts", *args])


def test_clean_after_a_tiny_run(tiny_run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert _audit(*tiny_run.args) == 0
    out = capsys.readouterr().out
    assert "audit: clean (0 findings)" in out
    for zone in ("mlflow", "review", "publish"):
        assert zone in out  # every zone was scanned


@pytest.fixture
def zones(tiny_run: Any, tmp_path: Path) -> dict[str, Path]:
    """Copies of the tiny run's review zone and current public version (behind a link)."""
    review = tmp_path / "review"
    shutil.copytree(tiny_run.review, review)
    version = tmp_path / "publish.d" / tiny_run.publish.resolve().name
    shutil.copytree(tiny_run.publish.resolve(), version)
    publish = tmp_path / "publish"
    os.symlink(os.path.relpath(version, tmp_path), publish, target_is_directory=True)
    return {"data": tiny_run.data, "review": review, "publish": publish, "version": version}


def _person_id_csv(z: dict[str, Path], _run: Any) -> str:
    frame = pd.DataFrame({"person_id": [11, 12, 13], "units": [40, 50, 60]})
    frame.to_csv(z["review"] / "leak.csv", index=False)
    return "leak.csv"


def _stray_parquet(z: dict[str, Path], _run: Any) -> str:
    pd.DataFrame({"area_code": ["NL"], "n": [100]}).to_parquet(
        z["publish"] / "hennep" / "x.parquet"
    )
    return "hennep/x.parquet"


def _changed_checksum(z: dict[str, Path], _run: Any) -> str:
    with (z["publish"] / "hennep" / "schema.json").open("a") as fh:
        fh.write("\n")
    return "hennep/schema.json"


def _small_n(z: dict[str, Path], _run: Any) -> str:
    path = z["publish"] / "hennep" / "buurt.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    row = (frame["risk_mean"] != "").idxmax()
    frame.loc[row, "n"] = "3"
    frame.to_csv(path, index=False)
    return "hennep/buurt.csv"


def _as_many_rows_as_persons(z: dict[str, Path], _run: Any) -> str:
    persons = json.loads((z["data"] / "world" / "manifest.json").read_text())["files"]
    rows = persons["persons.parquet"]["rows"]
    rng = np.random.default_rng(1)
    pd.DataFrame({"score": rng.random(rows)}).to_parquet(z["review"] / "scores.parquet")
    return "scores.parquet"


def _external_img(z: dict[str, Path], _run: Any) -> str:
    page = '<html><body><img alt="map" src="https://tiles.example.org/map.png"></body></html>'
    (z["review"] / "external.html").write_text(page)
    return "external.html"


def _dwelling_table(z: dict[str, Path], _run: Any) -> str:
    html = pd.DataFrame({"dwelling_id": [1, 2], "risk": [0.1, 0.2]}).to_html(index=False)
    (z["review"] / "table.html").write_text(f"<html><body>{html}</body></html>")
    return "table.html"


def _model_in_review(z: dict[str, Path], run: Any) -> str:
    client = MlflowClient(tracking_uri=run.store)
    exp = client.get_experiment_by_name("zicht/hennep")
    assert exp is not None
    model = client.search_logged_models([exp.experiment_id], max_results=1)[0]
    shutil.copytree(Path(model.artifact_location.removeprefix("file://")), z["review"] / "model")
    return "model/MLmodel"


def _corrupt_parquet(z: dict[str, Path], _run: Any) -> str:
    (z["review"] / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    return "broken.parquet"


PLANTS: dict[str, tuple[Callable[[dict[str, Path], Any], str], str, str]] = {
    "person_id column in review": (_person_id_csv, "review", "unit_id_column"),
    "parquet not in the publish manifest": (_stray_parquet, "publish", "not_in_manifest"),
    "publish file changed": (_changed_checksum, "publish", "checksum"),
    "published n=3 with a measure": (_small_n, "publish", "small_count"),
    "as many rows as persons": (_as_many_rows_as_persons, "review", "unit_rows"),
    "external img in HTML": (_external_img, "review", "external_asset"),
    "dwelling_id in an HTML table": (_dwelling_table, "review", "unit_id_column"),
    "MLflow model in review": (_model_in_review, "review", "model_outside_secure"),
    "corrupt parquet": (_corrupt_parquet, "review", "unreadable"),
}


@pytest.mark.parametrize("case", list(PLANTS))
def test_planted_file_is_found(
    case: str,
    zones: dict[str, Path],
    tiny_run: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plant, zone, check = PLANTS[case]
    name = plant(zones, tiny_run)
    args = ["--data-dir", str(zones["data"]), "--review-dir", str(zones["review"])]
    assert _audit(*args, "--publish-dir", str(zones["publish"]), "--no-mlflow") == 4
    out = capsys.readouterr().out
    found = [line for line in out.splitlines() if line.startswith(("review: ", "publish: "))]
    assert f"{zone}: {name}: {check}: " in out, out
    # only the planted file is found (a changed level table also fails its checksum; a
    # model directory has more than one model file)
    scope = "model/" if name.startswith("model/") else f"{name}: "
    assert all(line.startswith(f"{zone}: {scope}") for line in found), found


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    artifacts = (tmp_path / "artifacts").as_uri()  # not ./mlruns in the working directory
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("zicht/planted", artifacts))
    return uri


def _audit_store(store: str, data: Path, tmp_path: Path) -> int:
    return _audit(
        "--data-dir",
        str(data),
        "--tracking-uri",
        store,
        "--review-dir",
        str(tmp_path / "no-review"),
        "--publish-dir",
        str(tmp_path / "no-publish"),
    )


def test_per_unit_run_artifact_is_found(
    store: str, tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Out-of-fold predictions (one row per dwelling) logged to a run: no id column, found by
    their row count."""
    rows = json.loads((tiny_run.data / "world" / "manifest.json").read_text())["files"][
        "dwellings.parquet"
    ]["rows"]
    oof = tmp_path / "oof.csv"
    pd.DataFrame({"oof_score": np.random.default_rng(2).random(rows)}).to_csv(oof, index=False)
    with mlflow.start_run():
        mlflow.log_artifact(str(oof), artifact_path="predictions")
        mlflow.log_dict({"n": 5}, "ok/note.json")
    assert _audit_store(store, tiny_run.data, tmp_path) == 4
    out = capsys.readouterr().out
    assert "/predictions/oof.csv: unit_rows: " in out and "dwellings" in out
    assert not [line for line in out.splitlines() if "note.json" in line]


def test_model_with_input_example_is_found(
    store: str, tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
    (model / "input_example.json").write_text(
        json.dumps({"columns": ["age", "income"], "data": [[14, 4321.8765]]})
    )
    with mlflow.start_run():
        mlflow.log_artifacts(str(model), artifact_path="model")
    assert _audit_store(store, tiny_run.data, tmp_path) == 4
    out = capsys.readouterr().out
    assert "/model/input_example.json: input_example: " in out
    assert "model_outside_secure" not in out  # models are allowed in the MLflow store
    # never a value of the example in the finding's detail (the path may hold any digits)
    detail = next(line for line in out.splitlines() if "input_example.json: input_example" in line)
    assert "4321.8765" not in out and "14" not in detail.split("input_example: ")[1]


# --------------------------------------------------------------------------- every format


PERSONS = 1234


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """A data directory whose world has PERSONS persons (all the row-count check reads)."""
    data = tmp_path / "data"
    (data / "world").mkdir(parents=True)
    manifest = {"files": {"persons.parquet": {"rows": PERSONS}}}
    (data / "world" / "manifest.json").write_text(json.dumps(manifest))
    return data


def _units(_rows: int) -> pd.DataFrame:
    """A small unit-level table: found by its id column whatever its length."""
    return pd.DataFrame({"person_id": np.arange(101, 141), "score": np.linspace(0, 1, 40)})


def _scores(rows: int) -> pd.DataFrame:
    """One score per person and no id column: found by its row count only."""
    return pd.DataFrame({"score": np.random.default_rng(3).random(rows)})


def _arrow_stream(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pa.ipc.new_stream(str(path), table.schema) as writer:
        writer.write_table(table)


def _npz(frame: pd.DataFrame, path: Path) -> None:
    np.savez(path, units=frame.to_records(index=False))


def _xlsx(frame: pd.DataFrame, path: Path) -> None:
    """With openpyxl, pandas writes it; without, a minimal workbook (Office Open XML)."""
    if HAVE_OPENPYXL:
        frame.to_excel(path, index=False)
        return
    cells = "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{v}</t></is></c></row>'
        for r, v in enumerate(["person_id", *map(str, frame["person_id"])], start=1)
    )
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", f"<workbook {ns}/>")
        zf.writestr(
            "xl/worksheets/sheet1.xml",
            f"<worksheet {ns}><sheetData>{cells}</sheetData></worksheet>",
        )


def _zstd_csv(frame: pd.DataFrame, path: Path) -> None:
    path.write_bytes(pa.compress(frame.to_csv(index=False).encode(), "zstd", asbytes=True))


def _tar_gz_csv(frame: pd.DataFrame, path: Path) -> None:
    data = frame.to_csv(index=False).encode()
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("units.csv")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def _blob(_frame: pd.DataFrame, path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


HAVE_OPENPYXL = importlib.util.find_spec("openpyxl") is not None
Writer = Callable[[pd.DataFrame, Path], None]
#: name -> (frame, writer, check). Each is logged to a run of a fresh MLflow store.
FORMATS: dict[str, tuple[Callable[[int], pd.DataFrame], Writer, str]] = {
    "units.csv.gz": (_units, lambda f, p: f.to_csv(p, index=False), "unit_id_column"),
    "units.csv.bz2": (_units, lambda f, p: f.to_csv(p, index=False), "unit_id_column"),
    "units.csv.xz": (_units, lambda f, p: f.to_csv(p, index=False), "unit_id_column"),
    "units.csv.zst": (_units, _zstd_csv, "unit_id_column"),
    "units.csv.zip": (_units, lambda f, p: f.to_csv(p, index=False), "unit_id_column"),
    "units.tar.gz": (_units, _tar_gz_csv, "unit_id_column"),
    "units.tsv": (_units, lambda f, p: f.to_csv(p, sep="\t", index=False), "unit_id_column"),
    "units.psv": (_units, lambda f, p: f.to_csv(p, sep="|", index=False), "unit_id_column"),
    "units.jsonl": (
        _units,
        lambda f, p: f.to_json(p, orient="records", lines=True),
        "unit_id_column",
    ),
    "units.json": (_units, lambda f, p: f.to_json(p, orient="records"), "unit_id_column"),
    "scores.parquet": (_scores, lambda f, p: f.to_parquet(p), "unit_rows"),
    "units.feather": (_units, lambda f, p: f.to_feather(p), "unit_id_column"),
    "units.arrows": (_units, _arrow_stream, "unit_id_column"),
    "units.npy": (_units, lambda f, p: np.save(p, f.to_records(index=False)), "unit_id_column"),
    "scores.npy": (_scores, lambda f, p: np.save(p, f.to_numpy()), "unit_rows"),
    "units.npz": (_units, _npz, "unit_id_column"),
    "units.xlsx": (_units, _xlsx, "unit_id_column" if HAVE_OPENPYXL else "unreadable"),
    "units.pkl": (_units, lambda f, p: f.to_pickle(p), "unreadable"),
    # the content decides: a renamed table is still read
    "renamed.txt": (_units, lambda f, p: f.to_feather(p), "unit_id_column"),
    "renamed.png": (_scores, lambda f, p: f.to_parquet(p), "unit_rows"),
    "renamed.bin": (_units, lambda f, p: f.to_pickle(p), "unreadable"),
    "blob.bin": (_units, _blob, "unknown_format"),
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_unit_table_in_any_format_is_found(
    name: str, store: str, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame, write, check = FORMATS[name]
    path = tmp_path / "planted" / name
    path.parent.mkdir()
    write(frame(PERSONS), path)
    with mlflow.start_run():
        mlflow.log_artifact(str(path), artifact_path="tables")
    assert _audit_store(store, world, tmp_path) == 4
    out = capsys.readouterr().out
    found = [line for line in out.splitlines() if line.startswith("mlflow: ")]
    assert any(f"/tables/{name}: {check}: " in line for line in found), out
    assert all(f"/tables/{name}: " in line for line in found), found  # nothing else
    if check == "unreadable":
        assert "remove it" in out  # the message says what to do


# --------------------------------------------------------------------------- the core


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("person_id", True),
        ("dwelling_id", True),
        ("household_id", True),
        ("establishment_id", True),
        ("mother_id", True),
        ("adres_id", True),
        ("AddressKey", True),
        ("RINPERSOON", True),
        ("id", True),
        ("cell_id", True),
        ("run_id", False),
        ("parent_run_id", False),
        ("experiment_id", False),
        ("area_code", False),
        ("buurt_code", False),
        ("gemeente_id", False),
        ("n", False),
        ("idle_share", False),
        ("valid", False),
    ],
)
def test_unit_id_rule(name: str, unit: bool) -> None:
    assert is_unit_id_column(name) is unit


def test_findings_never_carry_a_value(tmp_path: Path) -> None:
    ctx = ScanContext(unit_counts={1500: "the world's persons"})
    keys = np.arange(900_001, 901_501)
    frame = pd.DataFrame({"key_like": keys, "n": 3, "risk_mean": 0.123456})
    findings = check_table(frame, zone="review", path="t.csv", ctx=ctx)
    assert {f.check for f in findings} == {"unit_id_values", "unit_rows", "small_count"}
    text = " ".join(str(f) for f in findings)
    assert "900001" not in text and "0.123456" not in text


def test_geojson_properties_and_png(tmp_path: Path) -> None:
    ctx = ScanContext()
    doc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": None, "properties": {"person_id": 1, "n": 20}}
        ],
    }
    (tmp_path / "a.geojson").write_text(json.dumps(doc))
    found = scan_file(tmp_path / "a.geojson", zone="publish", name="a.geojson", ctx=ctx)
    assert [f.check for f in found.findings] == ["unit_id_column"]
    (tmp_path / "fake.png").write_text("person_id\n1\n")
    png = scan_file(tmp_path / "fake.png", zone="review", name="fake.png", ctx=ctx)
    # not a PNG, and read as what it is: a table with a unit id
    assert [f.check for f in png.findings] == ["unreadable", "unit_id_column"]


def test_context_counts_the_world(tiny_run: Any) -> None:
    ctx = scan_context(tiny_run.data)
    assert "the world's persons" in ctx.unit_counts.values()
    assert ctx.min_count == 10 and "build_year" in ctx.feature_names


def _checks(path: Path, zone: str = "mlflow") -> list[str]:
    return [f.check for f in scan_file(path, zone=zone, name=path.name, ctx=ScanContext()).findings]


def test_known_safe_kinds_are_clean(tmp_path: Path) -> None:
    """What a logged model and a report hold besides tables: no finding, nothing skipped
    that could be a table."""
    model = tmp_path / "model"
    model.mkdir()
    files = {
        model / "MLmodel": "artifact_path: model\nflavors:\n  sklearn: {}\n",
        model / "conda.yaml": "channels:\n- conda-forge\ndependencies:\n- python=3.11\n",
        model / "python_env.yaml": "python: 3.11\nbuild_dependencies:\n- pip\n",
        model / "requirements.txt": "mlflow==3.17.2\nlightgbm==4.7.0\n",
        tmp_path / "leaderboard.md": "# Leaderboard\n\nLightGBM first, logistic second.\n",
        tmp_path / "plot.svg": '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
        tmp_path / "empty.csv": "",
    }
    for path, text in files.items():
        path.write_text(text)
    (model / "model.pkl").write_bytes(pickle.dumps({"coef": [0.5]}))  # a model, in its dir
    (model / "model.lgb").write_text("tree\nversion=v4\n")
    for path in [*files, model / "model.pkl", model / "model.lgb"]:
        assert _checks(path) == [], path.name


def test_models_and_pickles_by_content(tmp_path: Path) -> None:
    (tmp_path / "frame.pkl").write_bytes(pickle.dumps(pd.DataFrame({"person_id": [1]})))
    assert _checks(tmp_path / "frame.pkl") == ["unreadable"]  # not in a model directory
    assert _checks(tmp_path / "frame.pkl", "review") == ["model_outside_secure"]
    (tmp_path / "booster.dat").write_text("tree\nversion=v4\nnum_class=1\n")
    assert _checks(tmp_path / "booster.dat") == []
    assert _checks(tmp_path / "booster.dat", "review") == ["model_outside_secure"]
    np.save(tmp_path / "objects.npy", np.array([{"person_id": 1}], dtype=object))
    assert _checks(tmp_path / "objects.npy") == ["unreadable"]  # would need unpickling


def test_other_contents_are_read_or_found(tmp_path: Path) -> None:
    page = pd.DataFrame({"dwelling_id": [1, 2]}).to_html(index=False)
    (tmp_path / "page.txt").write_text(f"<!DOCTYPE html><html><body>{page}</body></html>")
    assert _checks(tmp_path / "page.txt") == ["unit_id_column"]
    keys = "\n".join(str(k) for k in range(500_000, 501_500))
    (tmp_path / "keys").write_text(keys)  # one unit key a line, no header, no suffix
    assert _checks(tmp_path / "keys") == ["unit_id_values"]
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))
    assert _checks(tmp_path / "old.xls") == ["unreadable"]
    (tmp_path / "data.xml").write_text("<?xml version='1.0'?><rows><r person_id='1'/></rows>")
    assert _checks(tmp_path / "data.xml") == ["unknown_format"]
    (tmp_path / "bad.json").write_text('{"person_id": [1, 2')
    assert _checks(tmp_path / "bad.json") == ["unreadable"]


@pytest.mark.parametrize(
    ("head", "name", "kind"),
    [
        (b"PAR1\x15\x04", "x.csv", "parquet"),
        (b"ARROW1\x00\x00", "x", "arrow"),
        (b"\x93NUMPY\x01\x00", "x.bin", "npy"),
        (b"\x1f\x8b\x08\x00", "x.csv.gz", "gzip"),
        (b"\x80\x05\x95", "x.dat", "pickle"),
        (b"a;b;c\n1;2;3\n4;5;6\n", "x.dat", "delimited"),
        (b'{"a": 1}\n{"a": 2}\n', "x.log", "json"),
        (b"artifact_path: model\n", "MLmodel", "text"),
        (b"some words\nmore words\n", "notes.log", "lines"),
        (b"\x00\x01\x02\x03", "x.csv", "unknown"),
    ],
)
def test_detect_format(head: bytes, name: str, kind: str) -> None:
    assert detect_format(head, name) == kind
