"""Host capabilities: what a guest may call, one module each (outbound HTTP, ...).

No Starlette and no Redis here: a capability takes plain values and returns plain values, and the
executors translate between it and the guest.
"""
