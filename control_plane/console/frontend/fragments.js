// Parts of console pages rendered by the control plane (autoescaped templates), put into the page
// in place: a replay's comparison, a batch's report, a refreshed version history. The HTML is
// parsed inertly (DOMParser runs no script) and the page's policy admits no inline script anyway.

export async function loadFragment(url, id) {
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  } catch (error) {
    throw new Error(`the control plane did not answer: ${error}`);
  }
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const found = page.getElementById(id);
  if (!response.ok || !found) {
    const said = page.querySelector("main .error");
    throw new Error(said ? said.textContent : `${response.status} loading ${url}`);
  }
  return document.importNode(found, true);
}

// Replace the elements with these ids by their current version from this page's URL.
export async function refreshParts(ids) {
  const present = ids.filter((id) => document.getElementById(id));
  if (!present.length) return;
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const id of present) {
    const fresh = page.getElementById(id);
    if (fresh) document.getElementById(id).replaceWith(document.importNode(fresh, true));
  }
}
