"""Request fields of the compatible APIs: a JSON object, or a form body, plus the query.

LibreTranslate and DeepL clients send either ``application/json`` or
``application/x-www-form-urlencoded`` (libretranslatepy and the deepl library's GET
``/v2/languages`` send a form body even on GET). Form bodies are parsed with the standard
library (no python-multipart); ``multipart/form-data`` is refused with a clear 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request

from service.api.body import is_json
from service.api.errors import ApiError

_MAX_FIELDS = 1000


def bad_request(message: str) -> ApiError:
    """A client error of a compatible API (its 400)."""
    return ApiError(400, "bad_request", message)


@dataclass(frozen=True)
class Fields:
    """The fields of a request: JSON values, or form/query strings (repeatable)."""

    json: dict[str, Any] = field(default_factory=dict)
    form: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The field's value (a form field's first value), or None."""
        if name in self.json:
            return self.json[name]
        values = self.form.get(name)
        return values[0] if values else None

    def many(self, name: str) -> list[Any] | None:
        """The field as a list (a JSON list, a JSON scalar, or every form value), or None."""
        if name in self.json:
            value = self.json[name]
            return value if isinstance(value, list) else [value]
        return self.form.get(name)

    def names(self) -> set[str]:
        """Every field name present."""
        return set(self.json) | set(self.form)


async def read_fields(request: Request) -> Fields:
    """The request's fields: the body (JSON object or form) merged over the query string.

    A body that is not a JSON object, bad UTF-8, or multipart is a 400.
    """
    query = parse_qs(request.url.query, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if is_json(content_type):
        try:
            data = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise bad_request("Invalid JSON format") from None
        if not isinstance(data, dict):
            raise bad_request("Invalid JSON format")
        return Fields(json=data, form=query)
    if content_type.startswith("multipart/"):
        raise bad_request(
            "multipart bodies are not supported; send application/json or "
            "application/x-www-form-urlencoded"
        )
    try:
        text = body.decode("utf-8")
        form = parse_qs(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise bad_request("the form body is not valid UTF-8 url-encoded data") from None
    # Browsers send CRLF line breaks in form fields; LibreTranslate normalises them too.
    merged = {k: [v.replace("\r\n", "\n") for v in vs] for k, vs in form.items()}
    for name, values in query.items():
        merged.setdefault(name, values)
    return Fields(form=merged)
