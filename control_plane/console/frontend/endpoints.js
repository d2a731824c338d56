// Endpoint pages: create, deploy with upload progress (activated, or not: "Upload without
// activating"), roll back (also a processor's versions), edit the environment.
import { api, csrfToken, setStatus, showError } from "./api.js";

export function initCreateEndpoint() {
  const form = document.getElementById("create-endpoint");
  if (!form) return;
  const card = form.closest(".card");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await api("POST", "/endpoint", { name: form.elements.name.value });
    if (!answer.ok) return showError(card, answer.message);
    window.location.assign(`/ui/endpoints/${encodeURIComponent(answer.data.id)}`);
  });
}

export function initDeploy() {
  const form = document.querySelector("form.deploy");
  if (!form) return;
  const progress = form.querySelector("progress");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = form.elements.module.files[0];
    if (!file) return showError(form, "Choose a .wasm file first.");
    showError(form, "");
    const activate = !(event.submitter && event.submitter.name === "inactive");
    const request = new XMLHttpRequest();
    const query = activate ? "" : "?activate=false";
    request.open("POST", `/endpoint/${encodeURIComponent(form.dataset.endpointId)}/deploy${query}`);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.setRequestHeader("X-CSRF-Token", csrfToken());
    progress.hidden = false;
    progress.value = 0;
    request.upload.addEventListener("progress", (progressEvent) => {
      if (progressEvent.lengthComputable) {
        progress.value = Math.round((100 * progressEvent.loaded) / progressEvent.total);
        setStatus(form, `uploading ${progress.value}%`);
      }
    });
    request.upload.addEventListener("load", () => setStatus(form, "uploaded; validating and deploying…"));
    request.addEventListener("load", () => {
      if (request.status === 201) {
        progress.value = 100;
        setStatus(form, activate ? "deployed" : "uploaded, not active");
        window.location.reload();
        return;
      }
      let message = `${request.status} ${request.responseText.slice(0, 200)}`;
      try {
        message = JSON.parse(request.responseText).message || message;
      } catch {}
      setStatus(form, "");
      showError(form, message);
    });
    request.addEventListener("error", () => showError(form, "the upload failed: the control plane did not answer"));
    request.send(file);
  });
}

// Roll back (activate) an endpoint's deploy or a processor's version: buttons in a history or in a
// batch report (which may arrive after the page loaded, hence one listener for the document).
export function initRollback() {
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.rollback");
    if (!button) return;
    button.disabled = true;
    const { endpointId, deployId, processorId, versionId } = button.dataset;
    const answer = endpointId
      ? await api("POST", `/endpoint/${encodeURIComponent(endpointId)}/rollback`, { deploy_id: deployId })
      : await api("POST", `/admin/processor/${encodeURIComponent(processorId)}/rollback`, { version_id: versionId });
    if (!answer.ok) {
      button.disabled = false;
      return showError(button.closest(".card, .batch-report"), answer.message);
    }
    window.location.reload();
  });
}

export function initEnvironment() {
  const form = document.querySelector("form.env");
  if (!form) return;
  const rows = form.querySelector(".env-rows");
  const template = form.querySelector("template.env-row-template");
  form.querySelector(".add-row").addEventListener("click", () => {
    rows.append(template.content.cloneNode(true));
    rows.lastElementChild.querySelector("input").focus();
  });
  rows.addEventListener("click", (event) => {
    const remove = event.target.closest(".remove-row");
    if (remove) remove.closest(".env-row").remove();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const env = {};
    for (const row of rows.querySelectorAll(".env-row")) {
      const name = row.querySelector('[name="env-name"]').value.trim();
      if (name) env[name] = row.querySelector('[name="env-value"]').value;
    }
    setStatus(form, "saving…");
    const answer = await api("PUT", `/endpoint/${encodeURIComponent(form.dataset.endpointId)}/env`, env);
    setStatus(form, answer.ok ? "saved" : "");
    showError(form, answer.ok ? "" : answer.message);
  });
}
