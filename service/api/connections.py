"""Connection timeouts uvicorn does not have: a client must send its request headers
within ``S2S_HEADER_TIMEOUT_S`` of connecting (or of its previous response), else the
connection is closed. Without it, 1,000 connections trickling header bytes were all held
(uvicorn's keep-alive timeout only starts after a response). Idle keep-alive
connections close after ``S2S_KEEP_ALIVE_TIMEOUT_S`` (uvicorn's ``timeout_keep_alive``).
The request body's deadline (``S2S_BODY_TIMEOUT_S``, ``S2S_BODY_MIN_RATE``: 408) is kept
by the middleware, which reads every body (``service/api/body.py``, ``BodyPace``).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


def header_timeout_protocol(timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a request-header deadline of ``timeout_s``."""

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _seen_cycle: object | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _between_requests(self) -> bool:
            cycle = self.cycle
            return cycle is None or (cycle is self._seen_cycle and cycle.response_complete)

        def data_received(self, data: bytes) -> None:
            if self._between_requests():
                self._arm()  # a new request starts: its headers have timeout_s
            super().data_received(data)
            if self.cycle is not None and self.cycle is not self._seen_cycle:
                self._seen_cycle = self.cycle  # its headers are complete
                self._disarm()

        def _too_slow(self) -> None:
            self._header_timer = None
            if self._between_requests() and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol
