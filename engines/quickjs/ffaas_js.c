/*
 * ffaas-js: the JavaScript engine of `runtime: "wasm"` processors, a WASI preview1 module.
 *
 * quickjs-ng compiled to wasm32-wasi, plus the FFAAS processor prelude (the same
 * `js_prelude.js` the V8 runtime evaluates, embedded at build time).  One instance
 * of this module is one run, driven through two exports:
 *
 *   ffaas_begin() -> status
 *          reads stdin: <with the prelude: 0|1><decimal length of the code>\n<the processor's
 *          JavaScript><the request object as JSON>; evaluates the code, calls main() and runs
 *          every job there is (no parameters: each costs the Python host ~20 µs a call)
 *   ffaas_deliver(ticket, length) -> status
 *          resolves the promise of outbound request `ticket` with its answer (JSON, `length`
 *          bytes, copied in by take_answer) and runs every job there is
 *
 *   status 0  the run is over; stdout holds
 *             R<the result JSON of __ffaas_run>       when main() settled with a value
 *             E{"kind", "message", "stack"}          when it did not; kind is one of syntax_error,
 *                                                    threw, out_of_memory, never_settled, bad_input
 *   status 1  the run waits for the answer of at least one outbound request
 *
 * Host functions (module "ffaas"), the only way out of the sandbox:
 *   log(ptr, len)                     record a log line
 *   dispatch(ticket, ptr, len)        send an outbound request (JSON, see js_prelude.js); returns
 *                                     at once: the answer comes later through ffaas_deliver, so
 *                                     requests a processor starts together are in flight together
 *                                     and a waiting run holds no host thread
 *   take_answer(ptr)                  copy the answer being delivered into the guest's buffer
 *
 * `_start` (main) runs a whole run whose requests were all answered at once by the host; it
 * exists for the WASI command form and is not how the data plane drives a run.
 *
 * Pre-initialisation: `wizer-initialize` builds the runtime and context and evaluates the
 * prelude; a module snapshotted after it (wizer) starts every run from that state.  Without
 * a snapshot, the first export called does the same work first.  Either way each run is a fresh
 * instance, so nothing a processor does can outlive its run.  (`wizer-initialize` calls
 * __wasm_call_ctors itself, so the linker wraps no export in constructor calls.)
 *
 * Limits come from the host: linear memory is capped (a refused memory.grow surfaces as
 * quickjs's "out of memory"), time by epoch interruption.  JS recursion is bounded by
 * JS_STACK_BYTES below the shadow stack, which the linker places first (--stack-first) so
 * that an overflow traps instead of overwriting data.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The shadow stack pointer.  quickjs measures its stack with __builtin_frame_address(0), which
 * is 0 on wasm32, so its recursion check never fired; this gives it the real position. */
static inline uintptr_t ffaas_stack_pointer(void) {
    uintptr_t pointer;
    __asm__ volatile("global.get __stack_pointer\n\tlocal.set %0" : "=r"(pointer));
    return pointer;
}
#define __builtin_frame_address(level) ((void *)ffaas_stack_pointer())

/* quickjs.c is compiled as part of this file, unmodified, for the stack pointer above and so that
 * each run can reseed the context's Math.random state, which a snapshot would otherwise fix. */
#include "quickjs.c"

#ifndef JS_STACK_BYTES
#define JS_STACK_BYTES (256 * 1024) /* must stay below the linker's -z stack-size (512 KiB) */
#endif

__attribute__((import_module("ffaas"), import_name("log"))) extern void host_log(const char *text,
                                                                                 size_t length);
__attribute__((import_module("ffaas"), import_name("dispatch"))) extern void
host_dispatch(uint32_t ticket, const char *request, size_t length);
__attribute__((import_module("ffaas"), import_name("take_answer"))) extern void
host_take_answer(char *buffer);

static const char prelude[] = {
#embed "js_prelude.js"
    , 0};

enum { RUN_OVER = 0, RUN_WAITING = 1 };

static JSRuntime *runtime;
static JSContext *context;
static JSValue run_function;
static JSValue run_promise;

/* The outbound requests sent and not answered yet: each one's ticket and promise resolver. */
typedef struct {
    uint32_t ticket;
    JSValue resolve;
} awaited_answer;
static awaited_answer *awaited;
static size_t awaited_count, awaited_capacity;
static uint32_t last_ticket;

static JSValue js_host_log(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
    (void)this_val;
    size_t length;
    const char *text = JS_ToCStringLen(ctx, &length, argc > 0 ? argv[0] : JS_UNDEFINED);
    if (!text) return JS_EXCEPTION;
    host_log(text, length);
    JS_FreeCString(ctx, text);
    return JS_UNDEFINED;
}

/* __ffaas_dispatch(json) -> Promise<answer json>: the request goes out now, the answer comes
 * through ffaas_deliver. */
