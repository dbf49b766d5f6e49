"""The public dashboard: built from the published files only, checked, and used in Chromium.

A small hand-built version with known answers (two gemeenten of two wijken of two square
buurten; one task in the planned format, with a ``year`` column over three years and one
GeoJSON feature per area, and one in today's format, without a year) drives the unit tests
and the browser tests; the session's tiny ``zicht run`` (``tiny_run``) drives the end-to-end
one. The browser is Debian's Chromium, driven by Playwright; every request the page makes
is recorded and must stay on this machine (``file://`` or 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from shapely.geometry import box

from experiments import dashboard as serve
from reports import dashboard as dash
from reports.scan import ScanContext, scan_publish_dashboard, scan_tree
from reports.vendored import VEGA

YEARS = (2022, 2023, 2024)
AGES = ("8-12", "13-19", "20-23", "total")
GEMEENTEN = {"GM0001": "Alpha", "GM0002": "Beta"}
WIJKEN = {  # code: (name, gemeente)
    "WK000100": ("Alpha Noord", "GM0001"),
    "WK000101": ("Alpha Zuid", "GM0001"),
    "WK000200": ("Beta Oost", "GM0002"),
    "WK000201": ("Beta West", "GM0002"),
}
SMALL = "BU00020101"  # n = 4 in every year and age group: always suppressed
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


# --------------------------------------------------------------------------- a known version


def _buurten() -> pd.DataFrame:
    rows = []
    for i, (wk, (name, _gm)) in enumerate(WIJKEN.items()):
        for b in range(2):
            code = f"BU{wk[2:]}{b:02d}"
            rows.append(
                {
                    "area_code": code,
                    "area_name": f"{name} {b + 1}",
                    "parent_code": wk,
                    "n": 4 if code == SMALL else 40 + 10 * (2 * i + b),
                    # unit squares side by side, 0.01 degree apart, near Utrecht
                    "geometry": box(
                        5.0 + 0.01 * (2 * i + b), 52.0, 5.01 + 0.01 * (2 * i + b), 52.01
                    ),
                }
            )
    return pd.DataFrame(rows)


def index_of(code: str, year: int, age: str) -> float:
    """The planted index: rises by 10 a year, differs by area and age group."""
    return round(60 + 3 * _digits(code) + 10 * (year - 2022) + AGES.index(age), 1)


def _digits(code: str) -> int:
    """The last two digits of an area code (0 for NL)."""
    return int("0" + "".join(ch for ch in code if ch.isdigit())) % 100


def _levels() -> dict[str, pd.DataFrame]:
    bu = _buurten()
    wk = pd.DataFrame(
        [
            {
                "area_code": c,
                "area_name": n,
                "parent_code": g,
                "n": int(bu.loc[bu["parent_code"] == c, "n"].sum()),
            }
            for c, (n, g) in WIJKEN.items()
        ]
    )
    gm = pd.DataFrame(
        [
            {
                "area_code": c,
                "area_name": n,
                "parent_code": "RIEC01",
                "n": int(wk.loc[wk["parent_code"] == c, "n"].sum()),
            }
            for c, n in GEMEENTEN.items()
        ]
    )
    nl = pd.DataFrame(
        [{"area_code": "NL", "area_name": "Nederland", "parent_code": "", "n": int(gm["n"].sum())}]
    )
    return {"buurt": bu.drop(columns="geometry"), "wijk": wk, "gemeente": gm, "nederland": nl}


def _planned_table(level: str, base: pd.DataFrame) -> pd.DataFrame:
    """jonge_aanwas in the planned format: a year column, one row per area, year and age."""
    rows = []
    for year in YEARS:
        for age in AGES:
            for r in base.itertuples(index=False):
                ok = r.n >= 10
                nl = level == "nederland"
                rows.append(
                    {
                        "area_code": r.area_code,
                        "area_name": r.area_name,
                        "level": level,
                        "parent_code": r.parent_code,
                        "year": year,
                        "age_group": age,
                        "n": r.n,
                        "risk_mean": round(0.01 * index_of(r.area_code, year, age) / 100, 5)
                        if ok
                        else None,
                        "index": (100.0 if nl else index_of(r.area_code, year, age))
                        if ok
                        else None,
                        "driver_1": "male" if ok and level == "gemeente" else None,
                        "driver_prevalence_1": 0.55 if ok and level == "gemeente" else None,
                        "driver_prevalence_nl_1": 0.5 if ok and level == "gemeente" else None,
                        "status_risk_sum": "published" if ok else "suppressed",
                        "reason_risk_sum": "" if ok else "suppressed",
                        "status_driver_1": "published"
                        if ok and level == "gemeente"
                        else "suppressed",
                        "reason_driver_1": "" if ok and level == "gemeente" else "suppressed",
                    }
                )
    return pd.DataFrame(rows)


def _today_table(level: str, base: pd.DataFrame) -> pd.DataFrame:
    """hennep as published today: no year column, no breakdown."""
    t = base.copy()
    ok = t["n"] >= 10
    t.insert(2, "level", level)
    t["index"] = [100.0 if level == "nederland" else 150.0 - _digits(c) for c in t["area_code"]]
    t["index"] = t["index"].where(ok)
    t["status_risk_sum"] = ["published" if k else "suppressed" for k in ok]
    t["reason_risk_sum"] = ["" if k else "suppressed" for k in ok]
    return t


SCHEMA_MEASURES = {
    "n": {"description": "units", "kind": "count", "status": "always published"},
    "index": {"description": "NL = 100", "kind": "derived", "precision": 1},
    "risk_mean": {"description": "mean", "kind": "mean", "precision": 5},
    "driver_1": {"description": "driver 1", "kind": "derived"},
    "driver_prevalence_1": {"description": "share", "kind": "share", "precision": 3},
    "driver_prevalence_nl_1": {"description": "NL share", "kind": "share", "precision": 3},
}


def write_version(root: Path) -> Path:
    """A published version (as the gate lays it out) with the two tasks; returns its path."""
    version = root / "20260101T000000Z-0000beef"
    levels = _levels()
    geo = gpd.GeoDataFrame(_buurten(), geometry="geometry", crs=4326)
    for task, make in (("jonge_aanwas", _planned_table), ("hennep", _today_table)):
        d = version / task
        d.mkdir(parents=True)
        measures = {
            m: {**spec, "status": spec.get("status", "status_risk_sum")}
            for m, spec in SCHEMA_MEASURES.items()
            if task == "jonge_aanwas" or m in ("n", "index")
        }
        for m in ("driver_1", "driver_prevalence_1", "driver_prevalence_nl_1"):
            if m in measures:
                measures[m]["status"] = "status_driver_1"
        (d / "schema.json").write_text(
            json.dumps({"task": task, "levels": list(levels), "measures": measures})
        )
        for level, base in levels.items():
            table = make(level, base)
            table.to_parquet(d / f"{level}.parquet", index=False)
            table.to_csv(d / f"{level}.csv", index=False)
        if task == "jonge_aanwas":  # planned: one feature per area, the breakdown as columns
            wide = geo[["area_code", "area_name", "geometry"]].copy()
            for age in AGES:
                wide[f"index_{age}"] = 100.0
        else:  # today: one feature per table row
            wide = geo.merge(_today_table("buurt", levels["buurt"])[["area_code", "index"]])
        wide.to_file(d / "areas.geojson", driver="GeoJSON")
    (version / "manifest.json").write_text(json.dumps({"tasks": {"hennep": {"year": 2024}}}))
    return version


INFO = dash.SiteInfo(
    version="20260101T000000Z-0000beef",
    created_at="2026-01-01T00:00:00+00:00",
    source="Bron: Zicht, synthetische data",
    years={"hennep": 2024},
)


def build_into(version: Path) -> dict[str, bytes]:
    """The gate's step, for a hand-built version: build the site and write it in."""
    files = dash.build_dashboard(version, info=INFO)
    for rel, data in files.items():
        (version / rel).parent.mkdir(exist_ok=True)
        (version / rel).write_bytes(data)
    return files


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Path:
    version = write_version(tmp_path_factory.mktemp("known"))
    build_into(version)
    return version


