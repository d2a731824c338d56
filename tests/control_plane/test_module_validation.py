"""Unit tests of `validate_module`: the WAGI contract checked without running the module."""

from __future__ import annotations

import pytest

from control_plane.module_validation import read_imports_and_exports, validate_module
from shared.errors import InvalidModule
from tests.control_plane import wasm_modules
from tests.control_plane.wasm_modules import WASI, wat


def reason(data: bytes) -> str:
    with pytest.raises(InvalidModule) as raised:
        validate_module(data)
    return raised.value.message


def test_a_wasi_command_module_is_valid() -> None:
    validate_module(wasm_modules.command_module())


def test_a_module_with_no_imports_is_valid() -> None:
    validate_module(wat('(module (memory (export "memory") 1) (func (export "_start")))'))


def test_custom_sections_are_skipped() -> None:
    module = wasm_modules.command_module()
    custom = b"\x00" + bytes([len(b"\x04note" + b"hello")]) + b"\x04note" + b"hello"

    validate_module(module[:8] + custom + module[8:] + custom)


def test_bytes_without_the_magic_are_not_wasm() -> None:
    assert reason(wasm_modules.NOT_WASM) == "not a WebAssembly module: missing \\0asm magic"
    assert reason(b"") == "not a WebAssembly module: missing \\0asm magic"


def test_a_truncated_header_is_refused() -> None:
    assert reason(b"\0asm\x01\x00") == "not a WebAssembly module: the 8-byte header is truncated"


def test_a_component_is_refused_with_advice() -> None:
    assert reason(wasm_modules.COMPONENT_HEADER + b"\x00\x00") == (
        "WebAssembly components are not supported; deploy a WASI preview1 command module (_start)"
    )


def test_an_unknown_core_version_is_refused() -> None:
    assert (
        reason(b"\0asm\x02\x00\x00\x00")
        == "unsupported WebAssembly version 02 00 00 00; only version 1 is supported"
    )


def test_garbage_after_the_header_reports_wasmtimes_reason() -> None:
    message = reason(wasm_modules.GARBAGE_AFTER_MAGIC)

    assert message.startswith("invalid WebAssembly module: ")
    assert len(message) > len("invalid WebAssembly module: ")
    assert "\n" not in message


def test_a_type_error_in_a_function_body_is_refused() -> None:
    module = wat(
        '(module (memory (export "memory") 1) (func (export "_start") (i32.const 1)))',
    )

    assert reason(module).startswith("invalid WebAssembly module: ")


def test_a_module_without_start_is_refused() -> None:
    assert reason(wasm_modules.NO_START) == (
        "module has no exported function `_start`; the WAGI contract needs a WASI command module"
    )


def test_start_must_be_a_function() -> None:
    module = wat('(module (memory (export "memory") 1) (global (export "_start") i32 (i32.const 0)))')

    assert reason(module).startswith("module has no exported function `_start`")


def test_a_module_without_an_exported_memory_is_refused() -> None:
    assert reason(wasm_modules.NO_MEMORY).startswith("module has no exported memory `memory`")


def test_the_first_foreign_import_is_named() -> None:
    module = wat(
        f"""(module
          (import "{WASI}" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
          (import "env" "first" (func))
          (import "other" "second" (func))
          (memory (export "memory") 1) (func (export "_start")))"""
    )

    assert reason(module) == "module imports `env.first`; only `wasi_snapshot_preview1` imports are available"


def test_a_foreign_memory_import_is_named() -> None:
    module = wat(
        '(module (import "env" "memory" (memory 1)) (export "memory" (memory 0)) (func (export "_start")))'
    )

    assert reason(module).startswith("module imports `env.memory`")


def test_a_non_function_wasi_import_is_refused() -> None:
    assert reason(wasm_modules.IMPORTED_MEMORY) == (
        "module imports `wasi_snapshot_preview1.memory`, which is not a function"
    )


def test_the_reader_lists_imports_and_exports() -> None:
    imports, exports = read_imports_and_exports(wasm_modules.command_module())

    assert [(item.module, item.name, item.kind) for item in imports] == [
        (WASI, "fd_write", 0),
        (WASI, "proc_exit", 0),
    ]
    assert sorted((item.name, item.kind) for item in exports) == [("_start", 0), ("memory", 2)]


def test_a_long_import_section_is_read_past_multibyte_leb128_counts() -> None:
    imports = "\n".join(f'(import "{WASI}" "f{n}" (func))' for n in range(200))
    module = wat(f'(module {imports} (memory (export "memory") 1) (func (export "_start")))')

    validate_module(module)
    assert len(read_imports_and_exports(module)[0]) == 200
