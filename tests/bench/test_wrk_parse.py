"""bench/wrk.py reads wrk's `--latency` report; the samples are real wrk 4.1.0 output from this machine."""

from __future__ import annotations

import pytest

from bench.wrk import WrkError, parse_wrk_output

# wrk --latency -t1 -c1 -d3s against bench/bare_app.py
BARE_C1 = """\
Running 3s test @ http://127.0.0.1:18123/
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   119.75us  116.66us   4.32ms   99.02%
    Req/Sec     8.75k     1.37k   15.66k    93.55%
  Latency Distribution
     50%  120.00us
     75%  125.00us
     90%  131.00us
     99%  233.00us
  26979 requests in 3.10s, 3.81MB read
Requests/sec:   8703.46
Transfer/sec:      1.23MB
"""

# wrk --latency -t2 -c50 -d3s against bench/bare_app.py
BARE_C50 = """\
Running 3s test @ http://127.0.0.1:18123/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.75ms  271.15us   4.77ms   85.71%
    Req/Sec    14.31k     1.60k   26.20k    96.72%
  Latency Distribution
     50%    1.72ms
     75%    1.80ms
     90%    2.03ms
     99%    2.53ms
  86962 requests in 3.10s, 12.27MB read
Requests/sec:  28060.88
Transfer/sec:      3.96MB
"""

# wrk --latency -t2 -c5 -d2s against `python3 -m http.server`, for a path that does not exist
NOT_FOUND = """\
Running 2s test @ http://127.0.0.1:18124/missing
  2 threads and 5 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.96ms  559.36us   6.59ms   74.25%
    Req/Sec     1.00k   162.79     1.97k    92.68%
  Latency Distribution
     50%    1.92ms
     75%    2.25ms
     90%    2.63ms
     99%    3.63ms
  4075 requests in 2.10s, 2.02MB read
  Non-2xx or 3xx responses: 4075
Requests/sec:   1940.35
Transfer/sec:      0.96MB
"""

# wrk --latency -t1 -c4 -d2s against a server that resets every other connection
RESETS = """\
Running 2s test @ http://127.0.0.1:18127/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    54.22us   43.89us   1.66ms   96.07%
    Req/Sec    19.44k     1.65k   21.49k    66.67%
  Latency Distribution
     50%   43.00us
     75%   65.00us
     90%   75.00us
     99%  217.00us
  40540 requests in 2.10s, 2.28MB read
  Socket errors: connect 0, read 35129, write 5412, timeout 0
Requests/sec:  19306.93
Transfer/sec:      1.09MB
"""

# wrk --latency -t1 -c4 -d3s --timeout 1s against a server that accepts and never answers
NO_ANSWER = """\
Running 3s test @ http://127.0.0.1:18126/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 3.01s, 0.00B read
Requests/sec:      0.00
Transfer/sec:       0.00B
"""


def test_parses_a_clean_run_with_microsecond_latencies() -> None:
    result = parse_wrk_output(BARE_C1)

    assert result.url == "http://127.0.0.1:18123/"
    assert (result.threads, result.connections) == (1, 1)
    assert result.requests == 26979
    assert result.elapsed_s == pytest.approx(3.10)
    assert result.requests_per_s == pytest.approx(8703.46)
    assert result.latency_ms == pytest.approx({"50": 0.120, "75": 0.125, "90": 0.131, "99": 0.233})
    assert (result.p50_ms, result.p99_ms) == pytest.approx((0.120, 0.233))
    assert result.errors == 0
    assert result.ok


def test_parses_millisecond_latencies_and_several_threads() -> None:
    result = parse_wrk_output(BARE_C50)

    assert (result.threads, result.connections) == (2, 50)
    assert result.requests_per_s == pytest.approx(28060.88)
    assert (result.p50_ms, result.p99_ms) == pytest.approx((1.72, 2.53))
    assert result.ok


def test_error_statuses_fail_the_run() -> None:
    result = parse_wrk_output(NOT_FOUND)

    assert result.error_statuses == 4075
    assert result.errors == 4075
    assert not result.ok


def test_socket_errors_fail_the_run() -> None:
    result = parse_wrk_output(RESETS)

    assert result.socket_errors == {"connect": 0, "read": 35129, "write": 5412, "timeout": 0}
    assert result.error_statuses == 0
    assert result.errors == 35129 + 5412
    assert not result.ok


def test_a_run_that_completed_no_request_fails() -> None:
    result = parse_wrk_output(NO_ANSWER)

    assert result.requests == 0
    assert result.errors == 0
    assert not result.ok


def test_output_without_latency_distribution_is_rejected() -> None:
    without_latency = "\n".join(line for line in BARE_C1.splitlines() if "%  " not in line)

    with pytest.raises(WrkError, match="latency percentiles"):
        parse_wrk_output(without_latency)


def test_output_that_is_not_a_wrk_report_is_rejected() -> None:
    with pytest.raises(WrkError, match="Running"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_to_json_carries_the_verdict() -> None:
    document = parse_wrk_output(RESETS).to_json()

    assert document["ok"] is False
    assert document["errors"] == 35129 + 5412
    assert document["latency_ms"]["99"] == pytest.approx(0.217)
