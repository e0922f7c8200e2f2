"""A deterministic fake runtime for fast engine and API unit tests.

Outputs depend only on a request's own input ids and options, like a real model, so tests
can compare batched against single-request results. Token 13 in an input is "poison":
the runtime raises on it in ``generate`` and, per ``poison_at`` ("add", "step" or
"generate" only), in ``batch.add`` or ``batch.step``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

from service.runtime.errors import RuntimeInputError

POISON = 13
LONG = 99  # an input containing it generates max_new_tokens tokens
EOS = 2


class FakeInputError(RuntimeInputError):
    """The fake's input error (a RuntimeInputError, like the real runtime's)."""


@dataclass(frozen=True)
class FakeOptions:
    """The subset of generation options the fake understands."""

    max_new_tokens: int = 8
    num_beams: int = 1
    num_return_sequences: int = 1
    do_sample: bool = False
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_new_tokens: int | None = None
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    length_penalty: float | None = None
    forced_bos_token_id: int | None = None


def expected(ids: list[int], opts: FakeOptions) -> list[list[int]]:
    """The sequences the fake produces for one input (independent of batching)."""
    length = opts.max_new_tokens if LONG in ids else min(opts.max_new_tokens, 2 + sum(ids) % 6)
    out = []
    for r in range(opts.num_return_sequences):
        seq = [(sum(ids) * (i + 3) + 7 * r + opts.num_beams) % 90 + 10 for i in range(length)]
        out.append(seq)
    return out


@dataclass
class StepEvent:
    key: Any
    token_ids: list[int]
    finished: bool
    sequences: list[list[int]] | None = None


@dataclass
class _Row:
    ids: list[int]
    opts: FakeOptions
    target: list[list[int]]
    pos: int = 0


@dataclass
class FakeBatch:
    runtime: FakeRuntime
    rows_: dict[Any, _Row] = field(default_factory=dict)

    def add(self, key: Any, input_ids: list[int], opts: FakeOptions) -> None:
        if self.runtime.poison_at == "add" and POISON in input_ids:
            raise FakeInputError("poisoned input")
        self.rows_[key] = _Row(list(input_ids), opts, expected(list(input_ids), opts))
        self.runtime.join_steps.append(self.runtime.steps)

    def step(self) -> list[StepEvent]:
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
            events.append(StepEvent(key, new, done, row.target if done else None))
            if done:
                del self.rows_[key]
        return events

    def remove(self, key: Any) -> None:
        self.rows_.pop(key, None)
        self.runtime.removed.append(key)

    def __len__(self) -> int:
        return len(self.rows_)

    @property
    def rows(self) -> int:
        return sum(r.opts.num_beams for r in self.rows_.values())


class FakeDetokenizer:
    """One character per token, so every push is complete text."""

    def __init__(self, runtime: FakeRuntime) -> None:
        self.runtime = runtime

    def push(self, token_id: int) -> str:
        return self.runtime.decode([token_id])

    def flush(self) -> str:
        return ""


class FakeRuntime:
    """Implements the runtime methods the engine and the API use."""

    def __init__(
        self,
        name: str = "fake",
        task: str = "translation",
        step_delay_s: float = 0.0,
        poison_at: str = "add",
    ) -> None:
        self.step_delay_s = step_delay_s
        self.poison_at = poison_at
        self.steps = 0
        self.step_sizes: list[int] = []
        # runtime.steps at each FakeBatch.add: when requests joined the running batch.
        self.join_steps: list[int] = []
        self.generate_sizes: list[int] = []
        self.removed: list[Any] = []
        self.lock = threading.Lock()
        chat = SimpleNamespace(turn_separator="\n", max_history_turns=4)
        self.manifest = SimpleNamespace(
            name=name,
            task=task,
            family="fake",
            description="fake model",
            languages=SimpleNamespace(source=["en"], target=["de"], tokens={}),
            chat=chat if task == "chat" else None,
            model=SimpleNamespace(max_source_positions=64, eos_token_id=EOS),
            generation=SimpleNamespace(max_new_tokens=8),
        )
        self.info = SimpleNamespace(
            precision="fp32",
            provider="CPUExecutionProvider",
            providers=["CPUExecutionProvider"],
            intra_op_threads=1,
        )

    # text <-> ids: one id per character (mod 200), offset so ids stay clear of EOS;
    # "☠" encodes to POISON and "O" to LONG.
    def encode_texts(
        self, texts: list[str], source_lang: str | None = None, target_lang: str | None = None
    ) -> list[list[int]]:
        out = []
        for text in texts:
            ids = [POISON if c == "☠" else ord(c) % 200 + 20 for c in text] + [EOS]
            if len(ids) > self.manifest.model.max_source_positions:
                raise FakeInputError(
                    f"input has {len(ids)} tokens; the model takes at most "
                    f"{self.manifest.model.max_source_positions}"
                )
            out.append(ids)
        return out

    def resolve(self, options: Any = None, target_lang: str | None = None) -> FakeOptions:
        fields = {k: v for k, v in vars(options or SimpleNamespace()).items() if v is not None}
        fields.setdefault("max_new_tokens", self.manifest.generation.max_new_tokens)
        return replace(FakeOptions(), **fields)

    def new_detokenizer(self) -> FakeDetokenizer:
        return FakeDetokenizer(self)

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(ord("a") + i % 26) for i in ids if i != EOS)

    def generate(self, batch_ids: list[list[int]], opts: FakeOptions) -> list[list[list[int]]]:
        self.generate_sizes.append(len(batch_ids))
        if any(POISON in ids for ids in batch_ids):
            raise FakeInputError("poisoned input")
        if self.step_delay_s:
            time.sleep(self.step_delay_s * 4)
        return [expected(list(ids), opts) for ids in batch_ids]

    def new_batch(self) -> FakeBatch:
        return FakeBatch(self)
