"""bench/report.py: the WAGI/bare ratio and the flagging of failed runs, from parsed wrk reports."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.report import format_report, ratios, results_document
from bench.scenarios import BARE, WAGI_HELLO, WAGI_HELLO_ONE_WORKER, Options, Results, ThroughputRow
from bench.wrk import parse_wrk_output
from tests.bench.test_wrk_parse import BARE_C1, BARE_C50, RESETS


def results_with(wagi_c1_rps: float, wagi_c50_rps: float) -> Results:
    bare_c1, bare_c50 = parse_wrk_output(BARE_C1), parse_wrk_output(BARE_C50)
    return Results(
        throughput=[
            ThroughputRow(BARE, bare_c1),
            ThroughputRow(BARE, bare_c50),
            ThroughputRow(WAGI_HELLO, replace(bare_c1, requests_per_s=wagi_c1_rps)),
            ThroughputRow(WAGI_HELLO, replace(bare_c50, requests_per_s=wagi_c50_rps)),
        ]
    )


def test_ratio_is_wagi_over_bare_at_each_concurrency() -> None:
    found = ratios(results_with(wagi_c1_rps=4400, wagi_c50_rps=2806.088))

    assert [(r["connections"], r["wagi_over_bare"], r["target"], r["meets_target"]) for r in found] == [
        (1, pytest.approx(0.506, abs=1e-3), None, None),
        (50, pytest.approx(0.1), {"at_least": 0.25, "connections": 50}, False),
    ]


def test_report_lists_wagi_rows_first_and_flags_a_missed_target() -> None:
    text = format_report(results_with(wagi_c1_rps=5000, wagi_c50_rps=1000))

    rows = [line.split()[0:2] for line in text.splitlines()[1:5]]
    assert rows == [["WAGI", "hello"], ["WAGI", "hello"], ["bare", "Starlette"], ["bare", "Starlette"]]
    assert "WAGI/bare req/s at c=50: 0.04 (target >= 0.25) BELOW TARGET" in text
    assert "WAGI/bare req/s at c=1: 0.57\n" in text  # issue 10 sets its targets at c=50 only


def test_a_run_with_socket_errors_is_flagged_in_table_and_json() -> None:
    results = Results(throughput=[ThroughputRow(BARE, parse_wrk_output(RESETS))])
    options = Options(5, (4,), 0, 2, Path("hello.wasm"))

    assert "40541  <-- FAILED RUN" in format_report(results)
    assert results_document(results, options)["throughput"][0]["ok"] is False


def test_one_worker_alone_gets_its_own_row_and_ratio() -> None:
    results = results_with(wagi_c1_rps=4400, wagi_c50_rps=5612.176)
    bare_c50 = parse_wrk_output(BARE_C50)
    results.throughput.append(
        ThroughputRow(WAGI_HELLO_ONE_WORKER, replace(bare_c50, requests_per_s=2806.088))
    )

    found = [(r["wagi"], r["connections"], r["wagi_over_bare"]) for r in ratios(results)]
    text = format_report(results)

    assert found == [
        (WAGI_HELLO, 1, pytest.approx(0.506, abs=1e-3)),
        (WAGI_HELLO, 50, pytest.approx(0.2)),
        (WAGI_HELLO_ONE_WORKER, 50, pytest.approx(0.1)),
    ]
    assert "WAGI/bare req/s at c=50: 0.20" in text
    assert "WAGI/bare req/s (1 worker) at c=50: 0.10" in text
    rows = [line.split("  ")[0] for line in text.splitlines()[1:6]]
    assert rows == ["WAGI hello", "WAGI hello", WAGI_HELLO_ONE_WORKER, "bare Starlette", "bare Starlette"]
