"""HTTP routes of the control plane: parse requests, call storage and the publisher, shape JSON.

Routes raise `shared.errors` domain errors; only the installed handlers build error responses.
"""
