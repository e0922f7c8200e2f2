"""Request and response bodies (pydantic); field names follow transformers' generation names.

Request models are strict: a JSON string is no number and no boolean (``"num_beams": "4"``
and ``"stream": "yes"`` are 422s), only an integer may stand for a float.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_LANG_PATTERN = r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*"
_LANG = Field(min_length=2, max_length=16, pattern=f"^{_LANG_PATTERN}$")


class Options(BaseModel):
    """Generation options; unset fields take the model package's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_new_tokens: int | None = Field(None, ge=1, description="Largest number of new tokens.")
    min_new_tokens: int | None = Field(None, ge=0)
    num_beams: int | None = Field(None, ge=1, le=16)
    do_sample: bool | None = None
    temperature: float | None = Field(None, gt=0, le=10)
    top_k: int | None = Field(None, ge=0, le=1000)
    top_p: float | None = Field(None, gt=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    no_repeat_ngram_size: int | None = Field(None, ge=0, le=32)
    length_penalty: float | None = Field(None, ge=-10, le=10)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    timeout_ms: int | None = Field(None, ge=1, le=3_600_000, description="Deadline (504 after).")

    @model_validator(mode="after")
    def _check(self) -> Options:
        if (
            self.min_new_tokens is not None
            and self.max_new_tokens is not None
            and self.min_new_tokens > self.max_new_tokens
        ):
            raise ValueError("min_new_tokens must not exceed max_new_tokens")
        return self


#: The one rule for blank input (docs/api.md): a text or message with no character but
#: whitespace is a validation error on every route (the compatible APIs' 400).
BLANK_TEXT = "must not be empty or blank (whitespace only)"


def _texts(value: str | list[str]) -> str | list[str]:
    items = [value] if isinstance(value, str) else value
    if not items:
        raise ValueError("at least one text is required")
    if any(not item.strip() for item in items):
        raise ValueError(f"texts {BLANK_TEXT}")
    return value


def _content(value: str) -> str:
    if not value.strip():
        raise ValueError(f"content {BLANK_TEXT}")
    return value


class _Work(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(None, description="Model package name (default: chosen by task).")
    options: Options = Field(default_factory=lambda: Options.model_validate({}))
    stream: bool = Field(False, description="Answer with server-sent events.")


class TranslateRequest(_Work):
    """POST /translate."""

    text: str | list[str] = Field(description="A text or a list of texts.")
    source_lang: str | None = Field(
        None,
        min_length=2,
        max_length=16,
        pattern=f"^(auto|{_LANG_PATTERN})$",
        description='Source language; omitted or "auto": detected per text.',
    )
    target_lang: str = _LANG
    format: Literal["text", "html"] = Field(
        "text",
        description='"text": layout kept; "html": only text nodes translated, markup kept.',
    )

    _check_text = field_validator("text")(classmethod(lambda cls, v: _texts(v)))

    @model_validator(mode="after")
    def _stream_plain_text(self) -> TranslateRequest:
        if self.stream and self.format != "text":
            raise ValueError('streaming supports format "text" only')
        return self

    def texts(self) -> list[str]:
        """The input as a list."""
        return [self.text] if isinstance(self.text, str) else list(self.text)


class SummarizeRequest(_Work):
    """POST /summarize."""

    text: str | list[str] = Field(description="A text or a list of texts.")

    _check_text = field_validator("text")(classmethod(lambda cls, v: _texts(v)))

    def texts(self) -> list[str]:
        """The input as a list."""
        return [self.text] if isinstance(self.text, str) else list(self.text)


class ChatMessage(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant"]
    content: str

    _check_content = field_validator("content")(classmethod(lambda cls, v: _content(v)))


class ChatRequest(_Work):
    """POST /chat."""

    messages: list[ChatMessage] = Field(min_length=1)

    @field_validator("messages")
    @classmethod
    def _last_is_user(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        if value[-1].role != "user":
            raise ValueError("the last message must come from the user")
        return value


class DetectedLanguageOut(BaseModel):
    """A detected source language ("und": a text without letters, returned as it is)."""

    language: str
    confidence: float = Field(ge=0, le=1)


class TranslateResponse(BaseModel):
    """Translations in input order; ``model`` is the (first) model that translated;
    ``models`` every model used, in order, when more than one was; ``pivot`` the language
    (``"en"``) that texts of a pair no model serves were translated through (absent when
    every text was translated directly); ``detected_languages`` only when the source was
    detected."""

    model: str
    models: list[str] | None = None
    pivot: str | None = None
    translations: list[str]
    detected_languages: list[DetectedLanguageOut] | None = None


class SummarizeResponse(BaseModel):
    """Summaries in input order."""

    model: str
    summaries: list[str]


class Usage(BaseModel):
    """Token counts."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    """The model's reply."""

    role: Literal["assistant"] = "assistant"
    content: str


class ChatResponse(BaseModel):
    """POST /chat answer."""

    model: str
    message: AssistantMessage
    usage: Usage


# ---- OpenAI-compatible -----------------------------------------------------------------
class OpenAIContentPart(BaseModel):
    """A content part; only text parts are supported."""

    model_config = ConfigDict(extra="ignore", strict=True)

    type: Literal["text"]
    text: str


class OpenAIMessage(BaseModel):
    """A chat message in OpenAI's format."""

    model_config = ConfigDict(extra="ignore", strict=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[OpenAIContentPart]

    @model_validator(mode="after")
    def _not_blank(self) -> OpenAIMessage:
        _content(self.text())
        return self

    def text(self) -> str:
        """The content as one string."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    """OpenAI stream_options."""

    model_config = ConfigDict(extra="ignore", strict=True)

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions (unknown OpenAI fields are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: str
    messages: list[OpenAIMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=8)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        items = [value] if isinstance(value, str) else (value or [])
        if len(items) > 4 or any(not s for s in items):
            raise ValueError("stop takes up to 4 non-empty strings")
        return value

    def stop_list(self) -> list[str]:
        """Stop strings as a list."""
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ErrorDetail(BaseModel):
    """An error: a stable ``type``, a human ``message``, the request id and the type's own
    fields (``limit``, ``cost``, ``retry_after_s``, ``available``, ``pairs``, ...)."""

    model_config = ConfigDict(extra="allow")

    type: str
    message: str
    request_id: str | None = None


class ErrorResponse(BaseModel):
    """Every error body of the task routes (docs/api.md, Errors)."""

    error: ErrorDetail


def _error(description: str, retry_after: bool = False) -> dict[str, object]:
    entry: dict[str, object] = {"model": ErrorResponse, "description": description}
    if retry_after:
        entry["headers"] = {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer"},
            }
        }
    return entry


#: The statuses a task route answers (docs/api.md's error table) and the 200 stream, for
#: the OpenAPI document: FastAPI alone would list 200 and its own 422 body only.
TASK_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "the answer, or with `stream: true` server-sent events",
        # One server-sent event (OpenAPI 3.1: the media type's schema describes each event).
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "event": {"type": "string", "description": "`error` for an error"},
                        "data": {"type": "string", "description": "JSON, or `[DONE]` last"},
                        "id": {"type": "string"},
                        "retry": {"type": "integer"},
                    },
                    "required": ["data"],
                }
            }
        },
    },
    400: _error("`bad_request`: both Content-Length and Transfer-Encoding; the connection closes"),
    401: _error("`unauthorized`: `S2S_API_KEYS` is set and the Bearer key is missing or wrong"),
    404: _error("`model_not_found`: no package of that name"),
    408: _error("`request_timeout`: the body did not arrive in time; the connection closes"),
    413: _error("`too_large`: over a request limit, the request cost or the model's window"),
    415: _error("`unsupported_media_type`: the body is not `application/json`"),
    422: _error("`validation_error` and the other request errors of the error table"),
    429: _error("`queue_full`, `rate_limited`, `concurrency_limit`", retry_after=True),
    500: _error("`generation_failed`, `internal_error`: a bug"),
    503: _error("`draining`, `not_ready`, `model_failed`"),
    504: _error("`timeout`: the request's deadline passed"),
}
