"""Per-API-key quotas: a request rate (token bucket) and a concurrency limit.

The tenant of a request is the position of its key (Bearer or DeepL-Auth-Key) in ``S2S_API_KEYS``
(``key1``, ``key2``, ...: bounded, and never the secret), or ``""`` without keys (then
the limits apply to all clients together). The scheduler lets tenants take turns
(service/engine/admission.py); these limits bound what one tenant may ask at all.
Refusals are 429 with ``Retry-After`` and count in ``s2s_rejections_total`` with reason
``rate_limited`` or ``concurrency_limit``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from service.api.auth import authorized, deepl_key, valid_key
from service.api.errors import ApiError


def tenant_of(header: str | None, keys: list[str]) -> str:
    """The tenant id of an ``Authorization`` header: ``key<n>`` for the n-th key, sent as
    ``Bearer <key>`` (our routes) or ``DeepL-Auth-Key <key>`` (DeepL's clients)."""
    deepl = deepl_key(header)
    for i, key in enumerate(keys, start=1):
        if authorized(header, [key]) or valid_key(deepl, [key]):
            return f"key{i}"
    return ""


@dataclass
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


class KeyQuotas:
    """Rate (requests per second, ``burst`` at once) and concurrency per tenant; 0 turns a
    limit off. Thread-safe; O(1) per request."""

    def __init__(self, rate_per_s: float, burst: int, max_concurrent: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self.max_concurrent = max_concurrent
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when any limit is set."""
        return self.rate_per_s > 0 or self.max_concurrent > 0

    def acquire(self, tenant: str) -> ApiError | None:
        """Take one request's share, or the 429 that refuses it (nothing taken then)."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault(tenant, _Bucket(float(self.burst), now))
            if self.max_concurrent and bucket.in_flight >= self.max_concurrent:
                return ApiError(
                    429,
                    "concurrency_limit",
                    f"at most {self.max_concurrent} requests at once per API key "
                    "(S2S_KEY_MAX_CONCURRENT)",
                    headers={"Retry-After": "1"},
                    retry_after_s=1,
                    limit=self.max_concurrent,
                )
            if self.rate_per_s > 0:
                bucket.tokens = min(
                    float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate_per_s
                )
                bucket.updated = now
                if bucket.tokens < 1.0:
                    wait = max(1, math.ceil((1.0 - bucket.tokens) / self.rate_per_s))
                    return ApiError(
                        429,
                        "rate_limited",
                        f"at most {self.rate_per_s:g} requests per second per API key "
                        f"(S2S_KEY_RATE_PER_S, bursts of {self.burst})",
                        headers={"Retry-After": str(wait)},
                        retry_after_s=wait,
                        limit=self.rate_per_s,
                    )
                bucket.tokens -= 1.0
            bucket.in_flight += 1
            return None

    def release(self, tenant: str) -> None:
        """One request of ``tenant`` is answered."""
        with self._lock:
            bucket = self._buckets.get(tenant)
            if bucket is not None and bucket.in_flight > 0:
                bucket.in_flight -= 1
