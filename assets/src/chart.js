// A result as a chart (bar, line, scatter), drawn with Chart.js: the Chart tab beside the Table.
//
// Each statement's result (<div class="statement-result"> holding a result grid, see grid.js) gets
// two tabs, "Table" and "Chart". The Chart tab has a "Chart type" select, an "X" select and "Y"
// checkboxes (several allowed), guessed from the column types: X is the first non-numeric column
// (or the first column), Y the numeric ones. It draws the rows the table shows (the filter and the
// sort apply; the server's cap too, which the note says).
//
// The chart's config, {"type": "bar", "x": "item", "y": ["qty"]}, is what saved queries keep:
// on every change it is set as JSON on the .statement-result (data-chart-config) and sent as
// document's "chart:change" event (detail: the config). A config in data-chart on #console (or
// <body>) opens the newest result that has its columns on the Chart tab, with that config.
import {
  Chart, BarController, BarElement, LineController, LineElement, PointElement, ScatterController,
  CategoryScale, LinearScale, Legend, Tooltip,
} from "chart.js";
import { gridOf } from "./grid.js";

Chart.register(
  BarController, BarElement, LineController, LineElement, PointElement, ScatterController,
  CategoryScale, LinearScale, Legend, Tooltip,
);

const TYPES = { bar: "Bar", line: "Line", scatter: "Scatter" };
// Series colors: the stylesheet's own, so that a dark mode redefining them recolors the charts.
const SERIES_VARIABLES = ["--accent", "--ok", "--warn", "--pending", "--bad"];
const SERIES_FALLBACK = ["#2457c5", "#1c7c46", "#8a5a00", "#5b4bb7", "#b42318", "#0e7490", "#be185d"];
// Points on a line get in the way of the line past this many rows.
const LINE_POINTS_MAX = 60;

const views = new Set();
let viewCount = 0;

export function enhanceCharts(root) {
  for (const view of views) {
    if (!view.result.isConnected) forget(view);
  }
  const results = root.querySelectorAll ? Array.from(root.querySelectorAll(".statement-result")) : [];
  if (root.matches && root.matches(".statement-result")) results.unshift(root);
  const attached = results.filter((result) => !result.chartView).map(attach).filter(Boolean);
  const saved = savedConfig();
  if (saved) {
    const view = attached.find((v) => v.columns.some((c) => c.name === saved.x)
      && saved.y.some((y) => v.columns.some((c) => c.numeric && c.name === y)));
    if (view) {
      setConfig(view, saved);
      select(view, "chart");
    }
  }
}

// The config in data-chart on #console or <body>, if any.
function savedConfig() {
  const holder = [document.getElementById("console"), document.body].find((el) => el && el.dataset.chart);
  if (!holder) return null;
  try {
    const config = JSON.parse(holder.dataset.chart);
    if (!config || typeof config.x !== "string" || !Array.isArray(config.y)) return null;
    return { type: TYPES[config.type] ? config.type : "bar", x: config.x, y: config.y.map(String) };
  } catch (error) {
    console.warn("credtool: data-chart is not a chart config", error);
    return null;
  }
}

function attach(result) {
  const table = result.querySelector("table.result");
  const scroll = result.querySelector(".result-scroll");
  if (!table || !scroll) return null;
  const grid = gridOf(table);
  if (!grid.rows.length || !grid.columns.length) return null;
  viewCount += 1;
  const id = `result-view-${viewCount}`;
  const view = { result, grid, columns: grid.columns, chart: null, tabs: {}, panels: {} };
  result.chartView = view;

  const tablist = element("div", { className: "result-tabs", role: "tablist", "aria-label": "Result view" });
  for (const [name, text] of [["table", "Table"], ["chart", "Chart"]]) {
    const tab = element("button", {
      type: "button", role: "tab", id: `${id}-${name}-tab`, "aria-controls": `${id}-${name}`,
    }, text);
    tab.addEventListener("click", () => select(view, name));
    tablist.append(tab);
    view.tabs[name] = tab;
    view.panels[name] = element("div", {
      role: "tabpanel", id: `${id}-${name}`, "aria-labelledby": tab.id, className: `result-panel ${name}-panel`,
    });
  }
  // Arrow keys move between the tabs; Enter or Space (the button's own) opens one.
  tablist.addEventListener("keydown", (event) => {
    const tabs = [view.tabs.table, view.tabs.chart];
    const at = tabs.indexOf(document.activeElement);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (at < 0 || to === undefined) return;
    event.preventDefault();
    const next = tabs[(to + tabs.length) % tabs.length];
    tabs.forEach((tab) => { tab.tabIndex = tab === next ? 0 : -1; });
    next.focus();
  });

  const tools = scroll.previousElementSibling && scroll.previousElementSibling.classList.contains("grid-tools")
    ? scroll.previousElementSibling : null;
  (tools || scroll).before(tablist, view.panels.table, view.panels.chart);
  view.panels.table.append(...(tools ? [tools, scroll] : [scroll]));
  buildChartPanel(view, id);
  select(view, "table");
  views.add(view);
  table.addEventListener("grid:change", () => { if (view.selected === "chart") draw(view); });
  return view;
}

