"""The naive baseline for the load test: a transformers pipeline behind FastAPI.

One request at a time (a lock around the pipeline), no batching, PyTorch fp32: what a
first deployment of a fine-tuned checkpoint usually looks like. It answers the same
``POST /translate`` body shape as the service (one text per request) and ``GET /ready``.

    python -m bench.naive_server --checkpoint CKPT --port 8100
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field


class Options(BaseModel):
    """The generation options the load generator sends."""

    max_new_tokens: int | None = None
    min_new_tokens: int | None = None
    num_beams: int | None = None


class Body(BaseModel):
    """``POST /translate`` body (one text)."""

    text: str
    source_lang: str = "en"
    target_lang: str = "de"
    options: Options = Field(default_factory=Options)


def create_app(checkpoint: Path, threads: int) -> FastAPI:
    """The baseline app around a transformers ``translation`` pipeline."""
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # one max_length warning per request otherwise
    torch.set_num_threads(threads)
    translator = pipeline("translation", model=str(checkpoint), device="cpu")
    lock = threading.Lock()
    app = FastAPI(title="naive baseline")

    @app.get("/ready")
    def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/translate")
    def translate(body: Body) -> dict[str, Any]:
        # A sync route runs in the threadpool; the lock keeps it one generation at a time.
        kwargs = body.options.model_dump(exclude_none=True)
        with lock:
            out = translator(body.text, **kwargs)
        return {"model": "naive", "translations": [out[0]["translation_text"]]}

    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the baseline on loopback."""
    import uvicorn

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app = create_app(args.checkpoint, args.threads)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
