// Pages with code (a processor, and a processor run's conversation with its draft replay): every
// `textarea.code-input` becomes a CodeMirror editor (code_editor.js). On the processor page the
// form saves through the API, and esbuild's error is shown at its line.
import { mountCodeEditor } from "./code_editor.js";
import { api, setStatus, showCodeError } from "./api.js";
import { refreshParts } from "./fragments.js";

function initProcessorForm() {
  const form = document.querySelector("form.processor");
  if (!form) return;
  const textarea = form.elements.code;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = {
      name: form.elements.name.value,
      language: form.elements.language.value,
      runtime: form.elements.runtime.value,
      code: textarea.value,
    };
    const id = form.dataset.processorId;
    setStatus(form, "saving…");
    const answer = id
      ? await api("PUT", `/admin/processor/${encodeURIComponent(id)}`, fields)
      : await api("POST", "/admin/processor", fields);
    if (!answer.ok) {
      setStatus(form, "");
      return showCodeError(form, textarea, answer.message);
    }
    showCodeError(form, textarea, "");
    if (!id) return window.location.assign(`/ui/processors/${encodeURIComponent(answer.data.id)}`);
    setStatus(form, "saved");
    // A save is a new version: the history and the batch test's choices list it now.
    await refreshParts(["versions", "batch-targets"]);
  });
}

function start() {
  for (const textarea of document.querySelectorAll("textarea.code-input")) mountCodeEditor(textarea);
  initProcessorForm();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