function buildChartPanel(view, id) {
  const numeric = view.columns.filter((c) => c.numeric);
  const controls = element("div", { className: "chart-controls" });

  view.typeSelect = element("select", { id: `${id}-type` });
  for (const [value, text] of Object.entries(TYPES)) view.typeSelect.append(element("option", { value }, text));
  controls.append(field(element("label", { htmlFor: view.typeSelect.id }, "Chart type"), view.typeSelect));

  view.xSelect = element("select", { id: `${id}-x` });
  for (const column of view.columns) view.xSelect.append(element("option", { value: column.name }, column.name));
  controls.append(field(element("label", { htmlFor: view.xSelect.id }, "X"), view.xSelect));

  const legend = element("legend", { id: `${id}-y-legend` }, "Y");
  view.yBoxes = element("fieldset", { className: "chart-field chart-y", "aria-labelledby": legend.id }, legend);
  numeric.forEach((column, i) => {
    const box = element("input", { type: "checkbox", id: `${id}-y-${i}`, value: column.name });
    view.yBoxes.append(element("label", { className: "check", htmlFor: box.id }, box, column.name));
  });
  if (!numeric.length) view.yBoxes.append(element("span", { className: "muted" }, "No numeric column"));
  controls.append(view.yBoxes);

  view.note = element("p", { className: "chart-note" });
  view.empty = element("p", { className: "chart-empty", hidden: true });
  view.canvas = element("canvas", { role: "img" });
  const box = element("div", { className: "chart-box" }, view.canvas);
  view.panels.chart.append(controls, view.note, view.empty, box);

  setConfig(view, guess(view.columns));
  const changed = () => {
    publish(view);
    draw(view);
  };
  view.typeSelect.addEventListener("change", changed);
  view.xSelect.addEventListener("change", changed);
  view.yBoxes.addEventListener("change", changed);
}

// X: the first non-numeric column, or the first column; Y: the other numeric columns but keys
// ("id", "order_id": numbers nobody charts), unless those are all there is.
const KEY = /^id$|_id$/i;

function guess(columns) {
  const x = (columns.find((c) => !c.numeric) || columns[0]).name;
  const numeric = columns.filter((c) => c.numeric).map((c) => c.name);
  const others = numeric.filter((name) => name !== x);
  const measures = others.filter((name) => !KEY.test(name));
  const y = measures.length ? measures : others;
  return { type: "bar", x, y: y.length ? y : numeric };
}

function config(view) {
  const y = Array.from(view.yBoxes.querySelectorAll("input:checked")).map((box) => box.value);
  return { type: view.typeSelect.value, x: view.xSelect.value, y };
}

function setConfig(view, { type, x, y }) {
  view.typeSelect.value = type;
  if (view.columns.some((c) => c.name === x)) view.xSelect.value = x;
  view.yBoxes.querySelectorAll("input").forEach((box) => { box.checked = y.includes(box.value); });
}

// Tell the page (saved queries) what is charted.
function publish(view) {
  const current = config(view);
  view.result.dataset.chartConfig = JSON.stringify(current);
  document.dispatchEvent(new CustomEvent("chart:change", { detail: current }));
}

function select(view, name) {
  view.selected = name;
  view.result.dataset.view = name;
  for (const [key, tab] of Object.entries(view.tabs)) {
    const selected = key === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    view.panels[key].hidden = !selected;
  }
  if (name === "chart") {
    publish(view);
    draw(view);
  }
}

