"""SQLite storage of the control plane: one query module per table concept, no HTTP types."""
