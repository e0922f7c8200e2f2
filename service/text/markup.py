"""Translate the text of an HTML or XML document and keep its markup byte for byte.

For LibreTranslate's ``format: "html"`` and DeepL's ``tag_handling: html|xml``, with a
seq2seq model that knows nothing of tags.

Parser: the standard library's ``html.parser``, with ``convert_charrefs=False``. It
reports every entity and character reference as its own event and leaves the source
alone, so each tag, attribute (a 1 MB one too), comment and reference is re-emitted from
the source slice it came from; only text changes. lxml, html5lib and BeautifulSoup build
a tree and serialise it again (implied ``<html><body>``, re-quoted attributes, decoded
entities), which breaks "same bytes outside the text". It never raises on bad markup:
unclosed tags stay unclosed, stray end tags stay where they are, and text that is not
markup (a lone ``<``) is text. The output has exactly the input's tags, in order, so
well-formed input gives well-formed output; broken input is not repaired.

Strategy. The document is cut into *segments*: runs of text between block boundaries
(``p``, ``div``, ``li``, ``h1``-``h6``, ``td``, ``br``, any tag not known to be inline,
and ignored blocks such as ``pre``, ``script``, ``style``). Inline elements (``b``, ``a``,
``span``, ...) stay inside their segment's sentence. The units sent to the translator:

1. each segment's whole text (the sentence, in context, tags left out);
2. each inline element's own text;
3. each text run between inline tags (used only when 2 cannot be placed).

All go in one batch, so a document costs one model call. The segment's translation is
then cut at the inline elements: each element's own translation is looked up in it
(ignoring case and a trailing full stop; among several matches the one nearest the
element's relative position in the source), in order and nested within its parent.
If every element is found, the tags wrap those spans of the in-context translation.
One that is not found (the model words it differently in context, even fuzzily) takes
the whole words at its relative position in the sentence: the sentence stays whole and
well translated, the tags may sit a word off. Only when no word is left for an element
does its container fall back to the translations of its pieces (3 and 2), which keeps
each piece under its own tag but loses the context across tags. Inline code (``code``,
``kbd``, ``samp``, ``var`` and inline ``ignore_tags``) is sent inside the sentence but
emitted from the source; an inline ``img``, ``wbr`` or comment makes its container use
the pieces.

Either way the tag sequence is the input's: only text between tags is replaced. The
trade-off is cost (an inline-tagged sentence is translated about twice over) and, in
the fallback, quality. Text without letters (digits, punctuation, whitespace) is not
sent. References survive: a character that the input wrote as a reference (``&nbsp;``,
``&#8217;``, ``&amp;``) is written back in the same spelling wherever the translation
has it; other text is escaped minimally (``&``, ``<``, ``>``).

A document nesting inline elements more than ``MAX_INLINE_DEPTH`` deep is refused
(``NestingTooDeepError``) instead of walked: the tree walks recurse once per level.

Plain-text layout (line breaks, paragraphs, sentences) is ``service/text/sentences.py``'s
job; a caller may split a segment's text into sentences before translating.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser

INLINE_TAGS = frozenset(
    [
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "data",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "ins",
        "kbd",
        "label",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
    ]
)
INLINE_VOID_TAGS = frozenset({"img", "wbr"})
VOID_TAGS = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
DEFAULT_IGNORED_TAGS = frozenset({"code", "pre", "script", "style"})
_INLINE_IGNORABLE = INLINE_TAGS | {"code"}

_TAG_NAME = re.compile(r"</?\s*([^\s/>]+)")
_REF = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")
_TRAILING_STOP = re.compile(r"[.。!?]+$")


#: Inline elements nested deeper than this (open at once, closed or not) make the
#: document refused: the walks over a segment's tree recurse once per level, and no real
#: document nests inline elements anywhere near this deep. Block elements do not nest in
#: the tree (each one starts a new segment), so any number of them is fine.
MAX_INLINE_DEPTH = 64


class TranslationCountError(ValueError):
    """``rebuild`` got a different number of translations than ``texts``."""


class NestingTooDeepError(ValueError):
    """The document nests inline elements deeper than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the markup nests inline elements more than {limit} levels deep")
        self.limit = limit


# --- tokens --------------------------------------------------------------------------


@dataclass
class _Token:
    kind: str  # "text" | "ref" | "start" | "end" | "startend" | "other"
    raw: str
    name: str = ""
    text: str = ""  # decoded text for "text" / "ref"