function draw(view) {
  const { type, x, y } = config(view);
  const grid = view.grid;
  const rows = grid.shown().map((row) => grid.values(row));
  const xIndex = view.columns.findIndex((c) => c.name === x);
  const xNumeric = view.columns[xIndex].numeric;
  const series = y.map((name) => ({ name, index: view.columns.findIndex((c) => c.name === name) }));

  const total = grid.rows.length;
  let note = `Charts the ${rows.length.toLocaleString()} row${rows.length === 1 ? "" : "s"} shown`;
  if (rows.length < total) note += ` (the filter hides ${(total - rows.length).toLocaleString()} of ${total.toLocaleString()})`;
  note += ", in the table's order.";
  if (view.result.hasAttribute("data-truncated")) {
    note += ` The result was cut at ${total.toLocaleString()} rows: the rest is not charted.`;
  }
  view.note.textContent = note;

  const problem = !series.length ? "Choose a Y column to chart." : !rows.length ? "No rows to chart." : "";
  view.empty.textContent = problem;
  view.empty.hidden = !problem;
  view.canvas.parentElement.hidden = Boolean(problem);
  if (view.chart) {
    view.chart.destroy();
    view.chart = null;
  }
  if (problem) return;

  const colors = palette(view.result);
  const number = (text) => (text === null ? null : Number(text));
  const labels = rows.map((row) => (row[xIndex] === null ? "NULL" : row[xIndex]));
  const datasets = series.map((s, i) => {
    const color = colors.series[i % colors.series.length];
    const data = type === "scatter"
      ? rows.map((row, r) => ({ x: xNumeric ? number(row[xIndex]) : labels[r], y: number(row[s.index]) }))
        .filter((point) => point.x !== null && point.y !== null)
      : rows.map((row) => number(row[s.index]));
    return {
      label: s.name, data, backgroundColor: color, borderColor: color,
      pointRadius: type === "line" && rows.length > LINE_POINTS_MAX ? 0 : 3,
      borderWidth: type === "bar" ? 0 : 2,
    };
  });
  const axis = { grid: { color: colors.line }, ticks: { color: colors.muted }, border: { color: colors.line } };
  const xScale = type === "scatter" && xNumeric ? { type: "linear" } : { type: "category", labels };
  view.canvas.setAttribute("aria-label", `${TYPES[type]} chart of ${y.join(", ")} by ${x}`);
  Chart.defaults.font.family = colors.font;
  view.chart = new Chart(view.canvas, {
    type,
    data: type === "scatter" ? { datasets } : { labels, datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      color: colors.ink,
      scales: {
        x: { ...axis, ...xScale, title: { display: true, text: x, color: colors.muted } },
        // One series is named on its axis; several, in the legend.
        y: { ...axis, type: "linear", beginAtZero: type === "bar",
          title: { display: series.length === 1, text: y[0], color: colors.muted } },
      },
      plugins: { legend: { display: series.length > 1, labels: { color: colors.ink } } },
    },
  });
}

// The page's colors where the chart is, read now: light or dark, whichever the stylesheet says.
function palette(where) {
  const css = getComputedStyle(where);
  const read = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    ink: read("--ink", "#1d2430"),
    muted: read("--muted", "#677185"),
    line: read("--line", "#dde1e8"),
    font: getComputedStyle(document.body).fontFamily,
    series: SERIES_FALLBACK.map((fallback, i) => (i < SERIES_VARIABLES.length ? read(SERIES_VARIABLES[i], fallback) : fallback)),
  };
}

function forget(view) {
  if (view.chart) view.chart.destroy();
  views.delete(view);
}

// When the system switches between light and dark, redraw with the new colors.
if (window.matchMedia) {
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    for (const view of views) {
      if (view.selected === "chart" && view.result.isConnected) draw(view);
    }
  });
}

function field(label, control) {
  const wrapper = element("div", { className: "chart-field" });
  wrapper.append(label, control);
  return wrapper;
}

// An element with properties (or, for names with a dash and ARIA's role, attributes) and children.
function element(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (name.includes("-") || name === "role") el.setAttribute(name, value);
    else el[name] = value;
  }
  el.append(...children);
  return el;
}
