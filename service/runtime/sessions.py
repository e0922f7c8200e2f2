"""ONNX Runtime sessions for one package variant, and the decoder-call primitives.

Two backends share one interface (``encode``, ``decode_first``, ``decode_next``,
``take``): ``CpuBackend`` keeps the caches as numpy arrays; ``CudaBackend`` keeps the
encoder output and every K/V cache on the GPU as OrtValues, runs through IO binding, and
only copies the logits to the host (row selection on the device is a tiny Gather graph).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.runtime.encoder_groups import encode_grouped
from service.runtime.errors import PackageError
from service.runtime.int8_weights import Int8Weights
from service.runtime.model_source import model_source
from service.runtime.shared_cross_kv import session_shares_cross_kv
from service.runtime.thread_pool import shared_pool_size

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
_PAST_RE = re.compile(r"^past_key_values\.(\d+)\.(decoder|encoder)\.(key|value)$")

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class RuntimeInfo:
    """What actually runs: the chosen variant and the provider ORT really uses."""

    precision: str
    provider: str
    providers: tuple[str, ...]
    intra_op_threads: int
    device: str


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs the process's cgroup quota allows (cgroup v2 ``cpu.max``, else v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or None without a quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def default_intra_op_threads() -> int:
    """Threads for the process's ONNX Runtime pool: the cores it may use, i.e. its CPU
    affinity, capped by a cgroup CPU quota (a container's ``--cpus``). ORT's own default
    counts every host core, which oversubscribes a container with a quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, int(limit))  # 1.5 CPUs of quota: 1 thread, none waiting
    return max(1, cores)


def cuda_available() -> bool:
    """True when this onnxruntime build offers the CUDA provider."""
    return CUDA_PROVIDER in ort.get_available_providers()


def make_session(
    path: Path,
    device: str,
    intra_op_threads: int,
    int8_weights: Int8Weights = "as_exported",
    shared_cross_kv: bool = False,
) -> ort.InferenceSession:
    """Create one inference session; PackageError if the file is missing or not loadable.

    ``int8_weights="auto"``: per-row int8 weights load re-encoded as signed where the CPU
    has VNNI (``service.runtime.int8_weights``; exact, and faster there).
    ``shared_cross_kv``: a decoder loads rewritten so a source's beams share one copy of
    its cross-attention K/V, on CPU (``service.runtime.shared_cross_kv``).

    After ``thread_pool.share_thread_pool`` the session runs on the process's shared pool
    instead, and ``intra_op_threads`` does not apply."""
    if not path.is_file():
        raise PackageError(f"{path}: missing model file")
    opts = ort.SessionOptions()
    if shared_pool_size() is not None:
        opts.use_per_session_threads = False  # and no pool sizes: ORT warns they are ignored
    else:
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers: list[Any] = [CPU_PROVIDER]
    if device == "cuda":
        providers = [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]
    try:
        with model_source(path, int8_weights, device, shared_cross_kv) as source:
            return ort.InferenceSession(source, sess_options=opts, providers=providers)
    except Exception as exc:  # ORT and onnx raise their own exception types for bad files
        raise PackageError(f"{path}: cannot load ONNX model: {exc}") from exc


@dataclass
class CohortCache:
    """Decoder state of one cohort: encoder output and mask, self- and cross-attention K/V
    (numpy arrays on CPU, OrtValues on CUDA).

    ``self_kv`` and ``encoder_mask`` have one row per decoder row; ``hidden`` and
    ``cross_kv`` one row per ``rows_per_source`` consecutive decoder rows (a source's
    beams, when the decoder shares cross K/V: ``shared_cross_kv``), else one per row."""

    encoder_mask: Any
    hidden: Any
    self_kv: list[Any] = field(default_factory=list)
    cross_kv: list[Any] = field(default_factory=list)
    rows_per_source: int = 1


def source_rows(rows: np.ndarray, rows_per_source: int) -> tuple[np.ndarray, int]:
    """For a ``take`` of decoder ``rows``: which rows of ``cross_kv`` / ``hidden`` to keep,
    and the new ``rows_per_source``. Runs of ``rows_per_source`` taken rows that come from
    one source keep sharing its row; any other selection gives every decoder row its own
    (correct for any ``rows``, only no longer shared)."""
    sources = rows // rows_per_source
    if rows_per_source > 1 and rows.size % rows_per_source == 0:
        runs = sources.reshape(-1, rows_per_source)
        if bool((runs == runs[:, :1]).all()):
            return runs[:, 0], rows_per_source
    return sources, 1


