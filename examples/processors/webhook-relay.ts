// webhook-relay.ts: a webhook relay, for /processor/<id>/run_with_prelude.
//
// It takes a GitHub-style "push" webhook (see push-event.json), reshapes it into a short chat
// message and forwards that as JSON with fh.dispatch_request to `?target=<url-encoded URL>`, or to
// DEFAULT_TARGET when the query names none. The caller gets the target's answer: its status, its
// content type and its body. A body that is not a push event is answered 400 and not forwarded.
//
// The data plane's network policy applies to the target: loopback, private and link-local
// addresses are refused unless FFAAS_OUTBOUND_ALLOW lists them.

const DEFAULT_TARGET = "https://chat.example.com/hooks/ffaas";

// What the prelude gives a processor (types only: esbuild strips them at save time).
interface FhResponse {
  code: number;
  headers: Record<string, string[]>;
  body: string;
}
interface FhRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string[]>;
  body: string;
  version: string;
}
interface Fh {
  log(...values: unknown[]): void;
  dispatch_request(
    url: string,
    options: { method?: string; headers?: Record<string, string>; body?: string },
  ): Promise<FhResponse>;
  respond_with(response: { code: number; headers?: Record<string, string>; body?: string }): void;
}

interface PushEvent {
  ref: string;
  repository: { full_name: string };
  pusher: { name: string };
  commits: { id: string; message: string }[];
}
interface ChatMessage {
  text: string;
  repository: string;
  branch: string;
  commits: { sha: string; title: string }[];
}

function queryParameter(query: string, name: string): string | undefined {
  for (const pair of query.split("&")) {
    const [key, value = ""] = pair.split("=");
    if (decodeURIComponent(key) === name) return decodeURIComponent(value.replace(/\+/g, " "));
  }
  return undefined;
}

function asPushEvent(body: string): PushEvent | string {
  let event: any;
  try {
    event = JSON.parse(body);
  } catch (error) {
    return `the body is not JSON: ${(error as Error).message}`;
  }
  const valid =
    typeof event?.ref === "string" &&
    typeof event?.repository?.full_name === "string" &&
    typeof event?.pusher?.name === "string" &&
    Array.isArray(event?.commits);
  return valid ? (event as PushEvent) : "the body is not a push event (ref, repository, pusher, commits)";
}

function reshape(event: PushEvent): ChatMessage {
  const branch = event.ref.replace(/^refs\/heads\//, "");
  const count = event.commits.length;
  return {
    text: `${event.pusher.name} pushed ${count} commit${count === 1 ? "" : "s"} to ${event.repository.full_name}:${branch}`,
    repository: event.repository.full_name,
    branch,
    commits: event.commits.map((commit) => ({
      sha: commit.id.slice(0, 7),
      title: commit.message.split("\n")[0],
    })),
  };
}

async function main(fh: Fh, request: FhRequest): Promise<void> {
  const event = asPushEvent(request.body);
  if (typeof event === "string") {
    fh.log(`refused: ${event}`);
    fh.respond_with({
      code: 400,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ error: event }),
    });
    return;
  }
  const message = reshape(event);
  const target = queryParameter(request.query, "target") ?? DEFAULT_TARGET;
  fh.log(`relaying ${message.commits.length} commit(s) on ${message.branch} to ${target}`);
  const answer = await fh.dispatch_request(target, {
    method: "POST",
    headers: { "content-type": "application/json", "x-relayed-by": "ffaas" },
    body: JSON.stringify(message),
  });
  fh.log(`${target} answered ${answer.code}`);
  fh.respond_with({
    code: answer.code,
    headers: { "content-type": answer.headers["content-type"]?.[0] ?? "text/plain; charset=utf-8" },
    body: answer.body,
  });
}
