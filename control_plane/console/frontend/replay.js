// "Replay against…" on a conversation page: POST /conversation/<id>/replay with the chosen deploy,
// version or draft (the code editor's text), outbound mode and allow_truncated; the answer's replay
// is then shown beside the original in place (the comparison page's #comparison). A refusal is
// shown as the API words it: a draft's compile error at its line, a cut body's 409 with the
// allow_truncated choice made visible.
import { api, setStatus, showCodeError, showError } from "./api.js";
import { loadFragment } from "./fragments.js";

// The API's target fields for a choice: "deploy_id:<id>", "processor_version_id:<id>" or "draft"
// (the code, language and runtime of `draftForm`).
export function targetBody(choice, draftForm) {
  if (choice === "draft") {
    return {
      code: draftForm.elements.code.value,
      language: draftForm.elements.language.value,
      runtime: draftForm.elements.runtime.value,
    };
  }
  const colon = choice.indexOf(":");
  return { [choice.slice(0, colon)]: choice.slice(colon + 1) };
}

export function initReplay() {
  const form = document.querySelector("form.replay-form");
  if (!form) return;
  const choice = form.elements.target;
  const draft = form.querySelector("[data-draft]");
  const allowTruncated = form.querySelector("[data-allow-truncated]");
  const result = document.getElementById("replay-result");
  const button = form.querySelector('button[type="submit"]');
  const showDraft = () => {
    if (draft) draft.hidden = choice.value !== "draft";
  };
  choice.addEventListener("change", showDraft);
  showDraft();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = targetBody(choice.value, form);
    if (form.elements.outbound) body.outbound = form.elements.outbound.value;
    if (form.elements.allow_truncated.checked) body.allow_truncated = true;
    const code = choice.value === "draft" ? form.elements.code : null;
    showCodeError(form, form.elements.code, "");
    setStatus(form, "replaying…");
    button.disabled = true;
    const answer = await api("POST", `/conversation/${encodeURIComponent(form.dataset.conversationId)}/replay`, body);
    button.disabled = false;
    if (!answer.ok) {
      setStatus(form, "");
      if (answer.status === 409) allowTruncated.hidden = false;
      return showCodeError(form, code, answer.message);
    }
    const diff = answer.data.diff;
    setStatus(form, diff.differs ? `replayed: differs in ${diff.differs_in.join(", ")}` : "replayed: the same as the original");
    try {
      const shown = await loadFragment(`/ui/conversations/${encodeURIComponent(answer.data.conversation.id)}/compare`, "comparison");
      result.replaceChildren(shown);
      shown.scrollIntoView({ block: "start" });
    } catch (error) {
      showError(form, `The replay ran (conversation ${answer.data.conversation.id}), but its comparison could not be shown: ${error.message}`);
    }
  });
}
