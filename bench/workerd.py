"""Cloudflare's workerd, the comparison for the processor rows: installing it, starting it, stopping it.

workerd comes from the npm registry, pinned in `bench/.workerd/package.json` and
its lock file. The `workerd` package ships the native binary per platform through
an optional dependency (`@cloudflare/workerd-linux-64`, ...); `npm ci` there
installs it once (node_modules is git-ignored) and it then runs offline.

`bench/handlers/workerd.capnp` serves two workers, each on its own socket:
`hello` (the hello text) and `logs` (two console.log calls, then JSON), the
counterparts of `hello_processor.js` and `logs_processor.js`. The benchmark
overrides both socket addresses with free ports on 127.0.0.1 (`--socket-addr`).

Anything missing (npm, the registry, a binary for this platform) raises
`WorkerdUnavailable` with a message saying what to do; the scenario then
reports the workerd rows as skipped and the FFAAS rows still run.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.system import REPO, System, free_port

WORKERD_DIR = REPO / "bench" / ".workerd"
"""npm project holding the pinned workerd (package.json + package-lock.json; node_modules ignored)."""
HANDLERS = REPO / "bench" / "handlers"
CONFIG = HANDLERS / "workerd.capnp"
SOCKETS = ("hello", "logs")
"""Socket names in CONFIG, each serving the worker of the same name."""
NPM_CI_TIMEOUT_S = 600.0
PROCESS_NAME = "workerd"


class WorkerdUnavailable(RuntimeError):
    """workerd cannot be installed or found here; the message says why and what to do."""


@dataclass(frozen=True)
class Workerd:
    """A running workerd: the base URL of each socket, and what it is."""

    urls: dict[str, str]
    """Socket name ("hello", "logs") -> http://127.0.0.1:<port>."""
    version: str
    """`workerd --version` (e.g. "workerd 2026-11-17") and the npm package version."""
    log_path: Path
    """Its stdout and stderr: where console.log lines go."""


def platform_package() -> str:
    """The npm package holding the native binary for this machine, e.g. "@cloudflare/workerd-linux-64"."""
    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    system = {"linux": "linux", "darwin": "darwin", "win32": "windows"}.get(sys.platform)
    if arch is None or system is None:
        raise WorkerdUnavailable(f"workerd publishes no binary for {sys.platform}/{machine}")
    return f"@cloudflare/workerd-{system}-{arch}"


def binary_path(directory: Path = WORKERD_DIR) -> Path | None:
    """The installed native binary, or None when `npm ci` has not been run (or installed nothing)."""
    executable = "workerd.exe" if sys.platform == "win32" else "workerd"
    candidates = [directory / "node_modules" / platform_package() / "bin" / executable]
    # The `workerd` package's own bin/ (its postinstall links the native binary there).
    candidates.append(directory / "node_modules" / "workerd" / "bin" / executable)
    return next((path for path in candidates if path.is_file()), None)


def pinned_version(directory: Path = WORKERD_DIR) -> str:
    """The exact `workerd` version in package.json (the benchmark pins one, no ranges)."""
    manifest = json.loads((directory / "package.json").read_text())
    return str(manifest["dependencies"]["workerd"])


def ensure_installed(say: Callable[[str], None], directory: Path = WORKERD_DIR) -> Path:
    """The workerd binary, running `npm ci` in `directory` first when node_modules has none."""
    found = binary_path(directory)
    if found is not None:
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise WorkerdUnavailable(
            f"npm is not installed (install Node.js >= 16 with npm; the benchmark then runs "
            f"`npm ci` in {directory} to install workerd {pinned_version(directory)})"
        )
    command = [npm, "ci", "--no-audit", "--no-fund"]
    say(f"installing workerd {pinned_version(directory)}: {' '.join(command[1:])} in {directory}")
    try:
        finished = subprocess.run(
            command,
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise WorkerdUnavailable(
            f"`npm ci` in {directory} did not finish in {NPM_CI_TIMEOUT_S:.0f} s"
        ) from None
    if finished.returncode != 0:
        raise WorkerdUnavailable(
            f"`npm ci` in {directory} failed (exit {finished.returncode}): "
            + npm_error_summary(finished.stderr + finished.stdout)
        )
    found = binary_path(directory)
    if found is None:
        raise WorkerdUnavailable(
            f"`npm ci` in {directory} installed no workerd binary for this machine "
            f"(expected {platform_package()}/bin/workerd)"
        )
    return found


def npm_error_summary(output: str, most: int = 4) -> str:
    """The first few meaningful `npm error` lines (npm follows them with usage text and a log path)."""
    found = []
    for line in output.splitlines():
        text = line.removeprefix("npm error").strip()
        if not line.startswith("npm error") or not text or text.startswith("A complete log"):
            continue
        if text in ("Usage:", "Clean install a project"):
            break
        found.append(text)
    return "; ".join(found[:most]) or output.strip()[-500:] or "no output"


def binary_version(binary: Path) -> str:
    """What `workerd --version` prints; raises WorkerdUnavailable if the binary does not run here."""
    try:
        finished = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorkerdUnavailable(f"{binary} does not run: {exc}") from None
    if finished.returncode != 0:
        raise WorkerdUnavailable(
            f"{binary} --version exited {finished.returncode}: {(finished.stderr or finished.stdout).strip()}"
        )
    return finished.stdout.strip()


def serve_command(binary: Path, ports: dict[str, int], config: Path = CONFIG) -> list[str]:
    """`workerd serve <config>` with each socket moved to 127.0.0.1:<its port>."""
    command = [str(binary), "serve", str(config)]
    for name, port in ports.items():
        command.append(f"--socket-addr={name}=127.0.0.1:{port}")
    return command


def start(system: System, say: Callable[[str], None]) -> Workerd:
    """Installs workerd if needed and starts it as one of `system`'s processes (stopped with the rest)."""
    if not CONFIG.is_file():
        raise WorkerdUnavailable(f"{CONFIG} is missing")
    binary = ensure_installed(say)
    version = f"{binary_version(binary)} (npm workerd {pinned_version()})"
    ports = {name: free_port() for name in SOCKETS}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    say(f"starting {version} on " + ", ".join(f"{name} {url}" for name, url in urls.items()))
    process = system.start_service(
        PROCESS_NAME, serve_command(binary, ports), [url + "/" for url in urls.values()]
    )
    return Workerd(urls, version, process.log_path)


def stop(system: System) -> None:
    """Stops workerd if it is running (it is also stopped with the rest of `system`)."""
    if PROCESS_NAME in system.processes:
        system.stop(PROCESS_NAME)
