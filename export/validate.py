"""Stage 4: parity of each precision variant with transformers ``generate()``.

The package is run through the project's own runtime (``service.runtime``), the same
generation code that serves requests; the reference is ``generate()`` on the source
checkpoint with the same options. Sequences are compared token by token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.onnx_export import quiet
from export.validation_inputs import INPUTS
from service.runtime.manifest import Manifest

BEAM_SIZE = 4
MAX_NEW_TOKENS = 32
SAMPLE_COUNT = 3
ENGLISH_CODES = ("en", "eng_Latn", "en_XX")
TARGET_CODES = ("de", "deu_Latn", "de_DE", "fr", "fra_Latn", "fr_XX")

# Generates one sequence per input with ``num_beams`` beams; returns token ids.
Generate = Callable[[int], list[list[int]]]


@dataclass(frozen=True)
class ValidationSetup:
    """The fixed validation inputs and languages for one package."""

    texts: list[str]
    source_lang: str | None
    target_lang: str | None
    max_new_tokens: int = MAX_NEW_TOKENS
    beam_size: int = BEAM_SIZE

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly description for validation.json."""
        return {
            "count": len(self.texts),
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "max_new_tokens": self.max_new_tokens,
            "beam_size": self.beam_size,
        }


def setup_for(manifest: Manifest) -> ValidationSetup:
    """Pick inputs for the task and, for multilingual models, a source/target pair."""
    source = target = None
    langs = manifest.languages
    if langs.multilingual:
        # The inputs are English; prefer a German or French target (M2M100, NLLB, mBART codes).
        # A package listing its pairs (multi-target Marian) is validated on one it serves.
        source = next((c for c in ENGLISH_CODES if c in langs.source), langs.source[0])
        served = [t for s, t in langs.directions() if s == source]
        targets = [c for c in TARGET_CODES if c in served]
        target = targets[0] if targets else served[0]
    return ValidationSetup(
        texts=list(INPUTS[manifest.task]), source_lang=source, target_lang=target
    )


def _normalize(seq: Sequence[int], eos_id: int) -> list[int]:
    out = [int(t) for t in seq]
    if eos_id in out:
        out = out[: out.index(eos_id) + 1]
    return out


@dataclass
class Comparison:
    """Token-level comparison of reference and candidate sequences."""

    exact: float
    token_agreement: float
    mismatches: list[int] = field(default_factory=list)


def compare(reference: list[list[int]], candidate: list[list[int]], eos_id: int) -> Comparison:
    """Fraction of identical sequences and of agreeing positions (over the longer one)."""
    same = agree = total = 0
    mismatches: list[int] = []
    for index, (ref, got) in enumerate(zip(reference, candidate, strict=True)):
        ref, got = _normalize(ref, eos_id), _normalize(got, eos_id)
        if ref == got:
            same += 1
        else:
            mismatches.append(index)
        agree += sum(a == b for a, b in zip(ref, got, strict=False))
        total += max(len(ref), len(got))
    return Comparison(
        exact=same / len(reference),
        token_agreement=agree / total if total else 1.0,
        mismatches=mismatches,
    )