def test_upper_levels_are_the_union_of_their_buurten(known: Path) -> None:
    tasks = dash.read_version(known, years={"hennep": 2024})
    geo = dash.level_geometry(tasks)
    assert set(geo) == {"gemeente", "wijk", "buurt"}
    gm = geo["gemeente"]
    areas = dict(zip(gm["area_code"], shapely.area(gm.geometry.to_numpy()), strict=True))
    # four squares of 0.01 degree each, one polygon without holes
    assert areas == pytest.approx({"GM0001": 4e-4, "GM0002": 4e-4}, rel=1e-6)
    assert set(shapely.get_type_id(gm.geometry.to_numpy())) == {3}  # Polygon
    wijk = geo["wijk"].set_index("area_code")
    assert wijk.loc["WK000101", "area_name"] == "Alpha Zuid"
    assert wijk.loc["WK000101", "parent_code"] == "GM0001"
    assert shapely.area(wijk.geometry.to_numpy()) == pytest.approx([2e-4] * 4, rel=1e-6)


def test_document_reads_both_table_formats(known: Path) -> None:
    doc = dash.dashboard_document(dash.read_version(known, years={"hennep": 2024}), info=INFO)
    tasks = {t["task"]: t for t in doc["tasks"]}
    assert [t["task"] for t in doc["tasks"]] == ["hennep", "jonge_aanwas"]
    assert tasks["jonge_aanwas"]["years"] == list(YEARS)  # from the year column
    assert tasks["hennep"]["years"] == [2024]  # no year column: the manifest's year
    assert tasks["jonge_aanwas"]["breakdown"] == "age_group"
    assert [b["value"] for b in tasks["jonge_aanwas"]["breakdowns"]] == list(AGES)
    assert tasks["hennep"]["breakdown"] is None
    for t in tasks.values():  # one scale, centred on 100, for every level and year
        assert t["domain"] == [25.0, 100.0, 400.0] and t["levels"] == ["gemeente", "wijk", "buurt"]
    assert tasks["jonge_aanwas"]["drivers"]["male"] == {"nl": "man", "en": "male"}
    # one polygon per area, however many rows or features the GeoJSON had
    assert len(doc["geo"]["buurt"]["features"]) == 8
    emb = doc["tables"]["jonge_aanwas/buurt"]
    assert "reason_risk_sum" not in emb["columns"] and "level" not in emb["columns"]
    assert len(emb["data"]) == 8 * len(YEARS) * len(AGES)


