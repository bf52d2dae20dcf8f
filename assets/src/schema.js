// The Schema panel (integrations/_schema_panel.html) and the schema the editor completes from.
//
// Both read the schema as last read by a worker, as JSON (schema.json), fetched once per URL
// until a new read finishes (the panel's "schema-loaded" event). The panel lists the tables
// itself, 200 at a time ("Show more"), so thousands of tables cost the page little; a table's
// arrow shows its columns; the filter narrows the tables; clicking a table's or a column's
// name inserts it at the editor's cursor.
const PAGE = 200;
const PLAIN = /^[a-z_][a-z0-9_$]*$/;
const fetched = new Map();

export function schemaData(url) {
  if (!fetched.has(url)) {
    fetched.set(url, fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null)).catch(() => null));
  }
  return fetched.get(url);
}

function quoted(name, style) {
  if (PLAIN.test(name)) return name;
  return style === "backtick" ? "`" + name.replace(/`/g, "``") + "`" : '"' + name.replace(/"/g, '""') + '"';
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function tableNode(schema, table) {
  const node = element("li", { class: "table-node" });
  node.append(element("button", { type: "button", class: "expand", "aria-expanded": "false",
                                   "aria-label": `Show columns of ${table.name}` }));
  const insert = element("button", { type: "button", class: "insert", "data-insert": table.name }, table.name);
  if (!schema.default) insert.dataset.insertSchema = schema.name;
  node.append(insert);
  if (table.kind === "view") node.append(element("span", { class: "muted small" }, " view"));
  node.schemaTable = table;
  return node;
}

function columnsOf(table) {
  const list = element("ul", { class: "columns" });
  for (const column of table.columns) {
    const item = element("li");
    item.append(element("button", { type: "button", class: "insert", "data-insert": column.name }, column.name), " ",
                element("span", { class: "type" }, column.type));
    if (column.pk) item.append(" ", element("span", { class: "pk", title: "Primary key" }, "PK"));
    list.append(item);
  }
  return list;
}

// One schema's tables matching the filter, PAGE at a time.
function fill(list, schema, wanted, shown = 0) {
  const matching = wanted ? schema.tables.filter((t) => t.name.toLowerCase().includes(wanted)) : schema.tables;
  if (shown === 0) list.replaceChildren();
  list.querySelector(":scope > .more")?.remove();
  for (const table of matching.slice(shown, shown + PAGE)) list.append(tableNode(schema, table));
  const left = matching.length - (shown + PAGE);
  if (left > 0) {
    const more = element("li", { class: "more" });
    const button = element("button", { type: "button", class: "small" }, `Show ${left.toLocaleString()} more`);
    button.addEventListener("click", () => fill(list, schema, wanted, shown + PAGE));
    more.append(button);
    list.append(more);
  }
  return matching.length;
}

function render(panel, data) {
  const tree = panel.querySelector(".schema-tree");
  const filter = panel.querySelector(".schema-filter");
  if (!tree || !data) return;
  const wanted = () => (filter ? filter.value.trim().toLowerCase() : "");
  const lists = [];
  tree.replaceChildren();
  for (const schema of data.schemas) {
    const node = element("li", { class: "schema-node" });
    const details = element("details");
    if (schema.default || data.schemas.length === 1) details.open = true;
    const summary = element("summary");
    summary.append(element("span", { class: "schema-name" }, schema.name), " ",
                   element("span", { class: "muted count" }, String(schema.tables.length)));
    const list = element("ul", { class: "table-list" });
    details.append(summary, list);
    node.append(details);
    tree.append(node);
    lists.push([list, schema, details]);
  }
  if (!data.schemas.length) tree.append(element("li", { class: "muted" }, "No tables or views you may use."));
  if (data.truncated) {
    tree.before(element("p", { class: "alert alert-warning" },
                        "Only the first 100,000 columns were read: the schema is very large."));
  }
  const refill = () => {
    for (const [list, schema, details] of lists) {
      const count = fill(list, schema, wanted());
      if (wanted()) details.open = count > 0; // schemas with a match open, so what was found shows
    }
  };
  refill();
  if (filter) filter.addEventListener("input", refill);
}

export function enhanceSchemaPanels(root) {
  const panels = root.querySelectorAll ? root.querySelectorAll(".schema-panel[data-schema-url]") : [];
  for (const panel of [...panels, ...(root.matches && root.matches(".schema-panel[data-schema-url]") ? [root] : [])]) {
    if (panel.dataset.rendered) continue;
    panel.dataset.rendered = "1";
    schemaData(panel.dataset.schemaUrl).then((data) => render(panel, data));
  }
}

export function listenToSchemaPanels() {
  // A new read finished: what was fetched is stale (registered before any editor's listener).
  document.addEventListener("schema-loaded", () => fetched.clear());
  document.addEventListener("click", (event) => {
    const expand = event.target.closest(".schema-panel .expand");
    if (expand) {
      const node = expand.parentElement;
      const open = expand.getAttribute("aria-expanded") !== "true";
      expand.setAttribute("aria-expanded", String(open));
      expand.setAttribute("aria-label", `${open ? "Hide" : "Show"} columns of ${node.schemaTable.name}`);
      if (open) node.append(columnsOf(node.schemaTable));
      else node.querySelector(".columns")?.remove();
      return;
    }
    const insert = event.target.closest(".schema-panel [data-insert]");
    if (!insert) return;
    const style = insert.closest(".schema-panel").dataset.quote;
    const box = document.querySelector("textarea[data-editor][data-run-selection]");
    if (!box) return;
    let text = quoted(insert.dataset.insert, style);
    if (insert.dataset.insertSchema) text = quoted(insert.dataset.insertSchema, style) + "." + text;
    if (box.editorView) {
      box.dispatchEvent(new CustomEvent("editor:insert", { detail: { text } }));
    } else {
      box.setRangeText(text, box.selectionStart, box.selectionEnd, "end");
      box.focus();
    }
  });
}
