"""The data plane: runs endpoints and processors, caches compiled modules, records conversations."""