def test_the_page_needs_no_other_host(known: Path) -> None:
    page = (known / "dashboard" / "index.html").read_text()
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", page)
    assert "default-src 'none'" in page and "connect-src 'none'" in page
    assert '<script src="vega.min.js">' in page
    site = known / "dashboard"
    assert sorted(p.name for p in site.iterdir()) == sorted(["index.html", VEGA.file, VEGA.licence])
    assert hashlib.sha256((site / VEGA.file).read_bytes()).hexdigest() == VEGA.sha256


def test_a_clean_site_passes_its_checks(known: Path) -> None:
    assert dash.check_dashboard(known, years={"hennep": 2024}) == []
    scan = scan_tree(known / "dashboard", zone="publish", ctx=ScanContext(), prefix="dashboard/")
    assert scan.findings == [] and scan.scanned["publish"] == 3
    assert scan_publish_dashboard(known) == []


def _rewrite(page: Path, change: Any) -> None:
    text = page.read_text()
    doc = dash.embedded_document(text)
    change(doc)
    body = re.sub(
        r'(<script type="application/json" id="zicht-data">).*?(</script>)',
        lambda m: m.group(1) + dash._script_json(doc) + m.group(2),
        text,
        flags=re.S,
    )
    page.write_text(body)


def _column(doc: dict[str, Any], key: str, col: str) -> int:
    return list(doc["tables"][key]["columns"]).index(col)


