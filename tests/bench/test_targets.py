"""bench: issue 10's targets per ratio and their verdicts (table and JSON), the neighbours scenario's
report and the check of a neighbour's answer, `--ports`, and the replay's wait for its runs."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bench import replay, system
from bench.client import Response
from bench.context import ScenarioError
from bench.database import ConversationFile
from bench.neighbours import ALONE, ALONGSIDE, neighbours, wrong_answer
from bench.processors import V8_HELLO, V8_LOGS, WASM_HELLO, WASM_LOGS, WORKERD_HELLO, WORKERD_LOGS
from bench.report import (
    NEIGHBOUR_TARGETS,
    TARGETS,
    Target,
    format_report,
    neighbour_ratios,
    processor_ratios,
    ratios,
    results_document,
)
from bench.results import NeighbourRun
from bench.run import parse_args
from bench.scenarios import BARE, WAGI_HELLO, WAGI_HELLO_ONE_WORKER, Options, Results, ThroughputRow
from bench.wrk import parse_wrk_output
from tests.bench.test_wrk_parse import BARE_C1, BARE_C50

OPTIONS = Options(5, (1, 50), 0, 2, Path("hello.wasm"))


def row(target: str, rps: float, connections: int = 50, p99_ms: float | None = None) -> ThroughputRow:
    result = parse_wrk_output(BARE_C50 if connections == 50 else BARE_C1)
    result = replace(result, requests_per_s=rps, connections=connections)
    if p99_ms is not None:
        result = replace(result, latency_ms={**result.latency_ms, "99": p99_ms})
    return ThroughputRow(target, result)


def test_issue_10_targets_by_ratio() -> None:
    assert {key: (t.bound, t.at_most, t.connections) for key, t in TARGETS.items()} == {
        WAGI_HELLO: (0.25, False, 50),
        V8_HELLO: (0.1, False, 50),
        V8_LOGS: (0.1, False, 50),
        WASM_HELLO: (0.2, False, 50),
    }
    assert {key: (t.bound, t.at_most) for key, t in NEIGHBOUR_TARGETS.items()} == {
        V8_HELLO: (1.0, True),
        WASM_HELLO: (1.0, True),
        WAGI_HELLO: (1.0, True),
    }


@pytest.mark.parametrize(
    ("target", "ratio", "met"),
    [
        (Target(0.25), 0.25, True),
        (Target(0.25), 0.2499, False),
        (Target(1.0, at_most=True), 1.0, True),
        (Target(1.0, at_most=True), 1.01, False),
        (Target(1.0, at_most=True), 0.5, True),
    ],
)
def test_a_target_is_met_at_its_bound(target: Target, ratio: float, met: bool) -> None:
    assert target.met(ratio) is met


def processor_results(v8_hello: float, wasm_hello: float, v8_logs: float, wasm_logs: float) -> Results:
    return Results(
        throughput=[
            row(WORKERD_HELLO, 10000),
            row(WORKERD_LOGS, 8000),
            row(V8_HELLO, v8_hello),
            row(WASM_HELLO, wasm_hello),
            row(V8_LOGS, v8_logs),
            row(WASM_LOGS, wasm_logs),
            row(WORKERD_HELLO, 4000, connections=1),
            row(V8_HELLO, 100, connections=1),
        ]
    )


def test_each_processor_ratio_has_its_own_target_at_c50_only() -> None:
    results = processor_results(v8_hello=1000, wasm_hello=1999, v8_logs=799, wasm_logs=96)

    found = {(r["ffaas"], r["connections"]): r for r in processor_ratios(results)}
    text = format_report(results)

    assert (found[V8_HELLO, 50]["target"], found[V8_HELLO, 50]["meets_target"]) == (
        {"at_least": 0.1, "connections": 50},
        True,
    )
    assert (found[WASM_HELLO, 50]["target"], found[WASM_HELLO, 50]["meets_target"]) == (
        {"at_least": 0.2, "connections": 50},
        False,
    )
    assert found[V8_LOGS, 50]["meets_target"] is False  # 799 / 8000 < 0.1
    assert (found[WASM_LOGS, 50]["target"], found[WASM_LOGS, 50]["meets_target"]) == (None, None)
    assert (found[V8_HELLO, 1]["target"], found[V8_HELLO, 1]["meets_target"]) == (None, None)
    assert "hello at c=50: 0.100  (v8 hello /run 1,000 / workerd hello 10,000) (target >= 0.1) ok" in text
    assert (
        "hello at c=50: 0.200  (wasm hello /run 1,999 / workerd hello 10,000) (target >= 0.2) BELOW TARGET"
        in text
    )
    assert (
        "log+json at c=50: 0.100  (v8 log+json /run_with_prelude 799 / workerd log+json 8,000) (target"
        in text
    )
    assert text.endswith(
        "log+json at c=50: 0.012  (wasm log+json /run_with_prelude 96 / workerd log+json 8,000)"
    )
    assert "hello at c=1: 0.025  (v8 hello /run 100 / workerd hello 4,000)\n" in text


def test_wagi_with_workers_has_the_target_and_one_worker_alone_none() -> None:
    results = Results(throughput=[row(BARE, 20000), row(WAGI_HELLO, 5000), row(WAGI_HELLO_ONE_WORKER, 2500)])

    found = {r["wagi"]: r for r in ratios(results)}
    text = format_report(results)

    assert (found[WAGI_HELLO]["wagi_over_bare"], found[WAGI_HELLO]["meets_target"]) == (0.25, True)
    assert (found[WAGI_HELLO_ONE_WORKER]["target"], found[WAGI_HELLO_ONE_WORKER]["meets_target"]) == (
        None,
        None,
    )
    assert "WAGI/bare req/s at c=50: 0.25 (target >= 0.25) ok" in text
    assert text.splitlines()[-1] == "WAGI/bare req/s (1 worker) at c=50: 0.12"


def neighbour_run(hello: str, **changes: object) -> NeighbourRun:
    run = NeighbourRun(
        hello=hello,
        connections=50,
        statuses={"loop v8": {"504": 2}, "bomb v8 (array)": {"500": 9}},
        expected={"loop v8": 504, "bomb v8 (array)": 500},
        wrong_answers=[],
        plane_survived=True,
        plane_detail="every worker kept its pid (2 workers)",
    )
    return replace(run, **changes)  # type: ignore[arg-type]


def neighbour_results() -> Results:
    return Results(
        throughput=[
            row(V8_HELLO + ALONE, 900, p99_ms=40.0),
            row(V8_HELLO + ALONGSIDE, 800, p99_ms=60.0),
            row(WAGI_HELLO + ALONE, 3000, p99_ms=20.0),
            row(WAGI_HELLO + ALONGSIDE, 3100, p99_ms=19.0),
        ],
        neighbours=[
            neighbour_run(V8_HELLO),
            neighbour_run(
                WAGI_HELLO,
                statuses={"loop v8": {"504": 1, "500": 1}, "bomb v8 (array)": {}},
                wrong_answers=["loop v8: expected 504, got 500: b'{}'"],
                plane_survived=False,
                plane_detail="worker pids were {0: 1, 1: 2}, now {0: 1, 1: 3} (a worker died)",
            ),
        ],
    )


def test_neighbour_target_is_p99_with_neighbours_over_the_baselines_p99_alone() -> None:
    results = neighbour_results()
    results.baseline_p99_ms = {(V8_HELLO, 50): 40.0, (WAGI_HELLO, 50): 19.0}
    found = {entry["hello"]: entry for entry in neighbour_ratios(results)}

    assert set(found) == {V8_HELLO, WAGI_HELLO}
    v8 = found[V8_HELLO]
    assert v8["alone"] == {"rps": 900, "p50_ms": v8["alone"]["p50_ms"], "p99_ms": 40.0}
    assert v8["with_neighbours"]["rps"] == 800
    assert (v8["p99_with_over_alone"], v8["p99_with_over_baseline"]) == (1.5, 1.5)
    assert (v8["target"], v8["meets_target"]) == ({"at_most": 1.0, "connections": 50}, False)
    assert v8["neighbours"] == {"loop v8": {"504": 2}, "bomb v8 (array)": {"500": 9}}
    assert v8["plane_survived"] is True
    assert (found[WAGI_HELLO]["p99_with_over_baseline"], found[WAGI_HELLO]["meets_target"]) == (1.0, True)


def test_without_a_baseline_the_neighbour_ratio_has_no_target() -> None:
    found = {entry["hello"]: entry for entry in neighbour_ratios(neighbour_results())}

    assert found[V8_HELLO]["p99_with_over_alone"] == 1.5
    assert (found[V8_HELLO]["target"], found[V8_HELLO]["meets_target"]) == (None, None)
    assert "p99_with_over_baseline" not in found[V8_HELLO]


def test_neighbours_in_the_table_say_what_they_got_and_whether_the_plane_survived() -> None:
    results = neighbour_results()
    results.baseline_p99_ms = {(V8_HELLO, 50): 40.0}

    text = format_report(results)
    document = json.loads(json.dumps(results_document(results, OPTIONS)))

    table_rows = [line[:34].rstrip() for line in text.splitlines()[1:5]]
    assert table_rows == [
        "v8 hello /run, alone",
        "v8 hello /run, with neighbours",
        "WAGI hello, alone",
        "WAGI hello, with neighbours",
    ]
    assert (
        "p99 with neighbours / alone, v8 hello /run at c=50: 1.50  (60.00 ms / 40.00 ms)\n"
        "    p99 with neighbours / baseline's p99 alone: 1.50  (60.00 ms / 40.00 ms) (target <= 1) "
        "ABOVE TARGET\n"
        "    neighbours got loop v8: 504 x2; bomb v8 (array): 500 x9\n"
        "    data plane survived: every worker kept its pid (2 workers)"
    ) in text
    assert "WAGI hello at c=50: 0.95  (19.00 ms / 20.00 ms)\n" in text
    assert (
        "neighbours got loop v8: 500 x1, 504 x1  <-- UNEXPECTED; bomb v8 (array): no answer  <-- UNEXPECTED"
    ) in text
    assert "data plane DID NOT SURVIVE: worker pids were {0: 1, 1: 2}, now {0: 1, 1: 3}" in text
    assert [entry["hello"] for entry in document["neighbours"]] == [V8_HELLO, WAGI_HELLO]
    assert document["neighbours"][1]["wrong_answers"] == ["loop v8: expected 504, got 500: b'{}'"]
    assert document["options"]["v8_bomb"] == "typed-array"
    assert document["options"]["wasm_bomb"] == "typed-array"


def test_a_missing_row_of_a_neighbour_pair_is_said_not_guessed() -> None:
    results = Results(throughput=[row(WASM_HELLO + ALONE, 900, p99_ms=40.0)])

    (entry,) = neighbour_ratios(results)

    assert entry["with_neighbours"] is None and "p99_with_over_alone" not in entry
    assert "wasm hello /run at c=50: not measured (a row of the pair is missing)" in format_report(results)


LOOP, _, BOMB, _ = neighbours("array", "typed-array")


def answer(status: int, body: object) -> Response:
    return Response(status, {"content-type": "application/json"}, json.dumps(body).encode())


def test_a_neighbours_json_error_naming_its_setting_is_right() -> None:
    assert (
        wrong_answer(
            LOOP, answer(504, {"code": 504, "message": "run exceeded 5000 ms (FFAAS_RUN_TIMEOUT_MS)"})
        )
        is None
    )
    message = "run exceeded its heap limit of 128.0 MiB (FFAAS_MAX_MEMORY_BYTES)"
    assert wrong_answer(BOMB, answer(500, {"code": 500, "message": message})) is None


@pytest.mark.parametrize(
    ("response", "complaint"),
    [
        (answer(500, {"code": 500, "message": "engine failed"}), "loop v8: expected 504, got 500"),
        (Response(504, {}, b"Gateway Timeout"), "loop v8: not JSON"),
        (answer(504, {"detail": "x"}), "loop v8: expected {code, message}"),
        (answer(504, {"code": 504, "message": "too slow"}), "does not name FFAAS_RUN_TIMEOUT_MS"),
    ],
)
def test_any_other_answer_of_a_neighbour_is_wrong_and_says_why(response: Response, complaint: str) -> None:
    found = wrong_answer(LOOP, response)

    assert found is not None and complaint in found


def test_bomb_kinds_choose_the_handlers() -> None:
    team = neighbours("typed-array", "array")

    assert [(n.name, n.runtime, n.handler, n.status) for n in team] == [
        ("loop v8", "v8", "loop_processor.js", 504),
        ("loop wasm", "wasm", "loop_processor.js", 504),
        ("bomb v8 (typed-array)", "v8", "bomb_typed_array.js", 500),
        ("bomb wasm (array)", "wasm", "bomb_array.js", 500),
    ]
    assert parse_args([]).v8_bomb == "typed-array" and parse_args([]).wasm_bomb == "typed-array"
    assert parse_args(["--v8-bomb", "typed-array"]).v8_bomb == "typed-array"


@pytest.fixture
def port_range() -> Iterator[None]:
    saved = system.PORT_RANGE
    yield
    system.PORT_RANGE = saved


def test_ports_come_from_the_range_never_twice_and_never_a_taken_one(port_range: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        system.use_port_range(port, port)
        with pytest.raises(
            system.SystemUnderTestError, match=rf"no free port left in {port}-{port} \(--ports\)"
        ):
            system.free_port()
    system.use_port_range(port, port)  # released: free now, handed out once

    assert system.free_port() == port
    with pytest.raises(system.SystemUnderTestError, match="no free port left"):
        system.free_port()


@pytest.mark.parametrize("text", ["23000", "23999-23000", "0-10", "a-b", "23000-70000"])
def test_a_bad_port_range_is_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--ports", text])

    assert "expected FIRST-LAST" in capsys.readouterr().err


def test_a_port_range_is_parsed() -> None:
    assert parse_args(["--ports", "23000-23999"]).ports == (23000, 23999)


def stored_file(tmp_path: Path, ids: list[str]) -> ConversationFile:
    path = tmp_path / "control_plane.sqlite3"
    with sqlite3.connect(path) as database:
        database.execute("CREATE TABLE conversations (id TEXT PRIMARY KEY)")
        database.executemany("INSERT INTO conversations VALUES (?)", [(one,) for one in ids])
    return ConversationFile(path)


def test_the_replay_waits_until_every_run_is_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [f"c{number}" for number in range(1200)]
    stored = stored_file(tmp_path, ids[:700])
    pauses: list[float] = []

    def control_plane_catches_up(seconds: float) -> None:  # the wait's pause: the rest gets stored
        pauses.append(seconds)
        with sqlite3.connect(stored.path) as database:
            database.executemany("INSERT INTO conversations VALUES (?)", [(one,) for one in ids[700:]])

    monkeypatch.setattr(replay.time, "sleep", control_plane_catches_up)
    with stored:
        replay._wait_stored(stored, ids)

    assert pauses == [0.05]  # one pause, after which all 1200 were found (asked 500 at a time)


def test_the_replay_says_how_many_runs_were_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay, "SETTLE_TIMEOUT_S", 0.0)

    with stored_file(tmp_path, ["c1", "c2"]) as stored, pytest.raises(ScenarioError, match="2 missing"):
        replay._wait_stored(stored, ["c1", "c2", "c3", "c4"])
