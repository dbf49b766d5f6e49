"""``zicht publish`` on the tiny world: contract files, checksums, atomicity, no unit ids.

Predictions are built here from the world with a seeded random score for every unit (the
real predict path is tested elsewhere); the run's fingerprint lookup is injected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import disclosure.publish as dp
from disclosure.publish import PublishRefused, current_version, verify_version, versions_dir
from experiments.publish import PublishInputError, publish_tasks, residents, turnover_inputs
from experiments.train import world_identity

REPO = Path(__file__).resolve().parent.parent
TASKS = ("hennep", "jonge_aanwas", "branch_turnover")
LEVELS = ("buurt", "wijk", "gemeente", "riec", "nederland")
RUN = "a" * 32


def fake_predictions(world: Path, task: str, *, seed: int = 0) -> pd.DataFrame:
    """A predictions frame shaped like ``zicht predict``'s, with seeded random scores."""
    rng = np.random.default_rng(seed)
    areas = pd.read_parquet(world / "areas.parquet").drop(columns="geometry")
    b = areas[areas["level"] == "buurt"].set_index("area_code")
    year = 2024
    if task == "branch_turnover":
        units, _, _ = turnover_inputs(world, areas, year)
        frames = []
        for level, col in (("wijk", "wijk_code"), ("gemeente", "gemeente_code")):
            g = units.groupby([col, "sbi"]).size().reset_index()
            frames.append(g.rename(columns={col: "area_code"})[["area_code", "sbi"]])
            frames[-1].insert(0, "level", level)
        p = pd.concat(frames, ignore_index=True)
        p.insert(0, "cell_id", np.arange(len(p)))
        p["year"] = year
        p["expected_log"] = rng.normal(8, 1, len(p)).astype(np.float32)
        p["flag"] = rng.random(len(p)) < 0.05
    else:
        if task == "hennep":
            d = pd.read_parquet(world / "dwellings.parquet", columns=["dwelling_id", "buurt_code"])
            p = pd.DataFrame({"dwelling_id": d["dwelling_id"], "buurt_code": d["buurt_code"]})
        else:  # the residents aged 8-23, less a random tenth (an earlier suspicion)
            people = residents(world, year)
            p = people.loc[people.index.repeat(people["residents"])].reset_index(drop=True)
            p = p[rng.random(len(p)) >= 0.1][["buurt_code", "age_group"]]
            p.insert(0, "person_id", np.arange(len(p)))
        p["buurt_code"] = p["buurt_code"].astype(str)
        p["year"] = year
        for c in ("wijk_code", "gemeente_code", "riec_code"):
            p[c] = b[c].astype(str).reindex(p["buurt_code"]).to_numpy()
        p["score"] = rng.random(len(p)).astype(np.float32)
        p["probability"] = (p["score"] ** 4 * 0.05).astype(np.float32)
    p["run_id"] = RUN
    return p