@pytest.mark.parametrize(
    ("plant", "found"),
    [
        (  # a suppressed value put back
            lambda doc: doc["tables"]["jonge_aanwas/buurt"]["data"][-1].__setitem__(
                _column(doc, "jonge_aanwas/buurt", "index"), 77.7
            ),
            "values differ",
        ),
        (  # a column the tables do not have
            lambda doc: (
                doc["tables"]["hennep/wijk"]["columns"].append("true_count"),
                [r.append(3) for r in doc["tables"]["hennep/wijk"]["data"]],
            ),
            "does not have",
        ),
        (  # a row fewer
            lambda doc: doc["tables"]["hennep/buurt"]["data"].pop(),
            "rows, the published table",
        ),
        (  # a table that is not published
            lambda doc: doc["tables"].__setitem__("hennep/riec", {"columns": [], "data": []}),
            "is not published",
        ),
    ],
)
def test_anything_the_tables_do_not_carry_is_refused(
    known: Path, tmp_path: Path, plant: Any, found: str
) -> None:
    copy = tmp_path / known.name
    shutil.copytree(known, copy)
    _rewrite(copy / "dashboard" / "index.html", plant)
    problems = dash.check_dashboard(copy, years={"hennep": 2024})
    assert any(found in p for p in problems), problems
    audit = scan_publish_dashboard(copy)
    assert audit and {f.check for f in audit} == {"dashboard_content"}


def test_other_hosts_strays_and_changed_libraries_are_refused(known: Path, tmp_path: Path) -> None:
    copy = tmp_path / known.name
    shutil.copytree(known, copy)
    page = copy / "dashboard" / "index.html"
    page.write_text(page.read_text().replace("</body>", '<img src="//tiles.example.org/1.png">'))
    (copy / "dashboard" / "extra.js").write_text("fetch('/x')")
    lib = copy / "dashboard" / VEGA.file
    lib.write_bytes(lib.read_bytes().replace(b"6.4.0", b"6.4.1", 1))
    problems = "\n".join(dash.check_dashboard(copy, years={"hennep": 2024}))
    assert "names another host" in problems
    assert "extra.js: not part of the dashboard" in problems
    assert f"{VEGA.file}: SHA-256 differs" in problems
    # the scan reads a changed library as what it is (minified code sniffs as a table)
    scan = scan_tree(copy / "dashboard", zone="publish", ctx=ScanContext(), prefix="dashboard/")
    assert {f.path for f in scan.findings} >= {"dashboard/index.html", f"dashboard/{VEGA.file}"}


def test_small_counts_in_the_embedded_data_are_found(known: Path, tmp_path: Path) -> None:
    copy = tmp_path / known.name
    shutil.copytree(known, copy)

    def plant(doc: dict[str, Any]) -> None:
        t = doc["tables"]["hennep/buurt"]
        n, idx = _column(doc, "hennep/buurt", "n"), _column(doc, "hennep/buurt", "index")
        row = next(r for r in t["data"] if r[n] < 10)
        row[idx] = 88.0

    _rewrite(copy / "dashboard" / "index.html", plant)
    scan = scan_tree(copy / "dashboard", zone="publish", ctx=ScanContext(), prefix="dashboard/")
    assert [f.check for f in scan.findings] == ["small_count"]
    assert "script 1 $.tables.hennep/buurt" in scan.findings[0].detail
    assert "88" not in scan.findings[0].detail  # names and counts, never a value


