"""transpile(): the real esbuild turns TypeScript into a script, checks JavaScript, and reports the
first compile error with a 1-based line:column; a missing, failing or slow esbuild is a 503."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import control_plane.transpile as transpile_module
from control_plane.settings import Settings
from control_plane.transpile import CodeDoesNotCompile, transpile
from shared.errors import Unavailable

ESBUILD = Settings().esbuild_path


async def run(code: str, language: str = "js", *, esbuild: Path = ESBUILD, timeout_ms: int = 10_000) -> str:
    return await transpile(code, language, esbuild=esbuild, timeout_ms=timeout_ms)


async def test_typescript_loses_its_types_and_keeps_a_global_async_main() -> None:
    js = await run(
        "type Req = {body: string};\n"
        "async function main(fh: unknown, req: Req): Promise<string> { return req.body as string; }",
        "ts",
    )

    assert js == "async function main(fh, req) {\n  return req.body;\n}\n"


@pytest.mark.parametrize(
    "code",
    [
        "function main(r) { return 1 }",
        "async function main(fh, r) { return 1 }",
        "var main = function (r) { return 1 }",
        "const helper = 1;\n\nfunction main(r) {\n  if (r) { function inner() {} }\n  return helper;\n}",
    ],
)
async def test_scripts_with_a_global_main_are_accepted(code: str) -> None:
    assert "main" in await run(code)


async def test_non_ascii_text_stays_utf8() -> None:
    assert "é 🙂" in await run('function main() { return "é 🙂" }')


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("function main() {\n  return )\n}", '2:10: Unexpected ")"'),
        ("function main() {", "1:18: Unexpected end of file"),
        ("let a = 1;\nlet a = 2;\nfunction main() {}", '2:5: The symbol "a" has already been declared'),
        ("function main() {}\nawait main();", "2:1: Top-level await is not available"),
    ],
)
async def test_the_first_compile_error_is_reported_with_its_location(code: str, message: str) -> None:
    with pytest.raises(CodeDoesNotCompile) as raised:
        await run(code)

    assert raised.value.status == 400
    assert raised.value.message.startswith(f"code does not compile: {message}")


@pytest.mark.parametrize(
    ("code", "keyword"),
    [
        ("export function main() {}", "export"),
        ("import x from 'y';\nfunction main() { return x }", "import"),
        ("function main() {}\nexport {};", "export"),
    ],
)
async def test_module_syntax_is_refused(code: str, keyword: str) -> None:
    with pytest.raises(CodeDoesNotCompile, match=f"not an ES module: remove `{keyword}`"):
        await run(code, "ts")


async def test_dynamic_import_is_not_module_syntax() -> None:
    assert "import(" in await run("async function main() { return import('x') }")


@pytest.mark.parametrize(
    "code",
    ["function handler() {}", "function outer() { function main() {} }", "const main = () => 1;", "// main"],
)
async def test_code_without_a_global_main_is_refused(code: str) -> None:
    with pytest.raises(CodeDoesNotCompile, match="must define a global function main"):
        await run(code)


async def test_a_missing_esbuild_is_unavailable_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        Unavailable, match=r"esbuild not found at .* \(FFAAS_ESBUILD_PATH\); run `make install`"
    ):
        await run("function main() {}", esbuild=tmp_path / "esbuild")


def fake_esbuild(tmp_path: Path, script: str) -> Path:
    """An injected fault: an 'esbuild' that misbehaves."""
    path = tmp_path / "esbuild"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


async def test_an_esbuild_that_fails_without_a_compile_error_is_unavailable(tmp_path: Path) -> None:
    esbuild = fake_esbuild(tmp_path, "echo 'segmentation fault' >&2; exit 2")

    with pytest.raises(Unavailable, match=r"failed with exit status 2"):
        await run("function main() {}", esbuild=esbuild)


async def test_a_slow_esbuild_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    esbuild = fake_esbuild(tmp_path, f"echo $$ > {pid_file}; exec sleep 30")

    with pytest.raises(Unavailable, match=r"longer than 200 ms \(FFAAS_TRANSPILE_TIMEOUT_MS\)"):
        await run("function main() {}", esbuild=esbuild, timeout_ms=200)

    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped


def test_transpile_imports_no_http() -> None:
    tree = ast.parse(Path(transpile_module.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}

    assert not {name for name in imported if name.startswith(("starlette", "control_plane.routes"))}