class _Tokenizer(HTMLParser):
    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self._source = source
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self.events: list[tuple[int, str, str]] = []  # (offset, kind, decoded data)

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_data(self, data: str) -> None:
        self.events.append((self._offset(), "text", data))

    def handle_entityref(self, name: str) -> None:
        self.events.append((self._offset(), "ref", ""))

    def handle_charref(self, name: str) -> None:
        self.events.append((self._offset(), "ref", ""))

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.events.append((self._offset(), "start", ""))

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        self.events.append((self._offset(), "startend", ""))

    def handle_endtag(self, tag: str) -> None:
        self.events.append((self._offset(), "end", ""))

    def handle_comment(self, data: str) -> None:
        self.events.append((self._offset(), "comment", ""))

    def handle_decl(self, decl: str) -> None:
        self.events.append((self._offset(), "other", ""))

    def handle_pi(self, data: str) -> None:
        self.events.append((self._offset(), "other", ""))

    def unknown_decl(self, data: str) -> None:
        self.events.append((self._offset(), "other", ""))


def _tokenize(source: str, xml: bool) -> list[_Token]:
    parser = _Tokenizer(source)
    parser.feed(source)
    parser.close()
    events = parser.events
    if not events:
        return [_Token("other", source)] if source else []
    tokens: list[_Token] = []
    for k, (start, kind, data) in enumerate(events):
        stop = events[k + 1][0] if k + 1 < len(events) else len(source)
        raw = source[start:stop]
        # Whatever the parser passed over without an event (an unfinished tag at the end,
        # a stray "</>") lands in the previous slice: keep it verbatim, never translate it.
        rest = ""
        if kind == "text":
            head, rest = (data, raw[len(data) :]) if raw.startswith(data) else ("", raw)
            if head:
                tokens.append(_Token("text", head, text=head))
        elif kind == "ref":
            match = _REF.match(raw)
            head = match.group(0) if match else ""
            rest = raw[len(head) :]
            if head:
                tokens.append(_Token("ref", head, text=html.unescape(head)))
        else:
            tag = _TAG_NAME.match(raw) if kind in ("start", "end", "startend") else None
            name = _norm(tag.group(1), xml) if tag else ""
            tokens.append(_Token(kind if name or kind == "comment" else "other", raw, name=name))
        if rest:
            tokens.append(_Token("other", rest))
    if events[0][0] > 0:
        tokens.insert(0, _Token("other", source[: events[0][0]]))
    return tokens


def _norm(name: str, xml: bool) -> str:
    return name if xml else name.lower()


# --- tree of one segment -------------------------------------------------------------


@dataclass
class _Text:
    pieces: list[_Token]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)


@dataclass
class _Raw:
    raw: str


@dataclass
class _Element:
    open_raw: str = ""
    close_raw: str = ""
    name: str = ""
    items: list[_Text | _Raw | _Element] = field(default_factory=list)
    ignored: bool = False  # content is emitted from the source (``open_raw`` holds it all)
    ignored_text: str = ""

    @property
    def text(self) -> str:
        if self.ignored:
            return self.ignored_text
        return "".join(it.text for it in self.items if not isinstance(it, _Raw))

    @property
    def has_void(self) -> bool:
        return any(isinstance(it, _Raw) for it in self.items)


@dataclass
class _Segment:
    root: _Element


_Part = _Segment | _Raw


@dataclass(frozen=True)
class _Rules:
    inline: frozenset[str]
    inline_void: frozenset[str]
    void: frozenset[str]
    ignored: frozenset[str]
    inline_ignorable: frozenset[str]


def _rules(ignore_tags: Collection[str], inline_tags: Collection[str] | None, xml: bool) -> _Rules:
    if xml:
        inline = frozenset(inline_tags or ())
        return _Rules(inline, frozenset(), frozenset(), frozenset(ignore_tags), inline)
    inline = INLINE_TAGS | {t.lower() for t in inline_tags or ()}
    return _Rules(
        inline=inline,
        inline_void=INLINE_VOID_TAGS,
        void=VOID_TAGS,
        ignored=DEFAULT_IGNORED_TAGS | {t.lower() for t in ignore_tags},
        inline_ignorable=_INLINE_IGNORABLE | inline,
    )


