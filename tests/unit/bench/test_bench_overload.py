"""bench.overload: the request mix, how outcomes are classified, and the summary's targets."""

from __future__ import annotations

import argparse
import json

from bench.overload import ROUTES, Call, Result, _classify_plain, build_calls, summarize


def test_the_mix_covers_every_route_with_bodies_of_their_dialect() -> None:
    calls = build_calls(400, seed=1)
    assert {c.route for c in calls} == set(ROUTES)
    assert build_calls(50, seed=1) == calls[:50]  # seeded
    by_path = {c.path for c in calls}
    assert by_path == {
        "/translate",
        "/v2/translate",
        "/libretranslate/translate",
        "/v1/chat/completions",
        "/summarize",
    }
    assert any(c.stream for c in calls) and not all(c.stream for c in calls)


def _plain(route: str, status: int, body: object, retry_after: str = "") -> Result:
    result = Result(route, 0.0, status=status, retry_after=retry_after)
    _classify_plain(result, Call(route, "/x", {}, False), json.dumps(body).encode())
    return result


def test_a_refusal_counts_only_with_a_retry_after() -> None:
    assert _plain("deepl", 429, {"message": "busy"}, "2").outcome == "refused"
    assert _plain("deepl", 429, {"message": "busy"}).outcome == "lost"


def test_an_answer_needs_content_in_the_routes_shape() -> None:
    assert _plain("libretranslate", 200, {"translatedText": "Hallo"}).outcome == "answered"
    assert _plain("libretranslate", 200, {"translatedText": ""}).outcome == "lost"
    assert _plain("summarize", 504, {"error": {"type": "timeout"}}).outcome == "lost"


def test_goodput_counts_answers_within_the_window_and_targets_follow() -> None:
    args = argparse.Namespace(seconds=10.0, factor=3.0)
    results = [Result("translate", float(i), 200, 0.5, "answered") for i in range(9)]
    results.append(Result("translate", 9.0, 200, 5.0, "answered"))  # answered after the window
    results.append(Result("deepl", 1.0, 429, 0.05, "refused", retry_after="1"))
    summary = summarize(results, capacity=1.0, args=args, sending_s=9.0)
    assert summary["goodput_per_s"] == 0.9
    assert summary["targets"] == {
        "0 accepted lost": True,
        "goodput >= 90 % of capacity": True,
        "429 p99 <= 100 ms": True,
    }
    results.append(Result("summarize", 2.0, 504, 60.0, "lost"))
    assert not summarize(results, 1.0, args, 9.0)["targets"]["0 accepted lost"]  # type: ignore[index]