def test_a_changed_vendored_file_is_refused_when_building() -> None:
    from reports import vendored

    changed = vendored.Vendored(**{**VEGA.__dict__, "sha256": "0" * 64})
    with pytest.raises(vendored.VendoredFileError, match=r"npm pack vega@6\.4\.0"):
        changed.read()


def test_the_server_module_names_the_same_site() -> None:
    assert serve.SITE == dash.SITE


# --------------------------------------------------------------------------- the browser

FIND_AREA = """(label) => {
  const paths = [...document.querySelectorAll('#map g.areas path')];
  const p = paths.find((x) => (x.getAttribute('aria-label') || '').startsWith(label + ' ('));
  if (!p) return null;
  const r = p.getBoundingClientRect();
  for (let i = 1; i < 24; i++) for (let j = 1; j < 24; j++) {
    const x = r.left + (r.width * i) / 24, y = r.top + (r.height * j) / 24;
    if (document.elementFromPoint(x, y) === p) return [x, y];
  }
  return null;
}"""
MAP_LABELS = (
    "[...document.querySelectorAll('#map g.areas path')].map((p) => p.getAttribute('aria-label'))"
)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright (no browser download: the system one)."""
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make browser` (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class Page:
    """A page of the dashboard, with every request and error it causes recorded."""

    def __init__(self, browser: Any, url: str) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 1000})
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(url)
        self.settle()

    def settle(self) -> None:
        self.page.wait_for_selector("body[data-ready='1']", state="attached", timeout=20_000)

    def labels(self) -> list[str]:
        return list(self.page.evaluate(MAP_LABELS))

    def click_area(self, name: str) -> None:
        """A real mouse click inside the named area's polygon."""
        xy = self.page.evaluate(FIND_AREA, name)
        assert xy is not None, f"{name} is not on the map: {self.labels()}"
        self.page.mouse.move(*xy)
        self.page.mouse.click(*xy)
        self.page.wait_for_function(
            "(n) => document.getElementById('area-name').textContent === n", arg=name
        )
        self.settle()

    def use(self, selector: str) -> None:
        self.page.click(selector)
        self.settle()

    def trend_points(self) -> list[str]:
        return list(
            self.page.evaluate(
                "[...document.querySelectorAll('#trend g.trend_points path')]"
                ".map((p) => p.getAttribute('aria-label'))"
            )
        )

    def left_the_machine(self) -> list[str]:
        return [
            u
            for u in self.requests
            if not (u.startswith("file://") or re.match(r"https?://127\.0\.0\.1[:/]", u))
        ]


