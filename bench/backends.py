"""The decode backends the engine benchmark compares, one factory each.

Every backend takes the same pre-tokenized source ids (lists of ints, with EOS) and returns
the generated target ids of the best sequence per input, without the decoder start token
and without a trailing EOS (so outputs of all backends compare directly). Heavy libraries
are imported inside the factories: a worker process loads only its own backend.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Generate = Callable[[list[list[int]]], list[list[int]]]
BACKENDS = ("torch", "optimum", "optimum-t1", "ours", "ct2")
# "ours" is our runtime as the service loads it on CPU, with the load-time rewrites (signed
# int8 weights on VNNI CPUs, beams sharing one cross K/V copy); bench.engine's worker
# process also puts its sessions on one shared pool of the spec's threads, as the service.


@dataclass(frozen=True)
class Decode:
    """What every backend is asked to do: same length limits, same search."""

    max_new_tokens: int
    num_beams: int = 1
    fixed_length: bool = True  # min = max new tokens, so every backend does the same work

    @property
    def min_new_tokens(self) -> int | None:
        """The forced minimum (None: natural stopping)."""
        return self.max_new_tokens if self.fixed_length else None

    def hf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for transformers/optimum ``generate()``."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "do_sample": False,
        }
        if self.min_new_tokens is not None:
            kwargs["min_new_tokens"] = self.min_new_tokens
        return kwargs


@dataclass(frozen=True)
class Spec:
    """One backend configuration: ``name:precision[:threads]`` on the command line."""

    name: str
    precision: str
    threads: int

    @classmethod
    def parse(cls, text: str, default_threads: int) -> Spec:
        """Parse ``ours:int8`` or ``ct2:int8:1``; ValueError on unknown names."""
        parts = text.strip().split(":")
        if len(parts) not in (2, 3) or parts[0] not in BACKENDS:
            raise ValueError(
                f"backend spec {text!r}: expected NAME:PRECISION[:THREADS], NAME in {BACKENDS}"
            )
        if parts[1] not in ("fp32", "int8", "fp16"):
            raise ValueError(f"backend spec {text!r}: precision must be fp32, int8 or fp16")
        if parts[0] == "torch" and parts[1] == "int8":
            raise ValueError("the PyTorch backend runs the checkpoint in fp32 (or fp16 on CUDA)")
        threads = int(parts[2]) if len(parts) == 3 else default_threads
        if threads < 1:
            raise ValueError(f"backend spec {text!r}: threads must be >= 1")
        return cls(parts[0], parts[1], threads)

    @property
    def label(self) -> str:
        """Display name, e.g. ``ct2 int8 t1``."""
        return f"{self.name} {self.precision} t{self.threads}"


def strip_output(row: Sequence[int], eos: int, start: int | None = None) -> list[int]:
    """Generated ids without a leading decoder start token and from the first EOS on."""
    out = list(row)
    if start is not None and out and out[0] == start:
        out = out[1:]
    return out[: out.index(eos)] if eos in out else out


def pad_batch(batch: Sequence[Sequence[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded ``input_ids`` and ``attention_mask`` (int64) for a batch of id lists."""
    width = max(len(r) for r in batch)
    ids = np.full((len(batch), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


@dataclass(frozen=True)
class ModelIds:
    """The special ids outputs are normalized with."""

    pad: int
    eos: int
    decoder_start: int


def ours(package: Path, spec: Spec, decode: Decode, ids: ModelIds, device: str = "cpu") -> Generate:
    """Our runtime (``service.runtime``) on the package's ``spec.precision`` variant."""
    from service.runtime import GenerationOptions, load_runtime

    rt = load_runtime(
        package, device=device, precision=spec.precision, intra_op_threads=spec.threads
    )
    opts = rt.resolve(
        GenerationOptions(
            max_new_tokens=decode.max_new_tokens,
            min_new_tokens=decode.min_new_tokens,
            num_beams=decode.num_beams,
            do_sample=False,
        )
    )

    def run(batch: list[list[int]]) -> list[list[int]]:
        return [strip_output(out.sequences[0], ids.eos) for out in rt.generate_outputs(batch, opts)]

    return run


def _hf_runner(model: Any, decode: Decode, ids: ModelIds, device: str = "cpu") -> Generate:
    import torch

    kwargs = decode.hf_kwargs()

    def run(batch: list[list[int]]) -> list[list[int]]:
        input_ids, mask = pad_batch(batch, ids.pad)
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.from_numpy(input_ids).to(device),
                attention_mask=torch.from_numpy(mask).to(device),
                **kwargs,
            )
        return [strip_output(r, ids.eos, ids.decoder_start) for r in out.tolist()]

    return run


def torch_backend(
    checkpoint: Path, spec: Spec, decode: Decode, ids: ModelIds, device: str = "cpu"
) -> Generate:
    """transformers ``generate()`` on the PyTorch checkpoint (fp32; fp16 on CUDA)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    torch.set_num_threads(spec.threads)
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval()
    if device == "cuda":
        model = model.to("cuda", dtype=torch.float16 if spec.precision == "fp16" else None)
    return _hf_runner(model, decode, ids, device)


def optimum_backend(
    package: Path, spec: Spec, decode: Decode, ids: ModelIds, torch_threads: int | None = None
) -> Generate:
    """optimum's ORTModelForSeq2SeqLM + ``generate()`` on the package's own ONNX files.

    ``torch_threads``: PyTorch's thread count (its logits processing runs beside ORT's
    threads, and the two pools fight on a small machine); default: ``spec.threads``."""
    import onnxruntime as ort
    import torch
    from optimum.onnxruntime import ORTModelForSeq2SeqLM

    from service.runtime.manifest import Manifest

    package = package.resolve()  # the links below must not be relative to the cwd
    manifest = Manifest.load(package)
    encoder, decoder = manifest.variant_paths(package, spec.precision)
    tmp = Path(tempfile.mkdtemp(prefix="bench-optimum-"))
    for name in ("config.json", "generation_config.json"):
        src = manifest.tokenizer_dir(package) / name
        if src.is_file():
            (tmp / name).symlink_to(src.resolve())
    (tmp / "encoder_model.onnx").symlink_to(encoder.resolve())
    (tmp / "decoder_model_merged.onnx").symlink_to(decoder.resolve())
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec.threads
    options.inter_op_num_threads = 1
    torch.set_num_threads(torch_threads or spec.threads)
    model = ORTModelForSeq2SeqLM.from_pretrained(
        tmp,
        use_cache=True,
        use_merged=True,
        session_options=options,
        provider="CPUExecutionProvider",
    )
    return _hf_runner(model, decode, ids)


def zero_pad_copy(checkpoint: Path, out_dir: Path, pad_token_id: int) -> Path:
    """A copy of ``checkpoint`` whose pad embedding row is zero (once; reused after).

    Marian decoding starts from the pad token. CTranslate2 starts from a zero embedding
    instead (what Marian itself does), so a trained non-zero pad row makes its outputs
    diverge from transformers. Every backend runs this copy, so all compute one model."""
    if (out_dir / "config.json").is_file():
        return out_dir
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig

    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint)
    with torch.no_grad():
        model.get_input_embeddings().weight[pad_token_id].zero_()
        for part in (model.get_encoder(), model.get_decoder()):
            table = getattr(part, "embed_tokens", None)
            if table is not None:
                table.weight[pad_token_id].zero_()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(tmp)
    GenerationConfig.from_pretrained(checkpoint).save_pretrained(tmp)
    tmp.rename(out_dir)
    return out_dir


def ct2_convert(checkpoint: Path, out_dir: Path) -> Path:
    """Convert ``checkpoint`` to a CTranslate2 model once (float32 weights; int8 and fp16
    are chosen at load time with ``compute_type``)."""
    if (out_dir / "model.bin").is_file():
        return out_dir
    import ctranslate2

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        source = ct2_readable_checkpoint(checkpoint, work / "source")
        ctranslate2.converters.TransformersConverter(str(source)).convert(str(work / "model"))
        (work / "model").rename(out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def ct2_readable_checkpoint(checkpoint: Path, scratch: Path) -> Path:
    """``checkpoint``, or a view of it (links to its files) whose config CTranslate2 reads.

    CTranslate2's BART loader reads ``config.normalize_before``, which current transformers
    no longer writes; BART is post-norm, so the view's config says ``false``."""
    config = json.loads((checkpoint / "config.json").read_text())
    if config.get("model_type") != "bart" or "normalize_before" in config:
        return checkpoint
    scratch.mkdir(parents=True)
    for item in checkpoint.iterdir():
        if item.name != "config.json":
            (scratch / item.name).symlink_to(item.resolve())
    (scratch / "config.json").write_text(json.dumps({**config, "normalize_before": False}))
    return scratch


