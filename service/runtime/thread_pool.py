"""One intra-op thread pool for every ONNX Runtime session of the process.

Without it each session owns a pool of ``intra_op_threads`` threads that spin for a while
after each call. A runtime has two or three sessions (encoder, decoder, the positioned
pair) and a server holds one runtime per model, so when calls alternate between sessions
(the continuous batch runs the encoder, the cross-attention projection and the decoder
in every step that admits a request) the pools that just finished keep spinning on the
cores the next session needs. The service therefore always shares one pool on CPU
(``service.engine.registry.default_loader``; docs/benchmarks.md has the measurements);
a runtime loaded on its own keeps per-session pools unless this is called first.

ORT allows global pools only as a process-wide mode: they must be sized before the first
session that uses them, and once they exist a session may no longer have its own pool.
So :func:`share_thread_pool` switches the mode for the rest of the process, and
``sessions.make_session`` follows it.
"""

from __future__ import annotations

import logging

from onnxruntime.capi import _pybind_state

log = logging.getLogger(__name__)

_size: int | None = None


def share_thread_pool(threads: int) -> int:
    """Make every session created from now on share one pool of ``threads`` intra-op
    threads; returns the size in use (the first call's: ORT cannot resize it)."""
    global _size  # the process-wide ORT environment is the state being tracked
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if _size is None:
        _pybind_state.set_global_thread_pool_sizes(threads, 1)
        _size = threads
        log.info("ONNX Runtime sessions share one pool of %d intra-op threads", threads)
    elif threads != _size:
        log.warning("shared ORT thread pool already has %d threads; %d ignored", _size, threads)
    return _size


def shared_pool_size() -> int | None:
    """Threads of the shared pool, or None while sessions own their pools."""
    return _size
