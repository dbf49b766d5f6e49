"""The zicht CLI: help, generate, validate, and clear errors with exit 2 on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_explains_the_tool(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "zicht generate --scale tiny" in out and "secure zone" in out
    code, out, _ = run(capsys, "generate", "--help")
    assert code == 0 and "--seed" in out and "Same seed" in out and "--data-dir" in out


def test_console_script_exit_code_for_bad_scale() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "generate", "--scale", "tinyy"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "tinyy" in proc.stderr and "tiny" in proc.stderr


def test_generate_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "generate", "--scale", "tiny", "--data-dir", str(tmp_path))
    assert code == 0, err
    assert "fingerprint" in out
    assert (tmp_path / "world" / "manifest.json").exists()
    assert (tmp_path / "truth" / "effects.json").exists()
    assert not list(tmp_path.glob(".generate-*")), "temporary directory left behind"
    code, out, err = run(capsys, "world", "validate", "--data-dir", str(tmp_path))
    assert code == 0, err
    # a second generate without --overwrite refuses and leaves the world as it was
    before = (tmp_path / "world" / "manifest.json").read_bytes()
    code, _, err = run(
        capsys, "generate", "--scale", "tiny", "--seed", "8", "--data-dir", str(tmp_path)
    )
    assert code == 2 and "--overwrite" in err
    assert (tmp_path / "world" / "manifest.json").read_bytes() == before
    code, _, err = run(
        capsys,
        "generate",
        "--scale",
        "tiny",
        "--seed",
        "8",
        "--overwrite",
        "--data-dir",
        str(tmp_path),
    )
    assert code == 0, err
    assert (tmp_path / "world" / "manifest.json").read_bytes() != before


def _copy(tiny_data: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "world"
    shutil.copytree(tiny_data / "world", dst)
    return dst


def _rewrite(path: Path, fn) -> None:
    table = pq.read_table(path)
    pq.write_table(fn(table), path)


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


BREAKAGES = {
    "missing file": (lambda w: (w / "halt.parquet").unlink(), "halt.parquet", "*", "file present"),
    "missing column": (
        lambda w: _rewrite(w / "dwellings.parquet", lambda t: t.drop_columns(["surface_m2"])),
        "dwellings.parquet",
        "surface_m2",
        "column present",
    ),
    "wrong dtype": (
        lambda w: _rewrite(
            w / "persons.parquet",
            lambda t: _set_column(t, "birth_year", t["birth_year"].cast(pa.string())),
        ),
        "persons.parquet",
        "birth_year",
        "type int",
    ),
    "negative turnover": (
        lambda w: _rewrite(
            w / "turnover.parquet",
            lambda t: _set_column(t, "turnover", pa.array([-5] + t["turnover"].to_pylist()[1:])),
        ),
        "turnover.parquet",
        "turnover",
        ">= 0",
    ),
    "duplicate ids": (
        lambda w: _rewrite(w / "persons.parquet", lambda t: pa.concat_tables([t, t.slice(0, 3)])),
        "persons.parquet",
        "person_id",
        "unique key",
    ),
    "unknown area code": (
        lambda w: _rewrite(
            w / "dwellings.parquet",
            lambda t: _set_column(
                t,
                "buurt_code",
                pa.array(["BU99999999"] + t["buurt_code"].cast(pa.string()).to_pylist()[1:]),
            ),
        ),
        "dwellings.parquet",
        "buurt_code",
        "references areas.area_code",
    ),
    "orphan child area": (
        lambda w: _rewrite(
            w / "areas.parquet",
            lambda t: t.filter(pa.array([lv != "riec" for lv in t["level"].to_pylist()])),
        ),
        "areas.parquet",
        "parent_code",
        "parent exists",
    ),
    "bad code format": (
        lambda w: _rewrite(
            w / "areas.parquet",
            lambda t: _set_column(
                t,
                "area_code",
                pa.array(
                    [
                        ("GM12345" if i == t["level"].to_pylist().index("gemeente") else c)
                        for i, c in enumerate(t["area_code"].to_pylist())
                    ]
                ),
            ),
        ),
        "areas.parquet",
        "area_code",
        "code",
    ),
    "value outside vocabulary": (
        lambda w: _rewrite(
            w / "households.parquet",
            lambda t: _set_column(
                t,
                "household_type",
                pa.array(["commune"] + t["household_type"].cast(pa.string()).to_pylist()[1:]),
            ),
        ),
        "households.parquet",
        "household_type",
        "isin",
    ),
    "spell ends before it starts": (
        lambda w: _rewrite(
            w / "education.parquet",
            lambda t: _set_column(
                t, "valid_to", pa.array([1990] + t["valid_to"].to_pylist()[1:], pa.int16())
            ),
        ),
        "education.parquet",
        "valid_to",
        "valid_to >= valid_from",
    ),
    "nulls where not allowed": (
        lambda w: _rewrite(
            w / "woz.parquet",
            lambda t: _set_column(
                t, "woz_value", pa.array([None] + t["woz_value"].to_pylist()[1:], pa.int32())
            ),
        ),
        "woz.parquet",
        "woz_value",
        "not null",
    ),
    "corrupt parquet": (
        lambda w: (w / "turnover.parquet").write_bytes(b"PAR1 this is not parquet"),
        "turnover.parquet",
        "*",
        "readable Parquet",
    ),
    "other generator version": (
        lambda w: (w / "manifest.json").write_text(
            json.dumps(
                {**json.loads((w / "manifest.json").read_text()), "generator_version": "0.3.0"}
            )
        ),
        "manifest.json",
        "generator_version",
        "major version",
    ),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_validate_names_file_column_rule(
    case: str, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    breaker, file, column, rule = BREAKAGES[case]
    w = _copy(tiny_data, tmp_path)
    breaker(w)
    code, _, err = run(capsys, "world", "validate", "--world-dir", str(w))
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith(f"{file}: {column}: ")]
    assert lines, f"no line for {file}: {column}: in\n{err}"
    assert any(rule in line and "fix:" in line for line in lines), err


def test_validate_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "world", "validate", "--world-dir", str(tmp_path / "nope"))
    assert code == 2 and "zicht generate" in err
