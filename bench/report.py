"""The benchmark's output: a table for people, `bench/results/latest.json` for tools.

Both are built from `Results` alone, so a new scenario's figures appear here
without changes: throughput rows (and rows skipped, with the reason) in the first
table, the WAGI/bare and FFAAS/workerd ratios below it, latency summaries in the
second table, rates and timings in the list below them.
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
from bench.processors import PAIRS, ROW_ORDER
from bench.results import Results
from bench.scenarios import BARE, WAGI_HELLO, WAGI_HELLO_ONE_WORKER

RATIO_TARGET = 0.5
"""WAGI hello must serve at least this share of the bare app's requests per second."""
TABLE_ORDER: tuple[str, ...] = (WAGI_HELLO, WAGI_HELLO_ONE_WORKER, BARE, *ROW_ORDER)
"""Targets in the order the table lists them; others follow, in the order they were measured."""


WAGI_ROWS = (WAGI_HELLO, WAGI_HELLO_ONE_WORKER)


def ratios(results: Results) -> list[dict[str, Any]]:
    """WAGI hello req/s (the data plane's workers; one worker alone) over bare Starlette req/s, at
    each concurrency both were measured at."""
    by_key = {(row.target, row.result.connections): row.result for row in results.throughput}
    found = []
    for (target, connections), wagi in by_key.items():
        bare = by_key.get((BARE, connections))
        if target not in WAGI_ROWS or bare is None or bare.requests_per_s == 0:
            continue
        ratio = wagi.requests_per_s / bare.requests_per_s
        found.append({
            "wagi": target,
            "connections": connections,
            "wagi_over_bare": round(ratio, 3),
            "target": RATIO_TARGET,
            "meets_target": ratio >= RATIO_TARGET,
        })  # fmt: skip
    return sorted(found, key=lambda item: (WAGI_ROWS.index(item["wagi"]), item["connections"]))


def processor_ratios(results: Results) -> list[dict[str, Any]]:
    """FFAAS processor req/s over workerd req/s for each pair of `processors.PAIRS` and concurrency.

    A pair whose workerd (or FFAAS) row was skipped carries `skipped` (the reason) and no ratio.
    """
    measured = {(row.target, row.result.connections): row.result for row in results.throughput}
    skipped = {(row.target, row.connections): row.reason for row in results.skipped_rows}
    found = []
    for what, ffaas_target, workerd_target in PAIRS:
        concurrencies = sorted({c for (t, c) in (*measured, *skipped) if t in (ffaas_target, workerd_target)})
        for connections in concurrencies:
            ffaas, workerd = (
                measured.get((ffaas_target, connections)),
                measured.get((workerd_target, connections)),
            )
            entry: dict[str, Any] = {
                "handler": what,
                "ffaas": ffaas_target,
                "workerd": workerd_target,
                "connections": connections,
                "ffaas_rps": ffaas.requests_per_s if ffaas else None,
                "workerd_rps": workerd.requests_per_s if workerd else None,
            }
            if ffaas and workerd and workerd.requests_per_s > 0:
                entry["ffaas_over_workerd"] = round(ffaas.requests_per_s / workerd.requests_per_s, 4)
            else:
                reason = skipped.get((workerd_target, connections)) or skipped.get(
                    (ffaas_target, connections)
                )
                entry["skipped"] = reason or "a row of the pair was not measured"
            found.append(entry)
    return found


def format_report(results: Results) -> str:
    targets = [row.target for row in results.throughput] + [row.target for row in results.skipped_rows]
    width = max([16, *(len(target) + 2 for target in targets)])
    lines = [
        f"{'':<{width}}{'conns':>6}{'req/s':>11}{'p50 ms':>9}{'p99 ms':>9}  errors",
    ]
    order = {target: index for index, target in enumerate(TABLE_ORDER)}
    for target in targets:
        order.setdefault(target, len(order))
    rows: list[tuple[str, int, str]] = []
    for row in results.throughput:
        result = row.result
        errors = "0" if result.ok else f"{result.errors}  <-- FAILED RUN"
        if result.ok is False and result.requests == 0:
            errors = "no requests completed  <-- FAILED RUN"
        rows.append((
            row.target,
            result.connections,
            f"{row.target:<{width}}{result.connections:>6}{result.requests_per_s:>11,.0f}"
            f"{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}  {errors}",
        ))  # fmt: skip
    for gap in results.skipped_rows:
        rows.append((
            gap.target,
            gap.connections,
            f"{gap.target:<{width}}{gap.connections:>6}  skipped: {short_reason(gap.reason)}",
        ))  # fmt: skip
    rows.sort(key=lambda row: (order[row[0]], row[1]))
    lines.extend(line for _, _, line in rows)
    if not rows:
        lines.append("(no throughput measured)")
    lines.append("")
    for ratio in ratios(results):
        verdict = "ok" if ratio["meets_target"] else "BELOW TARGET"
        which = "" if ratio["wagi"] == WAGI_HELLO else " (1 worker)"
        lines.append(
            f"WAGI/bare req/s{which} at c={ratio['connections']}: {ratio['wagi_over_bare']:.2f} "
            f"(target >= {RATIO_TARGET}) {verdict}"
        )
    for pair in processor_ratios(results):
        label = f"FFAAS/workerd req/s, {pair['handler']} at c={pair['connections']}:"
        if "ffaas_over_workerd" in pair:
            lines.append(
                f"{label} {pair['ffaas_over_workerd']:.3f}  "
                f"({pair['ffaas']} {pair['ffaas_rps']:,.0f} / {pair['workerd']} {pair['workerd_rps']:,.0f})"
            )
        else:
            lines.append(f"{label} skipped: {short_reason(pair['skipped'])}")
    for key, value in results.info.items():
        lines.append(f"{key}: {value}")
    if results.latencies:
        lines.append("")
        lines.append(f"{'latency':<64}{'samples':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
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
        shown = f"{timing.ms:.3f}" if timing.ms < 10 else f"{timing.ms:.1f}"  # sub-ms runs need digits
        lines.append(f"{timing.label}: {shown} ms" + (f"  ({detail})" if detail else ""))
    for skipped in results.skipped:
        lines.append(f"skipped: {skipped}")
    for problem in results.problems:
        lines.append(f"PROBLEM: {problem}")
    return "\n".join(lines)


def short_reason(reason: str, most: int = 60) -> str:
    """The gist of a skip reason for a table row (the whole reason is listed once under the table)."""
    gist = reason.split(" (", 1)[0].split(": ", 1)[0]
    return gist if len(gist) <= most else gist[: most - 3] + "..."


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
        "ffaas_vs_workerd": processor_ratios(results),
        "skipped_rows": [asdict(row) for row in results.skipped_rows],
        "info": results.info,
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
