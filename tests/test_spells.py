"""Spell and event recorders: known answers and invariants."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from microdata.spells import OPEN_END, EventRecorder, MemorySink, SpellRecorder


def test_known_spells() -> None:
    sink = MemorySink()
    rec = SpellRecorder(
        sink, "t", id_column="unit", values={"v": np.array([1, 1, 1])}, start_year=2016
    )
    rec.update(np.array([0, 1]), {"v": np.array([2, 1])}, 2018)  # unit 1 unchanged: no new spell
    rec.end(np.array([2]), 2019)
    rec.grow({"v": np.array([5])}, 2020)
    rec.finish()
    df = sink.to_pandas("t").sort_values(["unit", "valid_from"]).reset_index(drop=True)
    assert df.to_dict("list") == {
        "unit": [0, 0, 1, 2, 3],
        "v": [1, 2, 1, 1, 5],
        "valid_from": [2016, 2018, 2016, 2016, 2020],
        "valid_to": [2017, OPEN_END, OPEN_END, 2019, OPEN_END],
    }


def test_inactive_spells_are_not_written() -> None:
    sink = MemorySink()
    rec = SpellRecorder(
        sink,
        "d",
        id_column="hh",
        values={"on": np.array([False, True])},
        start_year=2016,
        active=lambda v: v["on"],
        drop=("on",),
    )
    rec.update(np.array([0, 1]), {"on": np.array([True, False])}, 2017)
    rec.finish()
    df = sink.to_pandas("d")
    assert sorted(df.itertuples(index=False, name=None)) == [(0, 2017, OPEN_END), (1, 2016, 2016)]
    assert "on" not in df.columns


def test_events_carry_their_year() -> None:
    sink = MemorySink()
    ev = EventRecorder(sink, "e")
    ev.record(2019, person_id=np.array([3, 1], dtype=np.int32))
    ev.record(2020, person_id=np.array([], dtype=np.int32))
    assert sink.table("e").equals(
        pa.table(
            {"person_id": pa.array([1, 3], pa.int32()), "year": pa.array([2019, 2019], pa.int16())}
        )
    )


@given(st.lists(st.lists(st.integers(0, 3), min_size=4, max_size=4), min_size=1, max_size=8))
def test_spells_reconstruct_every_year(history: list[list[int]]) -> None:
    """Whatever the sequence of yearly values, the spells give back each year's value,
    spells of a unit never overlap, and valid_from <= valid_to."""
    values = np.array(history)  # years x units
    sink = MemorySink()
    rec = SpellRecorder(
        sink, "s", id_column="u", values={"v": values[0]}, start_year=2000, flush_rows=3
    )
    units = np.arange(values.shape[1])
    for i, row in enumerate(values[1:], start=1):
        rec.update(units, {"v": row}, 2000 + i)
    rec.finish()
    df = sink.to_pandas("s")
    last = 2000 + len(values) - 1
    assert (df["valid_from"] <= df["valid_to"]).all()
    for u in units:
        spells = df[df["u"] == u].sort_values("valid_from")
        ends = spells["valid_to"].clip(upper=last).to_numpy()
        starts = spells["valid_from"].to_numpy()
        assert (starts[1:] == ends[:-1] + 1).all()
        for i in range(len(values)):
            y = 2000 + i
            hit = spells[(spells["valid_from"] <= y) & (spells["valid_to"] >= y)]
            assert hit["v"].tolist() == [values[i, u]]
