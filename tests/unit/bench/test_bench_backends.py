"""Backend specs, output normalization and CTranslate2 vs transformers on a tiny Marian."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.backends import (
    Decode,
    ModelIds,
    Spec,
    ct2_readable_checkpoint,
    pad_batch,
    strip_output,
)


def test_spec_parse_defaults_and_labels() -> None:
    spec = Spec.parse("ct2:int8:1", default_threads=2)
    assert (spec.name, spec.precision, spec.threads, spec.label) == (
        "ct2",
        "int8",
        1,
        "ct2 int8 t1",
    )
    assert Spec.parse("ours:fp32", default_threads=2).threads == 2


@pytest.mark.parametrize("text", ["nope:int8", "ours", "ours:int4", "torch:int8", "ct2:int8:0"])
def test_spec_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Spec.parse(text, default_threads=2)


def test_strip_output_drops_start_and_eos_tail() -> None:
    assert strip_output([5, 7, 8, 0, 9], eos=0, start=5) == [7, 8]
    assert strip_output([7, 8], eos=0, start=5) == [7, 8]
    assert strip_output([7, 8, 0], eos=0) == [7, 8]


def test_pad_batch_right_pads_with_mask() -> None:
    ids, mask = pad_batch([[1, 2, 3], [4]], pad=9)
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_decode_fixed_length_forces_min() -> None:
    assert Decode(12).hf_kwargs()["min_new_tokens"] == 12
    natural = Decode(12, num_beams=4, fixed_length=False)
    assert "min_new_tokens" not in natural.hf_kwargs()
    assert natural.hf_kwargs()["num_beams"] == 4


@pytest.mark.slow
def test_ct2_matches_transformers_after_zeroing_pad(
    tiny_checkpoint: Callable[[str], Path], tmp_path: Path
) -> None:
    """The pad-zeroed copy makes CTranslate2 fp32 decode what transformers decodes."""
    import json

    from bench import backends

    source = tiny_checkpoint("marian")
    config = json.loads((source / "config.json").read_text())
    pad, eos = config["pad_token_id"], config["eos_token_id"]
    checkpoint = backends.zero_pad_copy(source, tmp_path / "padzero", pad)
    ct2_dir = backends.ct2_convert(checkpoint, tmp_path / "ct2")
    ids = ModelIds(pad=pad, eos=eos, decoder_start=config["decoder_start_token_id"])
    decode = Decode(6, num_beams=1, fixed_length=False)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    batch = [
        tokenizer(t)["input_ids"]
        for t in ["A man rides a bicycle.", "Two dogs play in the snow.", "A woman sings."]
    ]
    reference = backends.torch_backend(checkpoint, Spec("torch", "fp32", 1), decode, ids)(batch)
    ct2 = backends.ct2_backend(ct2_dir, checkpoint, Spec("ct2", "fp32", 1), decode, ids)(batch)
    assert any(reference), "the tiny model generated nothing to compare"
    assert ct2 == reference


def test_ct2_view_of_a_bart_checkpoint_says_post_norm(tmp_path: Path) -> None:
    import json

    checkpoint = tmp_path / "bart"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "bart", "d_model": 8}))
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    view = ct2_readable_checkpoint(checkpoint, tmp_path / "view")
    assert json.loads((view / "config.json").read_text()) == {
        "model_type": "bart",
        "d_model": 8,
        "normalize_before": False,
    }
    assert (view / "model.safetensors").read_bytes() == b"weights"
    assert json.loads((checkpoint / "config.json").read_text())["d_model"] == 8


def test_ct2_reads_other_checkpoints_as_they_are(tmp_path: Path) -> None:
    import json

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "marian"}))
    assert ct2_readable_checkpoint(tmp_path, tmp_path / "view") == tmp_path
    assert not (tmp_path / "view").exists()