def _parts(tokens: list[_Token], rules: _Rules) -> list[_Part]:
    parts: list[_Part] = []
    root = _Element()
    stack: list[_Element] = [root]

    def flush() -> None:
        nonlocal root, stack
        if root.items:
            parts.append(_Segment(root))
        root = _Element()
        stack = [root]

    def add_text(tok: _Token) -> None:
        items = stack[-1].items
        if items and isinstance(items[-1], _Text):
            items[-1].pieces.append(tok)
        else:
            items.append(_Text([tok]))

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind in ("text", "ref"):
            add_text(tok)
        elif tok.kind == "start" and tok.name in rules.ignored:
            j = _matching_end(tokens, i)
            raw = "".join(t.raw for t in tokens[i:j])
            if tok.name in rules.inline_ignorable:
                text = "".join(t.text for t in tokens[i:j] if t.kind in ("text", "ref"))
                stack[-1].items.append(_Element(raw, "", tok.name, [], True, text))
            else:
                flush()
                parts.append(_Raw(raw))
            i = j
            continue
        elif tok.kind == "start" and tok.name in rules.inline and tok.name not in rules.void:
            if len(stack) > MAX_INLINE_DEPTH:  # stack[0] is the segment's root
                raise NestingTooDeepError(MAX_INLINE_DEPTH)
            element = _Element(tok.raw, "", tok.name)
            stack[-1].items.append(element)
            stack.append(element)
        elif (
            tok.kind == "end"
            and tok.name in rules.inline
            and any(e.name == tok.name for e in stack[1:])
        ):
            while stack[-1].name != tok.name:
                stack.pop()
            stack.pop().close_raw = tok.raw
        elif (
            (tok.kind in ("start", "startend") and tok.name in rules.inline_void)
            or (tok.kind == "comment")
            or (tok.kind == "startend" and tok.name in rules.inline)
        ):
            stack[-1].items.append(_Raw(tok.raw))
        else:
            flush()
            parts.append(_Raw(tok.raw))
        i += 1
    flush()
    return parts


def _matching_end(tokens: list[_Token], i: int) -> int:
    """Index just past the end tag closing ``tokens[i]`` (or the end of the document)."""
    name, depth = tokens[i].name, 0
    for j in range(i, len(tokens)):
        t = tokens[j]
        if t.name == name and t.kind == "start":
            depth += 1
        elif t.name == name and t.kind == "end":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(tokens)


# --- units and rendering -------------------------------------------------------------


def _has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def _split_ws(text: str) -> tuple[str, str, str]:
    core = text.strip()
    if not core:
        return text, "", ""
    start = text.index(core)
    return text[:start], core, text[start + len(core) :]


class _Units:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, text: str) -> None:
        core = text.strip()
        if _has_letters(core) and core not in self._index:
            self._index[core] = len(self.texts)
            self.texts.append(core)

    def get(self, text: str, translations: Sequence[str]) -> str:
        """``text`` translated, with its own leading and trailing whitespace."""
        lead, core, trail = _split_ws(text)
        if core not in self._index:
            return text
        return lead + translations[self._index[core]].strip() + trail


def _collect(element: _Element, units: _Units) -> None:
    for it in element.items:
        if isinstance(it, _Text):
            units.add(it.text)
        elif isinstance(it, _Element) and not it.ignored:
            units.add(it.text)
            _collect(it, units)


