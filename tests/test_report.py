"""``zicht report``: a self-contained reviewer page per task, in a real browser too.

The tiny world is trained quickly (2 folds) into a temporary MLflow store, predicted and
reported; the page must show its sections, load nothing from elsewhere, embed no unit-level
table, and render in headless Chromium (the screenshot is kept as a test artifact).
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from experiments.cli import main
from reports.report import (
    SECTIONS,
    ReviewZoneError,
    attest,
    check_self_contained,
    review_table,
)

TASK = "jonge_aanwas"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _zicht(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def reported(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Features, a 2-fold training run, predictions and the report of jonge_aanwas."""
    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    shutil.copytree(tiny_data / "world", data / "world")
    shutil.copytree(tiny_data / "truth", data / "truth")  # the oracle metrics need it
    store = f"sqlite:///{root / 'mlflow.db'}"
    common = ["--data-dir", str(data), "--tracking-uri", store]
    review = root / "review"
    for args in (
        ["features", TASK],
        ["train", TASK, "--folds", "2"],
        ["predict", TASK],
        ["report", TASK, "--review-dir", str(review), "--publish-dir", str(root / "publish")],
    ):
        code = main([*args, *common])
        assert code == 0, f"zicht {' '.join(args)} exited {code}"
    return {"review": review, "store": store, "root": root}


def test_page_has_every_section_and_the_facts(reported: dict[str, object]) -> None:
    review = Path(str(reported["review"]))
    page = review / TASK / "index.html"
    html = page.read_text()
    for sid, name in SECTIONS:
        assert f'id="{sid}"' in html and name in html
    # generated from the guard's lineage, not a hand-written sentence
    assert "none of the 36 features of this run is built from a protected column" in html
    assert "persons.herkomst" in html
    # the proxy audit ran on the champion's predictions; the default world passes it, and
    # says against which reference points its proxy AUC stands
    assert "Passed for " in html and "proxy AUC" in html and "area features only" in html
    assert "origin group(s)" not in html  # no origin group is flagged
    # what needs attention comes first; metrics are grouped, labelled and defined
    assert html.index('id="attention"') < html.index('id="data"')
    for group in ("Discrimination", "Calibration", "Operational", "Against the oracle"):
        assert f"<h3>{group}</h3>" in html
    assert "<td>ROC AUC</td>" in html and "roc_auc" not in re.sub(r"<code>.*?</code>", "", html)
    for defined in ("PAI, top 10% of area", "Oracle ratio", "ECE"):
        assert f"<dt>{defined}</dt>" in html
    assert "@media print" in html
    # training set a champion, and a new champion is explained at once: its SHAP is shown
    assert "Not yet explained" not in html and "<th>mean |SHAP|</th>" in html
    assert "Not yet published: run `zicht publish jonge_aanwas`" in html
    # calibration and capture (redrawn), SHAP importance and summary
    assert html.count("data:image/png;base64,") >= 4
    index = (review / "index.html").read_text()
    assert f'href="{TASK}/index.html"' in index and "passed" in index
    assert index.index("What needs attention") < index.index("<h2>Reports</h2>")


