"""The protected-attribute guard cannot be bypassed: by name, by lineage, by stray column,
by config, or by a relabelled copy under an innocent name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from experiments.cli import main
from features import builders as b
from features.audit import AREA_COPY_THRESHOLD, COPY_THRESHOLD, ProtectedAccess, theils_u
from features.catalogue import CATALOGUE, TASK_FEATURES, Feature
from features.guard import (
    ProtectedAttributeError,
    UnknownFeatureError,
    check_copies,
    check_frame,
    check_inputs,
    check_selection,
)
from features.tables import META, build_task_year, load_world, write_feature_table
from features.world import WorldReader


@pytest.fixture(scope="module")
def world_dir(tiny_data: Path) -> Path:
    return tiny_data / "world"


@pytest.fixture(scope="module")
def frames(world_dir: Path) -> b.WorldFrames:
    return load_world(world_dir)


def origin_codes(world_dir: Path) -> pd.Series:
    """The test (not the product) reads origin directly, to plant copies of it."""
    t = pq.read_table(world_dir / "persons.parquet", columns=["person_id", "herkomst"]).to_pandas()
    return t.set_index("person_id")["herkomst"].astype(str)


def test_no_catalogue_feature_touches_a_protected_column() -> None:
    check_selection(CATALOGUE)  # the shipped catalogue is clean


@pytest.mark.parametrize(
    "name", ["herkomst", "geboorteland_moeder", "migration_background", "nationaliteit"]
)
def test_protected_names_are_refused(name: str) -> None:
    with pytest.raises(ProtectedAttributeError, match=name):
        check_selection(["age", name])


def test_unknown_feature_is_refused() -> None:
    with pytest.raises(UnknownFeatureError, match="shoe_size"):
        check_selection(["age", "shoe_size"])


def test_retired_feature_is_refused_with_its_reason() -> None:
    with pytest.raises(UnknownFeatureError, match="own turnover in t-1") as exc:
        check_selection(["area_density", "branch_turnover_per_inhabitant_lag"])
    assert "branch_turnover_at_branch_rate" in str(exc.value)


def test_lineage_through_a_protected_column_is_refused() -> None:
    """A feature added by code with an innocent name but a protected source."""
    sneaky = Feature(
        "neighbourhood_mix",
        "person",
        "mix",
        "mix",
        ("persons.birth_year", "persons.herkomst"),
        "share",
        "somewhere",
    )
    catalogue = {**CATALOGUE, sneaky.name: sneaky}
    with pytest.raises(ProtectedAttributeError, match=r"neighbourhood_mix.*persons\.herkomst"):
        check_selection(["age", "neighbourhood_mix"], catalogue=catalogue)
    frame = pd.DataFrame({"person_id": [1], "neighbourhood_mix": [0.5]})
    with pytest.raises(ProtectedAttributeError, match=r"persons\.herkomst"):
        check_frame(frame, meta=["person_id"], catalogue=catalogue)


def test_reader_never_returns_protected_columns(world_dir: Path) -> None:
    reader = WorldReader(world_dir)
    assert "herkomst" not in reader.read("persons").columns
    with pytest.raises(ProtectedAttributeError, match=r"persons\.herkomst"):
        reader.read("persons", ["person_id", "herkomst"])


def test_stray_input_columns_are_refused(frames: b.WorldFrames, world_dir: Path) -> None:
    persons = frames["persons"].copy()
    persons["herkomst"] = origin_codes(world_dir).reindex(persons["person_id"]).to_numpy()
    with pytest.raises(ProtectedAttributeError, match="herkomst"):
        check_inputs({"persons": persons})
    persons = frames["persons"].assign(achtergrond=1)
    with pytest.raises(ProtectedAttributeError, match="undeclared column 'achtergrond'"):
        check_inputs({"persons": persons})
    check_inputs({"persons": frames["persons"]})


def test_undeclared_output_column_is_refused(frames: b.WorldFrames) -> None:
    frame = build_task_year(frames, "jonge_aanwas", 2020, ["age", "male"])
    with pytest.raises(ProtectedAttributeError, match="not declared"):
        check_frame(frame.assign(extra=1.0), meta=META["jonge_aanwas"])
    with pytest.raises(ProtectedAttributeError, match="protected"):
        check_frame(frame.assign(geboorteland=1.0), meta=META["jonge_aanwas"])


def test_theils_u_known_answers() -> None:
    rng = np.random.default_rng(0)
    z = rng.integers(0, 4, 5000)
    assert theils_u(z, z) == pytest.approx(1.0)
    assert theils_u(z, np.array([10.0, 3.0, 7.0, 1.0])[z]) == pytest.approx(1.0)  # relabelled
    assert theils_u(z, rng.normal(size=5000)) < 0.05
    assert theils_u(np.zeros(10, dtype=int), np.arange(10.0)) == 0.0


def test_relabelled_copy_is_refused_whatever_its_name(
    frames: b.WorldFrames, world_dir: Path
) -> None:
    access = ProtectedAccess(world_dir)
    assert "herkomst" not in repr(access)
    frame = build_task_year(frames, "jonge_aanwas", 2020, TASK_FEATURES["jonge_aanwas"])
    honest = access.copy_scores(frames, "jonge_aanwas", frame, list(TASK_FEATURES["jonge_aanwas"]))
    assert max(honest.values()) < COPY_THRESHOLD, honest
    check_copies(honest, threshold=COPY_THRESHOLD)
    origin = origin_codes(world_dir).reindex(frame["person_id"]).to_numpy()
    relabel = {k: float(i * 7 + 3) for i, k in enumerate(sorted(set(origin)))}
    frame["suspicions_other"] = np.array([relabel[o] for o in origin], dtype=np.float32)
    scores = access.copy_scores(frames, "jonge_aanwas", frame, ["suspicions_other", "age"])
    assert scores["suspicions_other"] > 0.99
    with pytest.raises(ProtectedAttributeError, match=r"suspicions_other.*herkomst"):
        check_copies(scores, threshold=COPY_THRESHOLD)


def test_area_level_copy_is_refused(frames: b.WorldFrames, world_dir: Path) -> None:
    access = ProtectedAccess(world_dir)
    frame = build_task_year(frames, "branch_turnover", 2020, TASK_FEATURES["branch_turnover"])
    honest = access.copy_scores(
        frames, "branch_turnover", frame, list(TASK_FEATURES["branch_turnover"])
    )
    check_copies(honest, threshold=AREA_COPY_THRESHOLD)
    # plant the areas' share of one origin group under an innocent name
    snap = b.Snapshot(frames, 2019)
    origin = origin_codes(world_dir)
    live = np.flatnonzero((snap.person_buurt >= 0) & ~snap.dead)
    buurt = frames.buurten["area_code"].to_numpy()[snap.person_buurt[live]]
    wijk = frames.buurten["wijk_code"].to_numpy()[snap.person_buurt[live]]
    gm = frames.buurten["gemeente_code"].to_numpy()[snap.person_buurt[live]]
    is_group = origin.reindex(live).to_numpy() == "Marokko"
    share = pd.concat([pd.Series(is_group).groupby(k).mean() for k in (buurt, wijk, gm)])
    frame["area_share_benefits"] = share.reindex(frame["area_code"]).to_numpy(np.float32) * 3 + 1
    scores = access.copy_scores(frames, "branch_turnover", frame, ["area_share_benefits"])
    with pytest.raises(ProtectedAttributeError, match="area_share_benefits"):
        check_copies(scores, threshold=AREA_COPY_THRESHOLD)


def test_copy_sneaked_in_by_a_builder_stops_the_write(
    world_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a builder that injects origin under a catalogue name writes nothing."""
    origin = origin_codes(world_dir)
    codes = {k: float(i) for i, k in enumerate(sorted(set(origin)))}
    real = b.person_features

    def poisoned(snap: b.Snapshot, persons: np.ndarray) -> dict[str, np.ndarray]:
        f = real(snap, persons)
        f["halt_count"] = np.array([codes[o] for o in origin.reindex(persons)], dtype=np.float32)
        return f

    monkeypatch.setattr(b, "person_features", poisoned)
    access = ProtectedAccess(world_dir)
    out = tmp_path / "features" / "jonge_aanwas.parquet"
    feats = list(TASK_FEATURES["jonge_aanwas"])
    with pytest.raises(ProtectedAttributeError, match="halt_count"):
        write_feature_table(
            world_dir,
            out,
            "jonge_aanwas",
            feats,
            audit=lambda w, fr: access.copy_scores(w, "jonge_aanwas", fr, feats),
            copy_threshold=COPY_THRESHOLD,
        )
    assert not out.exists()
    assert not list(out.parent.glob("*")), "a temporary file was left behind"


