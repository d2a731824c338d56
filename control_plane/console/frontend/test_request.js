// "Send a test request": the control plane sends it to the data plane (POST /ui/test-request)
// and answers with the run's conversation id; the page then opens that conversation.
import { api, setStatus, showError } from "./api.js";

function headerPairs(text) {
  const pairs = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon < 1) throw new Error(`not a header line (Name: value): ${line}`);
    pairs.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return pairs;
}

export function initTestRequest() {
  for (const form of document.querySelectorAll("form.test-request")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = form.elements;
      let headers;
      try {
        headers = headerPairs(fields.headers.value);
      } catch (error) {
        return showError(form, error.message);
      }
      const request = {
        target: form.dataset.target,
        id: form.dataset.targetId,
        method: fields.method.value,
        query: fields.query.value,
        headers,
        body: fields.body.value,
      };
      if (fields.path) request.path = fields.path.value;
      if (fields.entry) request.entry = fields.entry.value;
      showError(form, "");
      setStatus(form, "sending…");
      const answer = await api("POST", "/ui/test-request", request);
      if (!answer.ok) {
        setStatus(form, "");
        return showError(form, answer.message);
      }
      if (!answer.data.conversation_url) {
        setStatus(form, "");
        return showError(form, `The data plane answered ${answer.data.status} without a conversation: ${answer.data.body}`);
      }
      setStatus(form, `answered ${answer.data.status}; opening the conversation…`);
      window.location.assign(answer.data.conversation_url);
    });
  }
}
