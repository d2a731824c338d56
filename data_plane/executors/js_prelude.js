// The FFAAS processor prelude, evaluated in every fresh context before the processor's code.
//
// Host functions (installed by the executor, removed from the global object here):
//   __ffaas_log(text)           -> records a `log` item
//   __ffaas_dispatch(json)      -> Promise<json>: sends an outbound request, records it
// Defines `console` for every run, and `__ffaas_run(request, withPrelude)`, which calls the
// processor's `main` (with `fh` when withPrelude) and returns what the executor needs as JSON.
// Evaluated by both runtimes: V8 (`executors/js_v8.py`) and quickjs in wasm (`engines/quickjs/ffaas_js.c`
// embeds this file); on both, `__ffaas_dispatch` returns at once with a Promise of the answer.
(() => {
  const host = { log: globalThis.__ffaas_log, dispatch: globalThis.__ffaas_dispatch };
  delete globalThis.__ffaas_log;
  delete globalThis.__ffaas_dispatch;

  const show = (value) => {
    if (typeof value === "string") return value;
    if (value instanceof Error) {
      // "Name: message" and then the frames, on both runtimes (V8's stack starts with the first,
      // quickjs's holds only the frames).
      const head = String(value);
      const stack = typeof value.stack === "string" ? value.stack.replace(/\n$/, "") : "";
      if (stack.startsWith(head)) return stack;
      return stack ? `${head}\n${stack}` : head;
    }
    try {
      const text = JSON.stringify(value);
      return text === undefined ? String(value) : text;
    } catch (error) {
      return String(value);
    }
  };

  // The host counts what is logged and cuts it at FFAAS_MAX_LOG_BYTES.
  const log = (...values) => {
    host.log(values.map(show).join(" "));
  };
  const console = { log, info: log, warn: log, error: log, debug: log, trace: log };
  Object.defineProperty(globalThis, "console", { value: console, writable: true, configurable: true });

  const state = { responded: null, lastDispatched: null };

  const dispatch_request = async (url, options = {}) => {
    const request = {
      url: String(url),
      method: options.method === undefined ? "GET" : String(options.method),
      headers: options.headers === undefined ? {} : options.headers,
      body: options.body === undefined || options.body === null ? null : show(options.body),
    };
    const answer = JSON.parse(await host.dispatch(JSON.stringify(request)));
    if (answer.error !== undefined) throw new Error(answer.error);
    state.lastDispatched = answer.response;
    return answer.response;
  };

  Object.defineProperty(globalThis, "__ffaas_run", {
    value: async (request, withPrelude) => {
      if (typeof main !== "function") {
        throw new Error("the processor does not define a function main()");
      }
      const fh = Object.freeze({
        log,
        dispatch_request,
        get_request: () => request,
        respond_with: (response) => {
          state.responded = response;
        },
      });
      const value = withPrelude ? await main(fh, request) : await main(request);
      return JSON.stringify({
        has_value: value !== undefined && value !== null,
        value: value === undefined ? null : value,
        responded: state.responded,
        last_dispatched: state.lastDispatched,
      });
    },
  });
})();
