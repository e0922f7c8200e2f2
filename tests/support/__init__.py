"""Shared test support: the fake runtime (type-checked against the engine's ports)."""
