"""Seq2SeqRuntime: one loaded model package (tokenizer, sessions, generation)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from service.runtime.detokenize import IncrementalDetokenizer
from service.runtime.errors import PackageError, RuntimeInputError
from service.runtime.generator import Backend, DecodeBatch
from service.runtime.int8_weights import Int8Weights
from service.runtime.integrity import verify_package
from service.runtime.manifest import Manifest
from service.runtime.options import GenerationOptions, ResolvedOptions, resolve_options
from service.runtime.positioned import PositionedDecodeBatch, PositionedGreedy
from service.runtime.search import FinishReason, finish_reason
from service.runtime.sessions import (
    CUDA_PROVIDER,
    CpuBackend,
    CudaBackend,
    RuntimeInfo,
    cuda_available,
    default_intra_op_threads,
    make_session,
)
from service.runtime.thread_pool import shared_pool_size
from service.runtime.tokenizer import PackageTokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationOutput:
    """What one input produced: num_return_sequences id lists and why each one ended."""

    sequences: list[list[int]]
    finish_reasons: list[FinishReason]


class Seq2SeqRuntime:
    """A loaded package: encode texts, resolve options, generate (whole or step by step)."""

    def __init__(
        self,
        package_dir: Path,
        manifest: Manifest,
        tokenizer: PackageTokenizer,
        backend: Backend,
        info: RuntimeInfo,
        positioned: tuple[ort.InferenceSession, ort.InferenceSession] | None = None,
    ) -> None:
        self.package_dir = package_dir
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.backend = backend
        self.info = info
        # (positioned decoder, cross K/V) sessions, when loaded (load_runtime(positioned=True)).
        self.positioned = positioned

    @property
    def supports_positioned(self) -> bool:
        """True when :meth:`new_positioned_batch` can run: the package's variant has the
        positioned graphs and they were loaded (CPU only)."""
        return self.positioned is not None

    def new_positioned_batch(self) -> PositionedDecodeBatch:
        """An empty step-API batch over the positioned decoder: requests at different
        steps (greedy, sampling, beam search) share one decoder call per step.
        PackageError when :attr:`supports_positioned` is False."""
        if self.positioned is None:
            raise PackageError(
                f"package {self.manifest.name!r} ({self.info.precision}) has no positioned "
                "decoder loaded (export with --positioned; load_runtime(positioned=True), CPU)"
            )
        decoder, cross_kv = self.positioned
        model = self.manifest.model
        slots = PositionedGreedy(
            decoder,
            cross_kv,
            decoder_start_token_id=model.decoder_start_token_id,
            eos_token_id=model.eos_token_id,
        )
        return PositionedDecodeBatch(
            slots,
            self.backend,
            model.pad_token_id,
            model.decoder_start_token_id,
            model.max_source_positions,
            model.vocab_size,
        )

    def encode_texts(
        self,
        texts: Sequence[str],
        source_lang: str | None = None,
        target_lang: str | None = None,
    ) -> list[list[int]]:
        """Token ids per text (task prefix and source language applied); RuntimeInputError
        for too-long inputs or unknown languages."""
        self.tokenizer.check_pair(source_lang, target_lang)
        return self.tokenizer.encode(texts, source_lang=source_lang)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text encodes to (prefix and special tokens included), also past the
        model's source positions (``manifest.model.max_source_positions``)."""
        return self.tokenizer.counts(texts)

    def resolve(
        self, options: GenerationOptions | None = None, target_lang: str | None = None
    ) -> ResolvedOptions:
        """Merge request options with the package defaults (forced BOS from target_lang)."""
        forced_bos = self.tokenizer.check_target(target_lang)
        return resolve_options(options or GenerationOptions(), self.manifest, forced_bos)

    def new_batch(self) -> DecodeBatch:
        """An empty decode batch for the step API."""
        model = self.manifest.model
        return DecodeBatch(
            self.backend,
            model.pad_token_id,
            model.decoder_start_token_id,
            model.max_source_positions,
            model.vocab_size,
        )

    def generate(
        self,
        input_ids: Sequence[Sequence[int]],
        options: ResolvedOptions | GenerationOptions | None = None,
        batch_size: int | None = None,
    ) -> list[list[list[int]]]:
        """Generate for every input: per input, num_return_sequences lists of token ids
        (without the decoder start token). Inputs run as one cohort (or chunks of
        ``batch_size``) through the same step machinery as the step API."""
        return [out.sequences for out in self.generate_outputs(input_ids, options, batch_size)]

    def generate_outputs(
        self,
        input_ids: Sequence[Sequence[int]],
        options: ResolvedOptions | GenerationOptions | None = None,
        batch_size: int | None = None,
    ) -> list[GenerationOutput]:
        """Like :meth:`generate`, with each sequence's finish reason from the search."""
        resolved = options if isinstance(options, ResolvedOptions) else self.resolve(options)
        results: list[GenerationOutput | None] = [None] * len(input_ids)
        size = batch_size or max(1, len(input_ids))
        for start in range(0, len(input_ids), size):
            batch = self.new_batch()
            for i in range(start, min(start + size, len(input_ids))):
                batch.add(i, input_ids[i], resolved)
            while len(batch):
                for event in batch.step():
                    if event.finished and event.sequences is not None:
                        reasons = event.finish_reasons or [
                            finish_reason(seq, resolved) for seq in event.sequences
                        ]
                        results[int(event.key)] = GenerationOutput(  # type: ignore[call-overload]
                            event.sequences, reasons
                        )
        return [out or GenerationOutput([], []) for out in results]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids (special tokens skipped)."""
        return self.tokenizer.decode(ids)

    def new_detokenizer(self) -> IncrementalDetokenizer:
        """A streaming detokenizer for one sequence of this package."""
        return IncrementalDetokenizer(self.tokenizer)

    def generate_texts(
        self,
        texts: Sequence[str],
        options: GenerationOptions | None = None,
        source_lang: str | None = None,
        target_lang: str | None = None,
    ) -> list[list[str]]:
        """Texts in, texts out: per input, num_return_sequences strings."""
        ids = self.encode_texts(texts, source_lang=source_lang, target_lang=target_lang)
        resolved = self.resolve(options, target_lang=target_lang)
        return [[self.decode(seq) for seq in seqs] for seqs in self.generate(ids, resolved)]


def _choose(manifest: Manifest, device: str, precision: str) -> tuple[str, str]:
    """(device, precision) to load: CUDA+fp16 when possible, else CPU int8, else fp32."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    variants = manifest.variants
    cuda = cuda_available()
    if device == "auto":
        if precision == "auto":
            device = "cuda" if cuda and "fp16" in variants else "cpu"
        else:
            device = "cuda" if cuda and precision != "int8" else "cpu"
    if precision == "auto":
        order = ["fp16", "fp32"] if device == "cuda" else ["int8", "fp32", "fp16"]
        found = [p for p in order if p in variants]
        if not found:
            raise PackageError(f"package {manifest.name!r} has no variant for {device}")
        precision = found[0]
    if precision not in variants:
        raise PackageError(
            f"package {manifest.name!r} has no {precision!r} variant (has: {', '.join(variants)})"
        )
    if device == "cuda" and not cuda:
        log.warning("CUDA requested but onnxruntime offers no CUDA provider; using CPU")
        device = "cpu"
    return device, precision


