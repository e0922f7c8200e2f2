"""A deterministic fake runtime for fast engine and API unit tests.

It implements the engine's ports (``service.engine.ports.Runtime`` and ``DecodeBatch``)
with the runtime's own data types (real ``Manifest``, ``ResolvedOptions``, ``StepEvent``),
and mypy checks that it does. Outputs depend only on a request's own input ids and
options, like a real model, so tests can compare batched against single-request results.
Token 13 in an input is "poison": the runtime raises on it in ``generate_outputs`` and,
per ``poison_at`` ("add", "step" or "generate" only), in ``batch.add`` or ``batch.step``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from service.engine.ports import DecodeBatch, Runtime
from service.runtime import (
    FinishReason,
    GenerationOptions,
    GenerationOutput,
    InputTooLongError,
    Manifest,
    ResolvedOptions,
    RuntimeInfo,
    RuntimeInputError,
    StepEvent,
)
from service.runtime.options import resolve_options

POISON = 13
LONG = 99  # an input containing it generates max_new_tokens tokens
EOS = 2
MAX_INPUT_TOKENS = 64
DEFAULT_MAX_NEW_TOKENS = 8
_FILE = {"path": "x", "bytes": 0, "sha256": "0" * 64}


class FakeInputError(RuntimeInputError):
    """The fake's input error (a RuntimeInputError, like the real runtime's)."""


def fake_manifest(
    name: str = "fake",
    task: str = "translation",
    languages: tuple[Sequence[str], Sequence[str]] = (("en",), ("de",)),
    pairs: Sequence[str] = (),
) -> Manifest:
    """A valid manifest for a fake package doing ``task`` (``languages``: its source and
    target language codes; ``pairs``: the directions it lists, ``"en->de"``)."""
    return Manifest.model_validate(
        {
            "name": name,
            "task": task,
            "family": "fake",
            "description": "fake model",
            "source": {"ref": "fake", "sha256": "0" * 64, "kind": "local"},
            "languages": {
                "source": list(languages[0]),
                "target": list(languages[1]),
                "pairs": list(pairs),
            },
            "chat": {"turn_separator": "\n", "max_history_turns": 4} if task == "chat" else None,
            "model": {
                "vocab_size": 256,
                "d_model": 8,
                "num_decoder_layers": 1,
                "num_heads": 1,
                "head_dim": 8,
                "decoder_start_token_id": 0,
                "pad_token_id": 0,
                "eos_token_id": EOS,
            },
            "generation": {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS},
            "variants": {"fp32": {"encoder": _FILE, "decoder": _FILE, "device": "cpu"}},
        }
    )


_MANIFEST = fake_manifest()


def FakeOptions(**fields: int | bool | float | None) -> ResolvedOptions:
    """Resolved options as the fake resolves them (real resolution, fake defaults)."""
    return resolve_options(GenerationOptions(**fields), _MANIFEST)  # type: ignore[arg-type]


def expected(ids: Sequence[int], opts: ResolvedOptions) -> list[list[int]]:
    """The sequences the fake produces for one input (independent of batching)."""
    budget = opts.max_new_tokens
    length = budget if LONG in ids else min(budget, 2 + sum(ids) % 6)
    out = []
    for r in range(opts.num_return_sequences):
        seq = [(sum(ids) * (i + 3) + 7 * r + opts.num_beams) % 90 + 10 for i in range(length)]
        out.append(seq)
    return out


def _reasons(sequences: list[list[int]], opts: ResolvedOptions) -> list[FinishReason]:
    # The fake's sequences carry no EOS: a short one "chose" to stop.
    return ["length" if len(s) >= opts.max_new_tokens else "eos" for s in sequences]


@dataclass
class _Row:
    ids: list[int]
    opts: ResolvedOptions
    target: list[list[int]]
    pos: int = 0


@dataclass
class FakeBatch:
    """The fake's decode batch (one token per step per request)."""

    runtime: FakeRuntime
    rows_: dict[Hashable, _Row] = field(default_factory=dict)

    def add(self, key: Hashable, input_ids: Sequence[int], options: ResolvedOptions) -> None:
        """Join the batch (poisoned inputs raise when ``poison_at == "add"``)."""
        if self.runtime.poison_at == "add" and POISON in input_ids:
            raise FakeInputError("poisoned input")
        self.rows_[key] = _Row(list(input_ids), options, expected(input_ids, options))
        self.runtime.join_steps.append(self.runtime.steps)

    def step(self) -> list[StepEvent]:
        """One token for every request (poisoned batches raise when ``poison_at == "step"``)."""
        self.runtime.steps += 1
        self.runtime.step_sizes.append(len(self.rows_))
        if self.runtime.poison_at == "step" and any(POISON in r.ids for r in self.rows_.values()):
            raise RuntimeError("step blew up")
        if self.runtime.step_delay_s:
            time.sleep(self.runtime.step_delay_s)
        events = []
        for key, row in list(self.rows_.items()):
            row.pos += 1
            done = row.pos >= len(row.target[0])
            new = [] if row.opts.num_beams > 1 else [row.target[0][row.pos - 1]]
            if done:
                reasons = _reasons(row.target, row.opts)
                events.append(StepEvent(key, new, True, row.target, reasons))
                del self.rows_[key]
            else:
                events.append(StepEvent(key, new, False))
        return events

    def remove(self, key: Hashable) -> bool:
        """Cancel a request."""
        self.runtime.removed.append(key)
        return self.rows_.pop(key, None) is not None

    def __len__(self) -> int:
        return len(self.rows_)

    @property
    def rows(self) -> int:
        """Decoder rows in use (beams count)."""
        return sum(r.opts.num_beams for r in self.rows_.values())


