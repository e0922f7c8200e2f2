"""LibreTranslate-compatible API under ``/libretranslate``: a client given the base URL
``http://host:port/libretranslate/`` works unchanged (libretranslatepy, Mastodon, ...).

``POST /translate`` (``q`` a string or list, ``source`` a code or ``"auto"``, ``target``,
``format`` text|html, ``alternatives``, ``api_key``), ``POST /detect``, ``GET``/``POST
/languages``, ``GET /frontend/settings``. JSON or form bodies (and query fields). Errors
are ``{"error": "..."}`` with LibreTranslate's statuses (400 for client errors, 403 for a
missing or wrong key, 429, 503/504 for temporary states, 500), decided from the typed
error (``compat_status``).
What clients send and read: docs/compatible-apis-research.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.auth import valid_key
from service.api.calls import check_limits, label_models, start_call, until_done_or_disconnect
from service.api.errors import ApiError, compat_error_response
from service.api.forms import Fields, bad_request, read_fields
from service.api.schemas import BLANK_TEXT, Options
from service.engine import AUTO, GenerationOptions, TextFormat
from service.text.language import UNDETERMINED, Verdict
from service.text.language_names import language_name

router = APIRouter(prefix="/libretranslate", tags=["libretranslate"])

#: Most alternatives a request may ask for (LibreTranslate's default limit).
ALTERNATIVES_LIMIT = 3


class LibreTranslateRequest(BaseModel):
    """POST /libretranslate/translate."""

    model_config = ConfigDict(extra="ignore")

    q: str | list[str]
    source: str = Field(min_length=2, max_length=16)
    target: str = Field(min_length=2, max_length=16)
    format: Literal["text", "html"] = "text"
    alternatives: int = Field(0, ge=0, le=ALTERNATIVES_LIMIT)

    def texts(self) -> list[str]:
        """``q`` as a list."""
        return [self.q] if isinstance(self.q, str) else list(self.q)


def _handled(
    work: Callable[[Request], Awaitable[Response | Any]],
) -> Callable[[Request], Awaitable[Response | Any]]:
    """Answer every failure of ``work`` in LibreTranslate's error format."""

    async def route(request: Request) -> Response | Any:
        try:
            return await work(request)
        except Exception as exc:
            return compat_error_response(exc, request, "libretranslate")

    route.__name__ = work.__name__
    route.__doc__ = work.__doc__
    return route


def _check_key(request: Request, fields: Fields) -> None:
    keys = request.app.state.settings.api_keys
    if not keys:
        return
    key = fields.get("api_key")
    if not isinstance(key, str) or not key:
        raise ApiError(403, "unauthorized", "Invalid API key: an api_key is required")
    if not valid_key(key, keys):
        raise ApiError(403, "unauthorized", "Invalid API key")


def _validate(fields: Fields) -> LibreTranslateRequest:
    for name in ("q", "source", "target"):
        value = fields.get(name)
        if value is None or value == "" or value == []:
            raise bad_request(f"Invalid request: missing {name} parameter")
    data = {
        name: fields.get(name)
        for name in ("q", "source", "target", "format", "alternatives")
        if fields.get(name) is not None
    }
    if data.get("format") not in (None, "text", "html"):
        raise bad_request(f"{data['format']} format is not supported")
    try:
        body = LibreTranslateRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise bad_request(f"Invalid request: {where}: {first.get('msg', 'invalid')}") from None
    if any(not isinstance(t, str) or not t.strip() for t in body.texts()):
        raise bad_request(f"Invalid request: q: every text is a string and {BLANK_TEXT}")
    return body


def _percent(confidence: float) -> float:
    return float(round(confidence * 100, 1))


@router.post("/translate", response_model=None)
@_handled
async def translate(request: Request) -> Any:
    """Translate ``q`` (LibreTranslate's request and response)."""
    app = request.app.state
    fields = await read_fields(request)
    _check_key(request, fields)
    body = _validate(fields)
    texts = body.texts()
    check_limits(app.settings, texts, Options.model_validate({}))
    call = start_call(request, None)
    plan = await app.translator.plan(
        texts, body.source.lower(), body.target.lower(), None, TextFormat(kind=body.format)
    )
    label_models(request, plan)
    # Alternatives are the next-best beams; markup gets none (as in LibreTranslate).
    wanted = body.alternatives if body.format == "text" else 0
    options = (
        GenerationOptions(num_beams=wanted + 1, num_return_sequences=wanted + 1)
        if wanted
        else GenerationOptions()
    )
    results = await until_done_or_disconnect(request, plan.run(options, call))
    app.usage.add(texts)
    translated = [r.text for r in results]
    alternatives = [r.alternatives[:wanted] for r in results]
    detected = [
        {
            "confidence": _percent(r.detected.confidence),
            "language": r.detected.language,
        }
        for r in results
        if r.detected is not None
    ]
    single = isinstance(body.q, str)
    out: dict[str, Any] = {"translatedText": translated[0] if single else translated}
    if body.source.lower() == AUTO:
        out["detectedLanguage"] = detected[0] if single else detected
    if body.alternatives:
        out["alternatives"] = alternatives[0] if single else alternatives
    return JSONResponse(out)


@router.post("/detect", response_model=None)
@_handled
async def detect(request: Request) -> Any:
    """The language of ``q`` (a list is detected as one text), as a list of
    ``{"confidence": 0-100, "language"}`` (one entry: the detector's best)."""
    fields = await read_fields(request)
    _check_key(request, fields)
    q = fields.many("q")
    if not q or any(not isinstance(t, str) for t in q) or not "".join(q).strip():
        raise bad_request("Invalid request: missing q parameter")
    check_limits(request.app.state.settings, ["\n".join(q)], Options.model_validate({}))
    (found,) = await request.app.state.translator.detect(["\n".join(q)])
    if found.verdict is Verdict.UNDETERMINED:
        return [{"confidence": 0.0, "language": UNDETERMINED}]
    return [{"confidence": _percent(found.confidence), "language": found.language}]


@router.get("/languages", response_model=None, operation_id="libretranslate_languages_get")
@router.post("/languages", response_model=None, operation_id="libretranslate_languages_post")
@_handled
async def languages(request: Request) -> Any:
    """Every language with the languages it translates into (no key needed, as in
    LibreTranslate; some clients POST)."""
    pairs: dict[str, list[str]] = request.app.state.translator.languages()
    codes = sorted(set(pairs) | {t for targets in pairs.values() for t in targets})
    return [
        {"code": code, "name": language_name(code), "targets": pairs.get(code, [])}
        for code in codes
    ]


@router.get("/frontend/settings", response_model=None)
@_handled
async def frontend_settings(request: Request) -> Any:
    """LibreTranslate's web-UI settings, with this server's limits."""
    app = request.app.state
    pairs: dict[str, list[str]] = app.translator.languages()
    target = next((t for targets in pairs.values() for t in targets), "")
    return {
        "charLimit": app.settings.max_chars,
        "frontendTimeout": 500,
        "apiKeys": bool(app.settings.api_keys),
        "keyRequired": bool(app.settings.api_keys),
        "suggestions": False,
        "filesTranslation": False,
        "supportedFilesFormat": [],
        "language": {
            "source": {"code": AUTO, "name": "Auto Detect"},
            "target": {"code": target, "name": language_name(target) if target else ""},
        },
    }
