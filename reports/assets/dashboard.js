/* Zicht dashboard: the app around Vega. Reads the published tables and polygons embedded in
 * the page (<script id="zicht-data">), draws the map and the trend with Vega, and writes every
 * text with textContent (area names are data, never markup). No request leaves the page. */
(function () {
  "use strict";

  const DOC = JSON.parse(document.getElementById("zicht-data").textContent);
  const HATCH = "url(#zicht-hatch)";
  const TEXT = {
    nl: {
      title: "Zicht op Ondermijning: risico per gebied",
      subtitle: "Gepubliceerde gebiedscijfers na statistische beveiliging; Nederland = 100.",
      year: "Jaar",
      age_group: "Leeftijdsgroep",
      branch: "Branche",
      total_age: "alle leeftijden",
      all: "Alle gemeenten",
      gemeente: "gemeente", wijk: "wijk", buurt: "buurt", nederland: "Nederland",
      suppressed: "onderdrukt",
      suppressed_legend: "onderdrukt (niet gepubliceerd)",
      suppressed_of: "{k} van {n} onderdrukt",
      measure: "Maat", area: "Gebied", nl_col: "NL",
      drivers: "Belangrijkste factoren",
      drivers_none: "Niet gepubliceerd voor dit gebied.",
      share: "aandeel {a} (NL {b})",
      trend: "Verloop over de gepubliceerde jaren",
      downloads: "Downloads (tabellen van deze publicatie)",
      about: "Over deze cijfers",
      click: "Klik op een gebied om in te zoomen; klik op een buurt voor details.",
      yes: "ja", no: "nee",
      none_year: "—",
      source_ver: "Versie {v}, gepubliceerd {d}.",
      about_text: [
        "De index vergelijkt het verwachte risico in een gebied met het landelijke gemiddelde (Nederland = 100): 200 is twee keer zo hoog, 50 half zo hoog. De kleurschaal is voor alle niveaus en jaren gelijk, van een kwart tot vier keer het landelijke niveau.",
        "Gearceerde gebieden zijn onderdrukt: het cijfer wordt niet gepubliceerd, omdat het op te weinig eenheden rust of omdat het anders uit andere cijfers terug te rekenen zou zijn.",
        "Bij omzet per branche is de maat de gerealiseerde omzet gedeeld door de verwachte (1 = zoals verwacht).",
      ],
      tasks: {
        hennep: "Hennepteelt",
        jonge_aanwas: "Jonge aanwas drugscriminaliteit",
        branch_turnover: "Omzet per branche",
      },
      measures: {
        index: "Index (NL = 100)",
        n: "Aantal eenheden",
        risk_mean: "Gemiddelde kans",
        expected_per_1000: "Verwacht per 1.000 woningen",
        elevated_share: "Aandeel met verhoogd risico",
        deviation_ratio: "Gerealiseerd ÷ verwacht (1 = verwacht)",
        turnover_per_inhabitant: "Omzet per inwoner (euro)",
        expected_per_inhabitant: "Verwachte omzet per inwoner (euro)",
        flag: "Opvallende afwijking",
        inhabitants: "Inwoners",
        top_drivers: "Belangrijkste factoren",
      },
    },
    en: {
      title: "Zicht: risk by area",
      subtitle: "Published area figures after disclosure control; the Netherlands = 100.",
      year: "Year",
      age_group: "Age group",
      branch: "Branch",
      total_age: "all ages",
      all: "All municipalities",
      gemeente: "municipality", wijk: "district", buurt: "neighbourhood", nederland: "Netherlands",
      suppressed: "suppressed",
      suppressed_legend: "suppressed (not published)",
      suppressed_of: "{k} of {n} suppressed",
      measure: "Measure", area: "Area", nl_col: "NL",
      drivers: "Top drivers",
      drivers_none: "Not published for this area.",
      share: "share {a} (NL {b})",
      trend: "Trend over the published years",
      downloads: "Downloads (tables of this publication)",
      about: "About these figures",
      click: "Click an area to zoom in; click a neighbourhood for its details.",
      yes: "yes", no: "no",
      none_year: "—",
      source_ver: "Version {v}, published {d}.",
      about_text: [
        "The index compares the expected risk in an area with the national mean (the Netherlands = 100): 200 is twice as high, 50 half. The colour scale is the same for every level and year, from a quarter to four times the national level.",
        "Hatched areas are suppressed: the figure is not published because it rests on too few units or could otherwise be recomputed from other figures.",
        "For turnover by branch the measure is realised turnover divided by the expected turnover (1 = as expected).",
      ],
      tasks: {
        hennep: "Cannabis cultivation",
        jonge_aanwas: "Young people entering drug crime",
        branch_turnover: "Turnover by branch",
      },
      measures: {
        index: "Index (NL = 100)",
        n: "Units",
        risk_mean: "Mean probability",
        expected_per_1000: "Expected per 1,000 dwellings",
        elevated_share: "Share at elevated risk",
        deviation_ratio: "Realised ÷ expected (1 = as expected)",
        turnover_per_inhabitant: "Turnover per inhabitant (euro)",
        expected_per_inhabitant: "Expected turnover per inhabitant (euro)",
        flag: "Notable deviation",
        inhabitants: "Inhabitants",
        top_drivers: "Top drivers",
      },
    },
  };

  const state = { lang: "nl", task: DOC.tasks[0].task, year: null, bd: null, path: [], selected: null };
  let mapView = null;
  let trendView = null;

  // ------------------------------------------------------------------ data

  const ROWS = {};
  for (const [key, t] of Object.entries(DOC.tables)) {
    ROWS[key] = t.data.map((r) => {
      const o = {};
      t.columns.forEach((c, i) => { o[c] = r[i]; });
      return o;
    });
  }
  const INDEX = {};

  function t(key, vars) {
    let s = TEXT[state.lang][key];
    if (s === undefined) s = TEXT.nl[key];
    if (s === undefined) s = key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
    return s;
  }
  function taskDoc() { return DOC.tasks.find((x) => x.task === state.task); }
  function yearOf(row, td) { return row.year != null ? Number(row.year) : td.default_year; }
  function key(level, code, bd, year) { return [level, code, bd, year].join("|"); }
  function index(td) {
    if (!INDEX[td.task]) {
      const m = new Map();
      for (const level of [...td.levels, "nederland"]) {
        for (const row of ROWS[td.task + "/" + level] || []) {
          const bd = td.breakdown ? String(row[td.breakdown]) : "";
          m.set(key(level, String(row.area_code), bd, yearOf(row, td)), row);
        }
      }
      INDEX[td.task] = m;
    }
    return INDEX[td.task];
  }
  function row(level, code, year) {
    const td = taskDoc();
    return index(td).get(key(level, code, state.bd || "", year === undefined ? state.year : year));
  }
  function nlRow(year) {
    const td = taskDoc();
    const rows = ROWS[td.task + "/nederland"] || [];
    return index(td).get(key("nederland", rows.length ? String(rows[0].area_code) : "NL", state.bd || "", year === undefined ? state.year : year));
  }
  function published(r, measure) {
    if (!r) return false;
    const spec = taskDoc().measures[measure] || {};
    const col = spec.status;
    if (col && Object.prototype.hasOwnProperty.call(r, col)) return r[col] === "published" && r[measure] != null;
    return r[measure] != null && r[measure] !== "";
  }
  function level() { return taskDoc().levels[state.path.length]; }
  function parentCode() { return state.path.length ? state.path[state.path.length - 1] : null; }
  function features(lv, parent) {
    const fc = DOC.geo[lv];
    if (!fc) return [];
    return fc.features.filter((f) => parent == null || String(f.properties.parent_code) === parent);
  }
  function areaName(lv, code) {
    const f = (DOC.geo[lv] || { features: [] }).features.find((x) => x.properties.area_code === code);
    return f ? f.properties.area_name : code;
  }
  function levelOfCode(code) {
    for (const lv of taskDoc().levels) {
      if ((DOC.geo[lv] || { features: [] }).features.some((f) => f.properties.area_code === code)) return lv;
    }
    return null;
  }

  // ------------------------------------------------------------------ formatting

  function fmt(value, measure) {
    if (value === null || value === undefined || value === "") return "";
    if (typeof value === "boolean") return value ? t("yes") : t("no");
    if (typeof value !== "number") return String(value);
    const spec = taskDoc().measures[measure] || {};
    const digits = measure === "n" || measure === "inhabitants" ? 0 : spec.precision != null ? spec.precision : 3;
    const share = spec.kind === "share";
    const locale = state.lang === "nl" ? "nl-NL" : "en-GB";
    if (share) return (100 * value).toLocaleString(locale, { maximumFractionDigits: Math.max(0, digits - 2) }) + "%";
    return value.toLocaleString(locale, { minimumFractionDigits: 0, maximumFractionDigits: digits });
  }
  function measureLabel(m) {
    const spec = taskDoc().measures[m] || {};
    const own = state.lang === "nl" ? spec.label_nl || spec.nl : spec.label_en || spec.en;
    return own || TEXT[state.lang].measures[m] || m;
  }
  function bdLabel(value) {
    const td = taskDoc();
    const b = td.breakdowns.find((x) => x.value === value);
    if (td.breakdown === "age_group" && value === "total") return t("total_age");
    return b ? b.label : value;
  }
  function yearLabel(y) { return y == null ? t("none_year") : String(y); }

  // ------------------------------------------------------------------ elements

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ map

  function mapSpec(td, feats, width, height) {
    const [lo, mid, hi] = td.domain;
    return {
      width: width, height: height, padding: 4, autosize: "none",
      data: [{ name: "shapes", values: feats }],
      projections: [{ name: "proj", type: "mercator", fit: { signal: "data('shapes')" }, size: { signal: "[width, height - 46]" } }],
      scales: [{ name: "colour", type: "log", domain: [lo, hi], domainMid: mid, range: { scheme: "redblue" }, reverse: true, clamp: true }],
      legends: [{
        fill: "colour", type: "gradient", direction: "horizontal", orient: "bottom-left",
        gradientLength: Math.min(320, width - 40), values: [lo, lo * 2, mid, hi / 2, hi],
        title: measureLabel(td.measure), labelFontSize: 11, titleFontSize: 12, titleLimit: 400,
        format: td.centre === 1 ? ".2~f" : ".0f",
      }],
      marks: [{
        type: "shape", name: "areas", from: { data: "shapes" },
        encode: {
          update: {
            fill: { signal: "datum.properties.value == null ? '" + HATCH + "' : scale('colour', datum.properties.value)" },
            stroke: { value: "#8c8c8c" }, strokeWidth: { value: 0.6 }, cursor: { value: "pointer" },
            description: { field: "properties.label" },
          },
          hover: { stroke: { value: "#111111" }, strokeWidth: { value: 2 } },
        },
        transform: [{ type: "geoshape", projection: "proj" }],
      }],
    };
  }

  function renderMap() {
    const td = taskDoc();
    const lv = level();
    const parent = parentCode();
    const feats = features(lv, parent).map((f) => {
      const r = row(lv, f.properties.area_code);
      const shown = published(r, td.measure);
      const value = shown ? r[td.measure] : null;
      const label = f.properties.area_name + " (" + t(lv) + " " + f.properties.area_code + "): " +
        (shown ? measureLabel(td.measure) + " " + fmt(value, td.measure) : t("suppressed"));
      return { type: "Feature", geometry: f.geometry, properties: Object.assign({}, f.properties, { value: value, label: label, level: lv }) };
    });
    const box = $("map");
    const width = Math.max(320, box.clientWidth || 640);
    if (mapView) mapView.finalize();
    box.replaceChildren();
    box.setAttribute("aria-label", td.task + ": " + measureLabel(td.measure) + ", " + t(lv));
    const view = new vega.View(vega.parse(mapSpec(td, feats, width, 560)), { renderer: "svg", container: box, hover: true });
    view.addEventListener("click", (event, item) => {
      if (item && item.datum && item.datum.properties) clickArea(item.datum.properties.area_code);
    });
    view.addEventListener("mousemove", (event, item) => showTooltip(event, item));
    view.addEventListener("mouseout", () => { $("tooltip").hidden = true; });
    mapView = view;
    const hidden = feats.filter((f) => f.properties.value == null).length;
    $("map-legend").replaceChildren(
      el("span", {}, el("span", { class: "swatch hatch" }), t("suppressed_legend") + ": " + t("suppressed_of", { k: hidden, n: feats.length })),
      el("span", { class: "muted" }, t("click")),
    );
    return view.runAsync().then(() => { box.dataset.level = lv; box.dataset.parent = parent || ""; box.dataset.areas = String(feats.length); });
  }

  function showTooltip(event, item) {
    const tip = $("tooltip");
    if (!item || !item.datum || !item.datum.properties) { tip.hidden = true; return; }
    const p = item.datum.properties;
    const r = row(p.level, p.area_code);
    const td = taskDoc();
    tip.replaceChildren(
      el("b", {}, p.area_name),
      el("span", {}, published(r, td.measure) ? measureLabel(td.measure) + ": " + fmt(r[td.measure], td.measure) : t("suppressed")),
      el("br"),
      el("span", {}, measureLabel("n") + ": " + (r ? fmt(r.n, "n") : "")),
    );
    tip.style.left = event.clientX + 14 + "px";
    tip.style.top = event.clientY + 10 + "px";
    tip.hidden = false;
  }

  function clickArea(code) {
    const td = taskDoc();
    const lv = level();
    state.selected = { level: lv, code: code };
    const deeper = td.levels.indexOf(lv) + 1 < td.levels.length && features(td.levels[td.levels.indexOf(lv) + 1], code).length > 0;
    if (deeper) state.path = state.path.concat([code]);
    return refresh(deeper);
  }

  // ------------------------------------------------------------------ details

  function renderDetails() {
    const td = taskDoc();
    const sel = state.selected;
    const lv = sel ? sel.level : "nederland";
    const r = sel ? row(sel.level, sel.code) : nlRow();
    const nl = nlRow();
    $("area-name").textContent = sel ? areaName(sel.level, sel.code) : t("nederland");
    const parts = [t(lv)];
    if (sel) parts.push(sel.code);
    parts.push(yearLabel(state.year));
    if (td.breakdown) parts.push(bdLabel(state.bd));
    $("area-level").textContent = parts.join(" · ");
    const body = $("measures").tBodies[0];
    const head = el("tr", {}, el("th", {}, t("measure")), el("th", {}, t("area")), el("th", {}, t("nl_col")));
    const rows = [head];
    const names = Object.keys(td.measures).filter((m) => !/^driver_/.test(m) && m !== "top_drivers" && (r ? m in r : true));
    names.sort((a, b) => (a === td.measure ? -1 : b === td.measure ? 1 : a === "n" ? -1 : b === "n" ? 1 : 0));
    for (const m of names) {
      const always = m === "n" || m === "inhabitants";
      const shown = r && (always ? r[m] != null : published(r, m));
      const status = td.measures[m] && td.measures[m].status;
      const reason = r && status && r[status] && r[status] !== "published" ? String(r[status]) : "";
      const cell = shown
        ? el("td", { class: "num" }, fmt(r[m], m))
        : el("td", { class: "num suppressed", title: reason || t("suppressed"), "data-status": reason || "suppressed" }, r && r[m] == null && !reason && !always ? "" : t("suppressed"));
      const nlShown = nl && (always ? nl[m] != null : published(nl, m));
      rows.push(el("tr", { "data-measure": m }, el("td", {}, measureLabel(m)), cell, el("td", { class: "num" }, nlShown ? fmt(nl[m], m) : "")));
    }
    body.replaceChildren(...rows);
    renderDrivers(td, r);
    return renderTrend(td, sel);
  }

  function renderDrivers(td, r) {
    const box = $("drivers");
    const ks = Object.keys(td.measures).filter((m) => /^driver_\d+$/.test(m)).sort();
    if (!ks.length) { box.replaceChildren(); return; }
    const items = [];
    for (const k of ks) {
      if (!r || !published(r, k)) continue;
      const name = String(r[k]);
      const label = (td.drivers[name] || {})[state.lang] || name;
      const i = k.split("_")[1];
      const a = r["driver_prevalence_" + i];
      const b = r["driver_prevalence_nl_" + i];
      const extra = a != null && b != null ? " — " + t("share", { a: fmt(a, "driver_prevalence_" + i), b: fmt(b, "driver_prevalence_nl_" + i) }) : "";
      items.push(el("li", {}, el("span", { title: name }, label), extra));
    }
    box.replaceChildren(
      el("h3", {}, t("drivers")),
      items.length ? el("ol", {}, ...items) : el("p", { class: "muted suppressed" }, t("drivers_none")),
    );
  }

  function renderTrend(td, sel) {
    const years = td.years.length ? td.years : [null];
    const centre = td.centre;
    const points = years.map((y) => {
      const r = sel ? row(sel.level, sel.code, y) : nlRow(y);
      const shown = published(r, td.measure);
      return {
        year: yearLabel(y), value: shown ? r[td.measure] : null, suppressed: !shown,
        label: yearLabel(y) + ": " + (shown ? fmt(r[td.measure], td.measure) : t("suppressed")),
      };
    });
    const vals = points.filter((p) => p.value != null).map((p) => p.value).concat([centre]);
    const lo = Math.min(...vals), hi = Math.max(...vals);
    const pad = (hi - lo) * 0.15 || centre * 0.1;
    const box = $("trend");
    const width = Math.max(240, (box.clientWidth || 360) - 60);
    const spec = {
      width: width, height: 170, padding: 6, autosize: "pad",
      data: [{ name: "points", values: points }],
      scales: [
        { name: "x", type: "point", domain: points.map((p) => p.year), range: "width", padding: 0.5 },
        { name: "y", type: "linear", domain: [Math.max(0, lo - pad), hi + pad], nice: true, zero: false, range: "height" },
      ],
      axes: [
        { orient: "bottom", scale: "x", labelFontSize: 11 },
        { orient: "left", scale: "y", tickCount: 5, labelFontSize: 11, title: measureLabel(td.measure), titleFontSize: 11 },
      ],
      marks: [
        { type: "rule", encode: { update: { x: { value: 0 }, x2: { signal: "width" }, y: { scale: "y", value: centre }, stroke: { value: "#8a8a8a" }, strokeDash: { value: [4, 3] } } } },
        { type: "text", encode: { update: { x: { signal: "width" }, y: { scale: "y", value: centre, offset: -4 }, align: { value: "right" }, text: { value: "NL = " + fmt(centre, td.measure) }, fill: { value: "#6b6b6b" }, fontSize: { value: 10 } } } },
        { type: "line", from: { data: "points" }, encode: { update: { x: { scale: "x", field: "year" }, y: { scale: "y", field: "value" }, defined: { signal: "datum.value != null" }, stroke: { value: "#154273" }, strokeWidth: { value: 2 } } } },
        {
          type: "symbol", name: "trend_points", from: { data: "points" },
          encode: { update: {
            x: { scale: "x", field: "year" },
            y: { scale: "y", signal: "datum.value == null ? " + centre + " : datum.value" },
            size: { value: 70 },
            fill: { signal: "datum.suppressed ? '" + HATCH + "' : '#154273'" },
            stroke: { signal: "datum.suppressed ? '#6b6b6b' : '#154273'" },
            description: { field: "label" },
            tooltip: { field: "label" },
          } },
        },
      ],
    };
    if (trendView) trendView.finalize();
    box.replaceChildren();
    trendView = new vega.View(vega.parse(spec), { renderer: "svg", container: box });
    $("trend-title").textContent = t("trend");
    return trendView.runAsync().then(() => { box.dataset.points = String(points.length); });
  }

  // ------------------------------------------------------------------ controls

  function renderTasks() {
    $("tasks").replaceChildren(...DOC.tasks.map((td) => el("button", {
      type: "button", role: "tab", "data-task": td.task, "aria-selected": String(td.task === state.task),
      onclick: () => { selectTask(td.task); },
    }, (TEXT[state.lang].tasks[td.task] || td.task))));
  }

  function renderControls() {
    const td = taskDoc();
    const years = td.years.length ? td.years : [null];
    const ysel = $("year");
    ysel.replaceChildren(...years.map((y) => el("option", { value: String(y) }, yearLabel(y))));
    ysel.value = String(state.year);
    $("year-label").textContent = t("year");
    const box = $("breakdown-box");
    box.hidden = !td.breakdown;
    if (td.breakdown) {
      $("breakdown-label").textContent = t(td.breakdown);
      const sel = $("breakdown");
      sel.replaceChildren(...td.breakdowns.map((b) => el("option", { value: b.value }, bdLabel(b.value))));
      sel.value = state.bd;
    }
    const crumbs = [el("button", { type: "button", "data-depth": "0", onclick: () => goTo(0) }, t("all"))];
    state.path.forEach((code, i) => {
      crumbs.push(el("span", { class: "sep" }, "›"));
      crumbs.push(el("button", { type: "button", "data-depth": String(i + 1), onclick: () => goTo(i + 1) }, areaName(td.levels[i], code)));
    });
    $("crumbs").replaceChildren(...crumbs);
  }

  function renderStatic() {
    document.documentElement.lang = state.lang;
    $("title").textContent = t("title");
    $("subtitle").textContent = t("subtitle");
    for (const b of document.querySelectorAll(".lang button")) b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
    const td = taskDoc();
    $("downloads-title").textContent = t("downloads");
    $("download-list").replaceChildren(...td.downloads.map((href) => el("li", {}, el("a", { href: href, download: "" }, href.replace(/^\.\.\//, "")))));
    $("about-title").textContent = t("about");
    $("about-text").replaceChildren(...t("about_text").map((p) => el("p", {}, p)), ...td.notes.map((n) => el("p", { class: "muted", lang: "en" }, n)));
    $("footer").replaceChildren(
      el("p", {}, DOC.source),
      el("p", {}, t("source_ver", { v: DOC.version, d: DOC.created_at })),
      el("p", {}, "Vega " + (window.vega ? vega.version : "") + " (BSD-3-Clause)"),
    );
  }

  function goTo(depth) {
    state.path = state.path.slice(0, depth);
    const td = taskDoc();
    state.selected = depth ? { level: td.levels[depth - 1], code: state.path[depth - 1] } : null;
    return refresh(true);
  }

  function selectTask(task) {
    state.task = task;
    const td = taskDoc();
    state.year = td.years.length ? td.years[td.years.length - 1] : null;
    state.bd = td.breakdown ? (td.breakdowns.find((b) => b.value === "total") || td.breakdowns[0] || { value: "" }).value : null;
    if (state.path.length >= td.levels.length) state.path = state.path.slice(0, td.levels.length - 1);
    state.path = state.path.filter((code, i) => levelOfCode(code) === td.levels[i]);
    if (state.selected && levelOfCode(state.selected.code) !== state.selected.level) state.selected = null;
    renderTasks();
    return refresh(true);
  }

  const NUMBER_FORMAT = {
    nl: { decimal: ",", thousands: ".", grouping: [3], currency: ["€ ", ""] },
    en: { decimal: ".", thousands: ",", grouping: [3], currency: ["€", ""] },
  };

  function refresh(withMap) {
    vega.formatLocale(NUMBER_FORMAT[state.lang]);  // axis and legend labels
    renderControls();
    renderStatic();
    const jobs = [renderDetails()];
    if (withMap !== false) jobs.push(renderMap());
    document.body.dataset.ready = "0";
    return Promise.all(jobs).then(() => { document.body.dataset.ready = "1"; });
  }

  $("year").addEventListener("change", (e) => { state.year = e.target.value === "null" ? null : Number(e.target.value); refresh(true); });
  $("breakdown").addEventListener("change", (e) => { state.bd = e.target.value; refresh(true); });
  for (const b of document.querySelectorAll(".lang button")) {
    b.addEventListener("click", () => { state.lang = b.dataset.lang; renderTasks(); refresh(true); });
  }
  window.zicht = { state: state, clickArea: clickArea, goTo: goTo, selectTask: selectTask };
  selectTask(state.task);
})();
