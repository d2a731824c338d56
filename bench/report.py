"""The benchmark's output: a table for people, `bench/results/latest.json` for tools.

Both are built from `Results` alone, so a new scenario's figures appear here
without changes: throughput rows in the first table, latency summaries in the
second, rates and timings in the list below them.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.context import Options
from bench.results import Results
from bench.scenarios import BARE, WAGI_HELLO

RATIO_TARGET = 0.5
"""WAGI hello must serve at least this share of the bare app's requests per second."""


def ratios(results: Results) -> list[dict[str, Any]]:
    """WAGI hello req/s over bare Starlette req/s, at each concurrency both were measured at."""
    by_key = {(row.target, row.result.connections): row.result for row in results.throughput}
    found = []
    for (target, connections), wagi in by_key.items():
        bare = by_key.get((BARE, connections))
        if target != WAGI_HELLO or bare is None or bare.requests_per_s == 0:
            continue
        ratio = wagi.requests_per_s / bare.requests_per_s
        found.append({
            "connections": connections,
            "wagi_over_bare": round(ratio, 3),
            "target": RATIO_TARGET,
            "meets_target": ratio >= RATIO_TARGET,
        })  # fmt: skip
    return sorted(found, key=lambda item: item["connections"])


def format_report(results: Results) -> str:
    lines = [
        f"{'':<16}{'conns':>6}{'req/s':>11}{'p50 ms':>9}{'p99 ms':>9}  errors",
    ]
    order = {WAGI_HELLO: 0, BARE: 1}
    rows = sorted(results.throughput, key=lambda row: (order.get(row.target, 2), row.result.connections))
    for row in rows:
        result = row.result
        errors = "0" if result.ok else f"{result.errors}  <-- FAILED RUN"
        if result.ok is False and result.requests == 0:
            errors = "no requests completed  <-- FAILED RUN"
        lines.append(
            f"{row.target:<16}{result.connections:>6}{result.requests_per_s:>11,.0f}"
            f"{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}  {errors}"
        )
    if not rows:
        lines.append("(no throughput measured)")
    lines.append("")
    for ratio in ratios(results):
        verdict = "ok" if ratio["meets_target"] else "BELOW TARGET"
        lines.append(
            f"WAGI/bare req/s at c={ratio['connections']}: {ratio['wagi_over_bare']:.2f} "
            f"(target >= {RATIO_TARGET}) {verdict}"
        )
    if results.latencies:
        lines.append("")
        lines.append(f"{'conversation lag':<64}{'samples':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for latency in results.latencies.values():
            lines.append(
                f"{latency.label:<64}{latency.samples:>8}{latency.p50_ms:>9.2f}"
                f"{latency.p99_ms:>9.2f}{latency.max_ms:>9.2f}"
            )
            lines.append(f"    {_detail(latency.detail)}")
        lines.append("")
    for rate in results.rates.values():
        detail = _detail(rate.detail)
        lines.append(f"{rate.label}: {rate.per_s:,.0f} {rate.unit}" + (f"  ({detail})" if detail else ""))
    for timing in results.timings.values():
        detail = _detail(timing.detail)
        lines.append(f"{timing.label}: {timing.ms:.1f} ms" + (f"  ({detail})" if detail else ""))
    for skipped in results.skipped:
        lines.append(f"skipped: {skipped}")
    for problem in results.problems:
        lines.append(f"PROBLEM: {problem}")
    return "\n".join(lines)


def _detail(detail: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in detail.items())


def results_document(results: Results, options: Options) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "ok": not results.problems,
        "options": {
            "duration_s": options.duration_s,
            "connections": list(options.connections),
            "warmup_s": options.warmup_s,
            "max_threads": options.max_threads,
            "backlog_runs": options.backlog_runs,
            "lag_samples": options.lag_samples,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "throughput": [{"target": row.target, **row.result.to_json()} for row in results.throughput],
        "ratios": ratios(results),
        "timings": {key: asdict(timing) for key, timing in results.timings.items()},
        "rates": {key: asdict(rate) for key, rate in results.rates.items()},
        "latencies": {key: asdict(latency) for key, latency in results.latencies.items()},
        "skipped": results.skipped,
        "problems": results.problems,
    }


def write_json(results: Results, options: Options, path: Path) -> None:
    """Writes the figures atomically: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(results_document(results, options), indent=2) + "\n")
    partial.replace(path)
