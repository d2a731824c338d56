"""Code both planes use: errors, Redis key names, events, settings helpers.

Invariant: nothing in this package imports `control_plane` or `data_plane`.
"""
