"""What every scenario is given: the options, the system under test, the results to add to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.results import Results
from bench.system import System

BOMB_KINDS = ("array", "typed-array")
"""What a memory-bombing neighbour can allocate (bench/neighbours.py)."""


class ScenarioError(RuntimeError):
    """A scenario could not measure what it measures; the message says why."""


@dataclass(frozen=True)
class Options:
    duration_s: float
    connections: tuple[int, ...]
    warmup_s: float
    max_threads: int
    hello_wasm: Path
    backlog_runs: int = 5000
    """Runs made while the control plane is down, for the ingest-rate scenario."""
    lag_samples: int = 200
    """Fewest samples of each conversation-lag measurement."""
    replay_runs: int = 200
    """Recorded runs the batch-replay scenario replays."""
    v8_bomb: str = "typed-array"
    """What the v8 memory-bombing neighbour allocates (bench/neighbours.py `BOMBS`)."""
    wasm_bomb: str = "typed-array"
    """What the wasm memory-bombing neighbour allocates."""
    neighbour_connections: int = 1
    """Connections the neighbours' client keeps calling each neighbour on."""


@dataclass
class Context:
    system: System
    options: Options
    results: Results
    say: Callable[[str], None]
    hello_endpoint_id: str | None = None


Scenario = Callable[[Context], None]
