"""The positioned decoder export (``export/positioned_decoder.py``) is token-exact against
transformers greedy ``generate()``, with ONNX Runtime CPU fp32 sessions driven by
``service/runtime/positioned.py``: (a) a row decoded alone, (b) rows decoded together in
one padded batch, (c) rows that join a running batch at later steps (so one call holds
rows at different positions), while other rows finish and leave.

The tiny checkpoints are trained copy models; the references are checked to depend on
the input, so a decoder that ignored its input (or its cache) could not pass.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Each family's positioned export and its transformers references take seconds.
pytestmark = pytest.mark.slow

FAMILIES = ("marian", "bart", "t5", "pegasus", "blenderbot", "m2m100")

SOURCES = [
    "A young athlete is repairing three machines.",
    "Max and Thomas are riding a bicycle through the snow.",
    "A donkey chases a dog.",
    "Two old women are sitting on a bench in the park and talking about the weather.",
    "The boy jumps.",
    "A small brown horse waits behind the church.",
]
# Per-row budgets: most rows stop at EOS, the 5th at its budget (a length stop).
BUDGETS = [40, 40, 40, 40, 3, 40]
T5_PREFIX = "translate English to German: "


@dataclass
class Family:
    """One family's exported graphs, ORT sessions, references and encoder outputs."""

    name: str
    decoder: Any
    cross_kv: Any
    start: int
    eos: int
    forced_bos: int | None
    banned: list[int]
    references: list[list[int]]
    encoder_states: list[np.ndarray]
    export_dir: Path
    num_heads: int
    head_dim: int

    def batch(self, **policy: Any) -> Any:
        """A fresh positioned greedy batch over this family's sessions."""
        from service.runtime.positioned import PositionedGreedy

        return PositionedGreedy(
            self.decoder,
            self.cross_kv,
            decoder_start_token_id=self.start,
            eos_token_id=self.eos,
            forced_bos_token_id=self.forced_bos,
            banned_token_ids=self.banned,
            **policy,
        )


def _until_eos(tokens: list[int], eos: int) -> list[int]:
    """generate() pads finished rows; keep the tokens up to and including EOS."""
    out: list[int] = []
    for token in tokens:
        out.append(token)
        if token == eos:
            break
    return out


