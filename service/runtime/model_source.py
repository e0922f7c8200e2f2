"""What ONNX Runtime loads for a package's model file: the file, or a rewritten copy.

Two rewrites are made at load time, so one package runs the fast way on each host:
signed int8 weights on VNNI CPUs (``service.runtime.int8_weights``) and cross-attention
K/V shared by a source's decoder rows (``service.runtime.shared_cross_kv``). Both are
applied in one pass over the model (one parse, one serialization).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from service.runtime.int8_weights import Int8Weights, cpu_has_vnni, signed_weights
from service.runtime.shared_cross_kv import share_cross_kv

log = logging.getLogger(__name__)


def load_bytes(
    path: Path, int8_weights: Int8Weights, device: str, shared_cross_kv: bool = False
) -> bytes | None:
    """The rewritten model to load instead of ``path`` on this host, or None for the file
    as it is (nothing applies or changes, the model is over protobuf's 2 GB, or ``onnx``
    is missing).

    ``int8_weights="auto"``: per-row int8 weights as signed, on a CPU with VNNI.
    ``shared_cross_kv``: cross-attention K/V may hold one row per source (CPU only: the
    CUDA backend keeps one row per decoder row)."""
    signed = int8_weights == "auto" and device == "cpu" and cpu_has_vnni()
    shared = shared_cross_kv and device == "cpu"
    if not (signed or shared):
        return None
    try:
        import onnx
    except ImportError:  # onnx is a serving dependency; a trimmed install still loads
        log.warning("onnx is not installed: %s loads as exported", path.name)
        return None
    model = onnx.load(str(path))
    converted = signed_weights(model) if signed else 0
    grouped = share_cross_kv(model) if shared else 0
    if not (converted or grouped):
        return None
    try:
        serialized = bytes(model.SerializeToString())
    except ValueError:  # protobuf refuses messages over 2 GB: load the file as it is
        log.warning("%s is too large to rewrite in memory; loaded as exported", path.name)
        return None
    log.info(
        "%s: %d per-row int8 weights re-encoded as signed, %d cross-attention MatMuls "
        "grouped by source",
        path.name,
        converted,
        grouped,
    )
    return serialized


@contextmanager
def model_source(
    path: Path, int8_weights: Int8Weights, device: str, shared_cross_kv: bool = False
) -> Iterator[str | bytes]:
    """What ORT should load for ``path`` on this host, valid inside the ``with``: the
    package's own file, or a temporary file holding the rewritten model (``load_bytes``).

    A temporary file rather than the bytes themselves: a session made from bytes keeps
    about the model's size more resident memory than one made from a file (measured on
    full Marian's 176 MB decoder: +386 against +218 MiB). Where no temporary file can be
    written, the bytes themselves."""
    with ExitStack() as stack:
        yield _rewritten_source(path, int8_weights, device, shared_cross_kv, stack) or str(path)


def _rewritten_source(
    path: Path, int8_weights: Int8Weights, device: str, shared_cross_kv: bool, stack: ExitStack
) -> str | bytes | None:
    """The temporary file (kept open on ``stack``) or bytes of the rewritten model; None when
    the file loads as it is."""
    model = load_bytes(path, int8_weights, device, shared_cross_kv)
    if model is None:
        return None
    try:
        copy = stack.enter_context(
            tempfile.NamedTemporaryFile(prefix=f"s2s-{path.stem}-", suffix=".onnx")  # noqa: SIM115 (closed by the stack)
        )
        copy.write(model)
        copy.flush()
    except OSError as exc:  # a read-only or full temporary dir: load the bytes themselves
        log.warning("%s: no temporary file (%s); loading the rewritten bytes", path.name, exc)
        return model
    return str(copy.name)