@dataclass(frozen=True)
class Plan:
    """A document cut into the texts to translate, and how to put translations back.

    ``texts`` may be batched with other documents' texts into one model call;
    ``rebuild`` takes one translation per text, in order.
    """

    texts: list[str]
    _parts: list[_Part]
    _units: _Units
    _refs: dict[str, str]

    def rebuild(self, translations: Sequence[str]) -> str:
        """The document with each text replaced by its translation."""
        if len(translations) != len(self.texts):
            raise TranslationCountError(
                f"{len(translations)} translations for {len(self.texts)} texts"
            )
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, _Raw):
                out.append(part.raw)
                continue
            root = part.root
            if not _translatable(root):
                out.append(_verbatim(root))
                continue
            self._render(root, self._units.get(root.text, translations), translations, out)
        return "".join(out)

    def in_context(self, translations: Sequence[str], matched_only: bool = False) -> list[bool]:
        """For each translatable segment holding inline elements: whether every element
        took its tags inside the segment's in-context translation (True) or some
        container fell back to translating its pieces apart (False). ``matched_only``:
        count only elements whose own translation was found in it (not those placed by
        their position in the sentence)."""
        placed: list[bool] = []
        for part in self._parts:
            if isinstance(part, _Raw) or not _translatable(part.root):
                continue
            root = part.root
            if any(isinstance(it, _Element) for it in root.items):
                target = self._units.get(root.text, translations)
                placed.append(self._placed(root, target, translations, not matched_only))
        return placed

    def _placed(
        self, element: _Element, target: str, translations: Sequence[str], by_position: bool
    ) -> bool:
        children = [it for it in element.items if isinstance(it, _Element)]
        if not children or element.ignored:
            return True
        spans = (
            None
            if element.has_void
            else _align(element, children, target, self, translations, by_position)
        )
        if spans is None:
            return False
        return all(
            self._placed(child, target[start:stop], translations, by_position)
            for child, (start, stop) in zip(children, spans, strict=True)
        )

    def _render(
        self, element: _Element, target: str, translations: Sequence[str], out: list[str]
    ) -> None:
        out.append(element.open_raw)
        if element.ignored:
            return
        children = [it for it in element.items if isinstance(it, _Element)]
        spans = None if element.has_void else _align(element, children, target, self, translations)
        if spans is None:
            for it in element.items:
                if isinstance(it, _Raw):
                    out.append(it.raw)
                elif isinstance(it, _Text):
                    out.append(self._escape(self._units.get(it.text, translations)))
                else:
                    self._render(it, self._units.get(it.text, translations), translations, out)
        else:
            cursor = 0
            for child, (start, stop) in zip(children, spans, strict=True):
                out.append(self._escape(target[cursor:start]))
                self._render(child, target[start:stop], translations, out)
                cursor = stop
            out.append(self._escape(target[cursor:]))
        out.append(element.close_raw)

    def _escape(self, text: str) -> str:
        return "".join(self._refs.get(ch) or _ESCAPES.get(ch, ch) for ch in text)

    def _child_target(self, child: _Element, translations: Sequence[str]) -> str:
        if child.ignored:
            return child.text.strip()
        found = self._units.get(child.text, translations).strip()
        if not _TRAILING_STOP.search(child.text.strip()):
            found = _TRAILING_STOP.sub("", found)
        return found


_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _align(
    element: _Element,
    children: list[_Element],
    target: str,
    plan: Plan,
    translations: Sequence[str],
    by_position: bool = True,
) -> list[tuple[int, int]] | None:
    """Where each child's own translation sits in ``target``; a child whose translation
    is not found there takes the words at its relative position in the sentence
    (``by_position``; else, or when no word is left for it, None)."""
    source = element.text
    spans: list[tuple[int, int]] = []
    cursor, offset = 0, 0
    for it in element.items:
        if not isinstance(it, _Element):
            offset += len(it.text) if isinstance(it, _Text) else 0
            continue
        # Empty when the element alone translated to nothing: placed by position, if it
        # has words to place.
        needle = plan._child_target(it, translations)
        if not needle and not _has_letters(it.text):
            return None
        lead = len(it.text) - len(it.text.lstrip())
        expected = (offset + lead) / max(1, len(source)) * len(target)
        # Overlapping matches: with repeated words the right one can start inside another.
        hits = []
        if needle:
            pattern = re.compile(f"(?=({re.escape(needle)}))", re.IGNORECASE)
            hits = [m.span(1) for m in pattern.finditer(target, cursor)]
        if hits:
            start, stop = min(hits, key=lambda span: abs(span[0] - expected))
        else:
            near = _nearest_words(needle, target, cursor, expected) if needle else None
            if near is None and by_position:
                body = it.text.strip()
                first = (offset + lead) / max(1, len(source))
                last = (offset + lead + len(body)) / max(1, len(source))
                near = _words_at(target, cursor, first, last)
            if near is None:
                return None
            start, stop = near
        # Whitespace the element had inside its tags stays inside (an ignored one emits
        # its own from the source), where the translation has it.
        lead_ws, _, trail_ws = _split_ws(it.text)
        if lead_ws and start - len(lead_ws) >= cursor and target[:start].endswith(lead_ws):
            start -= len(lead_ws)
        if trail_ws and target.startswith(trail_ws, stop):
            stop += len(trail_ws)
        spans.append((start, stop))
        cursor = stop
        offset += len(it.text)
    assert len(spans) == len(children)
    return spans