def test_page_is_self_contained_and_aggregate(reported: dict[str, object]) -> None:
    html = (Path(str(reported["review"])) / TASK / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "<script" not in html
    headers = re.findall(r"<th>(.*?)</th>", html)
    assert headers, "no embedded tables"
    assert not [h for h in headers if h.endswith("_id") or h in ("person", "dwelling", "rin")]
    # every count shown in a table rests on at least 10 units
    tables = re.findall(r"<table[^>]*class=\"dataframe tbl\".*?</table>", html, re.S)
    for t in tables:
        cols = re.findall(r"<th>(.*?)</th>", t)
        if "units" in cols:
            k = cols.index("units")
            for row in re.findall(r"<tr>\s*(<td>.*?)</tr>", t, re.S):
                cell = re.findall(r"<td>(.*?)</td>", row)[k]
                assert cell == "–" or int(cell.replace(",", "")) >= 10  # 4,764


def test_report_is_logged_to_the_champion(reported: dict[str, object]) -> None:
    import mlflow

    mlflow.set_tracking_uri(str(reported["store"]))
    client = MlflowClient()
    version = client.get_model_version_by_alias(f"zicht-{TASK}", "champion")
    paths = [a.path for a in client.list_artifacts(str(version.run_id), "report")]
    assert "report/index.html" in paths


def test_missing_champion_exits_2_with_the_fix(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'empty.db'}"
    code, _, err = _zicht(
        capsys, "report", "hennep", "--data-dir", str(tiny_data), "--tracking-uri", store
    )
    assert code == 2 and "`zicht train hennep`" in err and "no MLflow store" in err


def test_review_tables_refuse_ids_and_small_counts() -> None:
    review_table(pd.DataFrame({"group": ["a"], "units": [12]}))
    with pytest.raises(ReviewZoneError, match="unit ids"):
        review_table(pd.DataFrame({"person_id": [1], "units": [12]}))
    with pytest.raises(ReviewZoneError, match="under 10"):
        review_table(pd.DataFrame({"group": ["a"], "units": [3]}))
    with pytest.raises(ReviewZoneError, match="external"):
        check_self_contained('<img src="https://example.org/x.png">')
    check_self_contained('<img src="data:image/png;base64,AAAA">')


def test_attestation_comes_from_the_lineage() -> None:
    a = attest(["age", "male"])
    assert a.clean and "persons.herkomst" in a.protected
    assert dict(a.checked)["age"]  # each feature carries its source columns


def test_page_renders_in_headless_chromium(reported: dict[str, object], tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail(
            "chromium is not installed: `apt-get install -y chromium` (Debian); CI installs "
            "it in .ci/run"
        )
    page = (Path(str(reported["review"])) / TASK / "index.html").resolve()
    out_dir = Path(os.environ.get("ZICHT_TEST_ARTIFACTS", str(reported["root"])))
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = out_dir / f"report_{TASK}.png"
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for _, name in SECTIONS:
        assert f">{name}</h2>" in dom
    assert "Passed for " in dom
    # no horizontal overflow at 1280 px: the page, and every table in it, fits
    probe = _overflow(browser, flags, page, tmp_path)
    assert probe["scrollWidth"] <= probe["viewport"] and not probe["wide"], probe
    # the probe sees overflow where there is some (a planted 3,000 px element)
    wide = tmp_path / "wide.html"
    wide.write_text(page.read_text().replace("</main>", '<div style="width:3000px">x</div></main>'))
    planted = _overflow(browser, flags, wide, tmp_path)
    assert planted["scrollWidth"] > planted["viewport"] and planted["wide"]


#: measures overflow after the page has loaded (added to a copy: the report has no script)
PROBE = """<script>
window.addEventListener('load', () => {
  const vw = document.documentElement.clientWidth, wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const right = el.getBoundingClientRect().right;
    const scrolls = el.scrollWidth > el.clientWidth + 1
      && getComputedStyle(el).overflowX !== 'visible';
    if (right > vw + 1 || scrolls) wide.push(el.tagName + ':' + Math.round(right));
  }
  const out = document.createElement('pre');
  out.id = 'overflow-probe';
  out.textContent = JSON.stringify({viewport: vw,
    scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 20)});
  document.body.appendChild(out);
});
</script>"""


def _overflow(browser: str, flags: list[str], page: Path, tmp_path: Path) -> dict[str, Any]:
    """Load a copy of *page* with :data:`PROBE` at 1280 px; what overflows the viewport."""
    copy = tmp_path / f"probe_{page.name}"
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [
            browser,
            *flags,
            "--window-size=1280,2000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            copy.as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r'<pre id="overflow-probe">(.*?)</pre>', dom, re.S)
    assert found, "the overflow probe did not run"
    return dict(json.loads(html_lib.unescape(found.group(1))))
