"""WebAssembly endpoints under the WAGI contract: CGI over WASI.

The request body is the guest's stdin; the CGI variables (RFC 3875 plus WAGI's
`X_*` ones) and the endpoint's own environment are its environment; its stdout
is a CGI response and its stderr lines are logs.

Where a run happens (measured: a hop to a worker thread and back costs ~90 µs
here, as much as a whole hello-world run): `runtime.inline_runs` decides.
- A module not known to be slow runs first on the event-loop thread with a
  short budget (FFAAS_INLINE_BUDGET_MS), unless the loop's current turn spent
  its inline budget already.  Most functions finish well inside it and pay no
  thread hop.
- A run interrupted by that budget marks its module slow for the life of the
  process (unless it lost its core rather than spent the budget: see `inline_runs`),
  and the request is run again, from scratch, on the worker pool with
  the full time limit; so does a module whose inline runs take more than
  `inline_runs.SLOW_AVERAGE_MS` on average.  Slow modules always run on the
  pool, so one looping function can hold up the event loop only once, and only
  for the budget.
- Running a WAGI guest again is invisible to its caller: a guest can touch
  nothing but its own stdin, stdout, stderr, environment, clock and random
  source, and the interrupted run's output is thrown away.  (Processors, which
  make outbound requests, must never be re-run this way.)
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

from data_plane.executors.cgi_response import parse_cgi_response
from data_plane.executors.guest_response import GuestResponse
from data_plane.incoming_request import IncomingRequest
from data_plane.registry import PreparedEndpoint
from data_plane.runtime.inline_runs import InlineRuns
from data_plane.runtime.wasm import CommandResult, Outcome, RunLimits, WasmRuntime
from shared.errors import GuestError, GuestTimeout, ServiceError

SERVER_SOFTWARE = "FFAAS/0.1"
MIB = 1 << 20


@dataclass(frozen=True)
class WagiRun:
    """A finished run: the raw result (None if the module could not run at all), and the
    response or the error it maps to."""

    result: CommandResult | None
    response: GuestResponse | None
    error: ServiceError | None


def cgi_environment(endpoint: PreparedEndpoint, request: IncomingRequest) -> list[tuple[str, str]]:
    """The guest's environment: the endpoint's variables, then the CGI ones (which win)."""
    route = f"/{endpoint.endpoint_id}"
    raw_sub_path = request.raw_path[len(route) :]
    sub_path = request.path[len(route) :]
    variables: dict[str, str] = dict(endpoint.env)
    for name, value in request.headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        variables[key] = f"{variables[key]}, {value}" if key in variables else value
    variables.update(
        {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "SERVER_PROTOCOL": request.version,
            "SERVER_NAME": request.server_name,
            "SERVER_PORT": str(request.server_port),
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": route,
            "PATH_INFO": sub_path,
            "PATH_TRANSLATED": sub_path,
            "QUERY_STRING": request.query,
            "CONTENT_TYPE": request.header("content-type") or "",
            "CONTENT_LENGTH": str(len(request.body)),
            "REMOTE_ADDR": request.client_host,
            "REMOTE_HOST": request.client_host,
            "AUTH_TYPE": "",
            "REMOTE_USER": "",
            "X_MATCHED_ROUTE": f"{route}/...",
            "X_FULL_URL": request.url(),
            "X_RAW_PATH_INFO": raw_sub_path,
        }
    )
    return list(variables.items())


class WagiExecutor:
    def __init__(
        self, runtime: WasmRuntime, pool: ThreadPoolExecutor, limits: RunLimits, inline: InlineRuns
    ) -> None:
        self._runtime = runtime
        self._pool = pool
        self.limits = limits
        self._inline = inline
        self._inline_limits = replace(limits, timeout_ms=min(inline.budget_ms, limits.timeout_ms))

    async def run(self, endpoint: PreparedEndpoint, request: IncomingRequest) -> WagiRun:
        if endpoint.module is None:
            return WagiRun(None, None, GuestError(endpoint.unusable_reason))
        call = partial(
            self._runtime.run_command,
            endpoint.module,
            argv=[endpoint.endpoint_id],
            env=cgi_environment(endpoint, request),
            stdin=request.body,
        )
        result: CommandResult | None = None
        inline, key = self._inline, "wagi:" + endpoint.module_hash
        if inline.admit(key):
            started = inline.clock()
            result = call(limits=self._inline_limits)
            interrupted = result.outcome is Outcome.TIMED_OUT and self.limits.timeout_ms > inline.budget_ms
            inline.ran_inline(key, inline.clock() - started, interrupted=interrupted)
            if interrupted:
                inline.moved()
                result = None
        if result is None:
            on_pool = partial(call, limits=self.limits)
            result = await asyncio.get_running_loop().run_in_executor(self._pool, on_pool)
        error = self._error_for(result)
        if error is not None:
            return WagiRun(result, None, error)
        try:
            return WagiRun(result, parse_cgi_response(result.stdout), None)
        except GuestError as exc:
            return WagiRun(result, None, exc)

    def _error_for(self, result: CommandResult) -> ServiceError | None:
        limits = self.limits
        match result.outcome:
            case Outcome.COMPLETED:
                return None
            case Outcome.TIMED_OUT:
                return GuestTimeout(f"run exceeded {limits.timeout_ms} ms (FFAAS_RUN_TIMEOUT_MS)")
            case Outcome.OUT_OF_MEMORY:
                return GuestError(
                    f"run failed at {result.memory_bytes / MIB:.1f} MiB of its memory limit of "
                    f"{limits.max_memory_bytes / MIB:.1f} MiB (FFAAS_MAX_MEMORY_BYTES)"
                )
            case Outcome.OUTPUT_LIMIT:
                return GuestError(
                    f"response exceeded {limits.max_stdout_bytes} bytes of output (FFAAS_MAX_RESPONSE_BYTES)"
                )
            case Outcome.EXITED_NONZERO:
                return GuestError(f"the module exited with status {result.exit_code}")
            case Outcome.TRAPPED:
                return GuestError(f"the module trapped: {_trap_reason(result.detail)}")
        raise AssertionError(result.outcome)


def _trap_reason(detail: str) -> str:
    """The one-line cause of a trap (`wasm trap: ...`), without backtrace frames."""
    for line in reversed(detail.splitlines()):
        line = line.strip()
        if line.startswith("wasm trap:"):
            return line.removeprefix("wasm trap:").strip()
    return detail.splitlines()[0] if detail else "unknown trap"