static JSValue js_host_dispatch(JSContext *ctx, JSValueConst this_val, int argc,
                                JSValueConst *argv) {
    (void)this_val;
    if (awaited_count == awaited_capacity) {
        size_t capacity = awaited_capacity ? 2 * awaited_capacity : 8;
        awaited_answer *grown = realloc(awaited, capacity * sizeof *grown);
        if (!grown) return JS_ThrowOutOfMemory(ctx);
        awaited = grown;
        awaited_capacity = capacity;
    }
    size_t length;
    const char *request = JS_ToCStringLen(ctx, &length, argc > 0 ? argv[0] : JS_UNDEFINED);
    if (!request) return JS_EXCEPTION;
    JSValue resolving[2];
    JSValue promise = JS_NewPromiseCapability(ctx, resolving);
    if (JS_IsException(promise)) {
        JS_FreeCString(ctx, request);
        return promise;
    }
    JS_FreeValue(ctx, resolving[1]); /* a failed request resolves with {"error"}: never rejected */
    uint32_t ticket = ++last_ticket;
    awaited[awaited_count++] = (awaited_answer){ticket, resolving[0]};
    host_dispatch(ticket, request, length);
    JS_FreeCString(ctx, request);
    return promise;
}

static void fail(const char *message) {
    fprintf(stderr, "ffaas-js: %s\n", message);
    exit(70);
}

static void initialize(void) {
    runtime = JS_NewRuntime();
    if (!runtime) fail("cannot create the JavaScript runtime");
    JS_SetMaxStackSize(runtime, JS_STACK_BYTES);
    context = JS_NewContext(runtime);
    if (!context) fail("cannot create the JavaScript context");
    JSValue global = JS_GetGlobalObject(context);
    JS_SetPropertyStr(context, global, "__ffaas_log",
                      JS_NewCFunction(context, js_host_log, "__ffaas_log", 1));
    JS_SetPropertyStr(context, global, "__ffaas_dispatch",
                      JS_NewCFunction(context, js_host_dispatch, "__ffaas_dispatch", 1));
    JSValue done = JS_Eval(context, prelude, sizeof prelude - 1, "ffaas-prelude.js",
                           JS_EVAL_TYPE_GLOBAL);
    if (JS_IsException(done)) fail("the prelude does not evaluate");
    JS_FreeValue(context, done);
    run_function = JS_GetPropertyStr(context, global, "__ffaas_run");
    JS_FreeValue(context, global);
    if (!JS_IsFunction(context, run_function)) fail("the prelude defines no __ffaas_run");
}

extern void __wasm_call_ctors(void);

__attribute__((export_name("wizer-initialize"))) void wizer_initialize(void) {
    __wasm_call_ctors();
    initialize();
}

static char *read_stdin(size_t *length) {
    size_t capacity = 1 << 16, used = 0;
    char *buffer = malloc(capacity + 1);
    for (;;) {
        if (!buffer) return NULL;
        ssize_t got = read(0, buffer + used, capacity - used);
        if (got < 0) return NULL;
        if (got == 0) break;
        used += (size_t)got;
        if (used == capacity) {
            capacity *= 2;
            buffer = realloc(buffer, capacity + 1);
        }
    }
    buffer[used] = 0;
    *length = used;
    return buffer;
}

static void write_all(const char *data, size_t length) {
    while (length > 0) {
        ssize_t wrote = write(1, data, length);
        if (wrote <= 0) exit(71);
        data += wrote;
        length -= (size_t)wrote;
    }
}

/* E{"kind":..., "message":..., "stack":...}: built in JS so that the strings are escaped right. */
static int report_error(const char *kind, JSValue error) {
    JSValue report = JS_NewObject(context);
    const char *message = NULL;
    if (JS_IsError(error)) {
        JSValue stack = JS_GetPropertyStr(context, error, "stack");
        JS_SetPropertyStr(context, report, "stack", stack);
        JSValue name = JS_GetPropertyStr(context, error, "name");
        const char *name_text = JS_ToCString(context, name);
        if (name_text && strcmp(name_text, "InternalError") == 0) {
            JSValue text = JS_GetPropertyStr(context, error, "message");
            const char *message_text = JS_ToCString(context, text);
            if (message_text && strcmp(message_text, "out of memory") == 0) kind = "out_of_memory";
            JS_FreeCString(context, message_text);
            JS_FreeValue(context, text);
        }
        JS_FreeCString(context, name_text);
        JS_FreeValue(context, name);
    }
    message = JS_ToCString(context, error);
    JS_SetPropertyStr(context, report, "kind", JS_NewString(context, kind));
    JS_SetPropertyStr(context, report, "message",
                      JS_NewString(context, message ? message : "unknown error"));
    JS_FreeCString(context, message);
    JSValue json = JS_JSONStringify(context, report, JS_UNDEFINED, JS_UNDEFINED);
    size_t length;
    const char *text = JS_ToCStringLen(context, &length, json);
    write_all("E", 1);
    if (text) {
        write_all(text, length);
    } else {
        /* Even the report could not be built (memory): say so in the fixed form. */
        static const char fallback[] = "{\"kind\":\"out_of_memory\",\"message\":\"out of memory\"}";
        write_all(fallback, sizeof fallback - 1);
    }
    return 0;
}