def _sessions(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def family(
    request: pytest.FixtureRequest,
    tiny_checkpoint: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Family:
    """Export one family's positioned graphs and compute its greedy references alone."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from export.positioned_decoder import export_positioned

    name: str = request.param
    checkpoint = tiny_checkpoint(name)
    exported = export_positioned(checkpoint, tmp_path_factory.mktemp(f"positioned-{name}"))
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    config = model.generation_config
    forced_bos = config.forced_bos_token_id
    if name == "m2m100":
        tokenizer.src_lang = "en"
        forced_bos = tokenizer.get_lang_id("de")
    banned = [w[0] for w in (config.bad_words_ids or []) if len(w) == 1]
    prefix = T5_PREFIX if name == "t5" else ""
    references: list[list[int]] = []
    states: list[np.ndarray] = []
    for text, budget in zip(SOURCES, BUDGETS, strict=True):
        inputs = tokenizer(prefix + text, return_tensors="pt")
        with torch.no_grad():
            generated = model.generate(
                **inputs,
                num_beams=1,
                do_sample=False,
                max_new_tokens=budget,
                min_length=0,
                no_repeat_ngram_size=0,
                repetition_penalty=1.0,
                forced_bos_token_id=forced_bos,
                forced_eos_token_id=None,
            )
            encoded = model.get_encoder()(**inputs).last_hidden_state[0].numpy()
        references.append(_until_eos(generated[0, 1:].tolist(), int(config.eos_token_id)))
        states.append(encoded)
    return Family(
        name=name,
        decoder=_sessions(exported.decoder),
        cross_kv=_sessions(exported.cross_kv),
        start=int(model.config.decoder_start_token_id),
        eos=int(config.eos_token_id),
        forced_bos=forced_bos,
        banned=banned,
        references=references,
        encoder_states=states,
        export_dir=exported.decoder.parent,
        num_heads=exported.num_heads,
        head_dim=exported.head_dim,
    )


@pytest.fixture(scope="module")
def fused_family(family: Family) -> Family:
    """The same family with the decoder fused as the package pipeline fuses its decoders."""
    from export.positioned_decoder import (
        CROSS_KV_FILE,
        DECODER_FILE,
        PositionedExport,
        fuse_decoder,
    )

    out = family.export_dir / "fused"
    out.mkdir(exist_ok=True)
    exported = PositionedExport(
        decoder=family.export_dir / DECODER_FILE,
        cross_kv=family.export_dir / CROSS_KV_FILE,
        num_layers=0,
        num_heads=family.num_heads,
        head_dim=family.head_dim,
    )
    fusions = fuse_decoder(exported, family.name, out / DECODER_FILE)
    assert fusions  # LayerNorm/SkipLayerNorm fusions at least
    return dataclasses.replace(family, decoder=_sessions(out / DECODER_FILE), export_dir=out)


@pytest.fixture(scope="module")
def int8_family(family: Family) -> Family:
    """The same family with both graphs quantized per-row int8 (``export/int8_per_row.py``:
    one activation scale per row, so a row's result does not depend on its neighbours)."""
    from export.positioned_decoder import CROSS_KV_FILE, DECODER_FILE
    from export.quantize import Int8Options, quantize_file

    out = family.export_dir / "int8-per-row"
    out.mkdir(exist_ok=True)
    options = Int8Options(method="per_row")
    for name in (DECODER_FILE, CROSS_KV_FILE):
        quantize_file(family.export_dir / name, out / name, options)
    return dataclasses.replace(
        family,
        decoder=_sessions(out / DECODER_FILE),
        cross_kv=_sessions(out / CROSS_KV_FILE),
        export_dir=out,
    )


# Cache policies of the driver: compact at every leave (copy), reuse holes and compact
# late (the default), never compact while a row is live (holes only, no column trims).
POLICIES: dict[str, dict[str, Any]] = {
    "copy": {"compact_holes": 0.0, "trim_columns": 0},
    "reuse": {},
    "holes": {"compact_holes": 1.0, "trim_columns": 10**9},
}


def _run(
    fam: Family,
    joins: list[tuple[int, int]],
    observe: Callable[[Any], None] | None = None,
    policy: str = "reuse",
) -> dict[Hashable, list[int]]:
    """Decode rows ``(join_step, source_index)``; ``observe`` sees the batch after each step."""
    plan = sorted(joins)
    batch = fam.batch(**POLICIES[policy])
    produced: dict[Hashable, list[int]] = {}
    done: dict[Hashable, list[int]] = {}
    step = 0
    while plan or len(batch):
        while plan and plan[0][0] <= step:
            _, index = plan.pop(0)
            batch.add(index, fam.encoder_states[index], BUDGETS[index])
            produced[index] = []
        for event in batch.step():
            produced[event.key].append(event.token)
            if event.finished:
                done[event.key] = produced[event.key]
        if observe is not None:
            observe(batch)
        step += 1
        assert step < 500, "decode did not terminate"
    return done


each_family = pytest.mark.parametrize("family", FAMILIES, indirect=True)


@each_family
def test_references_depend_on_the_input(family: Family) -> None:
    """Different sources give different greedy outputs of several tokens (not trivial)."""
    refs = [tuple(r) for r in family.references]
    assert len(set(refs)) == len(refs), refs
    assert all(len(r) >= 3 for r in refs)
    assert len(family.references[4]) == BUDGETS[4]  # the budget-limited row
    assert any(r[-1] == family.eos for r in refs)


@each_family
def test_alone(family: Family) -> None:
    """(a) each row decoded alone gives transformers' greedy tokens (through the driver's
    own ``greedy_decode`` loop)."""
    from service.runtime.positioned import greedy_decode

    for index, reference in enumerate(family.references):
        joins = [(0, index, family.encoder_states[index], BUDGETS[index])]
        assert greedy_decode(family.batch(), joins)[index] == reference, index


@each_family
def test_batched(family: Family) -> None:
    """(b) all rows in one padded batch (different source lengths, different stops)."""
    out = _run(family, [(0, i) for i in range(len(SOURCES))])
    assert [out[i] for i in range(len(SOURCES))] == family.references


JOINS = [(0, 2), (0, 4), (3, 0), (5, 3), (9, 1), (16, 5)]


@each_family
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_join_running_batch(family: Family, policy: str) -> None:
    """(c) rows join at later steps, while others finish and leave: every call may mix
    positions; under each cache policy (compacting at every leave, or joiners written
    into the holes of rows that left)."""
    mixed_calls = 0
    past_lens: list[int] = []
    reused = 0

    def observe(batch: Any) -> None:
        nonlocal mixed_calls, reused
        mixed_calls += len(set(batch.positions)) > 1
        past_lens.append(batch.past_len)
        reused = batch.reused_slots

    out = _run(family, list(JOINS), observe, policy)
    assert [out[i] for i in range(len(SOURCES))] == family.references
    assert mixed_calls >= 5  # calls whose rows sat at different positions
    if policy == "copy":  # leading columns trimmed after the oldest rows left
        assert any(b < a for a, b in itertools.pairwise(past_lens))
        assert reused == 0
    elif policy == "holes":  # a joiner took the slot of a row that had left
        assert reused >= 1


@each_family
@pytest.mark.parametrize("seed", [7, 8])
def test_join_random_schedule(family: Family, seed: int) -> None:
    """(c) seeded schedules: rows join at random steps in 0..20, in random order (the
    batch may run empty and start again)."""
    rng = np.random.default_rng(seed)
    steps = sorted(int(s) for s in rng.integers(0, 21, size=len(SOURCES)))
    order = [int(i) for i in rng.permutation(len(SOURCES))]
    out = _run(family, list(zip(steps, order, strict=True)))
    assert [out[i] for i in range(len(SOURCES))] == family.references


@each_family
def test_join_after_the_batch_ran_empty(family: Family) -> None:
    """(c) the batch empties (the budget-3 row ends) and later rows start it again."""
    out = _run(family, [(0, 4), (6, 2), (8, 0)], policy="holes")
    assert [out[i] for i in (4, 2, 0)] == [family.references[i] for i in (4, 2, 0)]


@each_family
def test_int8_per_row_alone_batched_joined(int8_family: Family) -> None:
    """Per-row int8 graphs: alone == in one batch == joining a running batch, token for
    token (int8 is not required to equal fp32; most rows of these copy models do)."""
    rows = range(len(SOURCES))
    alone = {i: _run(int8_family, [(0, i)])[i] for i in rows}
    batched = _run(int8_family, [(0, i) for i in rows])
    joined = _run(int8_family, list(JOINS))
    assert [batched[i] for i in rows] == [alone[i] for i in rows]
    assert [joined[i] for i in rows] == [alone[i] for i in rows]
    assert sum(alone[i] == int8_family.references[i] for i in rows) >= len(SOURCES) // 2


@each_family
def test_fused_alone_batched_joined(fused_family: Family) -> None:
    """The decoder after the pipeline's ORT fusions: still transformers' greedy tokens,
    alone, in one batch, and joining a running batch."""
    rows = range(len(SOURCES))
    refs = fused_family.references
    assert [_run(fused_family, [(0, i)])[i] for i in rows] == refs
    batched = _run(fused_family, [(0, i) for i in rows])
    assert [batched[i] for i in rows] == refs
    joined = _run(fused_family, list(JOINS))
    assert [joined[i] for i in rows] == refs


def test_unsupported_family_is_refused(tmp_path: Path) -> None:
    """A model_type without a wrapper (here mBART) raises instead of guessing its layout."""
    from transformers import MBartConfig, MBartForConditionalGeneration

    from export.positioned_decoder import UnsupportedFamilyError, export_positioned

    config = MBartConfig(
        vocab_size=64,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
    )
    MBartForConditionalGeneration(config).save_pretrained(tmp_path / "mbart")
    with pytest.raises(UnsupportedFamilyError, match="mbart"):
        export_positioned(tmp_path / "mbart", tmp_path / "out")


def test_t5_gated_feed_forward_random_init(tmp_path: Path) -> None:
    """The mT5 / T5 v1.1 code path (gated-gelu feed-forward, untied lm_head, no rescale)
    that the tiny trained T5 (relu, tied) does not reach: a random-init model, greedy
    alone, batched and joined against transformers (distinct outputs checked)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from export.positioned_decoder import export_positioned
    from service.runtime.positioned import PositionedGreedy, greedy_decode

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=300,
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    model = T5ForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path / "ck")
    exported = export_positioned(tmp_path / "ck", tmp_path / "onnx")
    decoder, cross_kv = _sessions(exported.decoder), _sessions(exported.cross_kv)
    generator = torch.Generator().manual_seed(1)
    sources = [torch.randint(2, 300, (1, n), generator=generator) for n in (5, 9, 13, 7)]
    references: list[list[int]] = []
    states: list[np.ndarray] = []
    for ids in sources:
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                num_beams=1,
                do_sample=False,
                max_new_tokens=20,
            )
            states.append(model.get_encoder()(input_ids=ids).last_hidden_state[0].numpy())
        references.append(_until_eos(out[0, 1:].tolist(), 1))
    assert len({tuple(r) for r in references}) == len(references)

    def batch() -> PositionedGreedy:
        return PositionedGreedy(decoder, cross_kv, decoder_start_token_id=0, eos_token_id=1)

    rows = range(len(sources))
    alone = [greedy_decode(batch(), [(0, i, states[i], 20)])[i] for i in rows]
    batched = greedy_decode(batch(), [(0, i, states[i], 20) for i in rows])
    joined = greedy_decode(batch(), [(3 * i, i, states[i], 20) for i in rows])
    assert alone == references
    assert [batched[i] for i in rows] == references
    assert [joined[i] for i in rows] == references
