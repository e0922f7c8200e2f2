"""All service settings: one pydantic-settings object, environment prefix ``S2S_``.

Every field can be set with an environment variable (``S2S_PORT=9000``) and with a
command-line flag of ``python -m service`` generated from the field (``--port``; flags
override the environment; service/cli.py). List fields take a comma-separated string
(``S2S_API_KEYS=key1,key2``) or a JSON list.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Settings of earlier versions and what replaced each (start-up fails when one is set).
RETIRED_SETTINGS = {
    "join_every_steps": "continuous batching admits queued requests at every step",
    "iteration_source_split": "a continuous batch runs one decoder call per step",
    "iteration_split_min_rows": "a continuous batch runs one decoder call per step",
    "runtime_lanes": "every model runs on one shared thread pool of intra_op_threads threads",
    "shared_thread_pool": "always on (CPU); intra_op_threads sizes the pool",
    "int8_weights": "signed int8 weights load automatically where the CPU has VNNI (exact)",
    "shared_cross_kv": "a request's beams always share one cross-attention K/V copy (CPU)",
}
RETIRED_BATCH_MODES = {
    "iteration": "renamed; use batch_mode=continuous (S2S_BATCH_MODE=continuous)",
    "off": "removed; use batch_mode=dynamic with max_batch_size=1 and max_wait_ms=0",
}


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
        None,
        ge=1,
        description="CPU: ONNX Runtime threads, one pool shared by every model's sessions "
        "(default: the cores this process may use, from its CPU affinity and cgroup quota).",
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
    batch_mode: Literal["dynamic", "continuous"] = Field(
        "dynamic",
        description="Batching policy: dynamic groups queued requests into one generate call; "
        "continuous lets requests join and leave a running batch at every decode step (one "
        "decoder call per step; needs a package exported with --positioned, else that model "
        "runs dynamic with a warning).",
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
    ui: bool = Field(
        True,
        description="Serve the web page at / (translate, summarize, chat, models); false "
        "for API-only deployments.",
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

    @model_validator(mode="before")
    @classmethod
    def _refuse_retired(cls, data: object) -> object:
        """Settings and values of earlier versions fail loudly, naming what replaced them
        (an ignored S2S_ variable would silently change what runs)."""
        given = dict(data) if isinstance(data, dict) else {}
        problems = []
        for name, replacement in RETIRED_SETTINGS.items():
            env = f"S2S_{name.upper()}"
            if name in given or env in os.environ:
                problems.append(f"{name} ({env}) was removed: {replacement}")
        mode = given.get("batch_mode", os.environ.get("S2S_BATCH_MODE"))
        if isinstance(mode, str) and mode.strip().lower() in RETIRED_BATCH_MODES:
            problems.append(
                f"batch_mode (S2S_BATCH_MODE) {mode!r}: {RETIRED_BATCH_MODES[mode.strip().lower()]}"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return data

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
