// Calls to the control plane's JSON API from a console page: same origin, the session cookie,
// and the session's CSRF token on every write. Errors come back as the API's {code, message}.

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrfToken() };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    return { ok: false, status: 0, data: null, message: `the control plane did not answer: ${error}` };
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const message = data && typeof data.message === "string" ? data.message : `${response.status} ${text.slice(0, 200)}`;
  return { ok: response.ok, status: response.status, data, message };
}

// Show `message` in the form's [data-error] element (as text: it may quote user input).
export function showError(container, message) {
  const box = container.querySelector("[data-error]");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

export function setStatus(container, text) {
  const status = container.querySelector("[data-status]");
  if (status) status.textContent = text;
}

// esbuild's refusal of code, as the API words it (400 on a save or a draft replay).
export const COMPILE_ERROR = /^code does not compile: (\d+):(\d+): (.*)$/s;

// Show an API error about `textarea`'s code: at its line in the code editor (a "compile-error"
// event, see code_editor.js) and, readable, in the form's [data-error]. "" clears both.
export function showCodeError(form, textarea, message) {
  if (textarea) textarea.dispatchEvent(new CustomEvent("compile-error", { detail: message || null }));
  const found = message ? COMPILE_ERROR.exec(message) : null;
  showError(form, found ? `Line ${found[1]}, column ${found[2]}: ${found[3]}` : message);
}
