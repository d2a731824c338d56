"""What a benchmark run found: the figures every scenario adds to, and nothing else.

`report.py` prints and writes whatever is here, so a new scenario's figures need
no change there as long as they are throughput rows, timings, rates or latency
summaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.wrk import WrkResult


@dataclass(frozen=True)
class ThroughputRow:
    target: str
    result: WrkResult


@dataclass(frozen=True)
class SkippedRow:
    """A throughput row that could not be measured (e.g. workerd or wrk missing), and why."""

    target: str
    connections: int
    reason: str


@dataclass(frozen=True)
class Timing:
    label: str
    ms: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rate:
    """Something counted per second, e.g. conversations ingested per second."""

    label: str
    per_s: float
    unit: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Latency:
    """The distribution of one measured delay, in milliseconds."""

    label: str
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, label: str, seconds: list[float], **detail: Any) -> Latency:
        """Nearest-rank percentiles of `seconds` (at least one sample)."""
        ordered = sorted(seconds)

        def rank(percent: float) -> float:
            index = max(0, min(len(ordered) - 1, int(-(-percent * len(ordered) // 100)) - 1))
            return round(ordered[index] * 1000, 3)

        return cls(label, len(ordered), rank(50), rank(99), round(ordered[-1] * 1000, 3), detail)


@dataclass(frozen=True)
class NeighbourRun:
    """What a looping and a memory-bombing processor (the neighbours) got while `hello` was measured
    alongside them (bench/neighbours.py), and whether the data plane survived them."""

    hello: str
    connections: int
    statuses: dict[str, dict[str, int]]
    """Neighbour -> its status codes (or exception names) -> count."""
    expected: dict[str, int]
    """Neighbour -> the status its JSON error must have."""
    wrong_answers: list[str]
    """The first few answers that were not the expected JSON error, each saying what was wrong."""
    plane_survived: bool
    plane_detail: str


@dataclass
class Results:
    throughput: list[ThroughputRow] = field(default_factory=list)
    timings: dict[str, Timing] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)
    latencies: dict[str, Latency] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    skipped_rows: list[SkippedRow] = field(default_factory=list)
    neighbours: list[NeighbourRun] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)
    """What was measured against, e.g. "workerd" -> its version."""
    baseline_p99_ms: dict[tuple[str, int], float] = field(default_factory=dict)
    """From `--baseline`: an earlier run's p99 by (throughput row, connections), e.g. of the code
    before a change; the neighbours' target compares against it."""

    def skip_rows(self, targets: list[str], connections: tuple[int, ...], reason: str) -> None:
        """Every (target, connections) row is skipped for `reason`; said once in `skipped` too."""
        for target in targets:
            self.skipped_rows.extend(SkippedRow(target, count, reason) for count in connections)
        self.skipped.append(f"{', '.join(targets)}: {reason}")

    def timing(self, key: str, label: str, seconds: float, **detail: Any) -> None:
        self.timings[key] = Timing(label, round(seconds * 1000, 3), detail)

    def rate(self, key: str, label: str, per_s: float, unit: str, **detail: Any) -> None:
        self.rates[key] = Rate(label, round(per_s, 1), unit, detail)
