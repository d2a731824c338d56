// The processor page: a CodeMirror editor (JavaScript/TypeScript highlighting) in place of the
// code textarea, and saving through the API. esbuild's error ("code does not compile:
// <line>:<column>: <message>") is shown at its line: underlined, marked in the gutter, and
// written out under the line itself.
import { EditorView, basicSetup } from "codemirror";
import { javascript } from "@codemirror/lang-javascript";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { Compartment, StateEffect, StateField } from "@codemirror/state";
import { Decoration, WidgetType } from "@codemirror/view";
import { api, setStatus, showError } from "./api.js";

const COMPILE_ERROR = /^code does not compile: (\d+):(\d+): (.*)$/s;

class ErrorLine extends WidgetType {
  constructor(text) {
    super();
    this.text = text;
  }
  eq(other) {
    return other.text === this.text;
  }
  toDOM() {
    const element = document.createElement("div");
    element.className = "cm-compile-error";
    element.setAttribute("role", "alert");
    element.textContent = this.text;
    return element;
  }
}

const showErrorLine = StateEffect.define();
const errorLine = StateField.define({
  create: () => Decoration.none,
  update(decorations, transaction) {
    if (transaction.docChanged) decorations = Decoration.none;
    for (const effect of transaction.effects) {
      if (effect.is(showErrorLine)) {
        decorations = effect.value
          ? Decoration.set([
              Decoration.widget({ widget: new ErrorLine(effect.value.text), block: true, side: 1 }).range(effect.value.at),
            ])
          : Decoration.none;
      }
    }
    return decorations;
  },
  provide: (field) => EditorView.decorations.from(field),
});

function languageSupport(language) {
  return javascript({ typescript: language === "ts" });
}

function start() {
  const form = document.querySelector("form.processor");
  if (!form) return;
  const textarea = form.elements.code;
  const language = new Compartment();
  const view = new EditorView({
    doc: textarea.value,
    extensions: [
      basicSetup,
      language.of(languageSupport(form.elements.language.value)),
      lintGutter(),
      errorLine,
      EditorView.contentAttributes.of({ "aria-label": "Code" }),
      // The page's Content-Security-Policy admits only <style> elements with this response's nonce.
      EditorView.cspNonce.of(document.querySelector('meta[name="style-nonce"]')?.content || ""),
    ],
  });
  textarea.hidden = true;
  textarea.after(view.dom);
  view.dom.classList.add("code-editor");

  form.elements.language.addEventListener("change", () => {
    view.dispatch({ effects: language.reconfigure(languageSupport(form.elements.language.value)) });
  });

  function markError(message) {
    const found = COMPILE_ERROR.exec(message);
    if (!found) {
      view.dispatch(setDiagnostics(view.state, []), { effects: showErrorLine.of(null) });
      return showError(form, message);
    }
    const doc = view.state.doc;
    const line = doc.line(Math.min(Math.max(Number(found[1]), 1), doc.lines));
    const from = Math.min(line.from + Math.max(Number(found[2]) - 1, 0), line.to);
    const to = from < line.to ? from + 1 : from;
    const text = `Line ${line.number}, column ${found[2]}: ${found[3]}`;
    view.dispatch(setDiagnostics(view.state, [{ from, to, severity: "error", message: found[3] }]));
    view.dispatch({ effects: [showErrorLine.of({ at: line.to, text }), EditorView.scrollIntoView(from, { y: "center" })] });
    showError(form, text);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = {
      name: form.elements.name.value,
      language: form.elements.language.value,
      runtime: form.elements.runtime.value,
      code: view.state.doc.toString(),
    };
    const id = form.dataset.processorId;
    setStatus(form, "saving…");
    const answer = id
      ? await api("PUT", `/admin/processor/${encodeURIComponent(id)}`, fields)
      : await api("POST", "/admin/processor", fields);
    if (!answer.ok) {
      setStatus(form, "");
      return markError(answer.message);
    }
    view.dispatch(setDiagnostics(view.state, []), { effects: showErrorLine.of(null) });
    showError(form, "");
    if (!id) return window.location.assign(`/ui/processors/${encodeURIComponent(answer.data.id)}`);
    setStatus(form, "saved");
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