def test_drill_down_details_and_trend_in_chromium(known: Path, chromium: Any) -> None:
    page = Page(chromium, (known / "dashboard" / "index.html").as_uri())
    assert page.errors == []
    # hennep (today's format) opens first: the gemeenten, coloured
    assert sorted(lb.split(" (")[0] for lb in page.labels()) == ["Alpha", "Beta"]
    assert page.page.inner_text("#area-name") == "Nederland"
    assert page.trend_points() == ["2024: 100"]
    # the planned format: three years, the age groups
    page.use("nav#tasks button[data-task='jonge_aanwas']")
    page.use("#lang-en")
    assert page.page.locator("#year option").all_inner_texts() == [str(y) for y in YEARS]
    page.click_area("Beta")
    assert sorted(lb.split(" (")[0] for lb in page.labels()) == ["Beta Oost", "Beta West"]
    assert page.page.locator("#crumbs button").all_inner_texts() == ["All municipalities", "Beta"]
    top = page.page.inner_text("#drivers")
    assert "Top drivers" in top and "male" in top and "55%" in top  # driver 1, share vs NL
    page.click_area("Beta West")
    assert sorted(lb.split(" (")[0] for lb in page.labels()) == ["Beta West 1", "Beta West 2"]
    # a suppressed buurt: hatched on the map, "suppressed" in its details and every year
    small = next(lb for lb in page.labels() if lb.startswith("Beta West 2"))
    assert small.endswith(": suppressed")
    fill = page.page.evaluate(
        "(l) => [...document.querySelectorAll('#map g.areas path')]"
        ".find((p) => p.getAttribute('aria-label') === l).getAttribute('fill')",
        small,
    )
    assert fill == "url(#zicht-hatch)"
    page.click_area("Beta West 2")
    row = page.page.locator("#measures tr[data-measure='index'] td").all_inner_texts()
    assert row[1] == "suppressed" and row[2] == "100"
    assert page.trend_points() == [f"{y}: suppressed" for y in YEARS]
    # a published buurt: one point per year with the planted values (rising by 10)
    page.click_area("Beta West 1")
    expected = [
        f"{y}: {index_of('BU00020100', y, 'total'):.1f}".rstrip("0").rstrip(".") for y in YEARS
    ]
    assert page.trend_points() == expected
    # the age group selector: the planted value of that group
    page.page.select_option("#breakdown", "8-12")
    page.settle()
    index = page.page.locator("#measures tr[data-measure='index'] td").all_inner_texts()[1]
    assert float(index) == index_of("BU00020100", 2024, "8-12")
    # Dutch again: the same area, in Dutch words
    page.use("#lang-nl")
    assert "Index (NL = 100)" in page.page.inner_text("#measures")
    page.click_area("Beta West 2")
    assert "onderdrukt" in page.page.inner_text("#measures")
    # back up by the breadcrumb
    page.use("#crumbs button[data-depth='0']")
    assert sorted(lb.split(" (")[0] for lb in page.labels()) == ["Alpha", "Beta"]
    assert page.errors == []
    assert page.requests and page.left_the_machine() == []
    page.page.close()


def test_served_on_localhost_with_downloads(known: Path, chromium: Any, tmp_path: Path) -> None:
    link = tmp_path / "publish"
    link.symlink_to(known, target_is_directory=True)
    server = serve.make_server(link, port=0)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        page = Page(chromium, base + "/")
        assert page.page.url == base + "/dashboard/index.html"
        hrefs = page.page.eval_on_selector_all("#download-list a", "(a) => a.map((x) => x.href)")
        assert f"{base}/hennep/buurt.csv" in hrefs and f"{base}/hennep/buurt.parquet" in hrefs
        for href in hrefs:  # every download link is a published file
            with urllib.request.urlopen(href) as answer:
                assert answer.status == 200
        assert page.errors == [] and page.left_the_machine() == []
        for path in ("/dashboard/", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + path)
            assert err.value.code == 404, path
        req = urllib.request.Request(base + "/dashboard/index.html", method="POST", data=b"x")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 501
        page.page.close()
    finally:
        server.shutdown()
        server.server_close()


def test_the_command_prints_the_path_or_exits_2(known: Path, tmp_path: Path) -> None:
    from experiments.cli import main

    link = tmp_path / "publish"
    link.symlink_to(known, target_is_directory=True)
    assert serve.dashboard_page(link) == link / "dashboard" / "index.html"
    assert main(["dashboard", "--publish-dir", str(tmp_path / "none")]) == 2
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "manifest.json").write_text(json.dumps({"version": "v1"}))
    with pytest.raises(serve.DashboardUnavailable, match="run `zicht publish`"):
        serve.dashboard_page(bare)


# --------------------------------------------------------------------------- a tiny run


