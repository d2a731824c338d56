"""Tiny guest modules for control-plane tests, written inline as WAT."""

from __future__ import annotations

import wasmtime

WASI = "wasi_snapshot_preview1"


def wat(source: str) -> bytes:
    return bytes(wasmtime.wat2wasm(source))


def command_module(marker: int = 0) -> bytes:
    """A valid WASI command: imports fd_write and proc_exit, exports memory and _start.

    `marker` changes the bytes (and so the hash) without changing the shape.
    """
    return wat(
        f"""
        (module
          (import "{WASI}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (import "{WASI}" "proc_exit" (func $proc_exit (param i32)))
          (memory (export "memory") 1)
          (global i32 (i32.const {marker}))
          (func (export "_start") (call $proc_exit (i32.const 0))))
        """
    )


NO_START = wat('(module (memory (export "memory") 1) (func (export "main")))')
NO_MEMORY = wat('(module (memory 1) (func (export "_start")))')
FOREIGN_IMPORT = wat(
    f"""
    (module
      (import "{WASI}" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
      (import "env" "host_call" (func))
      (memory (export "memory") 1)
      (func (export "_start")))
    """
)
IMPORTED_MEMORY = wat(
    f"""
    (module
      (import "{WASI}" "memory" (memory 1))
      (export "memory" (memory 0))
      (func (export "_start")))
    """
)
COMPONENT_HEADER = b"\0asm\x0d\x00\x01\x00"
GARBAGE_AFTER_MAGIC = b"\0asm\x01\x00\x00\x00\xff\xff\xff\xff garbage"
NOT_WASM = b"#!/bin/sh\necho hello\n"
