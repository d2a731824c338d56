// "Test this version against the last N runs" on endpoint and processor pages: a batch replay
// (POST /endpoint/<id>/replay or /admin/processor/<id>/replay, 202), its progress followed live by
// polling GET /replay/<id>, then its report (rendered by /ui/replays/<id>) in place. The page's
// URL gets ?batch=<id>, so a reload (after activating the deploy, say) shows the same report.
import { api, setStatus, showCodeError, showError } from "./api.js";
import { loadFragment } from "./fragments.js";
import { targetBody } from "./replay.js";

const POLL_MS = 250;

function reportUrl(batchId) {
  return `/ui/replays/${encodeURIComponent(batchId)}`;
}

// Follow a running report (an element .batch-report[data-state="running"]) until its batch ends,
// then put the finished report in its place.
export async function followBatch(report) {
  const batchId = report.dataset.batchId;
  const progress = report.querySelector("progress");
  const text = report.querySelector("[data-progress]");
  for (;;) {
    const answer = await api("GET", `/replay/${encodeURIComponent(batchId)}`);
    if (answer.status === 404) break; // gone (kept reports are bounded): the report page says so
    if (!answer.ok) {
      text.textContent = `the progress could not be read: ${answer.message}`;
    } else {
      const batch = answer.data;
      progress.max = Math.max(batch.total, 1);
      progress.value = batch.done;
      text.textContent = `${batch.done} of ${batch.total} runs done · ${batch.differ} differ · ${batch.errors} could not be replayed`;
      if (batch.state !== "running") break;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  try {
    report.replaceWith(await loadFragment(reportUrl(batchId), "batch-report"));
  } catch (error) {
    text.textContent = `the batch ended, but its report could not be shown: ${error.message}`;
  }
}

export function initBatches() {
  for (const report of document.querySelectorAll('.batch-report[data-state="running"]')) followBatch(report);

  for (const form of document.querySelectorAll("form.replay-batch")) {
    const limit = form.elements.limit;
    const button = form.querySelector('button[type="submit"]');
    const label = () => {
      button.textContent = `Test against the last ${limit.value || "N"} runs`;
    };
    limit.addEventListener("input", label);
    label();

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const editor = document.querySelector("form.processor");
      const choice = form.elements.target.value;
      const body = targetBody(choice, editor);
      body.limit = Number(limit.value);
      if (form.elements.outbound) body.outbound = form.elements.outbound.value;
      const kind = form.dataset.kind;
      const id = encodeURIComponent(form.dataset.subjectId);
      const url = kind === "endpoint" ? `/endpoint/${id}/replay` : `/admin/processor/${id}/replay`;
      const code = choice === "draft" && editor ? editor.elements.code : null;
      showCodeError(form, code, "");
      setStatus(form, "starting…");
      button.disabled = true;
      const answer = await api("POST", url, body);
      button.disabled = false;
      if (!answer.ok) {
        setStatus(form, "");
        return showCodeError(form, code, answer.message);
      }
      setStatus(form, "");
      const batchId = answer.data.id;
      window.history.replaceState(null, "", `${window.location.pathname}?batch=${encodeURIComponent(batchId)}`);
      const place = document.getElementById("batch-report");
      try {
        const report = await loadFragment(reportUrl(batchId), "batch-report");
        place.replaceWith(report);
        if (report.dataset.state === "running") await followBatch(report);
      } catch (error) {
        showError(form, `The test started (batch ${batchId}), but its report could not be shown: ${error.message}`);
      }
    });
  }

  // "Test" beside a deploy or version in a history: choose it in the batch form.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.test-version");
    if (!button) return;
    const form = document.querySelector("form.replay-batch");
    form.elements.target.value = button.dataset.choice;
    form.scrollIntoView({ block: "center" });
    form.elements.limit.focus();
  });
}
