"""Compiled modules by content hash: in memory, and serialized on disk, shared by processes.

Every worker process of a data plane (and a restarted one) uses the same disk
cache, so it must be safe for several processes at once.

Invariants:
- Disk artifacts live in `<directory>/<engine fingerprint>/<hash>.cwasm`, so an
  artifact only ever loads into an engine of the same wasmtime version, machine
  and configuration.
- An artifact is one file: a header naming the format, the SHA-256 of the
  serialized module, then the serialized module. It is written whole to a
  temporary file in the same directory, fsynced, then renamed into place, so a
  reader (in any process) sees either no artifact or a complete one, never a
  partial file or a checksum of another write.
- wasmtime trusts a deserialized artifact completely, so only a file whose
  header and checksum match is loaded. Anything else (torn by a crash, an older
  format, garbage) is ignored: the module is compiled again and its artifact
  replaces the bad file by the same rename.
- Processes that need the same missing module take turns on a per-hash lock
  file (`flock`), so one compiles and the others load its artifact. The lock is
  an optimisation only: after `LOCK_WAIT_S` a process compiles without it, and
  two processes compiling the same module just write the same artifact twice.
- All methods are synchronous and thread-safe; callers run them off the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import wasmtime

from data_plane.runtime.wasm import WasmRuntime

log = logging.getLogger("ffaas.module_cache")

ARTIFACT_MAGIC = b"FFAAS-cwasm-1\n"
"""The first bytes of every artifact this class writes (bump the digit if the layout changes)."""
DIGEST_BYTES = hashlib.sha256().digest_size
LOCK_WAIT_S = 30.0
LOCK_POLL_S = 0.01


class ModuleCache:
    def __init__(self, runtime: WasmRuntime, directory: Path) -> None:
        self._runtime = runtime
        self._directory = directory / runtime.fingerprint
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._modules: dict[str, wasmtime.Module] = {}
        self._lock = threading.Lock()
        self.compiled = 0
        self.loaded_from_disk = 0

    def get(self, module_hash: str) -> wasmtime.Module | None:
        return self._modules.get(module_hash)

    def on_disk(self, module_hash: str) -> bool:
        return self._artifact(module_hash).exists()

    def load_or_compile(self, module_hash: str, fetch_wasm: Callable[[], bytes]) -> wasmtime.Module:
        """The module for `module_hash`: from memory, else disk, else compiled from `fetch_wasm()`."""
        with self._lock:
            module = self._modules.get(module_hash)
            if module is None:
                module = self._load(module_hash)
            if module is None:
                with self._turn_to_compile(module_hash):
                    module = self._load(module_hash)  # another process may have written it meanwhile
                    if module is None:
                        module = self._runtime.compile(fetch_wasm())
                        self.compiled += 1
                        self._store(module_hash, module)
            self._modules[module_hash] = module
            return module

    def evict_except(self, keep: set[str]) -> None:
        """Forget in-memory modules no route uses any more (their disk artifacts stay)."""
        with self._lock:
            for module_hash in set(self._modules) - keep:
                del self._modules[module_hash]

    def _artifact(self, module_hash: str) -> Path:
        return self._directory / f"{module_hash}.cwasm"

    def _load(self, module_hash: str) -> wasmtime.Module | None:
        artifact = self._artifact(module_hash)
        try:
            data = artifact.read_bytes()
        except FileNotFoundError:
            return None
        serialized = _checked_artifact(data)
        if serialized is None:
            log.warning("ignoring artifact %s: not a complete artifact of this cache; recompiling", artifact)
            return None
        try:
            module = wasmtime.Module.deserialize(self._runtime.engine, serialized)
        except wasmtime.WasmtimeError as exc:
            log.warning("ignoring artifact %s: %s; recompiling", artifact, exc)
            return None
        self.loaded_from_disk += 1
        return module

    def _store(self, module_hash: str, module: wasmtime.Module) -> None:
        artifact = self._artifact(module_hash)
        serialized = module.serialize()
        try:
            _write_atomically(artifact, [ARTIFACT_MAGIC, hashlib.sha256(serialized).digest(), serialized])
        except OSError as exc:
            log.warning("could not write artifact %s (serving from memory): %s", artifact, exc)

    @contextlib.contextmanager
    def _turn_to_compile(self, module_hash: str) -> Iterator[None]:
        """Hold `<hash>.lock` while inside, or go ahead without it if it cannot be had."""
        try:
            descriptor = os.open(self._directory / f"{module_hash}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("compiling %s without the cache lock: %s", module_hash, exc)
            yield
            return
        try:
            if not _lock_within(descriptor, LOCK_WAIT_S):
                log.warning("compiling %s without the cache lock: held over %g s", module_hash, LOCK_WAIT_S)
            yield
        finally:
            os.close(descriptor)  # releases the lock


def _lock_within(descriptor: int, wait_s: float) -> bool:
    """An exclusive `flock` on `descriptor`, polled (a blocking flock could not be bounded)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(LOCK_POLL_S)


def _checked_artifact(data: bytes) -> bytes | None:
    """The serialized module inside an artifact, or None unless its header and checksum match."""
    header = len(ARTIFACT_MAGIC) + DIGEST_BYTES
    if len(data) <= header or not data.startswith(ARTIFACT_MAGIC):
        return None
    if hashlib.sha256(memoryview(data)[header:]).digest() != data[len(ARTIFACT_MAGIC) : header]:
        return None
    return data[header:]


def _write_atomically(path: Path, parts: list[bytes | bytearray]) -> None:
    """`parts` as the new content of `path`: a temporary file beside it, fsync, rename."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(descriptor, "wb") as file:
            for part in parts:
                file.write(part)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
