// The code editor: CodeMirror 6 over a textarea that stays the form's field.
//
// <textarea data-editor="postgres|mysql|python" data-schema-url="..."> becomes an editor; the
// textarea is hidden and kept in step, so the form posts (and htmx includes) what is typed, with
// or without this script. Ctrl+Enter (Cmd+Enter) submits the form, with only the selection when
// there is one. Tab indents; Escape then Tab leaves the editor (the keyboard is never trapped).
// data-draft-url: the text is saved there as it is typed (a draft per user and integration).
import { EditorState, Compartment } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection,
  highlightSpecialChars, placeholder as placeholderText,
} from "@codemirror/view";
import {
  defaultKeymap, history, historyKeymap, indentWithTab, temporarilySetTabFocusMode, simplifySelection,
} from "@codemirror/commands";
import { bracketMatching, indentOnInput, syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { search, searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { sql, PostgreSQL, MySQL, StandardSQL } from "@codemirror/lang-sql";
import { python } from "@codemirror/lang-python";

const DIALECTS = { postgres: PostgreSQL, mysql: MySQL, sql: StandardSQL };
const DRAFT_DELAY_MS = 600;

export function enhanceEditors(root) {
  const boxes = root.querySelectorAll ? root.querySelectorAll("textarea[data-editor]") : [];
  boxes.forEach((box) => { if (!box.editorView) attach(box); });
  if (root.matches && root.matches("textarea[data-editor]") && !root.editorView) attach(root);
}

// The schema as lang-sql's completion wants it: {schema: {table: [columns]}, table: [columns]}.
export function completionSchema(schema) {
  const namespace = {};
  let defaultSchema;
  for (const s of (schema && schema.schemas) || []) {
    const tables = {};
    for (const t of s.tables) {
      const columns = t.columns.map((c) => ({ label: c.name, type: "property", detail: c.type }));
      tables[t.name] = columns;
      if (s.default) namespace[t.name] = columns; // unqualified names, as the session's search_path finds them
    }
    namespace[s.name] = tables;
    if (s.default) defaultSchema = s.name;
  }
  return { namespace, defaultSchema };
}

function languageFor(box, schema) {
  const kind = box.dataset.editor;
  if (kind === "python") return python();
  const { namespace, defaultSchema } = completionSchema(schema);
  return sql({ dialect: DIALECTS[kind] || StandardSQL, schema: namespace, defaultSchema, upperCaseKeywords: false });
}

function attach(box) {
  const language = new Compartment();
  const form = box.form;
  let draftTimer = null;

  const run = (view) => {
    if (!form) return false;
    const selection = view.state.selection.main;
    const whole = view.state.doc.toString();
    // Only the selection is run when there is one; the text stays as typed.
    if (!selection.empty) box.value = view.state.sliceDoc(selection.from, selection.to);
    const button = form.querySelector("button[type=submit]:not([formaction]), button:not([type])");
    form.requestSubmit(button || undefined);
    box.value = whole;
    return true;
  };

  const view = new EditorView({
    state: EditorState.create({
      doc: box.value,
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), drawSelection(),
        indentOnInput(), bracketMatching(), closeBrackets(), autocompletion({ activateOnTyping: true }),
        highlightActiveLine(), highlightSelectionMatches(), search({ top: true }),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        placeholderText(box.getAttribute("placeholder") || ""),
        keymap.of([
          { key: "Mod-Enter", run, preventDefault: true },
          // Escape: Tab then moves focus out of the editor instead of indenting.
          { key: "Escape", run: (v) => { simplifySelection(v); return temporarilySetTabFocusMode(v); } },
          ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...completionKeymap,
          indentWithTab,
        ]),
        language.of(languageFor(box, null)),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          box.value = update.state.doc.toString();
          box.dispatchEvent(new Event("input", { bubbles: true }));
          if (box.dataset.draftUrl) {
            clearTimeout(draftTimer);
            draftTimer = setTimeout(() => saveDraft(box), DRAFT_DELAY_MS);
          }
        }),
        EditorView.contentAttributes.of({
          "aria-label": box.labels && box.labels[0] ? box.labels[0].textContent.trim() : "Code",
          "aria-multiline": "true",
        }),
      ],
    }),
  });
  box.editorView = view;
  box.classList.add("has-editor");
  box.setAttribute("tabindex", "-1");
  box.setAttribute("aria-hidden", "true");
  box.after(view.dom);
  view.dom.classList.add("editor", "editor-" + box.dataset.editor);
  // The label still leads to the editor.
  if (box.id) {
    document.querySelectorAll(`label[for="${box.id}"]`).forEach((label) =>
      label.addEventListener("click", () => view.focus()));
  }
  if (box.dataset.schemaUrl) loadSchema(box, view, language);
  // What other parts of the page may ask of the editor (the schema panel inserts names).
  box.addEventListener("editor:insert", (event) => {
    const text = event.detail.text;
    const { from, to } = view.state.selection.main;
    view.dispatch({ changes: { from, to, insert: text }, selection: { anchor: from + text.length } });
    view.focus();
  });
  box.addEventListener("editor:set", (event) => {
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: event.detail.text } });
  });
  box.addEventListener("editor:schema", (event) => {
    view.dispatch({ effects: language.reconfigure(languageFor(box, event.detail.schema)) });
  });
}

function loadSchema(box, view, language) {
  fetch(box.dataset.schemaUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : null))
    .then((schema) => { if (schema) view.dispatch({ effects: language.reconfigure(languageFor(box, schema)) }); })
    .catch(() => {});
}

function csrfToken() {
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

function saveDraft(box) {
  const body = new URLSearchParams({ text: box.value });
  fetch(box.dataset.draftUrl, {
    method: "POST", body, credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/x-www-form-urlencoded" },
  }).catch(() => {});
}
