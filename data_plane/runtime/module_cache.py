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
- Only what routes use stays (`retain`): other modules leave memory at once, and their disk
  artifacts once they went unused for `disk_grace_s` (FFAAS_MODULE_CACHE_GRACE_S), so that a
  rollback soon after a deploy still loads from disk, and the directory does not grow forever.
  Pinned modules (the JS engine) always stay.  Deleting an artifact (or its lock file) another
  process is about to load or compile is safe: that process finds it missing and compiles.
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
    def __init__(
        self,
        runtime: WasmRuntime,
        directory: Path,
        *,
        disk_grace_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._directory = directory / runtime.fingerprint
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._modules: dict[str, wasmtime.Module] = {}
        self._pinned: set[str] = set()
        self._unused_since: dict[str, float] = {}
        """Artifacts on disk that no route used when last looked, and since when (by `clock`)."""
        self._disk_grace_s = disk_grace_s
        self._clock = clock
        self._lock = threading.Lock()
        self.compiled = 0
        self.loaded_from_disk = 0
        self.artifacts_deleted = 0

    @property
    def in_memory(self) -> int:
        return len(self._modules)

    def get(self, module_hash: str) -> wasmtime.Module | None:
        return self._modules.get(module_hash)

    def on_disk(self, module_hash: str) -> bool:
        return self._artifact(module_hash).exists()

    def load_or_compile(
        self, module_hash: str, fetch_wasm: Callable[[], bytes], *, pin: bool = False
    ) -> wasmtime.Module:
        """The module for `module_hash`: from memory, else disk, else compiled from `fetch_wasm()`;
        `pin` keeps it (in memory and on disk) whatever `retain` is told."""
        with self._lock:
            if pin:
                self._pinned.add(module_hash)
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

    def retain(self, in_use: set[str]) -> None:
        """Keep the modules in `in_use` (and the pinned ones): forget the others in memory at once,
        and delete their disk artifacts once they went unused for the grace period."""
        keep = in_use | self._pinned
        with self._lock:
            for module_hash in set(self._modules) - keep:
                del self._modules[module_hash]
            now = self._clock()
            on_disk = {path.stem for path in self._directory.glob("*.cwasm")}
            self._unused_since = {
                module_hash: self._unused_since.get(module_hash, now) for module_hash in on_disk - keep
            }
            for module_hash, since in list(self._unused_since.items()):
                if now - since >= self._disk_grace_s:
                    self._delete_artifact(module_hash)
                    del self._unused_since[module_hash]

    def _delete_artifact(self, module_hash: str) -> None:
        artifact = self._artifact(module_hash)
        try:
            artifact.unlink(missing_ok=True)
            (self._directory / f"{module_hash}.lock").unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete unused artifact %s: %s", artifact, exc)
            return
        self.artifacts_deleted += 1

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
