"""Guest modules for data-plane tests, written inline as WAT (as wasmtime-py's own tests do)."""

from __future__ import annotations

import wasmtime

_WASI_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
"""

_WRITE = """
  ;; write(fd, ptr, len) through one iovec at address 0
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
"""


def _escape(text: bytes) -> str:
    return "".join(f"\\{byte:02x}" for byte in text)


def module(body: str, data: bytes = b"", memory_pages: int = 1) -> bytes:
    """A WASI command with `write`, the WASI imports above, and `data` at address 1024."""
    return wasmtime.wat2wasm(
        f"""(module {_WASI_IMPORTS}
          (memory (export "memory") {memory_pages})
          (data (i32.const 1024) "{_escape(data)}")
          {_WRITE}
          (func (export "_start") {body}))"""
    )


def prints(stdout: bytes, stderr: bytes = b"") -> bytes:
    """Writes `stdout` to fd 1 and `stderr` to fd 2."""
    return module(
        f"(call $write (i32.const 1) (i32.const 1024) (i32.const {len(stdout)}))"
        f"(call $write (i32.const 2) (i32.const {1024 + len(stdout)}) (i32.const {len(stderr)}))",
        stdout + stderr,
    )


def echo_stdin() -> bytes:
    """Copies up to 60000 bytes of stdin to stdout (one read loop)."""
    return module(
        """(local $n i32) (local $total i32)
        (block $done (loop $read
          (i32.store (i32.const 16) (i32.add (i32.const 4096) (local.get $total)))
          (i32.store (i32.const 20) (i32.sub (i32.const 60000) (local.get $total)))
          (drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
          (local.set $n (i32.load (i32.const 24)))
          (br_if $done (i32.eqz (local.get $n)))
          (local.set $total (i32.add (local.get $total) (local.get $n)))
          (br $read)))
        (call $write (i32.const 1) (i32.const 4096) (local.get $total))""",
        memory_pages=2,
    )


def exits(code: int) -> bytes:
    return module(f"(call $proc_exit (i32.const {code}))")


def loops_forever() -> bytes:
    return module("(loop $forever (br $forever))")


def traps() -> bytes:
    return module("unreachable")


def grows_memory_until_refused() -> bytes:
    return module(
        "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable"
    )


def floods_stdout() -> bytes:
    """Writes 64 KiB chunks to stdout forever, ignoring errors."""
    return module("(loop $flood (call $write (i32.const 1) (i32.const 0) (i32.const 65536)) (br $flood))")


def recurses_forever() -> bytes:
    return wasmtime.wat2wasm(
        """(module (memory (export "memory") 1)
          (func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))
          (func (export "_start") (drop (call $down (i32.const 0)))))"""
    )


def prints_env(name: str) -> bytes:
    """Writes the whole environment block (`environ_get`) to stdout; `name` documents the intent."""
    return wasmtime.wat2wasm(
        f""";; prints the environment, looking for {name}
        (module
          (import "wasi_snapshot_preview1" "environ_sizes_get" (func $sizes (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "environ_get" (func $get (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 4)
          (func (export "_start")
            (drop (call $sizes (i32.const 0) (i32.const 4)))
            (drop (call $get (i32.const 1024) (i32.const 65536)))
            (i32.store (i32.const 16) (i32.const 65536))
            (i32.store (i32.const 20) (i32.load (i32.const 4)))
            (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))"""
    )


def counts_to(count: int, stdout: bytes = b"done") -> bytes:
    """Counts to `count` (a fixed amount of work, whatever the clock says), then writes `stdout`."""
    return module(
        f"""(local $i i32)
        (loop $count
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $count (i32.lt_u (local.get $i) (i32.const {count}))))
        (call $write (i32.const 1) (i32.const 1024) (i32.const {len(stdout)}))""",
        stdout,
    )