_WORD = re.compile(r"\w+(?:['’-]\w+)*")
# How alike (difflib ratio, 0..1) a run of the in-context translation must be to the
# element's own translation to take its tags: inflection and articles change
# ("der Strand" alone, "am Strand" in context), other words do not.
_MIN_SIMILARITY = 0.6


def _nearest_words(
    needle: str, target: str, cursor: int, expected: float
) -> tuple[int, int] | None:
    """The run of whole words of ``target`` after ``cursor`` most like ``needle``.

    Runs of one word fewer to one more than ``needle`` are compared case-insensitively;
    the most similar wins, then the one nearest ``expected``. None below _MIN_SIMILARITY.
    """
    words = [m.span() for m in _WORD.finditer(target, cursor)]
    size = len(_WORD.findall(needle))
    if not words or not size:
        return None
    wanted = needle.lower()
    best: tuple[float, float, int, int] | None = None
    for count in range(max(1, size - 1), size + 2):
        for first in range(len(words) - count + 1):
            start, stop = words[first][0], words[first + count - 1][1]
            ratio = difflib.SequenceMatcher(None, wanted, target[start:stop].lower()).ratio()
            key = (ratio, -abs(start - expected), start, stop)
            if best is None or key > best:
                best = key
    if best is None or best[0] < _MIN_SIMILARITY:
        return None
    return best[2], best[3]


def _words_at(target: str, cursor: int, first: float, last: float) -> tuple[int, int] | None:
    """The whole words of ``target`` after ``cursor`` whose middles lie between the shares
    ``first`` and ``last`` of its length (the nearest word when none does): where an
    element sits in the source, carried over to the translation. None without words."""
    words = [m.span() for m in _WORD.finditer(target, cursor)]
    if not words:
        return None
    low, high = first * len(target), last * len(target)
    inside = [w for w in words if low <= (w[0] + w[1]) / 2 <= high]
    if not inside:
        middle = (low + high) / 2
        inside = [min(words, key=lambda w: abs((w[0] + w[1]) / 2 - middle))]
    return inside[0][0], inside[-1][1]


def _translatable(element: _Element) -> bool:
    """Whether any text outside ignored elements has a letter."""
    return any(
        _has_letters(it.text) if isinstance(it, _Text) else _translatable(it)
        for it in element.items
        if not isinstance(it, _Raw) and not (isinstance(it, _Element) and it.ignored)
    )


def _verbatim(element: _Element) -> str:
    if element.ignored:
        return element.open_raw
    inner = "".join(
        "".join(p.raw for p in it.pieces)
        if isinstance(it, _Text)
        else it.raw
        if isinstance(it, _Raw)
        else _verbatim(it)
        for it in element.items
    )
    return element.open_raw + inner + element.close_raw


def extract(
    document: str,
    *,
    ignore_tags: Collection[str] = (),
    inline_tags: Collection[str] | None = None,
    xml: bool = False,
) -> Plan:
    """Cut ``document`` into the texts to translate (NestingTooDeepError past
    ``MAX_INLINE_DEPTH`` nested inline elements).

    ``ignore_tags``: elements whose content stays as it is (added to code, pre, script
    and style in HTML mode). ``inline_tags``: in XML mode the elements that do not split
    a sentence (DeepL's ``non_splitting_tags``; every other element does); in HTML mode
    extra inline elements. XML mode matches names case-sensitively and knows no HTML.
    """
    rules = _rules(ignore_tags, inline_tags, xml)
    tokens = _tokenize(document, xml)
    parts = _parts(tokens, rules)
    units = _Units()
    for part in parts:
        if isinstance(part, _Segment) and _translatable(part.root):
            units.add(part.root.text)
            _collect(part.root, units)
    refs: dict[str, str] = {}
    for tok in tokens:
        if tok.kind == "ref" and len(tok.text) == 1:
            refs.setdefault(tok.text, tok.raw)
    return Plan(units.texts, parts, units, refs)


def translate_html(
    document: str,
    translate: Callable[[list[str]], list[str]],
    *,
    ignore_tags: Collection[str] = (),
    inline_tags: Collection[str] | None = None,
    xml: bool = False,
) -> str:
    """``document`` with its text translated by one call of ``translate`` (a batch)."""
    plan = extract(document, ignore_tags=ignore_tags, inline_tags=inline_tags, xml=xml)
    return plan.rebuild(translate(plan.texts) if plan.texts else [])
