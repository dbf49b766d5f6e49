"""The public zone of a real tiny ``zicht run`` against an intruder with only public files.

Issue 14's five cases on the release itself: the ledger and the tables agree and say nothing
per cell beyond ``suppressed``; no cell under the threshold is pinned (zero-valued ones
included); a second version made by another model, published next to the first, does not
undo it (the intruder reads both); ``n`` is not the sensitive population; and drivers of
another run are refused. The intruder (:mod:`disclosure.attack`) shares no code with the
audit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from disclosure.attack import attack, read_versions
from experiments.publish import PublishInputError, publish_tasks
from experiments.train import world_identity

LEVELS = ("buurt", "wijk", "gemeente", "riec", "nederland")
OTHER = "c" * 32


def _tables(version: Path, task: str) -> dict[str, pd.DataFrame]:
    return {
        lv: pd.read_csv(version / task / f"{lv}.csv", keep_default_na=False, dtype=str)
        for lv in LEVELS
        if (version / task / f"{lv}.csv").is_file()
    }


def _breakdown(table: pd.DataFrame) -> pd.Series:
    for col in ("age_group", "branch"):
        if col in table.columns:
            return table[col]
    return pd.Series("total", index=table.index)


def test_the_ledger_says_what_the_tables_contain(tiny_run) -> None:
    """Every ledger row has its status in a table, and every basis a table shows (a governed
    measure, a named driver, a national share) has its ledger row, for every task and
    level; nothing else is listed (issue 24: `not_released` counts were published)."""
    version = tiny_run.publish.resolve()
    for task in ("hennep", "jonge_aanwas", "branch_turnover"):
        ledger = pd.read_csv(version / task / "ledger.csv", keep_default_na=False, dtype=str)
        assert set(ledger["reason"]) <= {"", "suppressed"}
        assert ((ledger["status"] == "published") == (ledger["reason"] == "")).all()
        listed = {
            tuple(r): s
            for *r, s in ledger[["level", "area_code", "breakdown", "basis", "status"]].itertuples(
                index=False
            )
        }
        shown: dict[tuple[str, str, str, str], str] = {}
        for level, table in _tables(version, task).items():
            brk = _breakdown(table)
            if task == "branch_turnover":
                for code, b, st in zip(table["area_code"], brk, table["status"], strict=True):
                    shown[(level, code, b, "turnover_sum")] = st
                continue
            for basis in ("risk_sum", "elevated_count"):
                for code, b, st in zip(
                    table["area_code"], brk, table[f"status_{basis}"], strict=True
                ):
                    shown[(level, code, b, basis)] = st
            # a published status has its measure, a suppressed one has none
            pub = table["status_risk_sum"] == "published"
            assert (table.loc[pub, "risk_mean"] != "").all()
            assert (table.loc[~pub, ["risk_mean", "index"]] == "").all().all()
            for k in range(1, 4):
                col = f"driver_{k}"
                if col not in table.columns:
                    continue
                named = table[col] != ""
                assert not (named & ~pub).any(), "a driver named where the risk is suppressed"
                for code, b, name, st, prev, nl in zip(
                    table["area_code"][named],
                    brk[named],
                    table[col][named],
                    table[f"status_{col}"][named],
                    table[f"driver_prevalence_{k}"][named],
                    table[f"driver_prevalence_nl_{k}"][named],
                    strict=True,
                ):
                    shown[(level, code, b, f"driver_count:{name}")] = st
                    assert (prev != "") == (st == "published")
                    if nl != "":
                        shown[("nederland", "NL", "total", f"driver_count:{name}")] = "published"
                # a slot without a name says only "suppressed" (risk hidden) or nothing
                assert set(table.loc[~named, f"status_{col}"]) <= {"", "suppressed"}
                assert (table.loc[~pub, f"status_{col}"] == "suppressed").all()
        assert listed == shown, task


def test_small_cells_state_nothing_about_their_units(tiny_run) -> None:
    version = tiny_run.publish.resolve()
    for task in ("hennep", "jonge_aanwas"):
        for level, table in _tables(version, task).items():
            small = table[table["n"].astype(int) < 10]
            governed = [
                c
                for c in table.columns
                if c.startswith(("risk_mean", "elevated_share", "index", "driver", "top_drivers"))
                and not c.startswith("driver_prevalence_nl")
            ]
            assert (small[governed] == "").all().all(), (task, level)
            reasons = [c for c in table.columns if c.startswith("reason")]
            assert set(np.unique(small[reasons].to_numpy())) <= {"suppressed"}, (task, level)


def test_the_tiny_release_resists_the_intruder(tiny_run) -> None:
    versions = read_versions(tiny_run.publish)
    assert len(versions) >= 1
    got = attack(versions)
    assert len(got) > 100  # it attacked something
    found = got[got["finding"]]
    assert found.empty, found.head(10).to_string()


def _another_model(data: Path) -> None:
    """jonge_aanwas predictions and drivers as another model (run OTHER) would make them:
    other probabilities, and the second and third drivers swapped for other features."""
    preds = pd.read_parquet(data / "predictions" / "jonge_aanwas.parquet")
    rng = np.random.default_rng(5)
    preds["probability"] = np.clip(
        preds["probability"] * rng.uniform(0.5, 1.5, len(preds)), 0, 1
    ).astype(preds["probability"].dtype)
    preds["score"] = preds["probability"]
    preds["run_id"] = OTHER
    preds.to_parquet(data / "predictions" / "jonge_aanwas.parquet")
    prof = pd.read_parquet(data / "explain" / "jonge_aanwas_profiles.parquet")
    feats = sorted(c.removeprefix("count__") for c in prof.columns if c.startswith("count__"))
    for k in (2, 3):
        has = prof[f"driver_{k}"].astype(str) != ""
        pick = np.array(feats, dtype=object)[rng.integers(0, len(feats), len(prof))]
        taken = prof[[f"driver_{j}" for j in (1, 2, 3) if j != k]].astype(str).to_numpy()
        pick = np.where((taken == pick[:, None]).any(axis=1), prof[f"driver_{k}"], pick)
        prof[f"driver_{k}"] = np.where(has, pick, prof[f"driver_{k}"])
        counts = np.array(
            [prof.at[i, f"count__{f}"] if f else np.nan for i, f in enumerate(prof[f"driver_{k}"])]
        )
        prof[f"driver_count_{k}"] = np.where(has, counts, np.nan)
        nl = prof[(prof["level"] == "nederland") & (prof["age_group"] == "total")].iloc[0]
        national = {f: nl[f"count__{f}"] / nl["n"] for f in feats}
        prof[f"driver_national_{k}"] = [
            national.get(f, np.nan) if f else np.nan for f in prof[f"driver_{k}"]
        ]
    prof["run_id"] = OTHER
    prof.to_parquet(data / "explain" / "jonge_aanwas_profiles.parquet")


def test_a_second_model_published_next_to_the_first(tiny_run, tmp_path: Path) -> None:
    """Case 3 and 5 of issue 14 on the real release: explaining another run than the one that
    predicted is refused; a second version by another model is audited with the first, and
    the intruder reading both versions recovers nothing."""
    zones = tmp_path / "zones"
    shutil.copytree(tiny_run.root, zones, symlinks=True, ignore=shutil.ignore_patterns("mlruns"))
    data, publish = zones / "data", zones / "publish"
    fp = world_identity(data / "world")[0]
    first = publish.resolve()
    champion = json.loads((first / "manifest.json").read_text())["runs"]["jonge_aanwas"]
    # profiles of another run than the predictions: refused, nothing published
    prof = pd.read_parquet(data / "explain" / "jonge_aanwas_profiles.parquet")
    prof.assign(run_id=OTHER).to_parquet(data / "explain" / "jonge_aanwas_profiles.parquet")
    with pytest.raises(PublishInputError, match="one run"):
        publish_tasks(
            ["jonge_aanwas"],
            data_dir=data,
            publish_dir=publish,
            tracking_uri="unused",
            run_fingerprint=lambda r: fp,
            champion=lambda t: champion,
        )
    assert publish.resolve() == first
    prof.to_parquet(data / "explain" / "jonge_aanwas_profiles.parquet")
    # another model becomes champion and is published next to the first version
    _another_model(data)
    second = publish_tasks(
        ["jonge_aanwas"],
        data_dir=data,
        publish_dir=publish,
        tracking_uri="unused",
        run_fingerprint=lambda r: fp,
        champion=lambda t: OTHER,
    )
    assert second != first and first.is_dir()
    versions = read_versions(publish)
    assert len(versions) == 2
    got = attack(versions)
    assert set(got["version"]) == {first.name, second.name}
    found = got[got["finding"]]
    assert found.empty, found.head(10).to_string()
    # every cell the first version suppressed with the same value stays suppressed
    states = data / "disclosure" / "releases"
    a = pd.read_parquet(states / first.name / "jonge_aanwas.parquet").set_index("cell_id")
    b = pd.read_parquet(states / second.name / "jonge_aanwas.parquet").set_index("cell_id")
    both = a.index.intersection(b.index)
    same = both[np.isclose(a.loc[both, "value"], b.loc[both, "value"])]
    was_hidden = same[a.loc[same, "status"] != "published"]
    assert (b.loc[was_hidden, "status"] != "published").all()
