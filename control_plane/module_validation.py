"""Deciding, without running it, whether uploaded bytes are a module the WAGI contract can run.

The contract (SPEC "Guest contracts"): a core WebAssembly module that is a WASI preview1
command: it exports a function `_start` and its memory as `memory`, and imports nothing
but functions of `wasi_snapshot_preview1`. Checks run cheapest first and the first
failure is the reason given. wasmtime validates the binary; the import and export
sections are then read by the small reader below instead of compiling the module,
which is slow for big modules. Nothing here runs user code. CPU-bound: call it from a
worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import wasmtime

from shared.errors import InvalidModule

MAGIC = b"\0asm"
CORE_VERSION = b"\x01\x00\x00\x00"
COMPONENT_VERSION = b"\x0d\x00\x01\x00"
WASI_MODULE = "wasi_snapshot_preview1"

_IMPORT_SECTION = 2
_EXPORT_SECTION = 7
_KIND_FUNCTION = 0
_KIND_MEMORY = 2


@dataclass(frozen=True)
class Import:
    module: str
    name: str
    kind: int


@dataclass(frozen=True)
class Export:
    name: str
    kind: int


def validate_module(data: bytes) -> None:
    """Return if `data` is a runnable WASI command module; else raise `InvalidModule` saying why."""
    if not data.startswith(MAGIC):
        raise InvalidModule("not a WebAssembly module: missing \\0asm magic")
    version = data[4:8]
    if len(version) < 4:
        raise InvalidModule("not a WebAssembly module: the 8-byte header is truncated")
    if version == COMPONENT_VERSION:
        raise InvalidModule(
            "WebAssembly components are not supported; deploy a WASI preview1 command module (_start)"
        )
    if version != CORE_VERSION:
        raise InvalidModule(
            f"unsupported WebAssembly version {version.hex(' ')}; only version 1 is supported"
        )
    try:
        wasmtime.Module.validate(_engine(), data)
    except wasmtime.WasmtimeError as exc:
        raise InvalidModule(f"invalid WebAssembly module: {_first_line(str(exc))}") from exc
    imports, exports = read_imports_and_exports(data)
    for item in imports:
        if item.module != WASI_MODULE:
            raise InvalidModule(
                f"module imports `{item.module}.{item.name}`; only `{WASI_MODULE}` imports are available"
            )
        if item.kind != _KIND_FUNCTION:
            raise InvalidModule(f"module imports `{item.module}.{item.name}`, which is not a function")
    if Export("_start", _KIND_FUNCTION) not in exports:
        raise InvalidModule(
            "module has no exported function `_start`; the WAGI contract needs a WASI command module"
        )
    if Export("memory", _KIND_MEMORY) not in exports:
        raise InvalidModule(
            "module has no exported memory `memory`; WASI needs it to pass data to the module"
        )


@functools.cache
def _engine() -> wasmtime.Engine:
    # Validation only reads the engine's configuration; one engine serves every thread.
    return wasmtime.Engine()


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "rejected by the validator"


def read_imports_and_exports(data: bytes) -> tuple[list[Import], list[Export]]:
    """Read the import and export sections of a module that wasmtime has validated.

    Only the first import entries up to (and including) the first non-function import
    are returned: a function import has a simple shape, while other kinds need not be
    decoded to refuse them.
    """
    reader = _Reader(data, 8)
    imports: list[Import] = []
    exports: list[Export] = []
    while not reader.at_end():
        section_id = reader.byte()
        size = reader.u32()
        end = reader.position + size
        if section_id == _IMPORT_SECTION:
            imports = _read_imports(reader)
        elif section_id == _EXPORT_SECTION:
            exports = [Export(reader.name(), _kind_then_index(reader)) for _ in range(reader.u32())]
        reader.position = end
    return imports, exports


def _read_imports(reader: _Reader) -> list[Import]:
    imports: list[Import] = []
    for _ in range(reader.u32()):
        item = Import(reader.name(), reader.name(), reader.byte())
        imports.append(item)
        if item.kind != _KIND_FUNCTION or item.module != WASI_MODULE:
            break
        reader.u32()  # the function's type index
    return imports


def _kind_then_index(reader: _Reader) -> int:
    kind = reader.byte()
    reader.u32()
    return kind


class _Reader:
    """A cursor over wasm binary encodings: bytes, unsigned LEB128, UTF-8 names."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position

    def at_end(self) -> bool:
        return self.position >= len(self.data)

    def byte(self) -> int:
        if self.at_end():
            raise InvalidModule("invalid WebAssembly module: unexpected end of data")
        value = self.data[self.position]
        self.position += 1
        return value

    def u32(self) -> int:
        result = shift = 0
        while True:
            value = self.byte()
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                return result
            shift += 7
            if shift > 35:
                raise InvalidModule("invalid WebAssembly module: LEB128 integer too long")

    def name(self) -> str:
        length = self.u32()
        raw = self.data[self.position : self.position + length]
        if len(raw) != length:
            raise InvalidModule("invalid WebAssembly module: unexpected end of data")
        self.position += length
        return raw.decode("utf-8", errors="replace")
