"""`ffaas`: the command line of FFAAS, over the control plane's and the data plane's HTTP APIs.

One module per command group (`endpoint`, `processor`, `call`, `conversation`, `status`,
`login`), registered in `main.py`; what they share: `settings.py` (where the planes and the
token are), `client.py` (requests that succeed or fail as one line), `names.py` (a name where an
id is expected), `output.py` (JSON for scripts, tables for people) and `run_request.py` (the
curl-like options of a run). A command never prints a traceback: `main.run` turns every
`failures.Failure` and usage error into one line on stderr and an exit status (1: refused or
unreachable, 2: bad usage).
"""