class _DecoderSignature:
    """Input/output names and dtypes of an optimum merged decoder."""

    def __init__(self, decoder: ort.InferenceSession, encoder: ort.InferenceSession) -> None:
        inputs = {i.name: i for i in decoder.get_inputs()}
        outputs = [o.name for o in decoder.get_outputs()]
        required = {"input_ids", "encoder_hidden_states", "encoder_attention_mask"}
        if not required <= set(inputs) or "use_cache_branch" not in inputs:
            raise PackageError(
                f"decoder is not an optimum merged decoder with past (inputs: {sorted(inputs)})"
            )
        layers = sorted({int(m.group(1)) for n in inputs if (m := _PAST_RE.match(n))})
        if not layers or layers != list(range(len(layers))):
            raise PackageError(f"decoder has no usable past_key_values inputs: {sorted(inputs)}")
        self.num_layers = len(layers)
        self.self_in = [
            f"past_key_values.{i}.decoder.{kv}"
            for i in range(self.num_layers)
            for kv in ("key", "value")
        ]
        self.cross_in = [
            f"past_key_values.{i}.encoder.{kv}"
            for i in range(self.num_layers)
            for kv in ("key", "value")
        ]
        self.self_out = [n.replace("past_key_values", "present") for n in self.self_in]
        self.cross_out = [n.replace("past_key_values", "present") for n in self.cross_in]
        missing = [n for n in ["logits", *self.self_out, *self.cross_out] if n not in outputs]
        if missing:
            raise PackageError(f"decoder lacks outputs {missing}")
        self.ids_dtype = _ORT_TO_NUMPY[inputs["input_ids"].type]
        self.mask_dtype = _ORT_TO_NUMPY[inputs["encoder_attention_mask"].type]
        self.kv_dtype = _ORT_TO_NUMPY[inputs[self.self_in[0]].type]
        shape = inputs[self.self_in[0]].shape
        if not (isinstance(shape[1], int) and isinstance(shape[3], int)):
            raise PackageError(f"decoder past shape {shape} lacks static heads/head_dim")
        self.num_heads, self.head_dim = int(shape[1]), int(shape[3])
        enc_inputs = {i.name: i for i in encoder.get_inputs()}
        if "input_ids" not in enc_inputs or "attention_mask" not in enc_inputs:
            raise PackageError(
                f"encoder inputs {sorted(enc_inputs)} are not input_ids/attention_mask"
            )
        self.enc_ids_dtype = _ORT_TO_NUMPY[enc_inputs["input_ids"].type]
        self.enc_mask_dtype = _ORT_TO_NUMPY[enc_inputs["attention_mask"].type]
        self.enc_output = encoder.get_outputs()[0].name