class FakeDetokenizer:
    """One character per token, so every push is complete text."""

    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime

    def push(self, token_id: int) -> str:
        """The token's character."""
        return self.runtime.decode([token_id])

    def flush(self) -> str:
        """Nothing is ever held back."""
        return ""


class FakeRuntime:
    """Implements the runtime port the engine layer uses."""

    def __init__(
        self,
        name: str = "fake",
        task: str = "translation",
        step_delay_s: float = 0.0,
        poison_at: str = "add",
        languages: tuple[Sequence[str], Sequence[str]] = (("en",), ("de",)),
        positioned: bool = True,
        pairs: Sequence[str] = (),
    ) -> None:
        self.step_delay_s = step_delay_s
        # Whether the fake offers the positioned batch (supports_positioned; False: the
        # continuous mode falls back to dynamic).
        self.positioned = positioned
        # Positioned batches handed out (a failed step starts a fresh one).
        self.batches = 0
        # Step-API batches handed out (dynamic batches that hold a stream).
        self.stepped_batches = 0
        self.poison_at = poison_at
        self.steps = 0
        self.step_sizes: list[int] = []
        # runtime.steps at each FakeBatch.add: when requests joined the running batch.
        self.join_steps: list[int] = []
        self.generate_sizes: list[int] = []
        self.removed: list[Hashable] = []
        self.lock = threading.Lock()
        self._manifest = fake_manifest(name, task, languages, pairs)
        # (source_lang, target_lang) of every encode_texts call, in order.
        self.encoded: list[tuple[str | None, str | None]] = []
        self._info = RuntimeInfo(
            precision="fp32",
            provider="CPUExecutionProvider",
            providers=("CPUExecutionProvider",),
            intra_op_threads=1,
            device="cpu",
        )

    @property
    def manifest(self) -> Manifest:
        """The fake package's manifest."""
        return self._manifest

    @property
    def info(self) -> RuntimeInfo:
        """fp32 on the CPU provider."""
        return self._info

    # text <-> ids: one id per character (mod 200), offset so ids stay clear of EOS;
    # "☠" encodes to POISON and "O" to LONG.
    def encode_texts(
        self,
        texts: Sequence[str],
        source_lang: str | None = None,
        target_lang: str | None = None,
    ) -> list[list[int]]:
        """One id per character plus EOS; InputTooLongError over MAX_INPUT_TOKENS."""
        with self.lock:
            self.encoded.append((source_lang, target_lang))
        out = []
        for text in texts:
            ids = [POISON if c == "☠" else ord(c) % 200 + 20 for c in text] + [EOS]
            if len(ids) > MAX_INPUT_TOKENS:
                raise InputTooLongError(
                    f"input has {len(ids)} tokens; the model takes at most {MAX_INPUT_TOKENS}",
                    limit_tokens=MAX_INPUT_TOKENS,
                )
            out.append(ids)
        return out

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """One token per character plus EOS, however long."""
        return [len(t) + 1 for t in texts]

    def resolve(
        self, options: GenerationOptions | None = None, target_lang: str | None = None
    ) -> ResolvedOptions:
        """Real option resolution against the fake manifest."""
        return resolve_options(options or GenerationOptions(), self._manifest)

    def new_detokenizer(self) -> FakeDetokenizer:
        """A one-character-per-token detokenizer."""
        return FakeDetokenizer(self)

    def decode(self, ids: Sequence[int]) -> str:
        """One letter per token, EOS skipped."""
        return "".join(chr(ord("a") + i % 26) for i in ids if i != EOS)

    def generate_outputs(
        self,
        input_ids: Sequence[Sequence[int]],
        options: ResolvedOptions | GenerationOptions | None = None,
        batch_size: int | None = None,
    ) -> list[GenerationOutput]:
        """The expected sequences of every input (poisoned inputs raise)."""
        opts = options if isinstance(options, ResolvedOptions) else self.resolve(options)
        self.generate_sizes.append(len(input_ids))
        if any(POISON in ids for ids in input_ids):
            raise FakeInputError("poisoned input")
        if self.step_delay_s:
            time.sleep(self.step_delay_s * 4)
        outputs = []
        for ids in input_ids:
            sequences = expected(ids, opts)
            outputs.append(GenerationOutput(sequences, _reasons(sequences, opts)))
        return outputs

    @property
    def supports_positioned(self) -> bool:
        """Whether new_positioned_batch may be called (the ``positioned`` argument)."""
        return self.positioned

    def new_batch(self) -> FakeBatch:
        """An empty fake batch for the step API (dynamic batches holding a stream)."""
        self.stepped_batches += 1
        return FakeBatch(self)

    def new_positioned_batch(self) -> FakeBatch:
        """An empty fake batch standing for the positioned one (same outputs: the fake's
        outputs never depend on the batch); AssertionError if not ``positioned``."""
        assert self.positioned, "new_positioned_batch on a fake without positioned graphs"
        self.batches += 1
        return FakeBatch(self)


def as_runtime(runtime: FakeRuntime) -> Runtime:
    """The fake as the engine's Runtime port (mypy checks that it is one)."""
    return runtime


def as_batch(batch: FakeBatch) -> DecodeBatch:
    """The fake batch as the engine's DecodeBatch port (mypy checks that it is one)."""
    return batch
