// The engine worker of runtime "v8" processors: one Node.js process, supervised by the data plane
// (data_plane/runtime/v8_engines.py), running processor code in isolated-vm isolates.
//
// Invariants:
// - Every run gets a FRESH CONTEXT (its own global object) with the prelude evaluated in it: nothing
//   a run leaves behind is visible to another run.  A context lives in an isolate the run holds
//   alone until it ends (runs waiting on outbound requests included), so one run's memory or time
//   never counts against another's; isolates are kept idle between runs and reused (an isolate costs
//   ~1 ms to make, a context ~0.3 ms).
// - Each isolate's heap (and the external memory of its ArrayBuffers) is capped at `memoryMiB`.
//   Memory that escapes that cap (one huge allocation aborts V8, WebAssembly.Memory) is capped for
//   the whole process by the supervisor's RLIMIT_DATA: the process may die, never the data plane.
// - A run that has not settled at its deadline (a loop in a continuation, an endless microtask
//   chain, a promise that never settles) gets its isolate disposed (isolates run on their own
//   threads, so this main thread is always free to do it) and is answered `timed_out`.  An
//   isolate that was disposed or hit its memory limit is never reused.
// - Compiled code is kept per isolate, keyed by the source's hash: a script compiled in an isolate
//   can run in any of its contexts.
//
// Protocol: newline-delimited JSON on stdin (from the data plane) and stdout (to it).
//   in:  {"t":"run","id":N,"hash":H,"src":S,"req":JSON,"pre":bool,"timeout":ms,"maxLog":bytes}
//        {"t":"answer","id":N,"ticket":K,"json":JSON}       the answer to a dispatch
//        {"t":"cancel","id":N}                               the data plane gave up on the run
//   out: {"t":"ready","pid":P}                               once, at start
//        {"t":"log","id":N,"text":T}                         as the run logs (in call order with dispatches)
//        {"t":"dispatch","id":N,"ticket":K,"json":JSON}      an outbound request
//        {"t":"done","id":N,"result":JSON}                   what __ffaas_run produced
//        {"t":"fail","id":N,"kind":K,"message":M,"stack":S}  kind: syntax_error|threw|out_of_memory|timed_out|engine
// Arguments: worker.js <prelude.js path> <memory MiB> [idle isolates kept]
"use strict";

const fs = require("fs");
const readline = require("readline");
const ivm = require("isolated-vm");

const [preludePath, memoryArg, idleArg] = process.argv.slice(2);
const PRELUDE = fs.readFileSync(preludePath, "utf8");
const MEMORY_MIB = Math.max(8, Number(memoryArg) || 128); // isolated-vm's minimum is 8 MB
const IDLE_KEPT = Number(idleArg) || 4;
const SCRIPTS_KEPT = 64; // compiled processors kept per isolate
// Before the prelude, the host functions as it expects them:
// - `__ffaas_dispatch` returns a Promise of the answer, over the run's reference to its dispatch
//   function in this process (callbacks cannot return promises; references can);
// - `__ffaas_log` stops sending lines once they passed the run's log budget (FFAAS_MAX_LOG_BYTES,
//   counted in UTF-16 units, never more than its UTF-8 bytes: the data plane, which counts bytes and
//   writes the cut notice, would drop every line not sent), so a processor logging in a loop cannot
//   flood this process or the data plane.
const BOOT = `(() => {
  const ref = globalThis.__ffaas_dispatch_ref;
  const send = globalThis.__ffaas_log_callback;
  let left = globalThis.__ffaas_log_budget;
  delete globalThis.__ffaas_dispatch_ref;
  delete globalThis.__ffaas_log_callback;
  delete globalThis.__ffaas_log_budget;
  globalThis.__ffaas_dispatch = (json) =>
    ref.apply(undefined, [String(json)], { result: { promise: true, copy: true } });
  globalThis.__ffaas_log = (text) => {
    if (left < 0) return;
    text = String(text);
    left -= text.length;
    send(text);
  };
})();
`;

const OUT_OF_MEMORY = /allocation failed|could not allocate|out of memory/i;

// Appended to the processor's code (after it, so its line numbers are its own): the run's call, with
// the request the worker put in the context.
const CALL = `
;(() => {
  const [request, withPrelude] = globalThis.__ffaas_request;
  delete globalThis.__ffaas_request;
  return __ffaas_run(request, withPrelude);
})();
`;

const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");

class Slot {
  // One isolate and the code compiled in it.
  constructor() {
    this.isolate = new ivm.Isolate({ memoryLimit: MEMORY_MIB });
    this.prelude = this.isolate.compileScriptSync(BOOT + PRELUDE, { filename: "ffaas-prelude.js" });
    this.scripts = new Map();
    this.runs = 0;
  }

  async compiled(hash, source) {
    let script = this.scripts.get(hash);
    if (script === undefined) {
      script = await this.isolate.compileScript(source + CALL, { filename: "processor.js" });
      if (this.scripts.size >= SCRIPTS_KEPT) this.scripts.delete(this.scripts.keys().next().value);
      this.scripts.set(hash, script);
    }
    return script;
  }

  full() {
    // What runs left behind that the GC has not reclaimed yet counts against the limit: an isolate
    // past half of it is retired rather than risk an innocent run meeting the limit (checked every
    // few runs: it costs as much as a small run).
    if (++this.runs % 8 !== 0) return false;
    const heap = this.isolate.getHeapStatisticsSync();
    return heap.used_heap_size + heap.externally_allocated_size > (MEMORY_MIB << 20) / 2;
  }

