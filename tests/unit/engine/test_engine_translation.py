"""Markup through the model service (generated HTML keeps its tags through a real batch of
fake-model translations) and the Translator's language matching."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import (
    CallContext,
    Engine,
    EngineConfig,
    GenerationOptions,
    ModelService,
    TextFormat,
    match_language,
)
from tests.support.fake_runtime import MAX_INPUT_TOKENS, FakeRuntime

INLINE = ["b", "i", "em", "strong", "a", "span", "u", "sub"]
BLOCK = ["p", "div", "li", "h2", "blockquote"]

words = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=7)
text = st.lists(st.one_of(words, st.sampled_from(["&amp;", "&nbsp;", "."])), min_size=1, max_size=5)
attrs = st.lists(
    st.tuples(st.sampled_from(["href", "class", "title"]), st.text("abc xyz/:.=&;", max_size=10)),
    max_size=2,
    unique_by=lambda kv: kv[0],
).map(lambda kvs: "".join(f' {k}="{v.replace("&", "&amp;")}"' for k, v in kvs))
leaf = text.map(" ".join)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from(INLINE + BLOCK), attrs, st.lists(children, min_size=1, max_size=3)
    ).map(lambda t: f"<{t[0]}{t[1]}>" + " ".join(t[2]) + f"</{t[0]}>")


def _fits_the_model(document: str) -> bool:
    """Every stretch of text between full stops fits the fake model's window.

    The fake model takes MAX_INPUT_TOKENS characters per input (one id per character)
    and, like a real one, an input over its window is a 413 (`InputTooLargeError`), not
    a markup problem; the generator used to make 65-character sentences. Conservative:
    tags count as a space, entities at their full length.
    """
    visible = re.sub(r"<[^>]*>", " ", document)
    return max(len(part) for part in visible.split(".")) < MAX_INPUT_TOKENS - 4


documents = (
    st.lists(
        st.recursive(st.one_of(leaf, st.just("<br>")), _element, max_leaves=10),
        min_size=1,
        max_size=3,
    )
    .map("".join)
    .filter(_fits_the_model)
)


class _Shape(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(f"<{tag} {attrs}>")

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


def _shape(document: str) -> _Shape:
    parser = _Shape()
    parser.feed(document)
    parser.close()
    return parser


async def _translate(documents: list[str]) -> list[str]:
    runtime = FakeRuntime("fake-mt", "translation")
    model = ModelService("fake-mt", runtime, Engine(runtime, EngineConfig(max_wait_ms=0)))
    await model.start()
    try:
        results = await model.translate(
            documents,
            "en",
            "de",
            GenerationOptions(),
            CallContext.starting_now(30_000),
            TextFormat(kind="html"),
        )
    finally:
        await model.stop(1)
    return [r.text for r in results]


@settings(max_examples=40, deadline=None)
@given(st.lists(documents, min_size=1, max_size=3))
def test_generated_html_keeps_its_tags_through_the_model(batch: list[str]) -> None:
    # Several documents in one call: their texts share one model batch.
    translated = asyncio.run(_translate(batch))
    assert len(translated) == len(batch)
    for document, out in zip(batch, translated, strict=True):
        before, after = _shape(document), _shape(out)
        assert after.tags == before.tags  # names, attributes (bytes included), order
        # The fake model answers in letters only: the words went through it.
        letters = [t for t in before.text if any(c.isalpha() for c in t)]
        if letters:
            assert after.text != before.text


@pytest.mark.parametrize(
    ("code", "available", "want"),
    [
        ("DE", {"de", "en"}, "de"),
        ("EN-US", {"de", "en"}, "en"),
        ("pt-BR", {"pt", "pt-br"}, "pt-br"),
        ("PT_PT", {"pt", "pt-br"}, "pt"),
        ("zh-Hans", {"zh"}, "zh"),
        ("JA", {"de", "en"}, None),
    ],
)
def test_match_language(code: str, available: set[str], want: str | None) -> None:
    assert match_language(code, available) == want
