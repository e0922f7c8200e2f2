"""The LibreTranslate- and DeepL-compatible APIs through the real clients (the `deepl`
library, `libretranslatepy`) and a request shaped exactly as Mastodon sends it, against a
real server on 127.0.0.1 serving the tiny Marian en->de package.

The tiny model's "translations" are imperfect copies, so the tests check structure,
fields and language codes, and that the text went through the model: each answer equals
what our own /translate gives for the same text (fp32 decoding is deterministic).
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import deepl
import httpx
import pytest
from libretranslatepy import LibreTranslateAPI
from tests_e2e_support import SENTENCES

pytestmark = pytest.mark.slow

KEY = "e2e-compat-key-1"
NESTED = (
    "<p>A man <b>rides <i>a red</i> bike</b> on the <a href='https://example.org/?a=1&amp;b=2'>"
    "street</a>.</p><p>Two dogs <em>play</em> in the snow.</p>"
)
MASTODON_STATUS = (
    '<p>A woman reads a book, <span class="h-card"><a href="https://example.social/@bob" '
    'class="u-url mention">@<span>bob</span></a></span>! See <a href="https://example.org/x?y=1'
    '&amp;z=2" rel="nofollow noopener noreferrer" target="_blank"><span class="invisible">'
    'https://</span><span class="">example.org/x</span><span class="invisible"></span></a></p>'
    "<p>Two dogs play in the snow.</p>"
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(f"<{tag} {attrs}>")

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(f"</{tag}>")


def _tags(html: str) -> list[str]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


def _ours(server: Any, texts: list[str], fmt: str = "text") -> list[str]:
    with server.client() as c:
        r = c.post(
            "/translate",
            json={"text": texts, "source_lang": "en", "target_lang": "de", "format": fmt},
        )
    assert r.status_code == 200, r.text
    return list(r.json()["translations"])


# ---- deepl -------------------------------------------------------------------------------
def _deepl(server: Any, key: str = "any-key:fx") -> deepl.Translator:
    return deepl.Translator(key, server_url=server.url, send_platform_info=False)


def test_deepl_translate_text_single_list_and_auto(server: Any) -> None:
    translator = _deepl(server)
    texts = SENTENCES[:3]
    want = _ours(server, texts)
    one = translator.translate_text(texts[0], target_lang="DE", source_lang="EN")
    assert isinstance(one, deepl.TextResult)
    assert one.text == want[0]
    assert one.detected_source_lang == "EN"
    assert one.billed_characters == len(texts[0])
    many = translator.translate_text(texts, target_lang="DE")  # source omitted: detected
    assert [r.text for r in many] == want
    assert [r.detected_source_lang for r in many] == ["EN"] * 3


def test_deepl_tag_handling_html_keeps_the_tags(server: Any) -> None:
    translator = _deepl(server)
    result = translator.translate_text(NESTED, target_lang="DE", tag_handling="html")
    assert _tags(result.text) == _tags(NESTED)
    assert result.text == _ours(server, [NESTED], "html")[0]
    xml = "<doc><s>A man rides a bike.</s><code>Keep me.</code></doc>"
    out = translator.translate_text(
        xml, target_lang="DE", tag_handling="xml", ignore_tags=["code"], formality="less"
    )
    assert _tags(out.text) == _tags(xml) and "<code>Keep me.</code>" in out.text


def test_deepl_languages_and_usage(server: Any) -> None:
    translator = _deepl(server)
    sources = translator.get_source_languages()
    targets = translator.get_target_languages()
    assert [(lang.code, lang.name) for lang in sources] == [("EN", "English")]
    assert [lang.code for lang in targets] == ["DE"]
    before = translator.get_usage().character.count
    translator.translate_text("A man rides a bike.", target_lang="DE")
    usage = translator.get_usage()
    assert usage.character.valid and usage.character.count == before + len("A man rides a bike.")
    assert usage.character.limit == 1_000_000_000_000


def test_deepl_errors_become_the_librarys_exceptions(server: Any) -> None:
    translator = _deepl(server)
    with pytest.raises(deepl.DeepLException, match="Bad request"):
        translator.translate_text("A man rides a bike.", target_lang="JA")
    with pytest.raises(deepl.DeepLException):
        translator.translate_text("Где находится библиотека?", target_lang="DE")


# ---- libretranslatepy and Mastodon -------------------------------------------------------
def test_libretranslatepy_translate_detect_languages(server: Any) -> None:
    lt = LibreTranslateAPI(f"{server.url}/libretranslate/")
    text = SENTENCES[5]
    assert lt.translate(text, "en", "de") == _ours(server, [text])[0]
    assert lt.translate(text, "auto", "de") == _ours(server, [text])[0]
    (best,) = lt.detect(text)
    assert best["language"] == "en" and 0 < best["confidence"] <= 100
    assert lt.languages() == [
        {"code": "de", "name": "German", "targets": []},
        {"code": "en", "name": "English", "targets": ["de"]},
    ]


def test_mastodon_request(server: Any) -> None:
    # app/lib/translation_service/libre_translate.rb: JSON body, format html, api_key null.
    body = {
        "q": MASTODON_STATUS,
        "source": "en",
        "target": "de",
        "format": "html",
        "api_key": None,
    }
    r = httpx.post(
        f"{server.url}/libretranslate/translate",
        json=body,
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert isinstance(answer, dict) and isinstance(answer["translatedText"], str)
    assert _tags(answer["translatedText"]) == _tags(MASTODON_STATUS)
    assert answer["translatedText"] == _ours(server, [MASTODON_STATUS], "html")[0]


def test_keys_are_checked_the_clients_way(server_factory: Any) -> None:
    srv = server_factory(S2S_API_KEYS=KEY, S2S_MODELS="tiny-marian", S2S_PRECISION="fp32")
    with pytest.raises(deepl.AuthorizationException):
        _deepl(srv, "wrong-key-123").translate_text("A man rides a bike.", target_lang="DE")
    assert _deepl(srv, KEY).translate_text("A man rides a bike.", target_lang="DE").text
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        LibreTranslateAPI(f"{srv.url}/libretranslate/").translate("A man rides.", "en", "de")
    assert refused.value.code == 403
    keyed = LibreTranslateAPI(f"{srv.url}/libretranslate/", api_key=KEY)
    assert keyed.translate("A man rides a bike.", "en", "de")
