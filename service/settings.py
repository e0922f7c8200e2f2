"""All service settings: one pydantic-settings object, environment prefix ``S2S_``.

Every field can be set with an environment variable (``S2S_PORT=9000``) and with a
command-line flag of ``python -m service`` generated from the field (``--port``; flags
override the environment; service/cli.py). List fields take a comma-separated string
(``S2S_API_KEYS=key1,key2``) or a JSON list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """The service configuration (validated once at start-up)."""

    model_config = SettingsConfigDict(env_prefix="S2S_", extra="forbid", frozen=True)

    # Server
    host: str = Field("127.0.0.1", description="Interface to bind.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port).")
    models_dir: Path = Field(Path("models"), description="Folder whose subfolders are packages.")
    models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Package names to serve (empty: every package)."
    )
    # Runtime
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Execution device.")
    precision: Literal["auto", "fp32", "int8", "fp16"] = Field(
        "auto", description="Package variant (auto: int8 on CPU, fp16 on CUDA, else fp32)."
    )
    intra_op_threads: int | None = Field(
        None, ge=1, description="ORT threads per model (per lane with runtime_lanes > 1)."
    )
    runtime_lanes: int = Field(
        1,
        ge=1,
        le=64,
        description="CPU: load each model this many times with one share of the cores each "
        "and split every batch across them (faster batches, N x model memory; a batch of "
        "one request runs on one lane's threads).",
    )
    shared_thread_pool: bool = Field(
        False,
        description="CPU: every model's ONNX Runtime sessions share one pool of "
        "intra_op_threads threads instead of one spinning pool per session (faster when "
        "calls alternate between sessions: iteration batching, several models; not with "
        "runtime_lanes > 1).",
    )
    int8_weights: Literal["auto", "as_exported"] = Field(
        "auto",
        description="CPU int8: auto loads per-row int8 weights re-encoded as signed where the "
        "CPU has VNNI (AVX-512 VNNI / AVX-VNNI: exact there, and faster); as_exported keeps "
        "the stored unsigned encoding everywhere.",
    )
    shared_cross_kv: bool = Field(
        True,
        description="CPU: a request's beams share one copy of its cross-attention keys and "
        "values (the decoder is rewritten at load: less memory, faster beam search; the same "
        "tokens in fp32, int8 logits within its rounding); false copies them per beam, as "
        "exported.",
    )
    warmup: bool = Field(True, description="Run one generation per model before ready.")
    verify_packages: bool = Field(
        True,
        description="Check the size and sha256 of every loaded package file against the "
        "manifest and refuse a package that differs (costs one read of the files).",
    )
    ready_policy: Literal["any", "all"] = Field(
        "any",
        description="/ready 200: any (loading done, one model ready) or all models ready.",
    )
    # Batching
    batch_mode: Literal["continuous", "iteration", "dynamic", "off"] = Field(
        "dynamic",
        description="Batching policy (dynamic holds mixed open-loop load; continuous "
        "streams token by token but its per-cohort decoder calls collapse under it; "
        "iteration: one decoder call per step for rows at any position, needs a package "
        "exported with --positioned, else that model runs continuous with a warning).",
    )
    max_batch_size: int = Field(
        16,
        ge=1,
        le=1024,
        description="Decoder rows per batch (a request counts num_beams or n rows).",
    )
    max_batch_tokens: int = Field(
        8192, ge=1, description="Padded input tokens per batch (longest input x rows)."
    )
    max_batch_cache_tokens: int = Field(
        65_536,
        ge=1,
        description="Key/value cache positions per batch: rows x (longest input + longest "
        "max_new_tokens), the memory bound of a running batch.",
    )
    max_wait_ms: float = Field(5.0, ge=0, le=10_000, description="Batch collection wait.")
    iteration_source_split: int = Field(
        0,
        ge=0,
        le=100_000,
        description="Iteration batching: sources of up to N tokens decode in a slot set of "
        "their own, longer ones in another (one decoder call per set and step), so short "
        "rows' cross-attention is not padded to the longest source; 0: one set.",
    )
    iteration_split_min_rows: int = Field(
        32,
        ge=0,
        le=100_000,
        description="Iteration batching: while fewer rows than this run, every joiner goes "
        "to the first set (one decoder call per step: lower latency in small batches).",
    )
    join_every_steps: int = Field(
        1,
        ge=1,
        le=64,
        description="Continuous and iteration batching: queued requests join a running batch "
        "every N steps.",
    )
    max_queue: int = Field(
        256, ge=1, description="Client requests admitted per model (queued or running) before 429."
    )
    max_queue_cost: int = Field(
        2_097_152,
        ge=1,
        description="Work units admitted per model before 429 (a request costs, per sentence, "
        "decoder rows x max_new_tokens + its input tokens).",
    )
    max_request_cost: int = Field(
        262_144,
        ge=1,
        description="Work units one request may cost (413 over it; at most max_queue_cost).",
    )
    default_timeout_ms: float = Field(
        60_000, gt=0, description="Deadline of a generation without timeout_ms."
    )
    worker_restart_delay_s: float = Field(
        1.0,
        ge=0,
        le=30,
        description="Restart a dead model worker after this delay (doubled per death in a row).",
    )
    # Limits
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Request body limit (413).")
    max_texts: int = Field(64, ge=1, description="Texts per request (413).")
    max_chars: int = Field(20_000, ge=1, description="Characters per text (413).")
    max_new_tokens_cap: int = Field(512, ge=1, description="Largest max_new_tokens (413).")
    max_messages: int = Field(64, ge=1, description="Chat messages per request (413).")
    character_limit: int = Field(
        1_000_000_000_000,
        ge=1,
        description="Characters this process may translate through DeepL's /v2/translate "
        "(456 past it; /v2/usage reports it as character_limit).",
    )
    # Security and operations
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Bearer keys; empty disables authentication."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Allowed CORS origins (empty: CORS off)."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest log level written."
    )
    key_rate_per_s: float = Field(
        0.0, ge=0, description="Work requests per second per API key (429 over it; 0: off)."
    )
    key_burst: int = Field(10, ge=1, description="Requests an API key may send at once.")
    key_max_concurrent: int = Field(
        0, ge=0, description="Work requests in progress per API key (429 over it; 0: off)."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, le=600, description="A client must send its request headers within this."
    )
    body_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="A request body must arrive within this from its headers, plus one second "
        "per body_min_rate bytes received (408 and the connection closed otherwise).",
    )
    body_min_rate: int = Field(
        1024,
        ge=1,
        description="Bytes per second a request body must keep arriving at once "
        "body_timeout_s has passed (a trickling body is answered 408).",
    )
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, le=600, description="Idle keep-alive connections close after this."
    )
    drain_grace_s: float = Field(
        30.0,
        ge=0,
        description="SIGTERM: how long in-flight work may take to finish; then it is answered "
        "503 (an SSE error event) and the process exits 3.",
    )

    @field_validator("models", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.models_dir.is_dir():
            raise ValueError(f"models_dir {str(self.models_dir)!r} is not a directory")
        if self.max_request_cost > self.max_queue_cost:
            raise ValueError("max_request_cost must not exceed max_queue_cost")
        if self.shared_thread_pool and self.runtime_lanes > 1:
            raise ValueError(
                "shared_thread_pool and runtime_lanes > 1 exclude each other (lanes need "
                "a pool each)"
            )
        if any(len(key) < 8 for key in self.api_keys):
            raise ValueError("every API key must be at least 8 characters")
        return self


def describe_error(error: ValidationError) -> str:
    """A short, operator-friendly message naming each bad setting and its env variable."""
    lines = ["invalid settings:"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        env = f" (S2S_{field.upper()})" if item["loc"] else ""
        lines.append(f"  {field}{env}: {item['msg']}")
    return "\n".join(lines)
