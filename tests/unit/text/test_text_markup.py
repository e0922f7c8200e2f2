"""HTML/XML translation keeps the markup: same tags and attributes, ignored content, references."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.text.markup import (
    MAX_INLINE_DEPTH,
    NestingTooDeepError,
    TranslationCountError,
    extract,
    translate_html,
)

MASTODON = (
    '<p>Hello <a href="https://x.y/@bob" class="u-url mention">@<span>bob</span></a> look at '
    '<a href="https://example.com">this <strong>great</strong> link</a>!</p>'
    "<p>Second paragraph.</p>"
)


class Recorder:
    """A fake translator: upper-cases, and remembers each batch."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[str]:
        self.calls.append(list(texts))
        return [t.upper() for t in texts]


class _Shape(HTMLParser):
    """The tag sequence with attributes, and the text outside ``code``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self._code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(("start", tag, attrs))
        self._code += tag == "code"

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(("end", tag, []))
        self._code -= tag == "code"

    def handle_data(self, data: str) -> None:
        if not self._code:
            self.text.append(data)


def shape(document: str) -> _Shape:
    parser = _Shape()
    parser.feed(document)
    parser.close()
    return parser


# --- generated documents -------------------------------------------------------------

INLINE = ["b", "i", "em", "strong", "a", "span", "u", "sub", "sup", "small", "mark", "abbr"]
BLOCK = ["p", "div", "li", "h1", "h3", "td", "blockquote"]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&nbsp;", "&#8217;", "&quot;"]

words = st.text("abcdefghijklmnopqrstuvwxyzäéß", min_size=1, max_size=8)
text = st.lists(st.one_of(words, words, st.sampled_from(ENTITIES)), min_size=1, max_size=5).flatmap(
    lambda parts: st.sampled_from([" ", ""]).map(lambda pad: pad + " ".join(parts) + pad)
)
attrs = st.lists(
    st.tuples(
        st.sampled_from(["href", "class", "title", "data-x"]),
        st.text("abc xyz/:.@=-", max_size=12),
    ),
    max_size=2,
    unique_by=lambda kv: kv[0],
).map(lambda kvs: "".join(f' {k}="{v}"' for k, v in kvs))
code = st.text("abc def()<>=;", min_size=1, max_size=10).map(
    lambda c: "<code>" + c.replace("<", "&lt;").replace(">", "&gt;") + "</code>"
)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(
        st.sampled_from(INLINE + BLOCK), attrs, st.lists(children, min_size=1, max_size=4)
    ).map(lambda t: f"<{t[0]}{t[1]}>" + "".join(t[2]) + f"</{t[0]}>")


nodes = st.recursive(st.one_of(text, text, code, st.just("<br>")), _element, max_leaves=12)
documents = st.lists(nodes, min_size=1, max_size=4).map("".join)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_generated_documents_keep_their_markup(document: str) -> None:
    translate = Recorder()
    out = translate_html(document, translate)
    before, after = shape(document), shape(out)
    assert after.tags == before.tags
    # Every text went through the translator, in one call; nothing else changed.
    assert "".join(after.text) == "".join(before.text).upper()
    assert len(translate.calls) <= 1
    for snippet in re.findall(r"<code>.*?</code>", document):
        assert out.count(snippet) >= document.count(snippet)
    for entity in ENTITIES:
        assert out.count(entity) == document.count(entity)


@settings(max_examples=100, deadline=None)
@given(documents)
def test_identity_translation_gives_back_the_document(document: str) -> None:
    assert translate_html(document, lambda texts: list(texts)) == document


# --- cases ---------------------------------------------------------------------------


def test_mastodon_status() -> None:
    translate = Recorder()
    out = translate_html(MASTODON, translate)
    assert out == (
        '<p>HELLO <a href="https://x.y/@bob" class="u-url mention">@<span>BOB</span></a> LOOK AT '
        '<a href="https://example.com">THIS <strong>GREAT</strong> LINK</a>!</p>'
        "<p>SECOND PARAGRAPH.</p>"
    )
    (batch,) = translate.calls
    # The sentence goes whole (context for the model), the paragraphs apart.
    assert batch[0] == "Hello @bob look at this great link!"
    assert "Second paragraph." in batch and "this great link" in batch


def test_sentence_translation_wraps_the_inline_spans() -> None:
    # A translator that reorders: each tag wraps the words it wrapped, found in context.
    table = {
        "Click this great link now": "Jetzt diesen tollen Link klicken",
        "this great link": "diesen tollen Link",
        "great": "tollen",
        "Click": "Klick",
        "now": "jetzt",
        "this": "dies",
        "link": "Link",
    }
    out = translate_html(
        "<p>Click <a href='/x'>this <b>great</b> link</a> now</p>",
        lambda texts: [table[t] for t in texts],
    )
    assert out == "<p>Jetzt <a href='/x'>diesen <b>tollen</b> Link</a> klicken</p>"


def test_a_span_not_found_in_the_sentence_takes_the_words_at_its_position() -> None:
    # The model words "hello" differently in context ("Servus") than alone ("hallo"): the
    # sentence stays whole (issue 34) and the tags go around the words where "hello" sat.
    table = {"Say hello there": "Sag Servus", "hello": "hallo", "Say": "Sag", "there": "dort"}
    out = translate_html("<p>Say <b>hello</b> there</p>", lambda ts: [table[t] for t in ts])
    assert out == "<p>Sag <b>Servus</b></p>"


def test_falls_back_to_pieces_when_no_word_is_left_for_a_span() -> None:
    table = {"one two": "Eins", "one": "A", "two": "B"}
    document = "<p><b>one</b> <i>two</i></p>"
    plan = extract(document)
    translations = [table[t] for t in plan.texts]
    assert plan.rebuild(translations) == "<p><b>A</b> <i>B</i></p>"
    assert plan.in_context(translations) == [False]


def test_broken_html_does_not_crash_and_keeps_its_tags() -> None:
    assert translate_html("<p>unclosed <b>bold", Recorder()) == "<p>UNCLOSED <b>BOLD"
    assert translate_html("<b><i>x</b></i> tail", Recorder()) == "<b><i>X</b></i> TAIL"
    assert translate_html("text <p class='x", Recorder()).startswith("TEXT ")
    # A lone "<" is text; it comes back escaped, which reads the same.
    assert translate_html("a < b", Recorder()) == "A &lt; B"


def test_huge_attribute_is_kept_verbatim() -> None:
    value = "x" * 1_000_000
    document = f'<p title="{value}">Hello <a href="{value}">world</a></p>'
    out = translate_html(document, Recorder())
    assert out == document.replace("Hello", "HELLO").replace("world", "WORLD")


def test_empty_and_letterless_documents() -> None:
    translate = Recorder()
    assert translate_html("", translate) == ""
    assert translate_html("<p> 42 </p><br/><p>&nbsp;!</p>", translate) == (
        "<p> 42 </p><br/><p>&nbsp;!</p>"
    )
    assert translate.calls == []


def test_ignored_content_is_byte_identical() -> None:
    document = (
        "<p>Run <code>ls -l &amp;&amp; echo</code> now</p><pre>keep\n  this</pre>"
        "<script>if (a<b) x()</script><style>p{}</style><div class=notranslate>Acme Inc</div>"
        "<p>ok <span class=brand>Acme</span> fine</p>"
    )
    out = translate_html(document, Recorder(), ignore_tags={"div", "span"})
    assert out == (
        "<p>RUN <code>ls -l &amp;&amp; echo</code> NOW</p><pre>keep\n  this</pre>"
        "<script>if (a<b) x()</script><style>p{}</style><div class=notranslate>Acme Inc</div>"
        "<p>OK <span class=brand>Acme</span> FINE</p>"
    )


def test_references_survive() -> None:
    document = "<p>Tom &amp; Jerry&nbsp;&lt;3 it&#8217;s &#x263A; &copy; 2024</p>"
    assert translate_html(document, Recorder()) == (
        "<p>TOM &amp; JERRY&nbsp;&lt;3 IT&#8217;S &#x263A; &copy; 2024</p>"
    )


def test_comments_images_and_breaks() -> None:
    document = "<div>one <img src=a.png alt='a b'> two<!-- note --> three<br>four</div>"
    assert translate_html(document, Recorder()) == (
        "<div>ONE <img src=a.png alt='a b'> TWO<!-- note --> THREE<br>FOUR</div>"
    )


def test_xml_mode_with_unknown_tags() -> None:
    document = (
        '<?xml version="1.0"?><doc><Title lang="en">hello world</Title>'
        "<para>some <Term>odd</Term> text<x/>more</para><![CDATA[raw <stuff>]]>"
        "<keep>do not touch</keep></doc>"
    )
    translate = Recorder()
    out = translate_html(document, translate, xml=True, inline_tags={"Term"}, ignore_tags={"keep"})
    assert out == (
        '<?xml version="1.0"?><doc><Title lang="en">HELLO WORLD</Title>'
        "<para>SOME <Term>ODD</Term> TEXT<x/>MORE</para><![CDATA[raw <stuff>]]>"
        "<keep>do not touch</keep></doc>"
    )
    # Term does not split its sentence; x, an unknown tag, does.
    assert "some odd text" in translate.calls[0] and "more" in translate.calls[0]
    # Names are case-sensitive in XML: "term" is not "Term".
    split = Recorder()
    translate_html("<a>x <Term>y</Term> z</a>", split, xml=True, inline_tags={"term"})
    assert "x y z" not in split.calls[0]


def test_plan_batches_several_documents_into_one_call() -> None:
    plans = [extract(MASTODON), extract("<p>Other <i>one</i></p>")]
    texts = [t for plan in plans for t in plan.texts]
    translated = [t.upper() for t in texts]
    outs, cursor = [], 0
    for plan in plans:
        outs.append(plan.rebuild(translated[cursor : cursor + len(plan.texts)]))
        cursor += len(plan.texts)
    assert outs[1] == "<p>OTHER <i>ONE</i></p>"
    assert outs[0] == translate_html(MASTODON, Recorder())
    with pytest.raises(TranslationCountError):
        plans[1].rebuild([])


def test_repeated_words_keep_their_tags_in_place() -> None:
    # Found by the identity property: the inline element's text also occurs, overlapping,
    # earlier in the sentence; a non-overlapping search only saw the earlier match.
    document = " a <b> a  a </b>"
    assert translate_html(document, lambda texts: list(texts)) == document


def test_an_inflected_span_takes_its_tags_in_context() -> None:
    # Alone the model says "der Strand", in the sentence "am Strand": still placed.
    table = {
        "A dog runs on the beach.": "Ein Hund rennt am Strand.",
        "A dog": "Ein Hund",
        "runs": "rennt",
        "on": "auf",
        "the beach": "der Strand",
    }
    document = "<p>A dog <b>runs</b> on <i>the beach</i>.</p>"
    plan = extract(document)
    translations = [table[t] for t in plan.texts]
    assert plan.rebuild(translations) == "<p>Ein Hund <b>rennt</b> am <i>Strand</i>.</p>"
    assert plan.in_context(translations) == [True]


def test_in_context_tells_matched_spans_from_spans_placed_by_position() -> None:
    table = {"Say hello there": "Sag Servus", "hello": "hallo", "Say": "Sag", "there": "dort"}
    plan = extract("<p>Say <b>hello</b> there</p><p>No tags here.</p>")
    table["No tags here."] = "Keine Tags hier."
    translations = [table[t] for t in plan.texts]
    assert plan.in_context(translations) == [True]
    assert plan.in_context(translations, matched_only=True) == [False]


def test_inline_nesting_past_the_limit_is_a_typed_error_not_a_recursion_error() -> None:
    # Issue 39, finding 3: ~400 nested inline tags raised RecursionError (a 500).
    deep = "<p>" + "<b>" * 400 + "deep" + "</b>" * 400 + "</p>"
    with pytest.raises(NestingTooDeepError) as raised:
        extract(deep)
    assert raised.value.limit == MAX_INLINE_DEPTH
    unclosed = "<span>x " * 5000  # never closed: the depth grows all the same
    with pytest.raises(NestingTooDeepError):
        extract(unclosed)


def test_inline_nesting_at_the_limit_translates() -> None:
    depth = MAX_INLINE_DEPTH
    document = "<p>" + "<b>" * depth + "Deep text." + "</b>" * depth + "</p>"
    assert translate_html(document, Recorder()) == document.replace("Deep text.", "DEEP TEXT.")
    # Block elements do not nest in the tree: any number of them is fine.
    blocks = "<div>" * 2000 + "Text." + "</div>" * 2000
    assert translate_html(blocks, Recorder()) == blocks.replace("Text.", "TEXT.")


def test_a_span_the_model_drops_alone_is_still_placed_in_the_sentence() -> None:
    # Alone, "at home" came back empty; the sentence still has the words for it.
    table = {
        "I forgot my umbrella at home.": "Ich habe meinen Schirm zu Hause vergessen.",
        "I forgot my umbrella": "Ich habe meinen Schirm vergessen",
        "at home": "",
    }
    plan = extract('<p>I forgot my umbrella <span class="n">at home</span>.</p>')
    translations = [table[t] for t in plan.texts]
    out = plan.rebuild(translations)
    assert out.startswith("<p>Ich habe meinen Schirm") and out.count('<span class="n">') == 1
    assert "".join(re.split(r"<[^>]+>", out)) == "Ich habe meinen Schirm zu Hause vergessen."
    assert plan.in_context(translations) == [True]