@pytest.fixture(scope="module")
def data(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DATA dir of our own (predictions) over the shared tiny world."""
    d = tmp_path_factory.mktemp("pubdata")
    (d / "world").symlink_to(tiny_data / "world", target_is_directory=True)
    (d / "predictions").mkdir()
    for task in TASKS:
        fake_predictions(d / "world", task).to_parquet(d / "predictions" / f"{task}.parquet")
    return d


def _run(data: Path, publish_dir: Path, tasks: tuple[str, ...] = TASKS) -> Path:
    fp = world_identity(data / "world")[0]
    return publish_tasks(
        tasks,
        data_dir=data,
        publish_dir=publish_dir,
        tracking_uri="unused",
        run_fingerprint=lambda run_id: fp if run_id == RUN else None,
        champion=lambda task: RUN,
    )


@pytest.fixture(scope="module")
def published(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zone") / "publish"
    _run(data, out)
    return out


def test_publish_writes_every_contract_file(published: Path) -> None:
    assert published.is_symlink()
    assert os.readlink(published).startswith("publish.d" + os.sep)
    for task in TASKS:
        levels = LEVELS[1:] if task == "branch_turnover" else LEVELS
        names = [f"{lv}.{ext}" for lv in levels for ext in ("csv", "parquet")]
        names += ["areas.geojson", "map_gemeente.png", "map_buurt.png", "ledger.csv"]
        for name in [*names, "schema.json"]:
            assert (published / task / name).is_file(), f"{task}/{name}"
        ledger = pd.read_csv(published / task / "ledger.csv")
        assert list(ledger.columns) == [
            "level",
            "area_code",
            "breakdown",
            "basis",
            "status",
            "reason",
        ]
        geo = json.loads((published / task / "areas.geojson").read_text())
        assert geo["type"] == "FeatureCollection" and "crs" not in geo  # RFC 7946: WGS 84 only
        lon, lat = np.array(geo["features"][0]["geometry"]["coordinates"][0][0]).T[:2]
        assert (np.abs(lon) <= 180).all() and (np.abs(lat) <= 90).all()
        assert (published / task / "map_buurt.png").read_bytes()[:4] == b"\x89PNG"
    schema = json.loads((published / "hennep" / "schema.json").read_text())
    assert schema["measures"]["risk_mean"]["basis"] == {
        "kind": "mean",
        "basis": "risk_sum",
        "weight": "n",
    }
    assert schema["measures"]["elevated_share"]["status"] == "status_elevated_count"
    turnover = json.loads((published / "branch_turnover" / "schema.json").read_text())
    assert any("no buurt level" in n for n in turnover["notes"])


def test_manifest_checksums_and_provenance(published: Path, data: Path) -> None:
    assert verify_version(published.resolve()) == []
    doc = json.loads((published / "manifest.json").read_text())
    assert doc["data_fingerprint"] == world_identity(data / "world")[0]
    assert doc["runs"] == dict.fromkeys(TASKS, RUN)
    assert doc["rule_settings"]["min_count"] == 10
    assert {"created_at", "zicht_version", "git_commit", "suppressed"} <= set(doc)
    assert sum(doc["suppressed"]["hennep"].get("buurt", {}).values()) > 0
    # a tampered file is caught
    tampered = published.resolve() / "hennep" / "riec.csv"
    original = tampered.read_bytes()
    try:
        tampered.write_bytes(original + b"\n")
        assert any("checksum" in p for p in verify_version(published.resolve()))
    finally:
        tampered.write_bytes(original)


def test_suppressed_basis_has_empty_derived_measures(published: Path) -> None:
    buurt = pd.read_csv(published / "hennep" / "buurt.csv", keep_default_na=False, dtype=str)
    hidden = buurt[buurt["status_risk_sum"] == "suppressed"]
    assert len(hidden) > 0
    assert (hidden[["risk_mean", "expected_per_1000", "index"]] == "").all().all()
    small = buurt[buurt["n"].astype(int) < 10]
    assert (small["status_risk_sum"] == "suppressed").all()
    assert (small["elevated_share"] == "").all()
    wijk = pd.read_csv(published / "branch_turnover" / "wijk.csv", keep_default_na=False, dtype=str)
    gone = wijk[wijk["status"] == "suppressed"]
    assert (
        len(gone)
        and (gone[["turnover_per_inhabitant", "deviation_ratio", "flag"]] == "").all().all()
    )
    assert gone["reason"].str.len().gt(0).all()


def test_unit_ids_never_appear(published: Path, data: Path) -> None:
    preds = pd.read_parquet(data / "predictions" / "hennep.parquet")
    ids = set(preds["dwelling_id"].astype(str).head(50)) - {str(i) for i in range(1000)}
    for path in published.resolve().rglob("*"):
        if path.suffix not in (".csv", ".parquet"):
            continue
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        assert not [c for c in frame.columns if c.endswith("_id") or c == "id"], path
        assert len(frame) != len(preds), path
        text = frame.astype(str).to_numpy().ravel()
        assert not ids & set(text), path


def test_a_failure_midway_keeps_the_old_version(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "publish"
    _run(data, out, ("hennep",))
    old = current_version(out)
    assert old is not None
    calls = {"n": 0}
    real = dp._write_geojson

    def flaky(geo: object, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second task's geojson: the first task is already written
            raise OSError("disk full (injected)")
        real(geo, path)

    monkeypatch.setattr(dp, "_write_geojson", flaky)
    with pytest.raises(PublishRefused, match="injected"):
        _run(data, out, ("hennep", "branch_turnover"))
    assert current_version(out) == old and verify_version(old) == []
    assert sorted(p.name for p in versions_dir(out).iterdir()) == [old.name]
    assert not (out / "branch_turnover").exists()  # all or nothing


def test_cli_exit_codes(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments import publish as ep
    from experiments.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "world").symlink_to((data / "world").resolve(), target_is_directory=True)
    out = tmp_path / "publish"
    code = main(["publish", "hennep", "--data-dir", str(empty), "--publish-dir", str(out)])
    assert code == 2 and not out.exists()
    fp = world_identity(data / "world")[0]
    monkeypatch.setattr(ep, "fingerprint_from_mlflow", lambda uri: lambda run: "other")
    code = main(["publish", "hennep", "--data-dir", str(data), "--publish-dir", str(out)])
    assert code == 2 and not out.exists()  # predictions of a run on another world
    monkeypatch.setattr(ep, "fingerprint_from_mlflow", lambda uri: lambda run: fp)
    monkeypatch.setattr(ep, "champion_from_mlflow", lambda uri: lambda task: None)
    code = main(["publish", "hennep", "--data-dir", str(data), "--publish-dir", str(out)])
    assert code == 2 and not out.exists()  # predictions that are not the champion's
    monkeypatch.setattr(ep, "champion_from_mlflow", lambda uri: lambda task: RUN)
    code = main(["publish", "hennep", "--data-dir", str(data), "--publish-dir", str(out)])
    assert code == 0 and verify_version(out.resolve()) == []

    def refuse(*a: object, **k: object) -> None:
        raise PublishRefused("injected refusal")

    monkeypatch.setattr(ep, "control", refuse)
    before = out.resolve()
    code = main(["publish", "hennep", "--data-dir", str(data), "--publish-dir", str(out)])
    assert code == 3 and out.resolve() == before


def test_missing_predictions_name_the_fix(data: Path, tmp_path: Path) -> None:
    (tmp_path / "world").symlink_to((data / "world").resolve(), target_is_directory=True)
    with pytest.raises(PublishInputError, match="zicht predict hennep"):
        publish_tasks(
            ["hennep"],
            data_dir=tmp_path,
            publish_dir=tmp_path / "publish",
            tracking_uri="unused",
            run_fingerprint=lambda r: None,
            champion=lambda task: RUN,
        )
    assert not (tmp_path / "publish").exists()


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from experiments.publish import publish_tasks
from experiments.train import world_identity
data = Path({data!r})
fp = world_identity(data / "world")[0]
print("go", flush=True)
publish_tasks({tasks!r}, data_dir=data, publish_dir=Path({out!r}), tracking_uri="x",
              run_fingerprint=lambda r: fp, champion=lambda t: {run!r})
print("done", flush=True)
"""


def test_sigkill_at_a_random_point_leaves_a_complete_version(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "publish"
    start = time.perf_counter()
    _run(data, out, ("hennep", "branch_turnover"))
    duration = time.perf_counter() - start
    rng = np.random.default_rng(20240607)
    for delay in rng.uniform(0, duration, size=3):
        code = CHILD.format(
            run=RUN,
            repo=str(REPO),
            data=str(data),
            out=str(out),
            tasks=["hennep", "branch_turnover"],
        )
        with subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
        ) as child:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "go"
            time.sleep(float(delay))
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert out.is_symlink()
        assert verify_version(out.resolve()) == []
        doc = json.loads((out / "manifest.json").read_text())
        assert set(doc["runs"]) == {"hennep", "branch_turnover"}
    # the next publish clears what the killed runs left behind
    _run(data, out, ("hennep",))
    assert not list(versions_dir(out).glob("*.partial"))
    assert set(json.loads((out / "manifest.json").read_text())["runs"]) == {
        "hennep",
        "branch_turnover",
    }  # the task not named is carried over


# --- issue 14: nothing about one person, nothing recomputable ------------------------------


def test_public_reasons_say_nothing_but_suppressed(published: Path, data: Path) -> None:
    """Which rule fired is itself a disclosure: the public zone says only 'suppressed', the
    reasons stay in the secure zone's release state."""
    for task in TASKS:
        for path in (published / task).glob("*.csv"):
            frame = pd.read_csv(path, keep_default_na=False, dtype=str)
            for col in [c for c in frame.columns if c == "reason" or c.startswith("reason_")]:
                assert set(frame[col]) <= {"", "suppressed"}, (path, col, set(frame[col]))
    doc = json.loads((published / "manifest.json").read_text())
    for task in TASKS:
        for reasons in doc["suppressed"][task].values():
            assert set(reasons) == {"suppressed"}
    state = data / "disclosure" / "releases" / published.resolve().name / "hennep.parquet"
    secure = pd.read_parquet(state)
    assert {"threshold", "secondary"} <= set(secure["reason"].str.split(";").explode())
    assert {"cell_id", "value", "status"} <= set(secure.columns)


def test_jonge_aanwas_n_counts_every_resident(published: Path, data: Path) -> None:
    """n of jonge_aanwas is every resident of the age group, not the modelled youths (whose
    number tells how many have a drug suspicion on record where residents are known)."""
    people = residents(data / "world", 2024)
    nl = pd.read_csv(published / "jonge_aanwas" / "nederland.csv").set_index("age_group")
    assert nl.loc["total", "n"] == people["residents"].sum()
    preds = pd.read_parquet(data / "predictions" / "jonge_aanwas.parquet")
    assert nl.loc["total", "n"] > len(preds)
    buurt = pd.read_csv(published / "jonge_aanwas" / "buurt.csv")
    by = people.groupby(["buurt_code", "age_group"])["residents"].sum()
    rows = buurt[buurt["age_group"] != "total"].set_index(["area_code", "age_group"])["n"]
    assert (rows == by.reindex(rows.index)).all()
    # every buurt with residents has a row, also those without a modelled youth
    assert set(by.index) <= set(rows.index)


def test_profiles_of_another_run_are_refused(data: Path, tmp_path: Path) -> None:
    mine = tmp_path / "data"
    (mine / "explain").mkdir(parents=True)
    (mine / "world").symlink_to((data / "world").resolve(), target_is_directory=True)
    (mine / "predictions").symlink_to((data / "predictions").resolve())
    pd.DataFrame({"run_id": ["b" * 32], "level": ["nederland"]}).to_parquet(
        mine / "explain" / "jonge_aanwas_profiles.parquet"
    )
    with pytest.raises(PublishInputError, match=r"explains run b+, but the predictions") as err:
        _run(mine, tmp_path / "publish", ("jonge_aanwas",))
    assert RUN in str(err.value) and "zicht explain jonge_aanwas" in str(err.value)
    assert not (tmp_path / "publish").exists()


def test_each_version_keeps_its_secure_state_and_the_next_one_reads_it(
    data: Path, tmp_path: Path
) -> None:
    from experiments.publish import prior_states, release_states_dir

    out = tmp_path / "publish"
    first = _run(data, out, ("hennep",))
    second = _run(data, out, ("hennep",))
    states = release_states_dir(data)
    assert (states / first.name / "hennep.parquet").is_file()
    assert (states / second.name / "hennep.parquet").is_file()
    cells = pd.read_parquet(states / second.name / "hennep.parquet")
    fp = world_identity(data / "world")[0]
    prior = prior_states(
        "hennep", cells, publish_dir=out, data_dir=data, fingerprint=fp, run_id=RUN
    )
    assert len(prior) == 2  # both versions still public
    # the same predictions twice: the same decisions, every suppressed cell stays so
    a = pd.read_parquet(states / first.name / "hennep.parquet").set_index("cell_id")["status"]
    b = cells.set_index("cell_id")["status"]
    assert (a == b.reindex(a.index)).all()


# --- readable public tables (issue 17) ----------------------------------------------------


def test_every_table_has_year_and_the_readme_explains_every_column(published: Path) -> None:
    readme = (published / "README.md").read_text(encoding="utf-8")
    assert "## Nederlands" in readme and "## English" in readme
    manifest = json.loads((published / "manifest.json").read_text())
    assert "README.md" in manifest["files"]
    for task in TASKS:
        schema = json.loads((published / task / "schema.json").read_text())
        for path in sorted((published / task).glob("*.csv")):
            if path.name == "ledger.csv":
                continue
            table = pd.read_csv(path)
            assert (table["year"] == 2024).all(), path
            for col in table.columns:
                doc = schema["columns"][col]
                assert doc["label_nl"] and doc["description_nl"], (task, col)
                assert f"`{col}`" in readme and doc["label_nl"] in readme, (task, col)
                # every published number states its rounding, and is rounded to it
                if doc["type"] in ("number", "integer") and col != "year":
                    digits = doc["precision"]
                    v = table[col].dropna().to_numpy(np.float64)
                    assert np.allclose(v, np.round(v, digits)), (task, col)
        for m, spec in schema["measures"].items():
            assert spec["label_nl"], (task, m)
    for word in ("published", "suppressed", "Drempel", "Threshold", "Dominance"):
        assert word in readme


def test_geojson_has_one_feature_per_area_with_the_breakdown_as_columns(published: Path) -> None:
    for task, level, breakdown in (
        ("hennep", "buurt", None),
        ("jonge_aanwas", "buurt", "age_group"),
        ("branch_turnover", "wijk", "branch"),
    ):
        geo = json.loads((published / task / "areas.geojson").read_text())
        codes = [f["properties"]["area_code"] for f in geo["features"]]
        table = pd.read_csv(published / task / f"{level}.csv", dtype={"branch": str})
        assert len(codes) == len(set(codes)) == table["area_code"].nunique(), task
        if breakdown is None:
            continue
        props = geo["features"][0]["properties"]
        assert breakdown not in props
        values = [v for v in table[breakdown].astype(str).unique() if v != "total"]
        measure = "index" if task == "jonge_aanwas" else "deviation_ratio"
        assert all(f"{measure}_{v}" in props for v in values)
        # the suffixed column is the breakdown row's value, the plain one the total's
        code = props["area_code"]
        row = table[(table["area_code"] == code) & (table[breakdown].astype(str) == values[0])]
        got, want = props[f"{measure}_{values[0]}"], row[measure].iloc[0]
        assert (got is None and pd.isna(want)) or got == pytest.approx(want)


def test_names_that_read_as_formulas_are_neutralised_in_csv(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "area_code": ["GM0001", "GM0002", "GM0003", "GM0004"],
            "area_name": ['=HYPERLINK("x")', "+31 Noord", "Oud-West", "@SUM(A1)"],
            "branch_name": ["-2+3", "\tTab", "Bouw", "\rCR"],
            "n": [-1, 12, 13, 14],
        }
    )
    dp._write_table(table, tmp_path / "t")
    csv = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    names = ['\'=HYPERLINK("x")', "'+31 Noord", "Oud-West", "'@SUM(A1)"]
    assert csv["area_name"].tolist() == names
    assert csv["branch_name"].tolist() == ["'-2+3", "'\tTab", "Bouw", "'\rCR"]
    assert csv["n"].tolist() == [-1, 12, 13, 14]  # numbers are not text: left alone
    raw = pd.read_parquet(tmp_path / "t.parquet")
    assert raw["area_name"].iloc[0] == '=HYPERLINK("x")'  # the Parquet twin keeps the name