class Reference:
    """transformers ``generate()`` and first-step logits on the source checkpoint."""

    def __init__(self, checkpoint_dir: Path, manifest: Manifest, setup: ValidationSetup) -> None:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.manifest, self.setup = manifest, setup
        with quiet():
            self.tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint_dir).eval()
        self.forced_bos: int | None = None
        if setup.source_lang is not None and setup.target_lang is not None:
            if hasattr(self.tokenizer, "src_lang"):  # Marian has none: the text is the input
                self.tokenizer.src_lang = setup.source_lang
            token = manifest.languages.tokens[setup.target_lang]
            self.forced_bos = int(self.tokenizer.convert_tokens_to_ids(token))
        texts = [manifest.task_prefix + text for text in setup.texts]
        self.batch = self.tokenizer(texts, return_tensors="pt", padding=True)
        mask = self.batch["attention_mask"]
        self.input_ids = [
            row[: int(m.sum())].tolist()
            for row, m in zip(self.batch["input_ids"], mask, strict=True)
        ]
        self._torch = torch
        self._cache: dict[int, list[list[int]]] = {}

    def generate(self, num_beams: int) -> list[list[int]]:
        """Reference sequences (decoder start token removed), cached per beam count."""
        if num_beams not in self._cache:
            kwargs: dict[str, Any] = {
                "num_beams": num_beams,
                "do_sample": False,
                "max_new_tokens": self.setup.max_new_tokens,
            }
            if self.forced_bos is not None:
                kwargs["forced_bos_token_id"] = self.forced_bos
            with self._torch.inference_mode(), quiet():
                out = self.model.generate(**self.batch, **kwargs)
            self._cache[num_beams] = [row[1:].tolist() for row in out]
        return self._cache[num_beams]

    def first_step_logits(self) -> np.ndarray:
        """Logits of the first decoder step for every input, shape (batch, vocab)."""
        start = self.manifest.model.decoder_start_token_id
        batch_size = self.batch["input_ids"].shape[0]
        decoder_ids = self._torch.full((batch_size, 1), start, dtype=self._torch.long)
        with self._torch.inference_mode():
            out = self.model(**self.batch, decoder_input_ids=decoder_ids)
        return np.asarray(out.logits[:, 0, :].float().numpy())

    def decode(self, ids: Sequence[int]) -> str:
        """Text of a sequence, special tokens skipped."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


def onnx_first_step_logits(
    encoder: Path, decoder: Path, batch: dict[str, Any], manifest: Manifest
) -> np.ndarray:
    """First-step logits straight from the variant's ONNX files (CPU), shape (batch, vocab)."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    input_ids = batch["input_ids"].numpy().astype(np.int64)
    mask = batch["attention_mask"].numpy().astype(np.int64)
    enc = ort.InferenceSession(str(encoder), providers=providers)
    hidden = enc.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
    dec = ort.InferenceSession(str(decoder), providers=providers)
    batch_size, source_len = input_ids.shape
    model = manifest.model
    feed: dict[str, Any] = {}
    for spec in dec.get_inputs():
        name = spec.name
        float_type = np.float16 if spec.type == "tensor(float16)" else np.float32
        if name == "input_ids":
            feed[name] = np.full((batch_size, 1), model.decoder_start_token_id, dtype=np.int64)
        elif name == "encoder_attention_mask":
            feed[name] = mask
        elif name == "encoder_hidden_states":
            feed[name] = hidden.astype(float_type)
        elif name == "use_cache_branch":
            feed[name] = np.array([False])
        elif name.startswith("past_key_values"):
            length = source_len if ".encoder." in name else 0
            shape = (batch_size, model.num_heads, length, model.head_dim)
            feed[name] = np.zeros(shape, dtype=float_type)
        else:
            raise ValueError(f"unexpected decoder input {name!r}")
    logits = dec.run(["logits"], feed)[0]
    return np.asarray(logits[:, 0, :], dtype=np.float32)


def runtime_generator(package_dir: Path, precision: str, setup: ValidationSetup) -> Generate:
    """The one place the project's runtime is called: load the variant, return a generator."""
    from service.runtime import GenerationOptions, load_runtime

    device = "cuda" if precision == "fp16" else "cpu"
    runtime = load_runtime(package_dir, device=device, precision=precision)
    ids = runtime.encode_texts(
        setup.texts, source_lang=setup.source_lang, target_lang=setup.target_lang
    )

    def generate(num_beams: int) -> list[list[int]]:
        options = GenerationOptions(
            num_beams=num_beams, do_sample=False, max_new_tokens=setup.max_new_tokens
        )
        resolved = runtime.resolve(options, target_lang=setup.target_lang)
        return [list(seqs[0]) for seqs in runtime.generate(ids, resolved)]

    generate.input_ids = ids  # type: ignore[attr-defined]
    return generate


def validate_variant(
    package_dir: Path,
    precision: str,
    reference: Reference,
    make_generator: Callable[[Path, str, ValidationSetup], Generate] = runtime_generator,
) -> dict[str, Any]:
    """Measure one precision variant against the reference; returns its validation entry."""
    started = time.perf_counter()
    manifest = reference.manifest
    setup = reference.setup
    eos = manifest.model.eos_token_id
    generate = make_generator(package_dir, precision, setup)
    runtime_ids = getattr(generate, "input_ids", None)
    greedy_ref, beam_ref = reference.generate(1), reference.generate(setup.beam_size)
    greedy, beam = generate(1), generate(setup.beam_size)
    greedy_cmp = compare(greedy_ref, greedy, eos)
    beam_cmp = compare(beam_ref, beam, eos)
    encoder, decoder = manifest.variant_paths(package_dir, precision)
    onnx_logits = onnx_first_step_logits(encoder, decoder, reference.batch, manifest)
    logit_diff = float(np.abs(onnx_logits - reference.first_step_logits()).max())
    samples = [
        {
            "input": setup.texts[i],
            "reference": reference.decode(greedy_ref[i]),
            "output": reference.decode(greedy[i]),
            "exact": i not in greedy_cmp.mismatches,
        }
        for i in range(min(SAMPLE_COUNT, len(setup.texts)))
    ]
    return {
        "validated": True,
        "device": "cuda" if precision == "fp16" else "cpu",
        "greedy_exact": greedy_cmp.exact,
        "beam_exact": beam_cmp.exact,
        "greedy_token_agreement": round(greedy_cmp.token_agreement, 6),
        "beam_token_agreement": round(beam_cmp.token_agreement, 6),
        "first_step_max_abs_logit_diff": logit_diff,
        "inputs_identical": None
        if runtime_ids is None
        else [list(map(int, r)) for r in runtime_ids] == reference.input_ids,
        "mismatches": {"greedy": greedy_cmp.mismatches, "beam": beam_cmp.mismatches},
        "samples": samples,
        "seconds": round(time.perf_counter() - started, 3),
    }
