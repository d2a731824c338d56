"""Executors: one per kind of guest, translating HTTP to the guest's contract and back."""
