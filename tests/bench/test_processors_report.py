"""bench: the FFAAS/workerd ratios, skipped rows in the table and JSON, and what bench/workerd.py parses."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench import workerd
from bench.processors import V8_HELLO, V8_LOGS, WASM_HELLO, WASM_LOGS, WORKERD_HELLO, WORKERD_LOGS
from bench.report import format_report, processor_ratios, results_document, short_reason
from bench.scenarios import Options, Results, ThroughputRow
from bench.wrk import parse_wrk_output
from tests.bench.test_wrk_parse import BARE_C1, BARE_C50

OPTIONS = Options(5, (1, 50), 0, 2, Path("hello.wasm"))


def row(target: str, base: str, rps: float) -> ThroughputRow:
    return ThroughputRow(target, replace(parse_wrk_output(base), requests_per_s=rps))


def measured() -> Results:
    return Results(
        throughput=[
            row(WORKERD_HELLO, BARE_C1, 5000),
            row(WORKERD_HELLO, BARE_C50, 20000),
            row(V8_HELLO, BARE_C1, 500),
            row(V8_HELLO, BARE_C50, 1000),
            row(WASM_HELLO, BARE_C1, 2500),
            row(WORKERD_LOGS, BARE_C1, 4000),
            row(V8_LOGS, BARE_C1, 400),
            row(WASM_LOGS, BARE_C1, 2000),
        ]
    )


def test_ratio_is_ffaas_over_workerd_for_each_pair_and_concurrency() -> None:
    results = measured()
    results.skip_rows([WORKERD_LOGS, V8_LOGS], (50,), "wrk is not installed: run `make install`")

    found = {(r["ffaas"], r["connections"]): r for r in processor_ratios(results)}

    assert found[V8_HELLO, 1]["ffaas_over_workerd"] == pytest.approx(0.1)
    assert found[V8_HELLO, 50]["ffaas_over_workerd"] == pytest.approx(0.05)
    assert found[WASM_HELLO, 1]["ffaas_over_workerd"] == pytest.approx(0.5)
    assert found[WASM_HELLO, 50]["skipped"] == "a row of the pair was not measured"
    assert found[V8_LOGS, 1]["ffaas_over_workerd"] == pytest.approx(0.1)
    assert found[WASM_LOGS, 1]["ffaas_over_workerd"] == pytest.approx(0.5)
    assert found[V8_LOGS, 50]["skipped"] == "wrk is not installed: run `make install`"
    assert "ffaas_over_workerd" not in found[V8_LOGS, 50]


def test_skipped_workerd_rows_say_why_in_table_ratios_and_json() -> None:
    results = Results(throughput=[row(V8_HELLO, BARE_C1, 500)])
    reason = "npm is not installed (install Node.js >= 16 with npm; ...)"
    results.skip_rows([WORKERD_HELLO], (1,), reason)

    text = format_report(results)
    document = json.loads(json.dumps(results_document(results, OPTIONS)))

    lines = text.splitlines()
    assert lines[1].split()[:3] == ["v8", "hello", "/run"]
    assert lines[2].split()[:3] == ["workerd", "hello", "1"]
    assert lines[2].endswith("skipped: npm is not installed")
    assert "FFAAS/workerd req/s, hello at c=1: skipped: npm is not installed" in text
    assert f"skipped: {WORKERD_HELLO}: {reason}" in text
    assert document["skipped_rows"] == [{"target": WORKERD_HELLO, "connections": 1, "reason": reason}]
    assert document["ffaas_vs_workerd"][0]["skipped"] == reason
    assert document["ffaas_vs_workerd"][0]["ffaas_rps"] == 500


def test_table_pairs_each_processor_with_its_workerd_row() -> None:
    lines = format_report(measured()).splitlines()

    targets = [" ".join(line.split()[:2]) for line in lines[1:9]]
    assert targets == [
        "v8 hello",
        "v8 hello",
        "wasm hello",
        "workerd hello",
        "workerd hello",
        "v8 log+json",
        "wasm log+json",
        "workerd log+json",
    ]


@pytest.mark.parametrize(
    ("reason", "gist"),
    [
        ("wrk is not installed: run `make install` (Debian/Ubuntu package `wrk`)", "wrk is not installed"),
        ("`npm ci` in /x failed (exit 1): code ECONNREFUSED", "`npm ci` in /x failed"),
        ("x" * 100, "x" * 57 + "..."),
    ],
)
def test_short_reason(reason: str, gist: str) -> None:
    assert short_reason(reason) == gist


NPM_CI_OUT_OF_SYNC = """\
npm warn Unknown user config "nodedir".
npm error code EUSAGE
npm error
npm error `npm ci` can only install packages when your package.json and package-lock.json are in sync.
npm error
npm error Missing: @cloudflare/workerd-darwin-64@ from lock file
npm error
npm error Clean install a project
npm error
npm error Usage:
npm error npm ci
npm error A complete log of this run can be found in: /root/.npm/_logs/x-debug-0.log
"""


def test_npm_error_summary_keeps_the_reason_and_drops_usage() -> None:
    summary = workerd.npm_error_summary(NPM_CI_OUT_OF_SYNC)

    assert summary.startswith("code EUSAGE; `npm ci` can only install packages")
    assert "Missing: @cloudflare/workerd-darwin-64@ from lock file" in summary
    assert "Usage" not in summary and "complete log" not in summary


def test_serve_command_moves_every_socket_to_loopback() -> None:
    command = workerd.serve_command(Path("/bin/workerd"), {"hello": 1234, "logs": 5678})

    assert command == [
        "/bin/workerd",
        "serve",
        str(workerd.CONFIG),
        "--socket-addr=hello=127.0.0.1:1234",
        "--socket-addr=logs=127.0.0.1:5678",
    ]


def test_the_pinned_workerd_is_an_exact_version_and_locked() -> None:
    version = workerd.pinned_version()
    lock = json.loads((workerd.WORKERD_DIR / "package-lock.json").read_text())

    assert version.replace(".", "").isdigit()
    assert lock["packages"]["node_modules/workerd"]["version"] == version
    for package in lock["packages"]["node_modules/workerd"]["optionalDependencies"]:
        assert f"node_modules/{package}" in lock["packages"], f"{package} missing: `npm ci` would refuse"
    config = workerd.CONFIG.read_text()
    assert all(f'(name = "{name}", address' in config for name in workerd.SOCKETS)
