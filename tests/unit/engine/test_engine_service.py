"""The model service: texts in, texts or deltas out; the heavy text work off the event loop."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence

import pytest

from service.engine import (
    CallContext,
    Engine,
    EngineConfig,
    GenerationOptions,
    InputTooLargeError,
    ModelService,
    OptionsRejectedError,
    TextDelta,
)
from service.text import sentences
from service.text.chat import Message
from tests.support.fake_runtime import FakeOptions, FakeRuntime, expected


@pytest.fixture
async def service() -> AsyncIterator[ModelService]:
    runtime = FakeRuntime("fake-chat", "chat")
    model = ModelService("fake-chat", runtime, Engine(runtime, EngineConfig(max_wait_ms=0)))
    await model.start()
    yield model
    await model.stop(1)


def _reply(runtime: FakeRuntime, text: str, **opts: int) -> str:
    ids = runtime.encode_texts([text])[0]
    return runtime.decode(expected(ids, FakeOptions(**opts))[0])


async def test_translate_splits_joins_and_runs_text_work_off_the_loop(
    service: ModelService, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.current_thread()
    seen: list[bool] = []
    split, encode = sentences.split, service.runtime.encode_texts

    def watched_split(text: str, language: str = "en") -> sentences.Segmented:
        seen.append(threading.current_thread() is not loop_thread)
        return split(text, language)

    def watched_encode(texts: Sequence[str], **kw: str | None) -> list[list[int]]:
        seen.append(threading.current_thread() is not loop_thread)
        return encode(texts, **kw)

    monkeypatch.setattr(sentences, "split", watched_split)
    monkeypatch.setattr(service.runtime, "encode_texts", watched_encode)
    text = "One here.  Two there.\n\nThree."
    (result,) = await service.translate([text], "en", "de", GenerationOptions(), CallContext())
    assert seen and all(seen)
    rt = service.runtime
    assert isinstance(rt, FakeRuntime)
    seg = split(text)
    assert result.text == sentences.join(seg, [_reply(rt, s) for s in seg.sentences])


async def test_stream_translate_adds_up_and_ends_each_text_with_its_result(
    service: ModelService,
) -> None:
    texts = ["A b.  C d.\n", "E."]
    whole = await service.translate(texts, "en", "de", GenerationOptions(), CallContext())
    stream = await service.stream_translate(texts, "en", "de", GenerationOptions(), CallContext())
    deltas: list[TextDelta] = [d async for d in stream]
    for i, result in enumerate(whole):
        assert "".join(d.text for d in deltas if d.index == i) == result.text
        last = [d for d in deltas if d.index == i][-1]
        assert last.result is not None and last.result.text == result.text


async def test_too_long_input_names_the_limit_before_any_stream(service: ModelService) -> None:
    long = [Message("user", "x" * 100)]
    with pytest.raises(InputTooLargeError) as info:
        await service.chat(long, GenerationOptions(), CallContext())
    assert info.value.limit_tokens == 64
    with pytest.raises(InputTooLargeError):
        await service.stream_chat(long, GenerationOptions(), CallContext())


async def test_a_summary_of_a_text_over_the_window_joins_its_chunks_summaries(
    service: ModelService,
) -> None:
    rt = service.runtime
    assert isinstance(rt, FakeRuntime)
    result = await service.summarize(["x" * 100, "short"], GenerationOptions(), CallContext())
    first = [_reply(rt, "x" * 56), _reply(rt, "x" * 44)]  # chunks of the fake's budget
    assert [r.text for r in result] == [" ".join(first), _reply(rt, "short")]
    deltas = await service.stream_summarize(["x" * 100], GenerationOptions(), CallContext())
    assert "".join([d.text async for d in deltas]) == " ".join(first)


async def test_invalid_options_are_typed(service: ModelService) -> None:
    with pytest.raises(OptionsRejectedError):
        await service.summarize(["x"], GenerationOptions(num_return_sequences=2), CallContext())


async def test_chat_keeps_the_recent_turns_that_fit(service: ModelService) -> None:
    history = [Message("user", "o" * 70), Message("assistant", "ok"), Message("user", "Hi")]
    result = await service.chat(history, GenerationOptions(), CallContext())
    rt = service.runtime
    assert isinstance(rt, FakeRuntime)
    # The whole history is over the fake's 64 tokens; the last two turns fit.
    assert result.text == _reply(rt, "ok\nHi")
    with pytest.raises(InputTooLargeError):
        await service.chat([Message("user", "o" * 80)], GenerationOptions(), CallContext())


async def test_length_finish_reason_comes_from_the_search(service: ModelService) -> None:
    (result,) = await service.summarize(["OOO"], GenerationOptions(max_new_tokens=3), CallContext())
    assert result.finish_reasons == ["length"]
