"""``python -m service --host H --port P --models-dir DIR``: serve every package in DIR.

Every setting has a flag and an ``S2S_`` environment variable (service/settings.py,
service/cli.py); flags win.
SIGTERM drains: /ready turns 503 and new work gets 503 at once, in-flight work may
finish for up to ``drain_grace_s``. Work still unfinished then is answered 503
``draining`` (an SSE ``error`` event on a stream), given ``FLUSH_S`` to reach the
clients, and the process exits 3 (it dropped accepted work) instead of 0. The whole
drain takes at most ``drain_grace_s + 2 * FLUSH_S``. A second SIGTERM/SIGINT stops at once.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from pydantic import ValidationError

from service.cli import build_parser
from service.runtime.notorch import block_torch
from service.settings import Settings, describe_error

if TYPE_CHECKING:
    from service.api.drain import DrainState
    from service.engine import ModelRegistry

#: Seconds the 503s of work cut off at the end of the grace period get to reach clients
#: (then uvicorn's own shutdown waits at most as long again).
FLUSH_S = 2.0
#: Exit status of a drain that dropped accepted work.
EXIT_DROPPED_WORK = 3

log = logging.getLogger("service")


def load_settings(argv: list[str] | None = None) -> Settings:
    """Settings from the environment with command-line overrides; exit 2 with a clear
    message when invalid."""
    args = vars(build_parser(__doc__.split("\n")[0]).parse_args(argv))
    overrides = {k: v for k, v in args.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM drains instead of closing the socket at once."""

    def __init__(
        self,
        config: uvicorn.Config,
        drain: DrainState,
        grace_s: float,
        registry: ModelRegistry | None = None,
    ) -> None:
        super().__init__(config)
        self.drain = drain
        self.grace_s = grace_s
        self.registry = registry
        self.dropped = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First SIGTERM: start draining. Anything else (or a second signal): stop now."""
        if sig == signal.SIGTERM and not self.drain.draining:
            log.info("SIGTERM: draining (grace %.1fs)", self.grace_s)
            self.drain.begin()
            return
        # Not recorded in _captured_signals: uvicorn would re-raise it after shutdown and
        # the process would die of the signal instead of exiting 0.
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        """Stop once draining and no work request is left (or the grace period is over)."""
        if self.drain.draining:
            idle = self.drain.active == 0
            elapsed = self.drain.elapsed_s()
            if idle or elapsed >= self.grace_s + FLUSH_S:
                return True
            if elapsed >= self.grace_s and not self.dropped:
                self.dropped = self.drain.active
                log.warning(
                    "grace period over with %d requests unfinished; answering them 503",
                    self.dropped,
                )
                if self.registry is not None:
                    self.registry.abort_all()
        return await super().on_tick(counter)


def main(argv: list[str] | None = None) -> int:
    """Run the server until it is stopped; return the exit code."""
    # Before anything imports transformers: this process must behave like the torch-free
    # serving install even in a development venv that has torch.
    block_torch()
    from service.api.app import create_app
    from service.api.connections import header_timeout_protocol
    from service.api.logs import setup_logging

    settings = load_settings(argv)
    setup_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    drain: DrainState = app.state.drain
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # The grace period is spent in on_tick; uvicorn's own wait only flushes.
        timeout_graceful_shutdown=int(FLUSH_S),
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]
        http=header_timeout_protocol(settings.header_timeout_s),
        lifespan="on",
    )
    server = DrainingServer(config, drain, settings.drain_grace_s, app.state.registry)
    started = time.monotonic()
    server.run()
    log.info("stopped after %.1fs", time.monotonic() - started)
    if not server.started:
        return 1
    return EXIT_DROPPED_WORK if server.dropped else 0


if __name__ == "__main__":
    sys.exit(main())
