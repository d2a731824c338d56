"""Engines only: wasmtime and V8 narrowed to what FFAAS uses. No HTTP, no Redis here."""
