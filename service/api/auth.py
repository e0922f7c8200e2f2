"""Optional Bearer API keys (S2S_API_KEYS); /health, /ready and /metrics stay open."""

from __future__ import annotations

import hmac

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})


def authorized(header: str | None, keys: list[str]) -> bool:
    """True when ``header`` is ``Bearer <one of keys>`` (constant-time comparison)."""
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    token_bytes = token.strip().encode()
    # Compare against every key so timing does not reveal which one matched.
    matches = [hmac.compare_digest(token_bytes, key.encode()) for key in keys]
    return any(matches)
