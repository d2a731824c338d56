"""The FFAAS control plane: the admin REST API, SQLite storage, module validation, publishing to Redis.

Invariant: the control plane never runs user code; it validates, stores and publishes it.
"""
