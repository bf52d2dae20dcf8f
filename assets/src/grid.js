// The result grid: sorting, filtering and expanding cells of a result table.
//
// templates/integrations/_query_run.html renders each statement's rows as a plain <table class="result">
// that works without this script. The server marks the cells (integrations/templatetags/cells.py):
// the cells of a numeric column have class "num", NULL is <td class="null">, a cell over 80
// characters is <td class="long">. Here a numeric column's header gets "num" too (right-aligned
// like its numbers), NULL its title, and each header becomes a sort button (ascending, then
// descending, then the original order; NULLs last both ways), a Filter box above the table hides
// the rows whose cells do not contain its text, and a long cell expands on click or Enter.
// gridOf(table) is the grid's state for the Chart tab (assets/src/chart.js): its columns and the
// rows shown, in the order shown.

// "item2" before "item10"; case and accents aside, as people read a list.
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
const ARROWS = { ascending: "▲", descending: "▼" };
const NEXT_DIRECTION = { none: "ascending", ascending: "descending", descending: "none" };
let gridCount = 0;

export function enhanceGrids(root) {
  const tables = root.querySelectorAll ? root.querySelectorAll("table.result") : [];
  tables.forEach((table) => gridOf(table));
  if (root.matches && root.matches("table.result")) gridOf(root);
}

// The grid of a result table, set up on first use.
export function gridOf(table) {
  if (!table.grid) table.grid = attach(table);
  return table.grid;
}

function attach(table) {
  const tbody = table.tBodies[0];
  const headers = Array.from(table.tHead.rows[0].cells).slice(1); // the first is the row number
  // The "No rows." row is not a row of the result.
  const rows = Array.from(tbody.rows).filter((row) => !row.classList.contains("no-rows"));
  const grid = {
    table,
    rows,
    // The server marks every cell of a numeric column, NULLs included: the first row tells.
    columns: headers.map((th, i) => ({
      name: th.textContent,
      numeric: rows.length > 0 && rows[0].cells[i + 1].classList.contains("num"),
    })),
    sort: { column: -1, direction: "none" },
    query: "",
    count: null,
    // The rows shown (not hidden by the filter), in the order shown.
    shown() { return Array.from(tbody.rows).filter((row) => !row.hidden && !row.classList.contains("no-rows")); },
    // A row's cells as values: a string, or null for NULL.
    values(row) {
      return Array.from(row.cells).slice(1).map((td) => (td.classList.contains("null") ? null : td.textContent));
    },
  };
  if (!grid.rows.length) return grid;
  gridCount += 1;
  grid.columns.forEach((column, i) => headers[i].classList.toggle("num", column.numeric));
  tbody.querySelectorAll("td.null").forEach((td) => { td.title = "NULL (no value)"; });

  headers.forEach((th, index) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort-button";
    button.append(...th.childNodes);
    const arrow = document.createElement("span");
    arrow.className = "sort-arrow";
    arrow.setAttribute("aria-hidden", "true");
    button.append(arrow);
    th.append(button);
    button.addEventListener("click", () => {
      const direction = grid.sort.column === index ? NEXT_DIRECTION[grid.sort.direction] : "ascending";
      sortBy(grid, headers, index, direction);
    });
  });

  const tools = document.createElement("div");
  tools.className = "grid-tools";
  const label = document.createElement("label");
  label.textContent = "Filter";
  label.htmlFor = `grid-filter-${gridCount}`;
  const input = document.createElement("input");
  input.type = "search";
  input.id = label.htmlFor;
  input.className = "grid-filter";
  input.autocomplete = "off";
  input.spellcheck = false;
  grid.count = document.createElement("span");
  grid.count.className = "grid-count";
  grid.count.setAttribute("aria-live", "polite");
  tools.append(label, input, grid.count);
  const scroll = table.closest(".result-scroll") || table;
  scroll.before(tools);
  input.addEventListener("input", () => filterBy(grid, input.value));
  showCount(grid, grid.rows.length);

  tbody.querySelectorAll("td.long").forEach((td) => {
    td.tabIndex = 0;
    td.title = "Click to show it all";
  });
  tbody.addEventListener("click", (event) => {
    const td = event.target.closest("td.long");
    // Selecting text to copy it is not a click on the cell.
    if (td && document.getSelection().isCollapsed) toggle(td);
  });
  tbody.addEventListener("keydown", (event) => {
    const td = event.target.closest("td.long");
    if (td && event.key === "Enter") {
      event.preventDefault();
      toggle(td);
    }
  });
  return grid;
}

function toggle(td) {
  const expanded = td.classList.toggle("expanded");
  td.title = expanded ? "Click to cut it short" : "Click to show it all";
}

function sortBy(grid, headers, index, direction) {
  grid.sort = { column: index, direction };
  headers.forEach((th, i) => {
    const sorted = i === index && direction !== "none";
    if (sorted) th.setAttribute("aria-sort", direction);
    else th.removeAttribute("aria-sort");
    th.querySelector(".sort-arrow").textContent = sorted ? ARROWS[direction] : "";
  });
  const order = grid.rows.map((row, position) => ({ row, position }));
  if (direction !== "none") {
    const numeric = grid.columns[index].numeric;
    const sign = direction === "ascending" ? 1 : -1;
    for (const item of order) {
      const td = item.row.cells[index + 1];
      const text = td.classList.contains("null") ? null : td.textContent;
      item.key = text === null ? null : numeric ? Number(text) : text;
    }
    const compare = numeric ? compareNumbers : collator.compare;
    order.sort((a, b) => {
      if (a.key === null || b.key === null) {
        // NULLs last, whichever the direction; among themselves, in their original order.
        return (a.key === null) - (b.key === null) || a.position - b.position;
      }
      return sign * compare(a.key, b.key) || a.position - b.position;
    });
  }
  grid.table.tBodies[0].append(...order.map((item) => item.row));
  changed(grid);
}

// As PostgreSQL orders floats: NaN above every number, Infinity included.
function compareNumbers(a, b) {
  if (a === b) return 0;
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
  if (Number.isNaN(b)) return -1;
  return a < b ? -1 : 1;
}

function filterBy(grid, query) {
  grid.query = query.trim().toLowerCase();
  let shown = 0;
  for (const row of grid.rows) {
    if (row.filterText === undefined) {
      row.filterText = Array.from(row.cells).slice(1).map((td) => td.textContent).join("\u0000").toLowerCase();
    }
    row.hidden = grid.query !== "" && !row.filterText.includes(grid.query);
    if (!row.hidden) shown += 1;
  }
  showCount(grid, shown);
  changed(grid);
}

function showCount(grid, shown) {
  const total = grid.rows.length;
  grid.count.textContent = `${shown} of ${total} row${total === 1 ? "" : "s"}`;
}

function changed(grid) {
  grid.table.dispatchEvent(new CustomEvent("grid:change", { bubbles: true }));
}
