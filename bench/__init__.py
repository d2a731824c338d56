"""FFAAS benchmarks: the real planes and Redis as subprocesses, measured with wrk.

`python -m bench` (what `make bench` runs) starts a private system under test,
runs the scenarios, prints a table and writes `bench/results/latest.json`.

- `system.py`    processes: free ports, redis-server, the planes, the bare app; stop on exit
- `client.py`    small blocking HTTP calls (control-plane API, polling, first-call timing)
- `wrk.py`       running wrk and parsing its `--latency` output
- `scenarios.py` what is measured; each scenario adds its figures to a `Results`
- `report.py`    the printed table and the JSON file
- `run.py`       command line and orchestration
- `bare_app.py`  the baseline: a bare Starlette app served like the planes
"""
