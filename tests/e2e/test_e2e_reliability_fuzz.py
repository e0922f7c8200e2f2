"""schemathesis over the OpenAPI document against a real server on 127.0.0.1.

Every POST task route (/translate, /summarize, /chat, /v1/chat/completions) gets generated
bodies, valid ones (positive) and ones that break the schema (negative): no 5xx, every
status one the operation documents, bodies and content types as the schema says. The
statuses seen are a subset of docs/api.md's error table. The compatible APIs
(LibreTranslate, DeepL) parse their own JSON and form bodies, so the OpenAPI document
has no body schema for them to generate from; their statuses are covered in
test_e2e_compat_clients.py.

Bounded in time: small request limits on the server (so a generated request costs little
to run, and larger ones are quick 413s), no shrinking, no example database.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests_e2e_support import REPO_ROOT, Server

pytestmark = pytest.mark.slow

TASK_PATHS = ("/translate", "/summarize", "/chat", "/v1/chat/completions")
# Generated cases per operation and mode: 4 x (160 + 100) = 1,040 in all.
EXAMPLES = {GenerationMode.POSITIVE: 160, GenerationMode.NEGATIVE: 100}
# What the tiny packages serve (tests/e2e/conftest.py).
SERVED: dict[str, dict[str, str]] = {
    "/translate": {"source_lang": "en", "target_lang": "de", "model": "tiny-marian"},
    "/summarize": {"model": "tiny-bart"},
    "/chat": {"model": "tiny-blenderbot"},
    "/v1/chat/completions": {"model": "tiny-blenderbot"},
}
# not_a_server_error is applied in _fuzz: a 504 is the documented answer to a request
# whose own timeout_ms (generated, down to 1 ms) passed; any other 5xx fails.
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def documented_statuses() -> set[int]:
    """200 and the statuses of docs/api.md's error table (499 is logged, never sent)."""
    doc = (REPO_ROOT / "docs" / "api.md").read_text()
    table = doc.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    return {200} | {int(s) for s in re.findall(r"^\| (\d{3}) \|", table, re.M)} - {499}


OWN_DEADLINE_MS = 5000


def _own_deadline_ms(body: object) -> float:
    """The ``timeout_ms`` a generated body asked for (infinite when none)."""
    options = body.get("options") if isinstance(body, dict) else None
    value = options.get("timeout_ms") if isinstance(options, dict) else None
    return float(value) if isinstance(value, int | float) else float("inf")


def _fuzz(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    session: requests.Session,
    seen: Counter[int | str],
) -> None:
    """Send ``examples`` generated cases of ``operation``; count and check each answer."""
    documented = {int(s) for s in operation.definition.raw["responses"]}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), served=st.booleans())
    def one(case: schemathesis.Case, served: bool) -> None:
        if served and isinstance(case.body, dict):
            # Half the valid bodies name what the server serves, so they get past routing
            # (a random language pair or model name is a 422 or 404 before any model runs).
            case.body.update(SERVED.get(operation.path, {}))
        response = case.call(base_url=base_url, session=session, timeout=60)
        seen[response.status_code] += 1
        assert response.status_code in documented, (response.status_code, response.text)
        if response.status_code == 504:
            assert _own_deadline_ms(case.body) < OWN_DEADLINE_MS, response.text
            seen["504 (own timeout_ms)"] += 1
        else:
            assert response.status_code < 500, (response.status_code, response.text)
        case.validate_response(response, checks=CHECKS)

    one()


def test_generated_requests_get_documented_answers(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(
        S2S_PRECISION="fp32",
        S2S_MAX_TEXTS="4",
        S2S_MAX_CHARS="300",
        S2S_MAX_MESSAGES="6",
        S2S_MAX_NEW_TOKENS_CAP="24",
        S2S_MAX_REQUEST_COST="4000",
        S2S_DEFAULT_TIMEOUT_MS="20000",
    )
    schema = schemathesis.openapi.from_dict(httpx.get(f"{srv.url}/openapi.json").json())
    operations = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "POST" and operation.path in TASK_PATHS:
            operations[operation.path] = operation
    assert set(operations) == set(TASK_PATHS)

    seen: dict[str, Counter[int | str]] = {path: Counter() for path in TASK_PATHS}
    session = requests.Session()
    for path, operation in operations.items():
        for mode, examples in EXAMPLES.items():
            _fuzz(operation, mode, examples, srv.url, session, seen[path])

    total = sum(n for c in seen.values() for s, n in c.items() if isinstance(s, int))
    statuses = {s for c in seen.values() for s in c if isinstance(s, int)}
    print(f"\n{total} generated cases; statuses per route: {dict(seen)}")
    assert total >= 1000, seen
    # A 504 is allowed only for a body whose own short timeout_ms passed (checked per case).
    assert not any(s >= 500 and s != 504 for s in statuses), seen
    for counts in seen.values():
        assert counts[504] == counts["504 (own timeout_ms)"], seen
    assert statuses <= documented_statuses(), seen
    # Both kinds of input reached every route: answers and refusals.
    for path, counts in seen.items():
        assert counts[200] > 0 and counts[422] > 0, (path, counts)
    assert "Traceback" not in srv.log()
