// The Schema panel (integrations/_schema_panel.html): the filter narrows the tables, a table's
// arrow shows its columns (loaded by htmx on the first click), and a table's or column's name
// is inserted at the editor's cursor. One set of listeners on the document: the panel is swapped often.
const PLAIN = /^[a-z_][a-z0-9_$]*$/;

function quoted(name, style) {
  if (PLAIN.test(name)) return name;
  return style === "backtick" ? "`" + name.replace(/`/g, "``") + "`" : '"' + name.replace(/"/g, '""') + '"';
}

export function listenToSchemaPanels() {
  document.addEventListener("input", (event) => {
    const filter = event.target.closest(".schema-filter");
    if (!filter) return;
    const wanted = filter.value.trim().toLowerCase();
    const panel = filter.closest(".schema-panel");
    panel.querySelectorAll(".table-node").forEach((node) => {
      node.hidden = wanted !== "" && !node.dataset.name.includes(wanted);
    });
    // Schemas with a match open, so what was found shows.
    if (wanted) panel.querySelectorAll(".schema-node details").forEach((d) => {
      d.open = d.querySelector(".table-node:not([hidden])") !== null;
    });
  });
  document.addEventListener("click", (event) => {
    const expand = event.target.closest(".schema-panel .expand");
    if (expand) {
      const open = expand.getAttribute("aria-expanded") !== "true";
      expand.setAttribute("aria-expanded", String(open));
      const label = expand.getAttribute("aria-label") || "";
      expand.setAttribute("aria-label", open ? label.replace(/^Show/, "Hide") : label.replace(/^Hide/, "Show"));
      const columns = expand.parentElement.querySelector(".columns");
      if (columns) columns.hidden = !open;
      return;
    }
    const insert = event.target.closest(".schema-panel [data-insert]");
    if (!insert) return;
    const panel = insert.closest(".schema-panel");
    const style = panel.dataset.quote;
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
