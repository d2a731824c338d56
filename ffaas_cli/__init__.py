"""`ffaas`: the command line of FFAAS, over the control plane's and the data plane's HTTP APIs.

One module per command group (`endpoint`, `processor`, `call`, `conversation`, `replay`,
`status`, `login`), registered in `main.py`, with a group's larger commands in modules of their
own (`endpoint_env`, `processor_versions`, `conversation_replay`, and `replay_batches` for
`endpoint replay` and `processor replay`). What they share: `settings.py` (where the planes and
the token are), `client.py` (requests that succeed or fail as one line), `names.py` (a name
where an id is expected), `output.py` (JSON for scripts, tables for people), `run_request.py`
(the curl-like options of a run), `code_files.py` (code and its language from a file), and for
replays `replay_options.py`, `replay_diff.py` and `replay_report.py`. A command never prints a
traceback: `main.run` turns every `failures.Failure` and usage error into one line on stderr and
an exit status (1: refused or unreachable, 2: bad usage; 130 when Ctrl-C stops following a batch).
"""
