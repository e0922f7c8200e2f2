"""Chat rendering follows the package's conventions and trims history."""

from __future__ import annotations

from service.text.chat import ChatConventions, Message, render, renderings

HISTORY = [
    Message("system", "Be nice."),
    Message("user", "Hi"),
    Message("assistant", "Hello, how are you?"),
    Message("user", " Fine, thanks. "),
]


def test_blenderbot_conventions() -> None:
    conv = ChatConventions.for_package("blenderbot", "  ", 8)
    # BlenderBot's own template: user turns start with a space, turns joined by two spaces.
    assert render(HISTORY, conv) == "Be nice.   Hi  Hello, how are you?   Fine, thanks."


def test_history_is_trimmed_to_the_last_turns() -> None:
    conv = ChatConventions.for_package("bart", "\n", 2)
    assert render(HISTORY, conv) == "Be nice.\nHello, how are you?\nFine, thanks."


def test_renderings_get_shorter_down_to_the_last_turn() -> None:
    conv = ChatConventions.for_package("bart", "|", 8)
    assert list(renderings(HISTORY, conv)) == [
        "Be nice.|Hi|Hello, how are you?|Fine, thanks.",
        "Be nice.|Hello, how are you?|Fine, thanks.",
        "Be nice.|Fine, thanks.",
    ]
