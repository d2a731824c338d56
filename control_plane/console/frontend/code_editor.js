// The code editor of every `textarea.code-input` (the processor page's, and the draft of a
// conversation's "Replay against…"): CodeMirror with JavaScript/TypeScript highlighting that
// follows the form's language selector. The textarea stays in the form, hidden, and always holds
// the editor's text, so any script reads the code from it. A "compile-error" event on the textarea
// (detail: esbuild's message, or null to clear) shows "code does not compile: <line>:<column>:
// <message>" at its line: underlined, marked in the gutter, and written out under the line itself.
import { EditorView, basicSetup } from "codemirror";
import { javascript } from "@codemirror/lang-javascript";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { Compartment, StateEffect, StateField } from "@codemirror/state";
import { Decoration, WidgetType } from "@codemirror/view";
import { COMPILE_ERROR } from "./api.js";

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

export function mountCodeEditor(textarea) {
  const languageSelect = textarea.form ? textarea.form.elements.language : null;
  const language = new Compartment();
  const view = new EditorView({
    doc: textarea.value,
    extensions: [
      basicSetup,
      language.of(languageSupport(languageSelect ? languageSelect.value : "js")),
      lintGutter(),
      errorLine,
      EditorView.contentAttributes.of({ "aria-label": textarea.getAttribute("aria-label") || "Code" }),
      // The page's Content-Security-Policy admits only <style> elements with this response's nonce.
      EditorView.cspNonce.of(document.querySelector('meta[name="style-nonce"]')?.content || ""),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) textarea.value = update.state.doc.toString();
      }),
    ],
  });
  textarea.hidden = true;
  textarea.after(view.dom);
  view.dom.classList.add("code-editor");

  if (languageSelect) {
    languageSelect.addEventListener("change", () => {
      view.dispatch({ effects: language.reconfigure(languageSupport(languageSelect.value)) });
    });
  }

  textarea.addEventListener("compile-error", (event) => {
    const found = event.detail ? COMPILE_ERROR.exec(event.detail) : null;
    if (!found) {
      view.dispatch(setDiagnostics(view.state, []), { effects: showErrorLine.of(null) });
      return;
    }
    const doc = view.state.doc;
    const line = doc.line(Math.min(Math.max(Number(found[1]), 1), doc.lines));
    const from = Math.min(line.from + Math.max(Number(found[2]) - 1, 0), line.to);
    const to = from < line.to ? from + 1 : from;
    const text = `Line ${line.number}, column ${found[2]}: ${found[3]}`;
    view.dispatch(setDiagnostics(view.state, [{ from, to, severity: "error", message: found[3] }]));
    view.dispatch({ effects: [showErrorLine.of({ at: line.to, text }), EditorView.scrollIntoView(from, { y: "center" })] });
  });
  return view;
}
