"""Turning a processor's saved code into the JavaScript data planes run, with esbuild.

esbuild (the npm package pinned in the repository's package.json, installed by
`make install`) runs as a subprocess in transform mode: stdin -> stdout, loader `ts` or
`js`, target es2022, and *no* `--format`, so the output is a script whose top-level
declarations stay globals: the data plane calls the global `main`.

Invariants:
- The result is always esbuild's output, for JavaScript too (not the user's text): one
  pipeline, syntax lowered to one target both runtimes (V8, QuickJS on wasm) accept.
  Comments and formatting are not preserved, so line numbers at run time refer to it.
- Code that does not parse is a `CodeDoesNotCompile` (400) whose message is esbuild's
  first error with its `line:column` (both 1-based, as editors count), e.g.
  `code does not compile: 3:13: Expected ";" but found "x"`.
- The code must be a script defining a global `main` (`function main`, `async function
  main` or `var main`); ES module syntax (`import`/`export`, top-level `await`) is refused.
  Both checks look at esbuild's output, where top-level statements start at column 0.
- A missing esbuild, one that fails without a compile error, or one that runs longer
  than the timeout is `Unavailable` (503) naming the setting; the process never outlives
  the call (killed on timeout or cancellation).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path

from shared.errors import BadRequest, Unavailable

log = logging.getLogger("ffaas.control_plane.transpile")

TARGET = "es2022"
LOADERS = {"js": "js", "ts": "ts"}
SOURCE_NAME = "code"

_ERROR = re.compile(r"\[ERROR\] (?P<message>.+)")
_LOCATION = re.compile(rf"^\s+{SOURCE_NAME}:(?P<line>\d+):(?P<column>\d+):\s*$")
_GLOBAL_MAIN = re.compile(r"^(?:(?:async )?function main\s*\(|var main\b)", re.MULTILINE)
_MODULE_SYNTAX = re.compile(r"^(?P<keyword>export|import)\b(?!\s*[(.])", re.MULTILINE)


class CodeDoesNotCompile(BadRequest):
    """The code does not parse, does not transpile, or is not a script with a global `main`."""


def esbuild_missing(path: Path) -> str | None:
    """Why esbuild at `path` cannot run, or None if it looks runnable."""
    if not path.is_file():
        return f"esbuild not found at {path} (FFAAS_ESBUILD_PATH); run `make install`"
    if not os.access(path, os.X_OK):
        return f"esbuild at {path} is not executable (FFAAS_ESBUILD_PATH); run `make install`"
    return None


async def transpile(code: str, language: str, *, esbuild: Path, timeout_ms: int) -> str:
    """The runnable JavaScript for `code` written in `language` ("js" or "ts")."""
    missing = esbuild_missing(esbuild)
    if missing is not None:
        raise Unavailable(f"cannot save processors: {missing}")
    returncode, stdout, stderr = await _run_esbuild(esbuild, LOADERS[language], code, timeout_ms)
    if returncode != 0:
        raise _compile_error(stderr) or _esbuild_failed(esbuild, returncode, stderr)
    js = stdout.decode("utf-8")
    _check_script(js)
    return js


async def _run_esbuild(esbuild: Path, loader: str, code: str, timeout_ms: int) -> tuple[int, bytes, bytes]:
    try:
        process = await asyncio.create_subprocess_exec(
            str(esbuild),
            f"--loader={loader}",
            f"--target={TARGET}",
            # A processor is a script: top-level await would make it a module.
            "--supported:top-level-await=false",
            "--charset=utf8",
            f"--sourcefile={SOURCE_NAME}",
            "--log-level=error",
            "--color=false",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise Unavailable(
            f"cannot save processors: esbuild at {esbuild} does not start "
            f"(FFAAS_ESBUILD_PATH): {exc}; run `make install`"
        ) from exc
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(code.encode("utf-8")), timeout_ms / 1000)
    except TimeoutError:
        raise Unavailable(
            f"transpiling took longer than {timeout_ms} ms (FFAAS_TRANSPILE_TIMEOUT_MS)"
        ) from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return int(process.returncode or 0), stdout, stderr


def _compile_error(stderr: bytes) -> CodeDoesNotCompile | None:
    """esbuild's first error with its location, as a 400; None if stderr holds no error."""
    lines = stderr.decode("utf-8", errors="replace").splitlines()
    for index, line in enumerate(lines):
        error = _ERROR.search(line)
        if error is None:
            continue
        message = error["message"].strip()
        for following in lines[index + 1 : index + 4]:
            location = _LOCATION.match(following)
            if location is not None:
                line_number, column = int(location["line"]), int(location["column"]) + 1
                return CodeDoesNotCompile(f"code does not compile: {line_number}:{column}: {message}")
        return CodeDoesNotCompile(f"code does not compile: {message}")
    return None


def _esbuild_failed(esbuild: Path, returncode: int, stderr: bytes) -> Unavailable:
    log.error("esbuild %s exited with status %d: %s", esbuild, returncode, stderr.decode(errors="replace"))
    return Unavailable(
        f"esbuild at {esbuild} (FFAAS_ESBUILD_PATH) failed with exit status {returncode}; "
        "see the control plane log, or run `make install`"
    )


def _check_script(js: str) -> None:
    module_syntax = _MODULE_SYNTAX.search(js)
    if module_syntax is not None:
        raise CodeDoesNotCompile(
            f"code must be a script, not an ES module: remove `{module_syntax['keyword']}` "
            "and define a global `function main`"
        )
    if _GLOBAL_MAIN.search(js) is None:
        raise CodeDoesNotCompile(
            "code must define a global function main, e.g. `async function main(fh, request) { ... }`"
        )
