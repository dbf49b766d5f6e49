"""The SDC benchmark's own side on a small table (the anchors are not installed in tests)."""

from __future__ import annotations

import pandas as pd

from disclosure.audit import link
from disclosure.bench import cell_table, run_sdc_bench, synthetic_units


def test_cell_table_rolls_up_and_knows_its_top_contributors():
    units = synthetic_units(20_000, n_gemeenten=4, random_state=3)
    cells, relations = cell_table(units)
    link(cells, relations)  # raises if any relation does not add up
    nl = cells.set_index("cell_id").loc["nederland|NL|total"]
    top = units["value"].nlargest(2).to_list()
    assert (nl["n"], nl["top1"], nl["top2"]) == (len(units), top[0], top[1])
    assert set(cells["breakdown"]) == {"A", "B", "C", "D", "E", "total"}


def test_bench_without_anchors_reports_a_clean_audit(tmp_path):
    table = run_sdc_bench(n_units=20_000, n_gemeenten=4, random_state=3, out_dir=tmp_path)
    got = table.set_index("metric")["ours"]
    assert got["cells under protection (own audit)"] == 0
    assert got["  cells under protection (own audit)"] == 0  # with tau-ARGUS's rules
    assert got["primary unsafe cells"] > 0 and got["secondary suppressions, our rules"] > 0
    # the witness method never hides more than the greedy one it replaced
    assert (
        got["secondary suppressions, our rules"]
        <= got["  the same by the greedy method (before #17)"]
    )
    assert pd.read_csv(tmp_path / "sdc.csv")["metric"].tolist() == table["metric"].tolist()
    assert (tmp_path / "sdc.md").read_text().startswith("| metric |")


def test_zicht_bench_sdc_without_anchors(tmp_path):
    from click.testing import CliRunner

    from experiments.cli import cli

    out = tmp_path / "res"
    args = ["bench", "sdc", "--units", "20000", "--gemeenten", "4", "--seed", "3"]
    result = CliRunner().invoke(cli, [*args, "--no-anchors", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "secondary suppressions" in result.output
    table = pd.read_csv(out / "sdc.csv").set_index("metric")
    assert table.loc["cells under protection (own audit)", "ours"] == 0
    assert table["theirs"].isna().all()
