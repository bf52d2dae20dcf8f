// The code editor: CodeMirror 6 over a textarea that stays the form's field.
//
// <textarea data-editor="postgres|mysql|python" data-schema-url="..."> becomes an editor; the
// textarea is hidden and kept in step, so the form posts (and htmx includes) what is typed, with
// or without this script. Ctrl+Enter (Cmd+Enter) submits the form (data-run-selection: with only
// the selection when there is one). Tab indents; Escape then Tab leaves the editor (the keyboard is never trapped).
// data-draft-url: the text is saved there as it is typed (a draft per user and integration).
//
// The editor lives in a shadow root: CodeMirror writes its styles at run time, and the page's
// Content-Security-Policy (style-src 'self') refuses <style> elements but not the constructed
// style sheets a shadow root adopts. Its theme reads the page's CSS variables, so light and
// dark follow the page.
import { EditorState, Compartment, Prec } from "@codemirror/state";
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection,
  highlightSpecialChars, placeholder as placeholderText,
} from "@codemirror/view";
import {
  defaultKeymap, history, historyKeymap, indentWithTab, temporarilySetTabFocusMode,
} from "@codemirror/commands";
import { bracketMatching, indentOnInput, syntaxHighlighting, HighlightStyle } from "@codemirror/language";
import { tags } from "@lezer/highlight";
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { search, searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { sql, PostgreSQL, MySQL, StandardSQL } from "@codemirror/lang-sql";
import { python } from "@codemirror/lang-python";
import { schemaData } from "./schema.js";

const DIALECTS = { postgres: PostgreSQL, mysql: MySQL, sql: StandardSQL };

// Colours from the page's variables (console.css defines them for light and dark).
const highlight = HighlightStyle.define([
  { tag: [tags.keyword, tags.operatorKeyword, tags.modifier], color: "var(--code-keyword)", fontWeight: "600" },
  { tag: [tags.string, tags.special(tags.string)], color: "var(--code-string)" },
  { tag: [tags.number, tags.bool, tags.null], color: "var(--code-number)" },
  { tag: [tags.comment, tags.lineComment, tags.blockComment], color: "var(--code-comment)", fontStyle: "italic" },
  { tag: [tags.function(tags.variableName), tags.standard(tags.name), tags.typeName], color: "var(--code-function)" },
  { tag: [tags.definition(tags.variableName), tags.className], color: "var(--code-definition)" },
  { tag: tags.invalid, color: "var(--bad)" },
]);

const theme = EditorView.theme({
  "&": { border: "1px solid var(--line)", borderRadius: "var(--radius)", background: "var(--panel)",
         color: "var(--ink)", fontSize: ".88rem" },
  "&.cm-focused": { outline: "2px solid var(--accent)", outlineOffset: "1px" },
  ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.5", minHeight: "8.5em", maxHeight: "60vh" },
  ".cm-content": { caretColor: "var(--ink)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--ink)" },
  ".cm-gutters": { background: "var(--bg)", color: "var(--muted)", borderRight: "1px solid var(--line)",
                   borderRadius: "var(--radius) 0 0 var(--radius)" },
  ".cm-activeLine, .cm-activeLineGutter": { background: "var(--code-active-line)" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": {
    background: "var(--code-selection) !important" },
  ".cm-matchingBracket": { background: "var(--code-selection)", outline: "1px solid var(--muted)" },
  ".cm-tooltip": { background: "var(--panel)", color: "var(--ink)", border: "1px solid var(--line)",
                   borderRadius: "var(--radius)" },
  ".cm-tooltip-autocomplete ul li[aria-selected]": { background: "var(--accent)", color: "var(--accent-ink)" },
  ".cm-completionDetail": { color: "var(--muted)", fontStyle: "normal", marginLeft: ".6em" },
  ".cm-panels": { background: "var(--bg)", color: "var(--ink)" },
  ".cm-panels.cm-panels-top": { borderBottom: "1px solid var(--line)" },
  ".cm-textfield, .cm-button": { font: "inherit", fontSize: ".85rem", color: "var(--ink)", background: "var(--panel)",
                                 border: "1px solid var(--line)", borderRadius: "4px" },
  ".cm-placeholder": { color: "var(--muted)" },
});
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

// The textarea's label names the editor (aria-label: an id cannot be referred to across the
// shadow root), and the hidden textarea keeps no label of its own.
function labelling(box) {
  const label = box.labels && box.labels[0];
  return { "aria-label": label ? label.textContent.trim() : "Code" };
}

function attach(box) {
  const language = new Compartment();
  const form = box.form;
  let draftTimer = null;

  const run = (view) => {
    if (!form) return false;
    const selection = view.state.selection.main;
    const whole = view.state.doc.toString();
    // In the console (data-run-selection) only the selection runs when there is one; the text stays.
    if (!selection.empty && "runSelection" in box.dataset) box.value = view.state.sliceDoc(selection.from, selection.to);
    const button = form.querySelector("button[type=submit]:not([formaction]), button:not([type])");
    form.requestSubmit(button || undefined);
    box.value = whole;
    return true;
  };

  const host = document.createElement("div");
  host.className = "editor-host editor-" + box.dataset.editor;
  box.after(host);
  const shadow = host.attachShadow({ mode: "open" });
  const view = new EditorView({
    root: shadow,
    parent: shadow,
    state: EditorState.create({
      doc: box.value,
      extensions: [
        // Escape: the next Tab moves focus out of the editor instead of indenting. Before every
        // other handler (completion's too), and not the last: Escape still closes completion.
        Prec.highest(keymap.of([{ key: "Escape", run: (v) => { temporarilySetTabFocusMode(v); return false; } }])),
        lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), drawSelection(),
        indentOnInput(), bracketMatching(), closeBrackets(), autocompletion({ activateOnTyping: true }),
        highlightActiveLine(), highlightSelectionMatches(), search({ top: true }),
        syntaxHighlighting(highlight), theme,
        placeholderText(box.getAttribute("placeholder") || ""),
        keymap.of([
          { key: "Mod-Enter", run, preventDefault: true },
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
        EditorView.contentAttributes.of({ "aria-multiline": "true", ...labelling(box) }),
      ],
    }),
  });
  box.editorView = view;
  box.classList.add("has-editor");
  box.setAttribute("tabindex", "-1");
  box.setAttribute("aria-hidden", "true");
  host.editorView = view;
  // The label names the editor now, and still leads to it.
  (box.labels ? [...box.labels] : []).forEach((label) => {
    label.removeAttribute("for");
    label.addEventListener("click", () => view.focus());
  });
  if (box.dataset.schemaUrl) {
    loadSchema(box, view, language);
    // A read finished (the panel says so with HX-Trigger), or another profile was chosen.
    document.addEventListener("schema-loaded", () => loadSchema(box, view, language));
    const profile = box.dataset.profileSelect ? document.querySelector(box.dataset.profileSelect) : null;
    if (profile) profile.addEventListener("change", () => loadSchema(box, view, language));
  }
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
  let url = box.dataset.schemaUrl;
  const profile = box.dataset.profileSelect ? document.querySelector(box.dataset.profileSelect) : null;
  if (profile) url += "?profile=" + encodeURIComponent(profile.value);
  schemaData(url).then((schema) => {
    if (schema) view.dispatch({ effects: language.reconfigure(languageFor(box, schema)) });
  });
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
