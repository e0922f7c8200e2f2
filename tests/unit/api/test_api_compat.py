"""Source "auto", format "html", and the LibreTranslate- and DeepL-compatible APIs, on
fake runtimes (the real clients against a real server: tests/e2e/test_e2e_compat_clients.py)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from api_helpers import client_for, sse_events

from tests.support.fake_runtime import FakeRuntime

EN = "Good morning, how are you today? I hope the weather is nice."
FR = "Bonjour, comment allez-vous aujourd'hui ? J'espère qu'il fait beau."
RU = "Доброе утро, как у вас сегодня дела? Надеюсь, погода хорошая."
NESTED = (
    '<p>Hello <b>dear <i>old</i> friend</b>, see <a href="https://example.org/?a=1&amp;b=2" '
    'class="u-url">this <span>page</span></a>.</p><p>Second&nbsp;paragraph &amp; more.</p>'
)
KEY = "secret-key-123"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _runtimes() -> dict[str, Any]:
    """Two translation models: en+fr -> de, and de -> en (plus the other tasks)."""
    return {
        "mt-to-de": FakeRuntime("mt-to-de", "translation", languages=(("en", "fr"), ("de",))),
        "mt-to-en": FakeRuntime("mt-to-en", "translation", languages=(("de",), ("en",))),
        "fake-sum": FakeRuntime("fake-sum", "summarization"),
    }


class _TagParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(f"<{tag} {attrs}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(f"<{tag} {attrs}/>")

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(f"</{tag}>")


def _tags(html: str) -> list[str]:
    """The start and end tags with their attributes, in order, as a parser sees them."""
    parser = _TagParser()
    parser.feed(html)
    parser.close()
    return parser.tags


# ---- our /translate ----------------------------------------------------------------------
async def test_source_omitted_detects_each_text_and_matches_explicit(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        auto = await client.post("/translate", json={"text": [EN, FR], "target_lang": "de"})
        also = await client.post(
            "/translate", json={"text": [EN, FR], "source_lang": "auto", "target_lang": "de"}
        )
        en = await client.post(
            "/translate", json={"text": EN, "source_lang": "en", "target_lang": "de"}
        )
    assert auto.status_code == 200, auto.text
    body = auto.json()
    assert [d["language"] for d in body["detected_languages"]] == ["en", "fr"]
    assert all(0 < d["confidence"] <= 1 for d in body["detected_languages"])
    assert body["model"] == "mt-to-de"
    assert body["translations"][0] == en.json()["translations"][0]
    assert also.json() == body
    assert "detected_languages" not in en.json()  # unchanged response without auto


async def test_detected_language_without_a_model_is_a_422_naming_it(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post("/translate", json={"text": [EN, RU], "target_lang": "de"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["type"] == "unsupported_source_language"
    assert error["language"] == "ru" and error["supported"] == ["en", "fr"]
    assert "'ru'" in error["message"]


async def test_auto_into_an_unserved_target_is_a_422(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post("/translate", json={"text": EN, "target_lang": "ja"})
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "unsupported_language_pair"


async def test_text_without_letters_comes_back_as_is(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post("/translate", json={"text": ["12 345 :)", EN], "target_lang": "de"})
    body = r.json()
    assert body["translations"][0] == "12 345 :)"
    assert body["detected_languages"][0] == {"language": "und", "confidence": 0.0}


async def test_auto_streams_too(tmp_path: Path) -> None:
    payload = {"text": [EN, FR], "target_lang": "de"}
    async with client_for(tmp_path, _runtimes()) as client:
        plain = (await client.post("/translate", json=payload)).json()
        r = await client.post("/translate", json={**payload, "stream": True})
    events = sse_events(r.text)
    assert events[-2]["translations"] == plain["translations"]
    assert events[-2]["detected_languages"] == plain["detected_languages"]


async def test_html_keeps_the_tag_structure(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post(
            "/translate",
            json={"text": NESTED, "source_lang": "en", "target_lang": "de", "format": "html"},
        )
    assert r.status_code == 200, r.text
    out = r.json()["translations"][0]
    assert _tags(out) == _tags(NESTED)
    assert "Hello" not in out and "friend" not in out  # the text went through the model
    assert 'href="https://example.org/?a=1&amp;b=2"' in out


async def test_html_cannot_stream(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post(
            "/translate",
            json={"text": NESTED, "target_lang": "de", "format": "html", "stream": True},
        )
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "validation_error"


@pytest.mark.parametrize(
    "document",
    [
        "<p>Hello <b>world</p> and <i>more",  # unclosed and misnested
        "</div>stray end <p>text",
        "<p>a < b and c > d &bogus; &#xZZ;</p>",
        f'<p title="{"x" * 15000}">Long attribute here.</p>',
        "<p><!-- comment --> <br/> <img src=x> </p>",
        "<p></p>",
    ],
)
async def test_bad_html_never_crashes(tmp_path: Path, document: str) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post(
            "/translate",
            json={"text": document, "source_lang": "en", "target_lang": "de", "format": "html"},
        )
    assert r.status_code == 200, r.text
    assert _tags(r.json()["translations"][0]) == _tags(document)


# ---- LibreTranslate ----------------------------------------------------------------------
async def test_libretranslate_json_and_form(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        js = await client.post(
            "/libretranslate/translate", json={"q": EN, "source": "en", "target": "de"}
        )
        form = await client.post(
            "/libretranslate/translate",
            content=urlencode({"q": EN, "source": "en", "target": "de"}),
            headers=FORM,
        )
        ours = await client.post(
            "/translate", json={"text": EN, "source_lang": "en", "target_lang": "de"}
        )
    assert js.status_code == 200, js.text
    assert js.json() == {"translatedText": ours.json()["translations"][0]}
    assert form.json() == js.json()


async def test_libretranslate_auto_batch_alternatives(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post(
            "/libretranslate/translate",
            json={"q": [EN, FR], "source": "auto", "target": "de", "alternatives": 2},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["translatedText"]) == 2
    assert [d["language"] for d in body["detectedLanguage"]] == ["en", "fr"]
    assert all(0 < d["confidence"] <= 100 for d in body["detectedLanguage"])
    assert [len(a) for a in body["alternatives"]] == [2, 2]


async def test_libretranslate_mastodon_request(tmp_path: Path) -> None:
    # Exactly what Mastodon's LibreTranslate service sends.
    status = (
        '<p>Hello <span class="h-card"><a href="https://example.social/@bob" '
        'class="u-url mention">@<span>bob</span></a></span>, look at '
        '<a href="https://example.org/x?y=1&amp;z=2" rel="nofollow noopener" target="_blank">'
        '<span class="invisible">https://</span><span class="">example.org/x</span></a>!</p>'
        "<p>Second <strong>paragraph</strong>.</p>"
    )
    payload = {"q": status, "source": "en", "target": "de", "format": "html", "api_key": None}
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post("/libretranslate/translate", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"translatedText"}
    assert _tags(body["translatedText"]) == _tags(status)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"source": "en", "target": "de"}, "missing q"),
        ({"q": [], "source": "en", "target": "de"}, "missing q"),
        ({"q": "hi", "target": "de"}, "missing source"),
        ({"q": "hi", "source": "en", "target": "xx"}, "en->xx"),
        ({"q": "hi", "source": "en", "target": "de", "format": "pdf"}, "pdf format"),
        ({"q": "hi", "source": "en", "target": "de", "alternatives": "x"}, "alternatives"),
        ({"q": "hi", "source": "en", "target": "de", "alternatives": 99}, "alternatives"),
        ({"q": ["hi", ""], "source": "en", "target": "de"}, "blank"),
        ({"q": RU, "source": "auto", "target": "de"}, "'ru'"),
    ],
)
async def test_libretranslate_errors_are_400_with_an_error_string(
    tmp_path: Path, payload: dict[str, Any], needle: str
) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post("/libretranslate/translate", json=payload)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and needle in r.json()["error"], r.json()


async def test_libretranslate_bad_bodies(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        broken = await client.post(
            "/libretranslate/translate",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        listed = await client.post("/libretranslate/translate", json=["q"])
        multipart = await client.post(
            "/libretranslate/translate", files={"q": ("q.txt", b"hi")}, data={"source": "en"}
        )
        too_long = await client.post(
            "/libretranslate/translate", json={"q": "a" * 30_000, "source": "en", "target": "de"}
        )
    assert broken.status_code == 400 and broken.json() == {"error": "Invalid JSON format"}
    assert listed.status_code == 400
    assert multipart.status_code == 400 and "multipart" in multipart.json()["error"]
    assert too_long.status_code == 400 and "characters" in too_long.json()["error"]


async def test_libretranslate_api_keys(tmp_path: Path) -> None:
    q = {"q": EN, "source": "en", "target": "de"}
    async with client_for(tmp_path, _runtimes(), api_keys=[KEY]) as client:
        missing = await client.post("/libretranslate/translate", json=q)
        wrong = await client.post("/libretranslate/translate", json={**q, "api_key": "nope" * 3})
        right = await client.post(
            "/libretranslate/translate", content=urlencode({**q, "api_key": KEY}), headers=FORM
        )
        languages = await client.get("/libretranslate/languages")
        ours = await client.post("/translate", json={"text": EN, "target_lang": "de"})
    assert missing.status_code == 403 and "error" in missing.json()
    assert wrong.status_code == 403
    assert right.status_code == 200, right.text
    assert languages.status_code == 200  # open, as in LibreTranslate
    assert ours.status_code == 401  # our own routes still want the Bearer key


async def test_libretranslate_detect_and_languages(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        detect = await client.post(
            "/libretranslate/detect", content=urlencode({"q": FR}), headers=FORM
        )
        nothing = await client.post("/libretranslate/detect", json={"q": "1234"})
        missing = await client.post("/libretranslate/detect", json={})
        got = await client.get("/libretranslate/languages")
        posted = await client.post("/libretranslate/languages", content=b"", headers=FORM)
        settings = await client.get("/libretranslate/frontend/settings")
    assert detect.status_code == 200, detect.text
    (best,) = detect.json()
    assert best["language"] == "fr" and 0 < best["confidence"] <= 100
    assert nothing.json() == [{"confidence": 0.0, "language": "und"}]
    assert missing.status_code == 400
    assert got.json() == posted.json()
    assert {"code": "en", "name": "English", "targets": ["de"]} in got.json()
    assert {"code": "de", "name": "German", "targets": ["en"]} in got.json()
    assert {"code": "fr", "name": "French", "targets": ["de"]} in got.json()
    assert settings.json()["charLimit"] == 20_000


# ---- DeepL -------------------------------------------------------------------------------
async def test_deepl_translate_json_and_form(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        js = await client.post("/v2/translate", json={"text": [EN, FR], "target_lang": "DE"})
        form = await client.post(
            "/v2/translate",
            content=urlencode([("text", EN), ("text", FR), ("target_lang", "de")]),
            headers=FORM,
        )
        blank = await client.post(
            "/v2/translate", json={"text": ["", "  \n", EN], "target_lang": "DE"}
        )
        blank_en = await client.post(
            "/v2/translate", json={"text": ["", " "], "target_lang": "DE", "source_lang": "EN"}
        )
        german = await client.post(
            "/v2/translate",
            json={"text": ["Guten Morgen, wie geht es dir?"], "target_lang": "EN-US"},
        )
        usage = await client.get("/v2/usage")
    assert js.status_code == 200, js.text
    translations = js.json()["translations"]
    assert [t["detected_source_language"] for t in translations] == ["EN", "FR"]
    assert [t["billed_characters"] for t in translations] == [len(EN), len(FR)]
    assert form.json() == js.json()
    # One rule on every route (docs/api.md): blank texts are a client error, here 400.
    assert blank.status_code == blank_en.status_code == 400, blank.text
    assert "blank" in blank.json()["message"]
    assert german.json()["translations"][0]["detected_source_language"] == "DE"
    assert usage.json()["character_count"] == 2 * (len(EN) + len(FR)) + 30
    assert usage.json()["character_limit"] == 1_000_000_000_000


async def test_deepl_tag_handling(tmp_path: Path) -> None:
    xml = "<doc><t>Hello <x>world</x> again.</t><skip>Keep this.</skip></doc>"
    async with client_for(tmp_path, _runtimes()) as client:
        html = await client.post(
            "/v2/translate",
            json={
                "text": [NESTED],
                "target_lang": "DE",
                "source_lang": "EN",
                "tag_handling": "html",
            },
        )
        x = await client.post(
            "/v2/translate",
            json={
                "text": [xml],
                "target_lang": "DE",
                "tag_handling": "xml",
                "non_splitting_tags": ["x"],
                "ignore_tags": ["skip"],
                "formality": "more",
                "preserve_formatting": True,
                "split_sentences": "nonewlines",
            },
        )
    assert html.status_code == 200, html.text
    assert _tags(html.json()["translations"][0]["text"]) == _tags(NESTED)
    out = x.json()["translations"][0]["text"]
    assert _tags(out) == _tags(xml) and "<skip>Keep this.</skip>" in out


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"target_lang": "DE"}, 400),
        ({"text": [], "target_lang": "DE"}, 400),
        ({"text": ["hi"]}, 400),
        ({"text": ["hi"], "target_lang": "JA"}, 400),
        ({"text": ["hi"], "target_lang": "DE", "tag_handling": "pdf"}, 400),
        ({"text": ["hi"], "target_lang": "DE", "split_sentences": "2"}, 400),
        ({"text": ["hi"], "target_lang": "DE", "glossary_id": "g1"}, 400),
        ({"text": [RU], "target_lang": "DE"}, 400),
        ({"text": ["a" * 30_000], "target_lang": "DE", "source_lang": "EN"}, 413),
    ],
)
async def test_deepl_errors_have_a_message(
    tmp_path: Path, payload: dict[str, Any], status: int
) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        r = await client.post("/v2/translate", json=payload)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"message"} and r.json()["message"]


async def test_deepl_auth_and_quota(tmp_path: Path) -> None:
    good = {"Authorization": f"DeepL-Auth-Key {KEY}"}
    payload = {"text": ["Hello there."], "target_lang": "DE"}
    async with client_for(tmp_path, _runtimes(), api_keys=[KEY], character_limit=20) as client:
        missing = await client.post("/v2/translate", json=payload)
        bearer = await client.post(
            "/v2/translate", json=payload, headers={"Authorization": f"Bearer {KEY}"}
        )
        first = await client.post("/v2/translate", json=payload, headers=good)
        second = await client.post("/v2/translate", json=payload, headers=good)
        usage = await client.get("/v2/usage", headers=good)
    assert missing.status_code == 403 and "message" in missing.json()
    assert bearer.status_code == 403
    assert first.status_code == 200
    assert second.status_code == 456 and "limit" in second.json()["message"]
    assert usage.json() == {"character_count": 12, "character_limit": 20}


async def test_deepl_languages(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        sources = await client.get("/v2/languages")
        # The deepl library sends type=target in the body of a GET.
        targets = await client.request(
            "GET", "/v2/languages", content=urlencode({"type": "target"}), headers=FORM
        )
        query = await client.get("/v2/languages", params={"type": "target"})
        bad = await client.get("/v2/languages", params={"type": "both"})
    assert sources.json() == [
        {"language": "DE", "name": "German"},
        {"language": "EN", "name": "English"},
        {"language": "FR", "name": "French"},
    ]
    codes = [t["language"] for t in targets.json()]
    assert codes == ["DE", "EN-GB", "EN-US"]
    assert query.json() == targets.json()
    assert bad.status_code == 400


async def test_compat_routes_are_metric_labels(tmp_path: Path) -> None:
    async with client_for(tmp_path, _runtimes()) as client:
        await client.post("/v2/translate", json={"text": [EN], "target_lang": "DE"})
        await client.post("/libretranslate/translate", json={"q": EN, "source": "en"})
        text = (await client.get("/metrics")).text
    assert 'route="/v2/translate",status="200"' in text
    assert 'route="/libretranslate/translate",status="400"' in text


async def test_auto_sends_each_text_to_its_languages_model(tmp_path: Path) -> None:
    runtimes = {
        "en-de": FakeRuntime("en-de", "translation", languages=(("en",), ("de",))),
        "fr-de": FakeRuntime("fr-de", "translation", languages=(("fr",), ("de",))),
    }

    def tokens(metrics: str, model: str) -> float:
        prefix = f's2s_input_tokens_total{{model="{model}"'
        return float(next(x for x in metrics.splitlines() if x.startswith(prefix)).split()[-1])

    async with client_for(tmp_path, runtimes) as client:
        before = (await client.get("/metrics")).text  # warm-up counted already
        auto = await client.post("/translate", json={"text": [FR, EN, FR], "target_lang": "de"})
        after = (await client.get("/metrics")).text
    assert auto.status_code == 200, auto.text
    body = auto.json()
    assert [d["language"] for d in body["detected_languages"]] == ["fr", "en", "fr"]
    assert body["translations"][0] == body["translations"][2]
    assert body["model"] == "fr-de"  # the first model used
    for model in ("en-de", "fr-de"):
        assert tokens(after, model) > tokens(before, model)


# ---- pivot through English ---------------------------------------------------------------
def _pivot_runtimes() -> dict[str, Any]:
    """de->en and en->fr in separate models: de->fr only through English."""
    return {
        "de-en": FakeRuntime("de-en", "translation", languages=(("de",), ("en",))),
        "en-fr": FakeRuntime("en-fr", "translation", languages=(("en",), ("fr",))),
    }


async def test_translate_says_it_went_through_english(tmp_path: Path) -> None:
    payload = {"text": ["Guten Morgen.", "Wie geht es?"], "source_lang": "de", "target_lang": "fr"}
    async with client_for(tmp_path, _pivot_runtimes()) as client:
        pivot = await client.post("/translate", json=payload)
        english = await client.post("/translate", json={**payload, "target_lang": "en"})
        french = await client.post(
            "/translate",
            json={"text": english.json()["translations"], "source_lang": "en", "target_lang": "fr"},
        )
        streamed = await client.post("/translate", json={**payload, "stream": True})
    assert pivot.status_code == 200, pivot.text
    body = pivot.json()
    assert body["pivot"] == "en" and body["models"] == ["de-en", "en-fr"]
    assert body["model"] == "de-en"  # the first model used, as for any plan
    assert body["translations"] == french.json()["translations"]
    assert "pivot" not in english.json() and "models" not in english.json()
    done = sse_events(streamed.text)[-2]
    assert done["done"] and done["pivot"] == "en" and done["models"] == ["de-en", "en-fr"]
    assert done["translations"] == body["translations"]


async def test_compat_apis_pivot_in_their_own_formats(tmp_path: Path) -> None:
    async with client_for(tmp_path, _pivot_runtimes()) as client:
        libre = await client.post(
            "/libretranslate/translate", json={"q": "Guten Morgen.", "source": "de", "target": "fr"}
        )
        deepl = await client.post(
            "/v2/translate",
            json={"text": ["Guten Morgen."], "source_lang": "DE", "target_lang": "FR"},
        )
        languages = await client.get("/libretranslate/languages")
        targets = await client.get("/v2/languages", params={"type": "target"})
        sources = await client.get("/v2/languages")
    assert libre.status_code == 200, libre.text
    assert set(libre.json()) == {"translatedText"}
    assert deepl.status_code == 200, deepl.text
    assert deepl.json()["translations"][0]["detected_source_language"] == "DE"
    assert deepl.json()["translations"][0]["text"] == libre.json()["translatedText"]
    assert languages.json() == [
        {"code": "de", "name": "German", "targets": ["en", "fr"]},
        {"code": "en", "name": "English", "targets": ["fr"]},
        {"code": "fr", "name": "French", "targets": []},
    ]
    assert [t["language"] for t in targets.json()] == ["EN-GB", "EN-US", "FR"]
    assert [s["language"] for s in sources.json()] == ["DE", "EN"]