def test_world_validate_names_a_formula_like_area_name(tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    from microdata.validate import validate_world

    world = tmp_path / "world"
    shutil.copytree(tiny_data / "world", world)
    (world / "manifest.json").unlink()  # an extract: no checksums to trip over
    areas = pd.read_parquet(world / "areas.parquet")
    areas.loc[areas.index[3], "area_name"] = "=cmd|'/C calc'!A0"
    areas.to_parquet(world / "areas.parquet")
    lines = [str(p) for p in validate_world(world)]
    hit = [x for x in lines if "no spreadsheet formula" in x]
    assert len(hit) == 1, lines
    assert hit[0].startswith("areas.parquet: area_name: no spreadsheet formula:")
    assert "=cmd|" in hit[0] and "fix:" in hit[0]


def test_publication_lines_count_cells_per_level(published: Path) -> None:
    lines = dp.publication_lines(published.resolve())
    ledger = pd.read_csv(published / "branch_turnover" / "ledger.csv")
    wijk = ledger[ledger["level"] == "wijk"]
    n_pub = int((wijk["status"] == "published").sum())
    assert f"  branch_turnover wijk: {n_pub} of {len(wijk)} cells published" in "\n".join(lines)
    warned = [x for x in lines if x.startswith("warning")]
    share = {(c.task, c.level): c.share for c in dp.published_counts(published.resolve())}
    assert len(warned) == sum(s < 0.5 for s in share.values())


def test_the_readme_is_generated_from_the_schemas() -> None:
    """Every column of every schema, with its Dutch label and rounding, in both languages;
    an older schema without ``columns`` (a task carried over) falls back to its measures."""
    from disclosure.readme import render_readme

    new = {
        "levels": ["wijk", "gemeente"],
        "measures": {},
        "columns": {
            "year": {
                "label_nl": "jaar",
                "description": "publication year",
                "description_nl": "publicatiejaar",
                "type": "integer",
            },
            "deviation_ratio": {
                "label_nl": "afwijkingsratio",
                "description": "realised | exp",
                "description_nl": "gerealiseerd",
                "type": "number",
                "precision": 3,
            },
        },
        "notes": ["a note"],
    }
    old = {
        "levels": ["buurt"],
        "measures": {"risk_mean": {"description": "mean risk", "precision": 5}},
    }
    settings = {
        "min_count": 7,
        "dominance_share": 0.5,
        "group_share": 0.9,
        "protection_share": 0.1,
        "margin_units": 1.0,
        "nk": None,
    }
    text = render_readme(
        {"branch_turnover": new, "hennep": old},
        settings=settings,
        version="v9",
        created_at="2026-01-01T00:00:00+00:00",
    )
    nl, en = text.split("## English")
    for part in (nl, en):
        assert "| `year` | jaar |" in part
        assert "| `deviation_ratio` | afwijkingsratio |" in part and "| 0.001 |" in part
        assert "| `risk_mean` |" in part and "| 0.00001 |" in part
        assert "7" in part  # the threshold of these settings, not a default
    assert "realised \\| exp" in en  # a pipe in a text does not break the table
    assert "Drempel: een cel met minder dan 7 eenheden" in nl
    assert "- a note" in en