  usable() {
    return !this.isolate.isDisposed;
  }

  dispose() {
    if (!this.isolate.isDisposed) this.isolate.dispose();
  }
}

const idle = [];
const runs = new Map(); // id -> Run

class Run {
  constructor(message) {
    this.id = message.id;
    this.message = message;
    this.nextTicket = 0;
    this.pending = new Map(); // ticket -> resolve
    this.over = false;
    this.expired = false;
    this.succeeded = false;
  }

  log(text) {
    if (!this.over) send({ t: "log", id: this.id, text: String(text) });
  }

  dispatch(json) {
    if (this.over) return Promise.resolve(JSON.stringify({ error: "the run ended before the answer came" }));
    const ticket = this.nextTicket++;
    send({ t: "dispatch", id: this.id, ticket, json: String(json) });
    return new Promise((resolve) => this.pending.set(ticket, resolve));
  }

  answer(ticket, json) {
    const resolve = this.pending.get(ticket);
    this.pending.delete(ticket);
    if (resolve !== undefined) resolve(json);
  }

  async execute() {
    const { hash, src, req, pre, timeout, maxLog } = this.message;
    const slot = idle.pop() || new Slot();
    this.slot = slot;
    const timer = setTimeout(() => {
      this.expired = true;
      slot.dispose();
    }, timeout);
    let context;
    try {
      // Setting up the context runs only our code: synchronously (it is ~0.3 ms).  The processor's
      // code runs asynchronously, on the isolate's thread, so this thread stays free.
      context = slot.isolate.createContextSync();
      const global = context.global;
      global.setSync("__ffaas_log_callback", new ivm.Callback((text) => this.log(text), { ignored: true }));
      global.setSync("__ffaas_log_budget", Number(maxLog) || 0);
      global.setSync("__ffaas_dispatch_ref", new ivm.Reference((json) => this.dispatch(json)));
      slot.prelude.runSync(context);
      let script;
      try {
        script = await slot.compiled(hash, src);
      } catch (error) {
        if (error && error.name === "SyntaxError") return this.fail("syntax_error", error);
        throw error;
      }
      global.setSync("__ffaas_request", new ivm.ExternalCopy([JSON.parse(req), !!pre]).copyInto({ release: true }));
      // One trip to the isolate's thread: the processor's code, then its call (see CALL).
      const result = await script.run(context, { timeout, promise: true, copy: true });
      if (this.expired) return this.fail("timed_out", null);
      this.succeeded = true;
      send({ t: "done", id: this.id, result: typeof result === "string" ? result : null });
    } catch (error) {
      if (this.expired) return this.fail("timed_out", null);
      const message = error && typeof error.message === "string" ? error.message : String(error);
      if (/memory limit/.test(message) || slot.isolate.isDisposed) return this.fail("out_of_memory", error);
      // Allocations V8 refused: typed arrays, ArrayBuffers, WebAssembly memories past the limits.
      if (error && error.name === "RangeError" && OUT_OF_MEMORY.test(message)) {
        return this.fail("out_of_memory", error);
      }
      if (/Script execution timed out/.test(message)) return this.fail("timed_out", null);
      this.fail("threw", error);
    } finally {
      clearTimeout(timer);
      this.over = true;
      for (const resolve of this.pending.values()) resolve(JSON.stringify({ error: "the run ended" }));
      runs.delete(this.id);
      if (context !== undefined && slot.usable()) context.release();
      // A run that failed may have left memory the isolate's limit does not count (WebAssembly
      // memories): its isolate goes, with all it held.
      if (this.succeeded && slot.usable() && idle.length < IDLE_KEPT && !slot.full()) idle.push(slot);
      else slot.dispose();
    }
  }

  cancel() {
    this.expired = true;
    if (this.slot !== undefined) this.slot.dispose();
  }

  fail(kind, error) {
    const message = error ? errorLine(error) : "";
    const stack = error && typeof error.stack === "string" ? trimStack(error.stack) : "";
    send({ t: "fail", id: this.id, kind, message, stack });
  }
}

function errorLine(error) {
  const name = typeof error.name === "string" ? error.name : "Error";
  const message = typeof error.message === "string" ? error.message : String(error);
  // isolated-vm appends the location of a compile error: "Unexpected token ';' [processor.js:1:18]".
  return `${name}: ${message}`;
}

function trimStack(stack) {
  // Frames below the isolate's boundary are this worker's, not the processor's.
  const cut = stack.indexOf("\n    at (<isolated-vm boundary>)");
  return cut < 0 ? stack : stack.slice(0, cut);
}

const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
input.on("line", (line) => {
  const message = JSON.parse(line);
  if (message.t === "run") {
    const run = new Run(message);
    runs.set(message.id, run);
    run.execute();
  } else if (message.t === "answer") {
    const run = runs.get(message.id);
    if (run !== undefined) run.answer(message.ticket, message.json);
  } else if (message.t === "cancel") {
    const run = runs.get(message.id);
    if (run !== undefined) run.cancel();
  }
});
// The data plane closed our stdin: it is gone or stopping us; nothing may outlive it.
input.on("close", () => process.exit(0));

// Keep a few isolates ready so the first runs do not pay for making them.
for (let i = 0; i < Math.min(IDLE_KEPT, 2); i++) idle.push(new Slot());
send({ t: "ready", pid: process.pid });
