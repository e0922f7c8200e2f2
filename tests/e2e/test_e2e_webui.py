"""The web page in a real browser: Debian's chromium driven by Playwright against a real
server on 127.0.0.1 serving the committed packages in models/.

One server (API keys on, continuous batching so that a chat reply streams token by
token, a small character limit) and one browser page for the whole module; the tests run
in file order and go on from the page's state (the key entered first stays in the tab).
Nothing here judges translation or summary quality (tests/unit/models does).

``S2S_SCREENSHOTS=<folder>`` writes a PNG of each state there (``make screenshots``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests_e2e_support import REPO_ROOT, Server, start_server

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "webui-test-key-1"
MAX_CHARS = 1000
TIMEOUT_MS = 60_000
SCREENSHOTS = os.environ.get("S2S_SCREENSHOTS", "")


def _served_pairs(models_dir: Path) -> set[tuple[str, str]]:
    pairs = set()
    for manifest_path in models_dir.glob("*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        if manifest["task"] == "translation":
            languages = manifest["languages"]
            pairs |= {(s, t) for s in languages["source"] for t in languages["target"] if s != t}
    return pairs


def _models_dir(root: Path) -> Path:
    """The committed packages; when none translates back (today: en->de only), also the
    translation package under a second name that claims the reverse pair, so that swap
    has a model to reach (its output is nonsense; nothing reads it)."""
    committed = REPO_ROOT / "models"
    pairs = _served_pairs(committed)
    if any((t, s) in pairs for s, t in pairs):
        return committed
    folder = root / "models"
    folder.mkdir()
    for package in committed.iterdir():
        if (package / "manifest.json").exists():
            (folder / package.name).symlink_to(package, target_is_directory=True)
    source = next(
        p
        for p in committed.iterdir()
        if (p / "manifest.json").exists()
        and json.loads((p / "manifest.json").read_text())["task"] == "translation"
    )
    manifest = json.loads((source / "manifest.json").read_text())
    (s, *_), (t, *_) = manifest["languages"]["source"], manifest["languages"]["target"]
    mirror = folder / f"mirror-{t}-{s}"
    mirror.mkdir()
    for entry in source.iterdir():
        if entry.name != "manifest.json":
            (mirror / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    manifest["name"] = mirror.name
    manifest["languages"] = {"source": [t], "target": [s], "tokens": {}}
    manifest["description"] = f"Test stand-in: {source.name} labelled {t}->{s}."
    (mirror / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("webui")
    srv = start_server(
        _models_dir(root),
        root / "server.log",
        S2S_API_KEYS=KEY,
        S2S_BATCH_MODE="continuous",
        S2S_MAX_CHARS=str(MAX_CHARS),
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    return []


@pytest.fixture(scope="module")
def page(ui_server: Server, requests_seen: list[str]) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make system-deps installs it)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 780})
        context.set_default_timeout(TIMEOUT_MS)
        context.on("request", lambda request: requests_seen.append(request.url))
        page = context.new_page()
        page.goto(ui_server.url + "/")
        yield page
        context.close()
        browser.close()


def _shot(page: Any, name: str) -> None:
    """A screenshot of the viewport, as a 128-colour PNG (a fraction of the bytes)."""
    if not SCREENSHOTS:
        return
    path = Path(SCREENSHOTS) / f"webui-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    try:
        from PIL import Image
    except ImportError:  # the bench extra brings Pillow; without it the PNG stays as taken
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128)
    small.save(path, optimize=True)


def _submit(page: Any, field: str) -> None:
    page.locator(field).press("Control+Enter")


def _tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_first_paint_and_key_prompt(page: Any) -> None:
    paint = page.evaluate(
        "() => Object.fromEntries(performance.getEntriesByType('paint')"
        ".map(e => [e.name, e.startTime]))"
    )
    navigation = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd,"
        " bytes: n.transferSize}; }"
    )
    print(f"\nweb page timing (ms since navigation start): {paint} {navigation}")
    expect = playwright_api.expect
    expect(page.locator("#server-state")).to_contain_text("Ready")
    expect(page.locator("#key-box")).to_be_visible()
    page.get_by_label("Key", exact=True).fill("not-the-key-1")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-status")).to_have_text("That key was refused.")
    _shot(page, "key")
    page.get_by_label("Key", exact=True).fill(KEY)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#key-status")).to_have_text("Key accepted for this tab.")
    assert page.evaluate("() => sessionStorage.getItem('s2s-api-key')") == KEY
    # The key never lands in the page's markup.
    assert KEY not in page.content()


def test_translate_with_auto_detect(page: Any) -> None:
    expect = playwright_api.expect
    _tab(page, "Translate")
    expect(page.get_by_label("From", exact=True)).to_have_value("auto")
    text = "A man in a blue shirt is riding a bike down the street."
    page.get_by_label("Text", exact=True).fill(text)
    expect(page.locator("#tr-count")).to_have_text(f"{len(text)} / {MAX_CHARS} characters")
    _submit(page, "#tr-input")
    expect(page.locator("#tr-detected")).to_contain_text("Detected: English")
    expect(page.locator("#tr-detected")).to_contain_text("% confidence")
    expect(page.locator("#tr-model")).to_contain_text("Model: ")
    assert page.get_by_label("Translation", exact=True).input_value().strip()
    _shot(page, "translate")


def test_swap_translates_back(page: Any) -> None:
    expect = playwright_api.expect
    first_output = page.get_by_label("Translation", exact=True).input_value()
    target = page.get_by_label("To", exact=True).input_value()
    expect(page.locator("#tr-swap")).to_be_enabled()
    page.get_by_role("button", name="Swap languages").click()
    expect(page.get_by_label("From", exact=True)).to_have_value(target)
    expect(page.get_by_label("To", exact=True)).to_have_value("en")
    expect(page.get_by_label("Text", exact=True)).to_have_value(first_output)
    expect(page.get_by_label("Translation", exact=True)).to_have_value("")
    with page.expect_response("**/translate") as answer:
        page.get_by_role("button", name="Translate").click()
    body = json.loads(answer.value.request.post_data or "{}")
    assert (body["source_lang"], body["target_lang"]) == (target, "en")
    assert answer.value.status == 200
    expect(page.get_by_label("Translation", exact=True)).not_to_have_value("")


def test_html_translation_keeps_the_markup(page: Any) -> None:
    expect = playwright_api.expect
    page.get_by_label("From", exact=True).select_option("en")
    page.get_by_label("HTML (translate the text, keep the markup)", exact=True).check()
    page.get_by_label("Text", exact=True).fill("<p>A dog runs on the <b>beach</b>.</p>")
    page.get_by_role("button", name="Translate").click()
    output = page.get_by_label("Translation", exact=True)
    expect(output).to_have_value(_re(r"^<p>.*<b>.*</b>.*</p>$"))
    page.get_by_label("HTML (translate the text, keep the markup)", exact=True).uncheck()
    page.get_by_role("button", name="Copy translation").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def test_over_long_text_shows_the_servers_413(page: Any) -> None:
    expect = playwright_api.expect
    page.get_by_label("Text", exact=True).fill("a" * (MAX_CHARS + 1))
    expect(page.locator("#tr-count")).to_have_class(_re(r"\bover\b"))
    page.get_by_role("button", name="Translate").click()
    error = page.locator("#tr-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Too large for this server")
    expect(error).to_contain_text(f"at most {MAX_CHARS}")
    _shot(page, "error")


def test_busy_and_draining_answers_are_readable(page: Any) -> None:
    """429 with Retry-After and 503 draining, answered by a stand-in for the server (a
    real one is hard to catch in that state at the right moment)."""
    expect = playwright_api.expect
    answers = [
        (429, {"Retry-After": "7"}, {"type": "queue_full", "message": "the queue is full"}),
        (503, {"Retry-After": "1"}, {"type": "draining", "message": "the server is shutting"}),
    ]
    expected = ["busy (queue_full): the queue is full. Try again in 7 s.", "shutting down"]
    page.get_by_label("Text", exact=True).fill("A girl reads a book.")
    for (status, headers, error), words in zip(answers, expected, strict=True):
        page.route("**/translate", _answer(status, headers, {"error": error}))
        page.get_by_role("button", name="Translate").click()
        expect(page.locator("#tr-error")).to_contain_text(words)
        page.unroute("**/translate")


def _answer(status: int, headers: dict[str, str], body: Any) -> Any:
    def fulfill(route: Any) -> None:
        route.fulfill(status=status, headers=headers, json=body)

    return fulfill


def test_summary(page: Any) -> None:
    expect = playwright_api.expect
    _tab(page, "Summarize")
    source = page.get_by_label("Text to summarize", exact=True)
    expect(source).to_have_value(_re(r"^Anna: "))
    _submit(page, "#sum-input")
    expect(page.locator("#sum-lengths")).to_contain_text("summary")
    lengths = page.locator("#sum-lengths").inner_text()
    assert f"Input {len(source.input_value())} characters" in lengths
    assert page.get_by_label("Summary", exact=True).input_value().strip()
    _shot(page, "summarize")


def _last_reply(page: Any) -> Any:
    return page.locator("#chat-log li.assistant").last


def test_chat_streams_and_keeps_history(page: Any) -> None:
    expect = playwright_api.expect
    _tab(page, "Chat")
    expect(page.get_by_label("Model", exact=True)).not_to_have_value("")
    page.get_by_label("Message", exact=True).fill("Hello! How are you today?")
    _submit(page, "#chat-input")
    reply = _last_reply(page)
    expect(reply).not_to_have_attribute("aria-busy", "true")
    expect(reply.locator(".said")).not_to_be_empty()
    pieces = int(reply.locator(".said").get_attribute("data-pieces") or 0)
    assert pieces > 1, f"the reply came in {pieces} piece(s), not streamed"
    page.get_by_label("Message", exact=True).fill("What do you want to do this weekend?")
    with page.expect_request("**/v1/chat/completions") as second:
        _submit(page, "#chat-input")
    body = json.loads(second.value.post_data or "{}")
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["stream"] is True
    assert second.value.headers["authorization"] == f"Bearer {KEY}"
    expect(_last_reply(page)).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#chat-log li")).to_have_count(4)
    _shot(page, "chat")


def test_stop_aborts_a_reply(page: Any) -> None:
    """A reply held back by the browser (never answered) is stopped by the Stop button."""
    expect = playwright_api.expect
    held: list[Any] = []

    def hold(route: Any) -> None:
        held.append(route)

    page.route("**/v1/chat/completions", hold)
    page.get_by_label("Message", exact=True).fill("Tell me a long story.")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#chat-log li.assistant .stopped").last).to_have_text("stopped")
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    page.unroute("**/v1/chat/completions")
    assert held, "the request was made"


def test_models_panel(page: Any) -> None:
    expect = playwright_api.expect
    _tab(page, "Models")
    cards = page.locator("#models-list article")
    expect(cards.first).to_be_visible()
    names = cards.locator("h3").all_inner_texts()
    committed = {p.parent.name for p in (REPO_ROOT / "models").glob("*/manifest.json")}
    assert committed and committed <= set(names)
    text = page.locator("#models-list").inner_text()
    assert "Precision" in text and "Provider" in text and "CPUExecutionProvider" in text
    _shot(page, "models")


def test_phone_width(page: Any) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for tab in ("Translate", "Summarize", "Chat", "Models"):
            _tab(page, tab)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, f"{tab}: the page is {width} px wide on a 390 px screen"
        _tab(page, "Translate")
        page.evaluate("() => window.scrollTo(0, 0)")
        _shot(page, "phone")
    finally:
        page.set_viewport_size({"width": 1100, "height": 780})


def test_tabs_follow_the_arrow_keys(page: Any) -> None:
    expect = playwright_api.expect
    _tab(page, "Translate")
    page.get_by_role("tab", name="Translate").press("ArrowRight")
    summarize = page.get_by_role("tab", name="Summarize")
    expect(summarize).to_be_focused()
    expect(summarize).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-summarize")).to_be_visible()
    summarize.press("ArrowLeft")
    expect(page.locator("#panel-translate")).to_be_visible()
    # The selected tab is the one tab stop of the list; Tab goes on to the first field.
    page.keyboard.press("Tab")
    expect(page.get_by_label("From", exact=True)).to_be_focused()


def test_every_control_has_a_label(page: Any) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.textContent.trim())
            .map(el => el.id || el.outerHTML)"""
    )
    assert unlabelled == []


def test_no_request_leaves_the_server(ui_server: Server, requests_seen: list[str]) -> None:
    own = urlsplit(ui_server.url).netloc
    assert any(url.endswith("/v1/chat/completions") for url in requests_seen)
    foreign = [
        url
        for url in requests_seen
        if urlsplit(url).scheme not in ("data", "about") and urlsplit(url).netloc != own
    ]
    assert foreign == []
