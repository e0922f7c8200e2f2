"""DeepL-compatible API: ``POST /v2/translate``, ``GET``/``POST /v2/languages``,
``GET``/``POST /v2/usage``; the official ``deepl`` library works with
``deepl.Translator(key, server_url="http://host:port")``.

Bodies are JSON or form (``text`` repeated), fields also from the query. Auth:
``Authorization: DeepL-Auth-Key <key>`` against S2S_API_KEYS (403 when keys are set and
it is missing or wrong). ``target_lang`` takes DeepL's codes, regional ones included
(``EN-US``, ``PT-BR``: the served code if a package has it, else its base language);
codes come back upper case. ``tag_handling`` html|xml keeps the markup (``ignore_tags``,
``non_splitting_tags``); ``split_sentences`` "0" translates each text whole;
``preserve_formatting`` and ``formality`` are accepted and have no effect (layout is
always kept; no package has formality). Errors are ``{"message": "..."}`` with DeepL's
statuses (400, 403, 413, 429, 456 for the character limit, 5xx).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.api.auth import deepl_key, valid_key
from service.api.calls import check_limits, label_models, start_call, until_done_or_disconnect
from service.api.errors import ApiError, compat_error_response
from service.api.forms import Fields, bad_request, read_fields
from service.api.schemas import BLANK_TEXT, Options
from service.engine import GenerationOptions, TextFormat, match_language
from service.text.language import UNDETERMINED, base_language
from service.text.language_names import language_name

router = APIRouter(prefix="/v2", tags=["deepl"])

# DeepL accepts only regional codes for these targets; a package's plain code stands for both.
_REGIONAL_TARGETS = {"en": ("en-gb", "en-us"), "pt": ("pt-br", "pt-pt")}
_SPLIT = {"0": False, "1": True, "nonewlines": True}
_BOOLEAN = {"0": False, "1": True, "false": False, "true": True}


def _handled(
    work: Callable[[Request], Awaitable[Response | Any]],
) -> Callable[[Request], Awaitable[Response | Any]]:
    """Check the key, then answer every failure of ``work`` in DeepL's error format."""

    async def route(request: Request) -> Response | Any:
        try:
            keys = request.app.state.settings.api_keys
            if keys and not valid_key(deepl_key(request.headers.get("authorization")), keys):
                raise ApiError(403, "unauthorized", "Authorization failure, check auth_key")
            return await work(request)
        except Exception as exc:
            return compat_error_response(exc, request, "deepl")

    route.__name__ = work.__name__
    route.__doc__ = work.__doc__
    return route


def _tags(fields: Fields, name: str) -> tuple[str, ...]:
    """A tag list: a JSON list, repeated form fields, or comma-separated names."""
    values = fields.many(name) or []
    if any(not isinstance(v, str) for v in values):
        raise bad_request(f"Value for '{name}' not supported: a list of tag names is expected.")
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


def _choice(fields: Fields, name: str, allowed: dict[str, bool], default: bool) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    key = str(value).lower() if not isinstance(value, bool) else str(int(value))
    if key not in allowed:
        raise bad_request(f"Value for '{name}' not supported.")
    return allowed[key]


def _text_format(fields: Fields) -> TextFormat:
    handling = fields.get("tag_handling")
    if handling not in (None, "", "html", "xml"):
        raise bad_request("Value for 'tag_handling' not supported.")
    split = _choice(fields, "split_sentences", _SPLIT, True)
    _choice(fields, "preserve_formatting", _BOOLEAN, False)  # validated; layout is kept anyway
    if not handling:
        return TextFormat(split_sentences=split)
    inline = _tags(fields, "non_splitting_tags")
    return TextFormat(
        kind=handling,
        ignore_tags=_tags(fields, "ignore_tags"),
        inline_tags=inline if inline or handling == "xml" else None,
        split_sentences=split,
    )


@router.post("/translate", response_model=None)
@_handled
async def translate(request: Request) -> Any:
    """Translate ``text`` (a list) into ``target_lang`` (DeepL's request and response)."""
    app = request.app.state
    fields = await read_fields(request)
    texts = fields.many("text")
    if not texts:
        raise bad_request("Parameter 'text' not specified.")
    if any(not isinstance(t, str) for t in texts):
        raise bad_request("Parameter 'text' must be a list of strings.")
    if any(not t.strip() for t in texts):
        raise bad_request(f"Parameter 'text': every text {BLANK_TEXT}.")
    target_code = fields.get("target_lang")
    if not isinstance(target_code, str) or not target_code.strip():
        raise bad_request("Parameter 'target_lang' not specified.")
    source_code = fields.get("source_lang")
    if source_code is not None and not isinstance(source_code, str):
        raise bad_request("Value for 'source_lang' not supported.")
    if fields.get("glossary_id"):
        raise bad_request("Glossaries are not supported by this server.")
    text_format = _text_format(fields)
    check_limits(app.settings, texts, Options.model_validate({}))
    app.usage.check(texts)
    pairs: dict[str, list[str]] = app.translator.languages()
    targets = {t for ts in pairs.values() for t in ts}
    target = match_language(target_code, targets) or target_code.lower()
    source = None
    if source_code and source_code.strip():
        source = match_language(source_code, pairs) or source_code.lower()
    call = start_call(request, None)
    plan = await app.translator.plan(texts, source, target, None, text_format)
    label_models(request, plan)
    results = await until_done_or_disconnect(request, plan.run(GenerationOptions(), call))
    app.usage.add(texts)
    return JSONResponse(
        {
            "translations": [
                {
                    "detected_source_language": (
                        "" if r.source_lang == UNDETERMINED else r.source_lang.upper()
                    ),
                    "text": r.text,
                    "billed_characters": len(original),
                }
                for r, original in zip(results, texts, strict=True)
            ]
        }
    )


@router.get("/languages", response_model=None, operation_id="deepl_languages_get")
@router.post("/languages", response_model=None, operation_id="deepl_languages_post")
@_handled
async def languages(request: Request) -> Any:
    """Source languages, or target languages with ``type=target`` (from the query or,
    as the deepl library sends it, the body)."""
    fields = await read_fields(request)
    kind = fields.get("type") or "source"
    if kind not in ("source", "target"):
        raise bad_request("Value for 'type' not supported.")
    pairs: dict[str, list[str]] = request.app.state.translator.languages()
    if kind == "source":
        return [{"language": code.upper(), "name": language_name(code)} for code in pairs]
    codes: set[str] = set()
    for target in {t for ts in pairs.values() for t in ts}:
        regional = _REGIONAL_TARGETS.get(target.lower())
        codes.update(regional if regional else (target,))
    return [
        {"language": code.upper(), "name": language_name(code), "supports_formality": False}
        for code in sorted(codes, key=lambda c: (base_language(c), c))
    ]


@router.get("/usage", response_model=None, operation_id="deepl_usage_get")
@router.post("/usage", response_model=None, operation_id="deepl_usage_post")
@_handled
async def usage(request: Request) -> Any:
    """Characters translated by this process and the configured limit."""
    counter = request.app.state.usage
    return {"character_count": counter.count, "character_limit": counter.limit}
