// Live mode of the conversation list: follow GET /ui/conversations/stream from the page's cursor
// and put each new run at the top. Rows are filled with textContent only: a guest's data is text.
// EventSource reconnects by itself with Last-Event-ID, so nothing is lost or shown twice.

const MAX_ROWS = 500;

function fill(row, conversation) {
  const field = (name) => row.querySelector(`[data-field="${name}"]`);
  field("link").href = `/ui/conversations/${encodeURIComponent(conversation.id)}`;
  field("created_at").textContent = conversation.created_at;
  field("created_at").dateTime = conversation.created_at;
  field("outcome").textContent = conversation.outcome;
  field("outcome").classList.add(conversation.outcome === "completed" ? "outcome-ok" : "outcome-bad");
  field("status").textContent = String(conversation.status);
  field("status").classList.add(`status-${Math.floor(conversation.status / 100)}xx`);
  field("method").textContent = conversation.method || "";
  field("path").textContent = conversation.path || "";
  field("ran").textContent = conversation.ran || "";
  field("duration").textContent =
    typeof conversation.duration_ms === "number" ? `${conversation.duration_ms.toFixed(1)} ms` : "";
}

export function initLive() {
  const list = document.getElementById("conversation-list");
  const toggle = document.getElementById("live");
  if (!list || !toggle || !list.dataset.liveUrl) return;
  const body = list.querySelector("table.conversations tbody");
  const template = document.getElementById("conversation-row");
  const state = document.getElementById("live-state");
  const emptyNote = list.querySelector(".empty-note");
  let after = list.dataset.after;
  let source = null;

  function open() {
    const params = new URLSearchParams({ after });
    for (const [name, key] of [["endpoint_id", "endpointId"], ["processor_id", "processorId"], ["outcome", "outcome"]]) {
      if (list.dataset[key]) params.set(name, list.dataset[key]);
    }
    source = new EventSource(`${list.dataset.liveUrl}?${params}`);
    source.addEventListener("open", () => (state.textContent = "following new runs"));
    source.addEventListener("error", () => (state.textContent = "reconnecting…"));
    source.addEventListener("conversation", (event) => {
      const conversation = JSON.parse(event.data);
      after = event.lastEventId || after;
      if (body.querySelector(`tr[data-conversation-id="${CSS.escape(conversation.id)}"]`)) return;
      const row = template.content.firstElementChild.cloneNode(true);
      row.dataset.conversationId = conversation.id;
      row.classList.add("new");
      fill(row, conversation);
      body.prepend(row);
      if (emptyNote) emptyNote.hidden = true;
      while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
    });
  }

  function close() {
    if (source) source.close();
    source = null;
    state.textContent = "paused";
  }

  toggle.addEventListener("change", () => (toggle.checked ? open() : close()));
  if (toggle.checked) open();
}