def ct2_backend(
    ct2_dir: Path,
    checkpoint: Path,
    spec: Spec,
    decode: Decode,
    ids: ModelIds,
    device: str = "cpu",
) -> Generate:
    """CTranslate2 ``Translator.translate_batch`` (compute type from ``spec.precision``,
    ``spec.threads`` intra-op threads, one inter-op worker)."""
    import ctranslate2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    compute = {"fp32": "float32", "int8": "int8", "fp16": "float16"}[spec.precision]
    translator = ctranslate2.Translator(
        str(ct2_dir),
        device=device,
        compute_type=compute,
        intra_threads=spec.threads,
        inter_threads=1,
    )
    # The converted vocabulary has no pad token (decoding starts from a zero embedding), so
    # unlike transformers it needs no ban on generating it.
    options: dict[str, Any] = {
        "beam_size": decode.num_beams,
        "max_decoding_length": decode.max_new_tokens,
        "min_decoding_length": decode.min_new_tokens or 0,
        "return_scores": False,
    }

    def run(batch: list[list[int]]) -> list[list[int]]:
        source = [tokenizer.convert_ids_to_tokens(row) for row in batch]
        results = translator.translate_batch(source, max_batch_size=len(batch), **options)
        out = [tokenizer.convert_tokens_to_ids(r.hypotheses[0]) for r in results]
        return [strip_output(row, ids.eos) for row in out]

    return run
