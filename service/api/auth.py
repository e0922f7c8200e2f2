"""Optional API keys (S2S_API_KEYS); /health, /ready, /metrics and the web page's own
files (``/``, ``/ui/...``: static, no data; the page asks for a key itself) stay open.

Our routes take ``Authorization: Bearer <key>`` (checked in the middleware, 401). The
compatible APIs check the same keys the way their clients send them, and answer 403:
LibreTranslate's ``api_key`` body field, DeepL's ``Authorization: DeepL-Auth-Key <key>``.
"""

from __future__ import annotations

import hmac

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics", "/"})
#: Paths open to everyone under these prefixes (the web page's static files).
OPEN_PREFIXES = ("/ui/",)
#: Paths whose routes check keys themselves (the LibreTranslate and DeepL APIs).
SELF_AUTH_PREFIXES = ("/libretranslate/", "/v2/")


def valid_key(key: str | None, keys: list[str]) -> bool:
    """True when ``key`` is one of ``keys`` (constant-time comparison)."""
    if not key:
        return False
    key_bytes = key.strip().encode()
    # Compare against every key so timing does not reveal which one matched.
    matches = [hmac.compare_digest(key_bytes, k.encode()) for k in keys]
    return any(matches)


def _scheme_token(header: str | None, scheme: str) -> str | None:
    if not header:
        return None
    given, _, token = header.strip().partition(" ")
    if given.lower() != scheme.lower() or not token.strip():
        return None
    return token.strip()


def authorized(header: str | None, keys: list[str]) -> bool:
    """True when ``header`` is ``Bearer <one of keys>`` (constant-time comparison)."""
    return valid_key(_scheme_token(header, "bearer"), keys)


def deepl_key(header: str | None) -> str | None:
    """The key of an ``Authorization: DeepL-Auth-Key <key>`` header (None otherwise)."""
    return _scheme_token(header, "DeepL-Auth-Key")
