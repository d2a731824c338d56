"""Compiled modules by content hash: in memory, and serialized on disk.

Invariants:
- Disk artifacts live in `<directory>/<engine fingerprint>/<hash>.cwasm`, so an
  artifact only ever loads into an engine of the same wasmtime version, machine
  and configuration.
- wasmtime trusts a deserialized artifact completely, so only artifacts this
  class wrote are loaded: each is written to a temporary name and renamed into
  place after its SHA-256 sidecar, and is loaded only if the sidecar matches.
  A mismatching or unreadable artifact is deleted and the module recompiled.
- All methods are synchronous and thread-safe; callers run them off the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import wasmtime

from data_plane.runtime.wasm import WasmRuntime

log = logging.getLogger("ffaas.module_cache")


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
        sidecar = artifact.with_suffix(".sha256")
        try:
            expected = sidecar.read_text().strip()
            data = artifact.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != expected:
            log.warning("discarding artifact %s: checksum mismatch", artifact)
            artifact.unlink(missing_ok=True)
            return None
        try:
            module = wasmtime.Module.deserialize(self._runtime.engine, data)
        except wasmtime.WasmtimeError as exc:
            log.warning("discarding artifact %s: %s", artifact, exc)
            artifact.unlink(missing_ok=True)
            return None
        self.loaded_from_disk += 1
        return module

    def _store(self, module_hash: str, module: wasmtime.Module) -> None:
        artifact = self._artifact(module_hash)
        data = module.serialize()
        try:
            _write_atomically(artifact.with_suffix(".sha256"), hashlib.sha256(data).hexdigest().encode())
            _write_atomically(artifact, data)
        except OSError as exc:
            log.warning("could not write artifact %s (serving from memory): %s", artifact, exc)


def _write_atomically(path: Path, data: bytes | bytearray) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
