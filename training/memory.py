"""glibc malloc tuning for the decode loop's large per-step buffers.

Every decoder step returns fresh arrays (logits of batch x vocabulary, the grown
self-attention cache) of megabytes each. glibc serves blocks that large with mmap, or
returns freed heap memory to the kernel once the top of the heap exceeds its trim
threshold; either way the next step's buffers are new pages, and every page costs a
minor fault (and the kernel zeroing it). Fixing the mmap and trim thresholds keeps freed
blocks in the heap for the next step to reuse. Linux/glibc only; a no-op elsewhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold_mb: int = 256, trim_threshold_mb: int = 1024) -> bool:
    """Serve blocks up to ``mmap_threshold_mb`` from the heap and keep up to
    ``trim_threshold_mb`` of freed heap memory; True when glibc accepted both settings."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mib = 1 << 20
    ok = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb * mib)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb * mib)
    )
    log.info(
        "malloc: mmap threshold %d MiB, trim threshold %d MiB: %s",
        mmap_threshold_mb,
        trim_threshold_mb,
        "set" if ok else "refused",
    )
    return ok