def load_runtime(
    package_dir: str | Path,
    device: str = "auto",
    precision: str = "auto",
    intra_op_threads: int | None = None,
    verify: bool = False,
    positioned: bool = False,
    int8_weights: Int8Weights = "auto",
    shared_cross_kv: bool = True,
) -> Seq2SeqRuntime:
    """Load a model package. ``device``: auto/cpu/cuda; ``precision``: auto/fp32/int8/fp16;
    ``verify``: check file sizes and hashes first; ``positioned``: also load the variant's
    positioned decoder pair when it has one and runs on CPU (``supports_positioned`` says
    whether it did). The exact load-time rewrites: ``int8_weights`` "auto" loads per-row
    int8 weights as signed on VNNI CPUs (``service.runtime.int8_weights``), "as_exported"
    as stored; ``shared_cross_kv``: on CPU, a request's beams share one copy of its
    cross-attention K/V (``service.runtime.shared_cross_kv``; False copies them per beam,
    as exported). The service always loads with both on; the off positions are the
    reference the tests compare against. PackageError if the package is bad."""
    root = Path(package_dir)
    manifest = Manifest.load(root)
    device, precision = _choose(manifest, device, precision)
    if verify:
        verify_package(manifest, root, [precision])
    threads = shared_pool_size() or intra_op_threads or default_intra_op_threads()
    encoder_path, decoder_path = manifest.variant_paths(root, precision)
    tokenizer = PackageTokenizer(manifest.tokenizer_dir(root), manifest)
    weights: Int8Weights = int8_weights if precision == "int8" else "as_exported"
    encoder = make_session(encoder_path, device, threads, weights)
    decoder = make_session(decoder_path, device, threads, weights, shared_cross_kv)
    providers = tuple(decoder.get_providers())
    backend: Backend
    if device == "cuda" and providers[0] == CUDA_PROVIDER:
        backend = CudaBackend(encoder, decoder)
    else:
        if device == "cuda":
            log.warning("CUDA provider did not initialize (missing CUDA/cuDNN libraries?); on CPU")
            device = "cpu"
        backend = CpuBackend(encoder, decoder)
    if backend.sig.num_layers != manifest.model.num_decoder_layers:
        raise PackageError(
            f"decoder has {backend.sig.num_layers} layers, manifest says "
            f"{manifest.model.num_decoder_layers}"
        )
    positioned_sessions = None
    positioned_paths = manifest.positioned_paths(root, precision) if positioned else None
    if positioned_paths is not None and device == "cpu":
        positioned_sessions = (
            make_session(positioned_paths[0], device, threads, weights),
            make_session(positioned_paths[1], device, threads, weights),
        )
    elif positioned:
        log.info("%s (%s, %s): no positioned decoder loaded", manifest.name, precision, device)
    info = RuntimeInfo(
        precision=precision,
        provider=providers[0],
        providers=providers,
        intra_op_threads=threads,
        device=device,
    )
    log.info(
        "loaded %s: precision=%s provider=%s threads=%d",
        manifest.name,
        precision,
        info.provider,
        threads,
    )

    return Seq2SeqRuntime(root, manifest, tokenizer, backend, info, positioned_sessions)


__all__ = ["GenerationOutput", "RuntimeInputError", "Seq2SeqRuntime", "load_runtime"]
