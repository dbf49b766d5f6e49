"""Real extracts end to end (issue #16): never destroyed, read as they come, run by
``zicht run --world-dir``.

Extracts are planted as copies of the tiny world, changed the way real extracts differ from
the generator's output (no manifest, 16-digit ids, plain-WKB areas, other years, ...).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from experiments.cli import main
from microdata.variants import COMBINED, VARIANTS, write_variant


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under *root* by SHA-256 (and every directory), to prove nothing changed."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------- 1. no overwrite


def _plant(tiny_data: Path, data: Path, manifest: str) -> Path:
    """An extract in DATA/world: the tiny world's tables, with no manifest, a foreign one,
    or the generator's manifest plus a file it does not list."""
    world = data / "world"
    shutil.copytree(tiny_data / "world", world)
    if manifest == "none":
        (world / "manifest.json").unlink()
    elif manifest == "foreign":
        doc = {"generator": "CBS Remote Access export", "scale": "tiny", "seed": 7}
        (world / "manifest.json").write_text(json.dumps(doc))
    elif manifest == "extra file":
        (world / "notes_of_the_analyst.parquet").write_bytes(b"not from the generator")
    return world


@pytest.mark.parametrize("manifest", ["none", "foreign", "extra file"])
@pytest.mark.parametrize(
    "command",
    [("run", "--scale", "tiny"), ("generate", "--scale", "tiny"), ("generate", "--overwrite")],
    ids=["run", "generate", "generate --overwrite"],
)
def test_an_extract_is_never_replaced(
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    manifest: str,
    command: tuple[str, ...],
) -> None:
    data = tmp_path / "data"
    world = _plant(tiny_data, data, manifest)
    before = tree_digest(data)
    zones = ["--data-dir", str(data), "--publish-dir", str(tmp_path / "publish")]
    zones += ["--review-dir", str(tmp_path / "review")]
    zones += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    code, _, err = run(capsys, *command, *zones)
    assert code == 2, err
    err = " ".join(err.split())
    assert str(world) in err  # the directory
    assert "left as it is" in err  # what happened
    assert "zicht run --world-dir" in err and "--data-dir" in err  # the fix
    assert tree_digest(data) == before, "the extract was changed"
    assert not (tmp_path / "publish").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_generated_world_is_still_replaced_with_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty world directory is filled; the generator's own world is replaced."""
    data = tmp_path / "data"
    (data / "world").mkdir(parents=True)
    code, _, err = run(capsys, "generate", "--scale", "tiny", "--data-dir", str(data))
    assert code == 0, err
    first = (data / "world" / "manifest.json").read_bytes()
    code, _, err = run(
        capsys, "generate", "--scale", "tiny", "--seed", "8", "--overwrite", "--data-dir", str(data)
    )
    assert code == 0, err
    assert (data / "world" / "manifest.json").read_bytes() != first


