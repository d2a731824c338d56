"""The C examples, built by `make -C examples` and run directly under wasmtime as WAGI runs them.

These tests hold the examples to the guest contract without the planes: the
CGI variables in the environment, the body on stdin, a CGI response on stdout,
log lines on stderr. The modules are built once per session if missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import wasmtime

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "examples"


@dataclass(frozen=True)
class CgiRun:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def headers(self) -> list[tuple[str, str]]:
        head, _, _ = self.stdout.partition(b"\n\n")
        return [
            (name.strip(), value.strip())
            for name, _, value in (line.decode().partition(":") for line in head.split(b"\n"))
        ]

    @property
    def body(self) -> bytes:
        return self.stdout.partition(b"\n\n")[2]


@pytest.fixture(scope="session")
def examples() -> Iterator[Path]:
    """The build directory, after building the examples if a module is missing."""
    if not (BUILD / "echo.wasm").exists() or not (BUILD / "hello.wasm").exists():
        if shutil.which("make") is None:
            pytest.fail("make is not installed; run `make install` first")
        result = subprocess.run(["make", "-C", str(REPO / "examples")], capture_output=True, text=True)
        assert result.returncode == 0, f"make -C examples failed:\n{result.stdout}{result.stderr}"
    yield BUILD


def run_wagi(module_path: Path, env: Mapping[str, str], body: bytes, tmp_path: Path) -> CgiRun:
    """Runs a WASI command module once: `env` as its environment, `body` on stdin."""
    stdin, stdout, stderr = tmp_path / "stdin", tmp_path / "stdout", tmp_path / "stderr"
    stdin.write_bytes(body)
    wasi = wasmtime.WasiConfig()
    wasi.env = list(env.items())
    wasi.argv = [module_path.name]
    wasi.stdin_file = str(stdin)
    wasi.stdout_file = str(stdout)
    wasi.stderr_file = str(stderr)

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(module_path)))
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    exit_code = 0
    try:
        start(store)
    except wasmtime.ExitTrap as exit_trap:
        exit_code = exit_trap.code
    return CgiRun(exit_code, stdout.read_bytes(), stderr.read_bytes())


def cgi_env(**variables: str) -> dict[str, str]:
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hello/world",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "4000",
    }
    return base | variables


def test_hello_writes_a_plain_text_cgi_response(examples: Path, tmp_path: Path) -> None:
    run = run_wagi(examples / "hello.wasm", cgi_env(REQUEST_METHOD="GET"), b"", tmp_path)

    assert run.exit_code == 0
    assert run.stdout == b"Content-Type: text/plain\n\nHello, world!\n"


def test_echo_answers_the_request_as_json_with_the_requested_status(examples: Path, tmp_path: Path) -> None:
    env = cgi_env(
        QUERY_STRING="a=1&status=201&b=2",
        CONTENT_LENGTH="2",
        HTTP_USER_AGENT="curl/8.0",
        HTTP_X_ECHO="yes",
        GREETING="bonjour",
    )

    run = run_wagi(examples / "echo.wasm", env, b"hi", tmp_path)

    assert run.exit_code == 0
    assert run.headers == [
        ("Content-Type", "application/json"),
        ("X-Ffaas-Example", "echo"),
        ("Status", "201"),
    ]
    assert json.loads(run.body) == {
        "method": "POST",
        "path": "/hello/world",
        "query": "a=1&status=201&b=2",
        "user_agent": "curl/8.0",
        "x_echo": "yes",
        "greeting": "bonjour",
        "body": "hi",
    }
    assert run.stderr == b"echo: POST /hello/world\n"


def test_echo_defaults_to_200_and_null_for_missing_variables(examples: Path, tmp_path: Path) -> None:
    env = cgi_env(REQUEST_METHOD="GET", PATH_INFO="/", QUERY_STRING="status=20&x=status=404")

    run = run_wagi(examples / "echo.wasm", env, b"", tmp_path)

    assert ("Status", "200") in run.headers
    document = json.loads(run.body)
    assert document["user_agent"] is None
    assert document["x_echo"] is None
    assert document["greeting"] is None
    assert document["body"] == ""
    assert run.stderr == b"echo: GET /\n"


def test_echo_escapes_quotes_backslashes_and_control_characters(examples: Path, tmp_path: Path) -> None:
    body = 'say "hi"\\now\nnext\ttab\x01 caf\u00e9'.encode()

    run = run_wagi(examples / "echo.wasm", cgi_env(HTTP_X_ECHO='a "quoted" value'), body, tmp_path)

    raw = run.body.decode()
    assert r'"body": "say \"hi\"\\now\u000anext\u0009tab\u0001 café"' in raw
    assert r'"x_echo": "a \"quoted\" value"' in raw
    document = json.loads(raw)
    assert document["body"] == body.decode()
    assert document["x_echo"] == 'a "quoted" value'


def test_echo_reads_a_body_larger_than_its_first_buffer(examples: Path, tmp_path: Path) -> None:
    body = b"x" * 100_000

    run = run_wagi(examples / "echo.wasm", cgi_env(CONTENT_LENGTH=str(len(body))), body, tmp_path)

    assert json.loads(run.body)["body"] == body.decode()
