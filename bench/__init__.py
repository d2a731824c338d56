"""FFAAS benchmarks: the real planes and Redis as subprocesses, measured with wrk.

`python -m bench` (what `make bench` runs) starts a private system under test,
runs the scenarios, prints a table and writes `bench/results/latest.json`.

- `system.py`        processes: free ports (or `--ports`), redis-server, the planes, bare app; stop on exit
- `client.py`        small blocking HTTP calls (control-plane API, polling, first-call timing)
- `load.py`          exactly N runs over keep-alive connections (a backlog of known size)
- `wrk.py`           running wrk (to the end, or in the background) and parsing its `--latency` output
- `database.py`      reading the control plane's SQLite file directly (what the ingest stored)
- `context.py`       options and what each scenario is given
- `results.py`       the figures: throughput rows, timings, rates, latency summaries
- `scenarios.py`     deploy, throughput, restart; the ordered list of every scenario
- `conversations.py` ingest rate of a backlog, conversation lag under load
- `processors.py`    processors on both runtimes (/run, /run_with_prelude) against workerd's same handlers
- `neighbours.py`    hello alone, then with a looping and a memory-bombing processor alongside (issue 10)
- `workerd.py`       Cloudflare's workerd: `npm ci` in `.workerd/` (pinned), start on free ports, stop
- `handlers/`        the processors' code, workerd's workers and its capnp config
- `report.py`        the printed table and the JSON file, issue 10's targets and their verdicts
- `run.py`           command line and orchestration
- `bare_app.py`      the baseline: a bare Starlette app served like the planes
"""
