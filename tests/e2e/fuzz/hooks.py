"""Schemathesis hooks of the fuzz runs: make runs reach real endpoints and processors.

Random path parameters only ever find 404s on the data plane. Here, each generated id is kept,
or replaced by one of the ids the fuzz test created (from FFAAS_FUZZ_ENDPOINT_IDS and
FFAAS_FUZZ_PROCESSOR_IDS, comma-separated), as Hypothesis chooses, so both cases are explored.
Loaded by Schemathesis from the SCHEMATHESIS_HOOKS environment variable.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

KNOWN = {
    "endpoint_id": "FFAAS_FUZZ_ENDPOINT_IDS",
    "processor_id": "FFAAS_FUZZ_PROCESSOR_IDS",
    "conversation_id": "FFAAS_FUZZ_CONVERSATION_IDS",
}


@schemathesis.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    choices = [st.just(path_parameters)]
    for name, variable in KNOWN.items():
        ids = [value for value in os.environ.get(variable, "").split(",") if value]
        if name in (path_parameters or {}) and ids:
            choices.append(
                st.sampled_from(ids).map(lambda known, name=name: {**path_parameters, name: known})
            )
    return st.one_of(choices)