static int report_exception(const char *kind) {
    return report_error(kind, JS_GetException(context));
}

/* Run every pending job, then say whether the run is over (its report written) or waits. */
static int settle(void) {
    for (;;) {
        JSContext *job_context;
        int ran = JS_ExecutePendingJob(runtime, &job_context);
        if (ran == 0) break;
        if (ran < 0) return report_exception("threw");
    }
    switch (JS_PromiseState(context, run_promise)) {
    case JS_PROMISE_FULFILLED: {
        JSValue result = JS_PromiseResult(context, run_promise);
        size_t length;
        const char *text = JS_ToCStringLen(context, &length, result);
        JS_FreeValue(context, result);
        if (!text) return report_exception("threw");
        write_all("R", 1);
        write_all(text, length);
        JS_FreeCString(context, text);
        return RUN_OVER;
    }
    case JS_PROMISE_REJECTED:
        return report_error("threw", JS_PromiseResult(context, run_promise));
    default:
        if (awaited_count > 0) return RUN_WAITING;
        return report_error(
            "never_settled",
            JS_NewString(context, "main() never settled: it awaits something that cannot "
                                  "happen in a processor (timers and other I/O do not exist here)"));
    }
}

__attribute__((export_name("ffaas_begin"))) int ffaas_begin(void) {
    if (!runtime) initialize();
    JS_UpdateStackTop(runtime);
    uint64_t seed = 0;
    if (getentropy(&seed, sizeof seed) != 0 || seed == 0) seed = (uint64_t)js__gettimeofday_us() | 1;
    context->random_state = seed;
    size_t input_length;
    char *input = read_stdin(&input_length);
    if (!input) fail("cannot read stdin");
    char *end;
    bool with_prelude = input[0] == '1';
    if (input[0] != '0' && input[0] != '1') {
        return report_error("bad_input", JS_NewString(context, "malformed run input"));
    }
    unsigned long code_length = strtoul(input + 1, &end, 10);
    if (end == input + 1 || *end != '\n' ||
        code_length > input_length - (size_t)(end + 1 - input)) {
        return report_error("bad_input", JS_NewString(context, "malformed run input"));
    }
    char *code = end + 1;
    char *request_json = code + code_length;
    size_t request_length = input_length - (size_t)(request_json - input);
    /* JS_Eval needs a terminating NUL; the request JSON keeps its own (read_stdin's). */
    char *code_copy = malloc(code_length + 1);
    if (!code_copy) fail("out of memory before the run");
    memcpy(code_copy, code, code_length);
    code_copy[code_length] = 0;

    JSValue compiled = JS_Eval(context, code_copy, code_length, "processor.js",
                               JS_EVAL_TYPE_GLOBAL | JS_EVAL_FLAG_COMPILE_ONLY);
    free(code_copy);
    if (JS_IsException(compiled)) return report_exception("syntax_error");
    JSValue evaluated = JS_EvalFunction(context, compiled);
    if (JS_IsException(evaluated)) return report_exception("threw");
    JS_FreeValue(context, evaluated);

    JSValue request = JS_ParseJSON(context, request_json, request_length, "request");
    free(input);
    if (JS_IsException(request)) return report_exception("bad_input");
    JSValue arguments[2] = {request, JS_NewBool(context, with_prelude)};
    run_promise = JS_Call(context, run_function, JS_UNDEFINED, 2, arguments);
    JS_FreeValue(context, request);
    if (JS_IsException(run_promise)) return report_exception("threw");
    return settle();
}

__attribute__((export_name("ffaas_deliver"))) int ffaas_deliver(uint32_t ticket, uint32_t length) {
    size_t index = 0;
    while (index < awaited_count && awaited[index].ticket != ticket) index++;
    if (index == awaited_count) fail("an answer came for a request that was not sent");
    JSValue resolve = awaited[index].resolve;
    awaited[index] = awaited[--awaited_count];
    char *answer = malloc((size_t)length + 1);
    if (!answer) {
        JS_FreeValue(context, resolve);
        return report_error("out_of_memory", JS_NewString(context, "out of memory"));
    }
    host_take_answer(answer);
    JSValue value = JS_NewStringLen(context, answer, length);
    free(answer);
    if (JS_IsException(value)) {
        JS_FreeValue(context, resolve);
        return report_exception("threw");
    }
    JSValue resolved = JS_Call(context, resolve, JS_UNDEFINED, 1, &value);
    JS_FreeValue(context, value);
    JS_FreeValue(context, resolve);
    if (JS_IsException(resolved)) return report_exception("threw");
    JS_FreeValue(context, resolved);
    return settle();
}

int main(void) {
    if (ffaas_begin() == RUN_WAITING) {
        fail("a run started as a command cannot wait for answers: drive it through ffaas_begin");
    }
    return 0;
}