def _config(tmp_path: Path, task: str, features: list[str]) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"task": task, "features": features}))
    return path


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (["age", "herkomst"], "herkomst"),
        (["age", "country_of_birth"], "country_of_birth"),
        (["age", "shoe_size"], "shoe_size"),
    ],
)
def test_config_naming_a_protected_or_unknown_feature_exits_2(
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    features: list[str],
    expected: str,
) -> None:
    cfg = _config(tmp_path, "jonge_aanwas", features)
    code = main(["features", "jonge_aanwas", "--config", str(cfg), "--data-dir", str(tiny_data)])
    err = capsys.readouterr().err
    assert code == 2 and expected in err
    assert not (tiny_data / "features" / "jonge_aanwas.parquet").exists()


def test_bad_configs_exit_2(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, "hennep", ["vacant"])
    assert (
        main(["features", "jonge_aanwas", "--config", str(cfg), "--data-dir", str(tiny_data)]) == 2
    )
    assert "task is 'hennep'" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("task: hennep\nfeatures: [vacant]\nmodel: lightgbm\n")
    assert (
        main(
            [
                "features",
                "hennep",
                "--config",
                str(tmp_path / "bad.yaml"),
                "--data-dir",
                str(tiny_data),
            ]
        )
        == 2
    )
    assert "model" in capsys.readouterr().err
    assert main(["features", "hennep", "--data-dir", str(tmp_path / "empty")]) == 2
    assert "zicht generate" in capsys.readouterr().err