class CpuBackend:
    """Encoder/decoder calls with numpy arrays in and out."""

    device = "cpu"

    def __init__(self, encoder: ort.InferenceSession, decoder: ort.InferenceSession) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.sig = _DecoderSignature(decoder, encoder)
        self.shares_cross_kv = session_shares_cross_kv(decoder)
        self._false = np.array([False])
        self._true = np.array([True])

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> CohortCache:
        """Run the encoder for a cohort, rows of similar length together (``encoder_groups``)
        instead of the whole padded batch at once; the cache has no K/V yet."""
        hidden = encode_grouped(self._encode_once, input_ids, attention_mask)
        return CohortCache(attention_mask.astype(self.sig.mask_dtype, copy=False), hidden)

    def _encode_once(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        sig = self.sig
        (hidden,) = self.encoder.run(
            [sig.enc_output],
            {
                "input_ids": input_ids.astype(sig.enc_ids_dtype, copy=False),
                "attention_mask": attention_mask.astype(sig.enc_mask_dtype, copy=False),
            },
        )
        return np.asarray(hidden)

    def decode_first(self, cache: CohortCache, input_ids: np.ndarray) -> np.ndarray:
        """First decoder step (no past): fills self- and cross-attention K/V; returns logits."""
        sig = self.sig
        rows = input_ids.shape[0]
        empty: np.ndarray = np.zeros((rows, sig.num_heads, 0, sig.head_dim), dtype=sig.kv_dtype)
        feed = self._feed(cache, input_ids, self._false)
        for name in (*sig.self_in, *sig.cross_in):
            feed[name] = empty
        outs = self.decoder.run(["logits", *sig.self_out, *sig.cross_out], feed)
        n = len(sig.self_out)
        cache.self_kv = outs[1 : 1 + n]
        cache.cross_kv = outs[1 + n :]
        return _last_logits(outs[0])

    def decode_next(self, cache: CohortCache, input_ids: np.ndarray) -> np.ndarray:
        """One cached decoder step; the cross-attention K/V arrays are reused as they are."""
        sig = self.sig
        feed = self._feed(cache, input_ids, self._true)
        feed.update(zip(sig.self_in, cache.self_kv, strict=True))
        feed.update(zip(sig.cross_in, cache.cross_kv, strict=True))
        outs = self.decoder.run(["logits", *sig.self_out], feed)
        cache.self_kv = outs[1:]
        return _last_logits(outs[0])

    def _feed(
        self, cache: CohortCache, input_ids: np.ndarray, branch: np.ndarray
    ) -> dict[str, Any]:
        return {
            "input_ids": input_ids.astype(self.sig.ids_dtype, copy=False),
            "encoder_attention_mask": cache.encoder_mask,
            "encoder_hidden_states": cache.hidden,
            "use_cache_branch": branch,
        }

    def expand(self, cache: CohortCache, widths: np.ndarray) -> None:
        """Repeat decoder row ``i`` ``widths[i]`` times (a request's beams or samples).
        Where the decoder shares cross K/V and every width is the same, the cross K/V and
        encoder output stay one row per source instead of being copied per row."""
        rows = np.repeat(np.arange(widths.size), widths)
        width = int(widths[0]) if widths.size else 1
        if not (self.shares_cross_kv and width > 1 and bool((widths == width).all())):
            self.take(cache, rows)
            return
        cache.self_kv = [a[rows] for a in cache.self_kv]
        cache.encoder_mask = cache.encoder_mask[rows]
        cache.rows_per_source = width

    def take(self, cache: CohortCache, rows: np.ndarray, self_only: bool = False) -> None:
        """Keep (and reorder/duplicate) the given rows of every cache array.

        ``self_only``: only the self-attention K/V change (beam reordering inside
        requests, whose cross-attention rows are identical)."""
        cache.self_kv = [select_rows(a, rows) for a in cache.self_kv]
        if not self_only:
            sources, cache.rows_per_source = source_rows(rows, cache.rows_per_source)
            cache.cross_kv = [select_rows(a, sources) for a in cache.cross_kv]
            cache.hidden = select_rows(cache.hidden, sources)
            cache.encoder_mask = cache.encoder_mask[rows]


def select_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]``, in place when it can be: row ``t`` of the returned leading view
    holds the old row ``rows[t]``, and only the rows that change are written.

    Finished rows leaving a cohort otherwise cost a fresh copy of every cache array: for
    32 rows with a 179-token source, 254 ms of page faults for the cross-attention K/V
    alone, against ~10 ms moving rows in place (measured, full Marian int8). Beam
    reordering moves about a third of the rows a step: 5 ms instead of 9 ms for the
    self-attention K/V of 32 x 4 beams at 20 positions (measured here with numpy alone).
    Arrays that cannot be written, are not contiguous, or have fewer
    rows than asked for (beam expansion) are copied."""
    count = rows.size
    if (
        count == 0
        or not array.flags.c_contiguous
        or not array.flags.writeable
        or count > array.shape[0]
        or int(rows.min()) < 0
        or int(rows.max()) >= array.shape[0]
    ):
        return array[rows]
    moved = np.flatnonzero(rows != np.arange(count))
    if moved.size and bool(np.all(rows[moved] > moved)):
        # Only rows from further down move up (dropping rows): in increasing order every
        # source is read before anything overwrites it, so no temporary is needed.
        for target in moved.tolist():
            array[target] = array[rows[target]]
    elif moved.size:
        # A general permutation: the right-hand side gathers the moved rows' sources
        # into a temporary before any of them is overwritten.
        array[moved] = array[rows[moved]]
    return array[:count]


def _last_logits(logits: np.ndarray) -> np.ndarray:
    out = logits[:, -1, :]
    return out.astype(np.float32) if out.dtype != np.float32 else np.ascontiguousarray(out)


class CudaBackend:
    """Decoder calls through IO binding; all caches stay on the GPU between steps.

    Not exercised by the CPU-only test machine: written to the ORT IO-binding API, it runs
    once a GPU with onnxruntime-gpu is present (see the gpu-marked tests).
    """

    device = "cuda"

    def __init__(self, encoder: ort.InferenceSession, decoder: ort.InferenceSession) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.sig = _DecoderSignature(decoder, encoder)
        self._gather: dict[tuple[int, str], ort.InferenceSession] = {}
        self._false = np.array([False])
        self._true = np.array([True])

    def _to_device(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", 0)

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> CohortCache:
        """Run the encoder; its output stays on the GPU."""
        sig = self.sig
        binding = self.encoder.io_binding()
        binding.bind_ortvalue_input(
            "input_ids", self._to_device(input_ids.astype(sig.enc_ids_dtype))
        )
        binding.bind_ortvalue_input(
            "attention_mask", self._to_device(attention_mask.astype(sig.enc_mask_dtype))
        )
        binding.bind_output(sig.enc_output, "cuda", 0)
        self.encoder.run_with_iobinding(binding)
        hidden = binding.get_outputs()[0]
        mask = self._to_device(attention_mask.astype(sig.mask_dtype))
        return CohortCache(mask, hidden)

    def _run(self, cache: CohortCache, input_ids: np.ndarray, first: bool) -> np.ndarray:
        sig = self.sig
        binding = self.decoder.io_binding()
        binding.bind_ortvalue_input("input_ids", self._to_device(input_ids.astype(sig.ids_dtype)))
        binding.bind_ortvalue_input("encoder_attention_mask", cache.encoder_mask)
        binding.bind_ortvalue_input("encoder_hidden_states", cache.hidden)
        binding.bind_cpu_input("use_cache_branch", self._false if first else self._true)
        if first:
            rows = input_ids.shape[0]
            # Zero-length past: bound from the host (nothing to copy), no device allocation.
            empty: np.ndarray = np.zeros((rows, sig.num_heads, 0, sig.head_dim), dtype=sig.kv_dtype)
            for name in (*sig.self_in, *sig.cross_in):
                binding.bind_cpu_input(name, empty)
        else:
            for name, value in zip(sig.self_in, cache.self_kv, strict=True):
                binding.bind_ortvalue_input(name, value)
            for name, value in zip(sig.cross_in, cache.cross_kv, strict=True):
                binding.bind_ortvalue_input(name, value)
        # Logits go to the host (the search runs in numpy); K/V outputs stay on the device.
        binding.bind_output("logits", "cpu")
        outputs = [*sig.self_out, *(sig.cross_out if first else [])]
        for name in outputs:
            binding.bind_output(name, "cuda", 0)
        self.decoder.run_with_iobinding(binding)
        values = binding.get_outputs()
        n = len(sig.self_out)
        cache.self_kv = values[1 : 1 + n]
        if first:
            cache.cross_kv = values[1 + n :]
        return _last_logits(values[0].numpy())

    def decode_first(self, cache: CohortCache, input_ids: np.ndarray) -> np.ndarray:
        """First decoder step (no past); fills the K/V caches on the device."""
        return self._run(cache, input_ids, first=True)

    def decode_next(self, cache: CohortCache, input_ids: np.ndarray) -> np.ndarray:
        """One cached decoder step on the device."""
        return self._run(cache, input_ids, first=False)

    def expand(self, cache: CohortCache, widths: np.ndarray) -> None:
        """Repeat decoder row ``i`` ``widths[i]`` times; every cache keeps one row per
        decoder row on CUDA (the cross K/V are not shared there)."""
        self.take(cache, np.repeat(np.arange(widths.size), widths))

    def take(self, cache: CohortCache, rows: np.ndarray, self_only: bool = False) -> None:
        """Select rows of the device caches with a Gather graph (no host copy)."""
        values = list(cache.self_kv)
        if not self_only:
            values += [*cache.cross_kv, cache.hidden]
        gathered = self._gather_rows(values, rows)
        n = len(cache.self_kv)
        cache.self_kv = gathered[:n]
        if not self_only:
            cache.cross_kv = gathered[n : 2 * n]
            cache.hidden = gathered[2 * n]
            mask = cache.encoder_mask.numpy()[rows]
            cache.encoder_mask = self._to_device(mask)

    def _gather_rows(self, values: list[ort.OrtValue], rows: np.ndarray) -> list[ort.OrtValue]:
        elem = values[0].data_type()
        session = self._gather.get((len(values), elem))
        if session is None:
            session = _gather_session(len(values), elem)
            self._gather[(len(values), elem)] = session
        binding = session.io_binding()
        for i, value in enumerate(values):
            binding.bind_ortvalue_input(f"x{i}", value)
        binding.bind_ortvalue_input("rows", self._to_device(rows.astype(np.int64)))
        for i in range(len(values)):
            binding.bind_output(f"y{i}", "cuda", 0)
        session.run_with_iobinding(binding)
        return list(binding.get_outputs())


def _gather_session(count: int, elem_type: str) -> ort.InferenceSession:
    """A CUDA session computing ``y_i = Gather(x_i, rows, axis=0)`` for ``count`` tensors."""
    try:
        from onnx import TensorProto, helper
    except ImportError as exc:  # only the gpu install needs it
        raise PackageError("the CUDA backend needs the 'onnx' package (pip install onnx)") from exc

    onnx_type = {"tensor(float16)": TensorProto.FLOAT16, "tensor(float)": TensorProto.FLOAT}[
        elem_type
    ]
    inputs = [helper.make_tensor_value_info("rows", TensorProto.INT64, ["n"])]
    outputs = []
    nodes = []
    for i in range(count):
        inputs.append(helper.make_tensor_value_info(f"x{i}", onnx_type, None))
        outputs.append(helper.make_tensor_value_info(f"y{i}", onnx_type, None))
        nodes.append(helper.make_node("Gather", [f"x{i}", "rows"], [f"y{i}"], axis=0))
    graph = helper.make_graph(nodes, "gather_rows", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=[CUDA_PROVIDER, CPU_PROVIDER])