@pytest.mark.e2e
def test_tiny_run_dashboard_in_chromium(tiny_run: Any, chromium: Any) -> None:
    """The dashboard the gate built in a tiny ``zicht run``: in the manifest, clean to the
    audit, and working in the browser: the map, a drill-down, a suppressed buurt, the trend."""
    version = tiny_run.publish.resolve()
    manifest = json.loads((version / "manifest.json").read_text())
    for name in ("index.html", VEGA.file, VEGA.licence):
        rel = f"dashboard/{name}"
        assert manifest["files"][rel] == hashlib.sha256((version / rel).read_bytes()).hexdigest()
    years = {t: d.get("year") for t, d in manifest["tasks"].items()}
    assert all(isinstance(y, int) for y in years.values())
    assert dash.check_dashboard(version, years=years) == []
    scan = scan_tree(version / "dashboard", zone="publish", ctx=ScanContext(), prefix="dashboard/")
    assert scan.findings == [] and scan_publish_dashboard(version) == []

    page = Page(chromium, (version / "dashboard" / "index.html").as_uri())
    gm = pd.read_csv(version / "jonge_aanwas" / "gemeente.csv", dtype=str)
    wk = pd.read_csv(version / "jonge_aanwas" / "wijk.csv", dtype=str)
    bu = pd.read_csv(version / "jonge_aanwas" / "buurt.csv", dtype=str, keep_default_na=False)
    page.use("nav#tasks button[data-task='jonge_aanwas']")
    page.use("#lang-en")
    names = sorted(lb.split(" (")[0] for lb in page.labels())
    assert names == sorted(gm["area_name"].unique())
    # a buurt whose total is suppressed, and the wijk and gemeente above it
    total = bu[(bu["age_group"] == "total") & (bu["status_risk_sum"] == "suppressed")]
    target = total.iloc[0]
    wijk = wk[wk["area_code"] == target["parent_code"]].iloc[0]
    gemeente = gm[gm["area_code"] == wijk["parent_code"]].iloc[0]
    page.click_area(str(gemeente["area_name"]))
    shown = sorted(lb.split(" (")[0] for lb in page.labels())
    assert shown == sorted(wk.loc[wk["parent_code"] == gemeente["area_code"], "area_name"].unique())
    page.click_area(str(wijk["area_name"]))
    page.click_area(str(target["area_name"]))
    row = page.page.locator("#measures tr[data-measure='index'] td").all_inner_texts()
    assert row[1] == "suppressed"
    assert page.trend_points() == [f"{years['jonge_aanwas']}: suppressed"]  # one per year
    assert page.errors == [] and page.requests and page.left_the_machine() == []
    out = Path(os.environ.get("ZICHT_TEST_ARTIFACTS", str(tiny_run.root)))
    out.mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(out / "dashboard_tiny.png"), full_page=True)
    page.page.close()


def test_the_gate_refuses_a_dashboard_that_fails_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's step writes the site into the version being built and re-reads it: a page
    that carries a value the tables do not is refused (exit 3), like any failed check."""
    from datetime import UTC, datetime

    import disclosure.publish as gate

    build = write_version(tmp_path)
    meta = gate.ReleaseMeta(data_fingerprint="f", git_commit="c", zicht_version="v")
    tasks_doc = {"hennep": {"year": 2024}, "jonge_aanwas": {}}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    gate._write_dashboard(build, vid=build.name, now=now, meta=meta, tasks_doc=tasks_doc)
    page = (build / "dashboard" / "index.html").read_text()
    assert "Bron: Zicht, synthetische data" in page and build.name in page

    def tampered(version: Path, *, info: dash.SiteInfo) -> dict[str, bytes]:
        files = dash.build_dashboard(version, info=info)
        page = files["dashboard/index.html"].decode()
        doc = dash.embedded_document(page)
        t = doc["tables"]["hennep/buurt"]
        status = t["columns"].index("status_risk_sum")
        row = next(r for r in t["data"] if r[status] == "suppressed")
        row[status] = "published"  # a status the table never had
        old = dash._script_json(dash.embedded_document(page))
        files["dashboard/index.html"] = page.replace(old, dash._script_json(doc)).encode()
        return files

    monkeypatch.setattr(gate, "build_dashboard", tampered)
    with pytest.raises(gate.PublishRefused, match="dashboard check failed"):
        gate._write_dashboard(build, vid=build.name, now=now, meta=meta, tasks_doc=tasks_doc)