def test_an_extract_with_a_manifest_of_its_own_is_an_extract(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manifest.json that the generator did not write is not read: scale `real`, the years
    from the data, the fingerprint over the files' contents, and validation passes."""
    from experiments.train import world_identity
    from features.tables import world_years

    world = _plant(tiny_data, tmp_path / "data", "foreign")
    code, _, err = run(capsys, "world", "validate", "--world-dir", str(world))
    assert code == 0, err
    fingerprint, scale, seed = world_identity(world)
    assert (scale, seed) == ("real", "")
    years = world_years(world)
    assert (years.first, years.last) == (2016, 2025)
    path = world / "halt.parquet"
    pq.write_table(pq.read_table(path).slice(1), path)
    assert world_identity(world)[0] != fingerprint


# --------------------------------------------------------------------------- 2, 3, 6. variants


TASKS = ("hennep", "jonge_aanwas", "branch_turnover")
PROBLEM_LINE = re.compile(
    r"^(?P<file>[\w.]+\.parquet|manifest\.json): (?P<column>[^:]+): "
    r"(?P<rule>[^:]+): .+ \(fix: .+\)$"
)


def _inject(world: Path, fault: str) -> None:
    """Break an extract the way real ones break (the validator must name it)."""
    if fault == "unknown sbi":
        t = pq.read_table(world / "establishments.parquet")
        sbi = t.column("sbi").cast(pa.string()).to_pylist()
        sbi[0] = "99999"
        t = t.set_column(t.column_names.index("sbi"), "sbi", pa.array(sbi))
        pq.write_table(t, world / "establishments.parquet")
    elif fault == "unknown area code":
        t = pq.read_table(world / "dwellings.parquet")
        codes = t.column("buurt_code").cast(pa.string()).to_pylist()
        codes[3] = "BU99999999"
        i = t.column_names.index("buurt_code")
        pq.write_table(t.set_column(i, "buurt_code", pa.array(codes)), world / "dwellings.parquet")
    elif fault == "negative id":
        t = pq.read_table(world / "halt.parquet")
        ids = t.column("person_id").to_numpy().astype(np.int64).copy()
        ids[0] = -4
        i = t.column_names.index("person_id")
        pq.write_table(t.set_column(i, "person_id", pa.array(ids)), world / "halt.parquet")
    elif fault == "areas without polygons":
        t = pq.read_table(world / "areas.parquet").drop_columns(["geometry"])
        pq.write_table(t.replace_schema_metadata(None), world / "areas.parquet")


def _check_variant(
    capsys: pytest.CaptureFixture[str], tiny_data: Path, data: Path, options: dict, fault: str
) -> tuple[int, str]:
    """The property: validate exits 0 and every task's features build, or validate exits 2
    and every problem line names file, column, rule and fix."""
    world = write_variant(tiny_data / "world", data / "world", options)
    if fault:
        _inject(world, fault)
    code, _, err = run(capsys, "world", "validate", "--world-dir", str(world))
    if code == 0:
        for task in TASKS:
            fcode, _out, ferr = run(capsys, "features", task, "--data-dir", str(data))
            assert fcode == 0, f"validate said OK but features {task} failed: {ferr}"
            assert (data / "features" / f"{task}.parquet").exists()
        return code, err
    assert code == 2, err
    lines = [
        ln
        for ln in err.splitlines()
        if (".parquet: " in ln or ln.startswith("manifest")) and not ln.startswith("note:")
    ]
    assert lines, err
    for line in lines:
        m = PROBLEM_LINE.match(line.strip())
        assert m, f"not 'file: column: rule: detail (fix: ...)': {line}"
    return code, err


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_extract_variants_validate_and_build(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], variant: str
) -> None:
    """Each way a real extract differs from the generator's output passes validation, and
    then the features of all three tasks build; ids come back as the extract has them."""
    data = tmp_path / "data"
    code, err = _check_variant(capsys, tiny_data, data, VARIANTS[variant], "")
    assert code == 0, err
    hennep = pq.read_table(data / "features" / "hennep.parquet", columns=["dwelling_id"])
    ids = pq.read_table(data / "world" / "dwellings.parquet", columns=["dwelling_id"])
    assert hennep.schema.field("dwelling_id").type == pa.int64()
    want = set(ids.column("dwelling_id").cast(pa.int64()).to_pylist())
    assert set(hennep.column("dwelling_id").to_pylist()) <= want


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # an example takes seconds: no shrink
)
@given(
    options=st.fixed_dictionaries(
        {
            "ids": st.fixed_dictionaries(
                {},
                optional={
                    u: st.sampled_from(["bag16", "rin9", "near63"])
                    for u in ("person", "household", "dwelling", "establishment")
                },
            ),
            "plain_wkb": st.booleans(),
            "multipolygons": st.booleans(),
            "year_shift": st.sampled_from([0, -2, 3]),
            "extra_columns": st.booleans(),
            "reverse_columns": st.booleans(),
            "nullable_ints": st.booleans(),
            "strings": st.sampled_from([None, "dictionary", "large"]),
        }
    ),
    fault=st.sampled_from(
        ["", "", "unknown sbi", "unknown area code", "negative id", "areas without polygons"]
    ),
)
def test_validate_ok_means_features_build(
    tiny_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    options: dict,
    fault: str,
) -> None:
    """Property over combined variants, some broken: `zicht world validate` exit 0 implies
    the features stage succeeds for all three tasks; exit 2 names file/column/rule/fix."""
    data = tmp_path_factory.mktemp("variant") / "data"
    code, err = _check_variant(capsys, tiny_data, data, options, fault)
    if fault:
        assert code == 2, f"{fault} was not reported"
        rule = {
            "unknown sbi": "establishments.parquet: sbi: references branches.sbi",
            "unknown area code": "dwellings.parquet: buurt_code: references areas.area_code",
            "negative id": "halt.parquet: person_id: >= 0",
            "areas without polygons": "areas.parquet: geometry: column present",
        }[fault]
        assert rule in err, err


# --------------------------------------------------------------------------- 4, 5. zicht run


@pytest.mark.e2e
def test_zicht_run_on_an_extract(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`zicht run --world-dir` on an extract that differs from the generator's output in
    every way at once (9- and 16-digit ids, plain-WKB MultiPolygons, 2014-2023, extra and
    reordered columns, nullable ints, dictionary strings): exit 0, three tasks published,
    MLflow and the reports say `real` with the data's years and a working rerun command,
    the extract is untouched, and a second run reuses every stage."""
    import mlflow
    from mlflow.tracking import MlflowClient

    world = write_variant(tiny_data / "world", tmp_path / "extract" / "world", COMBINED)
    before = tree_digest(world.parent)
    data, publish, review = tmp_path / "data", tmp_path / "publish", tmp_path / "review"
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    zones = ["--data-dir", str(data), "--publish-dir", str(publish)]
    zones += ["--review-dir", str(review), "--tracking-uri", f"sqlite:///{store}"]
    args = ["run", "--world-dir", str(world), "--models", "lightgbm", *zones]
    code, out, err = run(capsys, *args)
    assert code == 0, err + out
    assert "no GeoParquet metadata" in out and "EPSG:28992" in out  # said so
    assert tree_digest(world.parent) == before, "zicht run wrote into the extract"
    assert not (data / "world").exists()  # nothing generated
    manifest = json.loads((publish / "manifest.json").read_text())
    assert set(manifest["tasks"] if "tasks" in manifest else manifest["runs"]) >= set(TASKS)
    for task in TASKS:
        assert (publish / task / "buurt.csv").exists() or task == "branch_turnover"
        assert (publish / task / "wijk.csv").exists()
    # MLflow: scale real, no oracle, artifacts beside the store (not in the cwd)
    mlflow.set_tracking_uri(f"sqlite:///{store}")
    client = MlflowClient()
    for task in TASKS:
        exp = client.get_experiment_by_name(f"zicht/{task}")
        assert exp is not None
        assert Path(exp.artifact_location.removeprefix("file://")).parent == store.parent
        runs = client.search_runs([exp.experiment_id])
        assert runs and all(r.data.tags["zicht.scale"] == "real" for r in runs)
        assert not any(k.startswith("oracle") for r in runs for k in r.data.metrics)
    assert not (Path.cwd() / "mlruns").exists()
    page = (review / "hennep" / "index.html").read_text()
    assert "2014–2023" in page and "None" not in page.split("world years")[1][:200]
    assert f"zicht run --world-dir {world}" in page
    assert "zicht generate --scale real" not in page
    # the same extract again: every stage is reused
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "(0 stages ran" in out, out
