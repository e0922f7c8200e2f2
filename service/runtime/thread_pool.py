"""One intra-op thread pool for every ONNX Runtime session of the process (opt-in).

By default each session owns a pool of ``intra_op_threads`` threads that spin for a while
after each call. A runtime has two or three sessions (encoder, decoder, the positioned
pair) and a server holds one runtime per model, so when calls alternate between sessions
(the iteration batch runs the encoder, the cross-attention projection and the decoder in
every step that admits a request) the pools that just finished keep spinning on the cores
the next session needs. Measured on 2 cores, full Marian int8, 16 requests kept in flight
(``python -m bench.step_profile``): the iteration batch went from 9.3 to 14.6 requests/s
with one shared pool (``--shared-pool``), batched generate stayed at 16.3-16.4; turning
spinning off instead gave 12.3 and 13.6 (docs/benchmarks.md).

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
