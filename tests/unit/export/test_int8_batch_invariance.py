"""The int8 variant's output does not depend on what else is in the batch.

Dynamic int8 (one activation scale per tensor, over every row of the batch and its padding)
broke this; the exported int8 variant is per-row int8 (export.int8_per_row), whose
activation scales never span more than one row. Uses the session-cached tiny packages
(same ones the family tests build).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.runtime import GenerationOptions, load_runtime

pytestmark = pytest.mark.slow

# Mixed lengths on purpose: in a batch the short ones are padded to the longest.
TEXTS = [
    "Two dogs play.",
    "A man in a blue shirt is riding a bicycle down the street next to a red car.",
    "A woman cooks.",
    "A group of children are sitting on the grass near a large tree in the park.",
    "A little girl in a pink dress climbs the stairs.",
    "People walk.",
]


@pytest.mark.parametrize("family", ["marian", "bart"])
@pytest.mark.parametrize("num_beams", [1, 4])
def test_int8_alone_equals_batched(
    family: str, num_beams: int, tiny_package: Callable[..., Path]
) -> None:
    package = tiny_package(family)
    rt = load_runtime(package, device="cpu", precision="int8", intra_op_threads=1)
    assert "per-row" in rt.manifest.variants["int8"].quantization
    ids = rt.encode_texts(TEXTS)
    options = rt.resolve(GenerationOptions(max_new_tokens=20, num_beams=num_beams))

    batched = rt.generate(ids, options)
    alone = [rt.generate([row], options)[0] for row in ids]

    assert len({len(row) for row in ids}) > 2  # the batch really is padded
    assert all(out[0] for out in alone)  # something was generated
    assert batched == alone
