"""Reliability under load against real servers on 127.0.0.1: overload, SIGTERM under
load, a disconnect storm, fairness next to a monster request, and an open-loop mixed load
at ~75 % of measured capacity (finding 13).

Every timing bound is a ratio to a latency measured in the same test on the same machine,
or a generous absolute limit on something that does no model work (a refusal); never a
speed claim. Each test runs for seconds to tens of seconds.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests_e2e_support import SENTENCES, Outcome, Server, metric_sum, percentile, timed_post

# timing: latencies and rates measured here are the bounds, so make test runs the file
# alone, after the parallel run (a second worker beside it would skew them).
pytestmark = [pytest.mark.slow, pytest.mark.timing]

#: A refusal does no model work and, with the queue full, no text work either (the queue
#: is checked before splitting and tokenization); what is left is 48 clients and the
#: server's event loop sharing 2 busy cores: measured 0.40 s median, 3.5 s worst with a
#: training job beside it. Generous.
REJECT_BOUND_S = 10.0
# Seconds of arrivals: a few hundred requests, enough for a p99 and for a goodput.
OPEN_LOOP_S = 15.0
OVERLOAD_S = 12.0


def _client(srv: Server, **kw: Any) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    return httpx.AsyncClient(base_url=srv.url, timeout=120, limits=limits, **kw)


def _translate(sentences: int, **options: Any) -> dict[str, Any]:
    start = random.randrange(len(SENTENCES))
    text = " ".join(SENTENCES[(start + i) % len(SENTENCES)] for i in range(sentences))
    return {"text": text, "source_lang": "en", "target_lang": "de", "options": options}


async def test_overload_accepts_what_fits_and_refuses_the_rest_fast(
    server_factory: Callable[..., Server],
) -> None:
    srv = server_factory(S2S_MODELS="tiny-bart", S2S_PRECISION="fp32", S2S_MAX_QUEUE="4")
    body = {
        "text": " ".join(SENTENCES[:3]),
        "options": {"min_new_tokens": 40, "max_new_tokens": 40},
    }
    clients, each = 48, 4

    async with _client(srv) as client:

        async def one_client() -> list[Outcome]:
            return [await timed_post(client, "/summarize", body) for _ in range(each)]

        runs = await asyncio.gather(*(one_client() for _ in range(clients)))
    outcomes = [o for run in runs for o in run]
    statuses = Counter(o.status for o in outcomes)
    print(f"\noverload: {dict(statuses)}")
    assert len(outcomes) == clients * each  # 0 lost
    assert set(statuses) <= {200, 429}, statuses  # no transport errors, nothing else
    assert statuses[200] >= 4 and statuses[429] >= clients, statuses
    accepted = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == 429]
    for o in accepted:
        assert o.body["summaries"] and o.body["summaries"][0], o.body
    for o in refused:
        assert o.body["error"]["type"] == "queue_full", o.body
        assert o.headers is not None and int(o.headers["retry-after"]) >= 1
    worst_refusal = max(o.seconds for o in refused)
    median_refusal = percentile((o.seconds for o in refused), 50)
    median_accepted = percentile((o.seconds for o in accepted), 50)
    print(f"refusal max {worst_refusal:.3f}s median {median_refusal:.3f}s")
    print(f"accepted median {median_accepted:.3f}s")
    assert worst_refusal < REJECT_BOUND_S
    assert median_refusal < median_accepted  # a refusal costs no model work


IN_FLIGHT_MARGIN_S = 1.0


async def test_sigterm_under_load_finishes_accepted_work_and_exits_0(
    server_factory: Callable[..., Server],
) -> None:
    srv = server_factory(S2S_MODELS="tiny-bart", S2S_PRECISION="fp32", S2S_DRAIN_GRACE_S="60")
    body = {
        "text": " ".join(SENTENCES[:2]),
        "options": {"min_new_tokens": 24, "max_new_tokens": 24},
    }
    signalled_at: list[float] = []

    async def one_client(client: httpx.AsyncClient) -> list[Outcome]:
        # Sends until the server refuses (503 draining) or is gone.
        out: list[Outcome] = []
        while True:
            o = await timed_post(client, "/summarize", body)
            out.append(o)
            if o.status != 200:
                return out

    # No keep-alive: every request has its own connection, so a request sent before the
    # signal can only fail by the server dropping accepted work.
    async with _client(srv, headers={"Connection": "close"}) as client:
        tasks = [asyncio.ensure_future(one_client(client)) for _ in range(16)]
        await asyncio.sleep(3)
        signalled_at.append(time.monotonic())
        srv.process.send_signal(signal.SIGTERM)
        runs = await asyncio.gather(*tasks)
    code = await asyncio.to_thread(srv.process.wait, 90)
    outcomes = [o for run in runs for o in run]
    # A request the client started just before the signal may reach the server after it
    # (connect, send, parse on busy cores): then the documented 503 is right. So "accepted
    # before the signal" means started at least IN_FLIGHT_MARGIN_S before it (CI once saw
    # a 503 for a request started 0.02 s before the signal).
    cutoff = signalled_at[0] - IN_FLIGHT_MARGIN_S
    before = [o for o in outcomes if o.sent_at < cutoff]
    after = [o for o in outcomes if o.sent_at >= signalled_at[0]]
    racing = [o for o in outcomes if cutoff <= o.sent_at < signalled_at[0]]
    for o in racing:
        assert o.status == 200 or (o.status == 503 and o.body["error"]["type"] == "draining"), o
    print(
        f"\nsigterm: before {dict(Counter(o.status for o in before))}, "
        f"after {dict(Counter((o.status, o.error) for o in after))}, exit {code}"
    )
    # Accepted before the signal: every one answered 200, none reset.
    assert before and all(o.status == 200 for o in before), [o for o in before if o.status != 200]
    # Sent after: refused with the documented JSON 503 while draining, or, once the
    # drain was over and the process gone, no connection at all.
    for o in after:
        if o.status:
            assert o.status == 503 and o.body["error"]["type"] == "draining", o
        else:
            assert o.error in ("ConnectError", "RemoteProtocolError", "ReadError"), o
    assert any(o.status == 503 for o in after)
    assert code == 0  # nothing dropped
    assert "Traceback" not in srv.log()


async def _abandon(host: str, port: int, path: str, body: bytes, after: str | float) -> None:
    """Send a request on a raw connection, then close it: after ``after`` seconds, or
    once the bytes ``after`` arrived (mid-stream)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    if isinstance(after, str):
        seen = b""
        while after.encode() not in seen:
            chunk = await asyncio.wait_for(reader.read(4096), 60)
            if not chunk:
                break
            seen += chunk
    else:
        await asyncio.sleep(after)
    writer.transport.abort()  # an RST, like a client killed mid-request


async def test_disconnect_storm_leaves_no_work_behind(
    server_factory: Callable[..., Server],
) -> None:
    srv = server_factory(S2S_MODELS="tiny-marian", S2S_PRECISION="fp32")
    host, port = srv.url.removeprefix("http://").split(":")
    slow = b'{"text": "%s", "source_lang": "en", "target_lang": "de", "options": %s}'
    sentences = " ".join(SENTENCES[:12]).encode()
    beams = b'{"num_beams": 4, "min_new_tokens": 40, "max_new_tokens": 48}'
    greedy = b'{"min_new_tokens": 40, "max_new_tokens": 48}'
    streamed = (
        b'{"text": "%s", "source_lang": "en", "target_lang": "de", "stream": true, "options": %s}'
        % (sentences, greedy)
    )
    jobs = []
    for i in range(60):
        if i % 2:
            jobs.append(_abandon(host, int(port), "/translate", streamed, "data:"))
        else:
            body = slow % (sentences, beams if i % 4 == 0 else greedy)
            jobs.append(_abandon(host, int(port), "/translate", body, random.uniform(0.05, 1.0)))
    await asyncio.gather(*jobs)
    left_at = time.monotonic()
    async with _client(srv) as client:
        while True:
            page = (await client.get("/metrics")).text
            busy = metric_sum(page, "s2s_in_flight_requests") + metric_sum(page, "s2s_queue_depth")
            if busy == 0 or time.monotonic() - left_at > 30:
                break
            await asyncio.sleep(0.1)
        settled = time.monotonic() - left_at
        print(f"\ndisconnect storm: gauges at 0 after {settled:.2f}s")
        assert busy == 0, page
        # A few seconds: the longest abandoned generation is a few hundred ms of model work.
        assert settled < 10
        assert metric_sum(page, 's2s_rejections_total{model="tiny-marian",reason="cancelled"}') > 0
        r = await client.post("/translate", json=_translate(1))
        assert r.status_code == 200 and r.json()["translations"][0]
    assert "Traceback" not in srv.log()


async def _small_latencies(client: httpx.AsyncClient, count: int) -> list[float]:
    out = []
    for _ in range(count):
        o = await timed_post(client, "/translate", _translate(1))
        assert o.status == 200, o
        out.append(o.seconds)
    return out


async def test_small_requests_stay_fast_next_to_a_monster(
    server_factory: Callable[..., Server],
) -> None:
    srv = server_factory(S2S_MODELS="tiny-marian", S2S_PRECISION="fp32")
    async with _client(srv) as client:
        await _small_latencies(client, 5)  # warm
        unloaded = percentile(await _small_latencies(client, 30), 99)
        monster = _translate(48, num_beams=8, min_new_tokens=60, max_new_tokens=64)
        big = asyncio.ensure_future(timed_post(client, "/translate", monster))
        await asyncio.sleep(0.3)
        small: list[float] = []
        while not big.done():
            small += await _small_latencies(client, 1)
        done = await big
    assert done.status == 200, done
    assert len(small) >= 10, small
    loaded = percentile(small, 99)
    bound = 5 * unloaded + 1.0
    print(
        f"\nfairness: unloaded p99 {unloaded:.3f}s, loaded p99 {loaded:.3f}s "
        f"(bound {bound:.3f}s, {len(small)} small), monster {done.seconds:.2f}s"
    )
    # Due-time order: the small request is due long before the monster (it would finish
    # alone in a fraction of the time), so it waits for at most the batch running when it
    # arrives and then leads a batch of its own options: ~2 batch times, not the whole
    # monster. 5x the unloaded p99 + 1 s covers those two batches on a busy machine.
    assert loaded <= bound
    # And the bound means something: FIFO would have made them wait for the monster.
    assert done.seconds > 2 * loaded


async def _closed_loop_capacity(
    client: httpx.AsyncClient, body: Callable[[], dict[str, Any]], seconds: float
) -> float:
    """Requests per second that 8 closed-loop clients get through in ``seconds``."""
    stop_at = time.monotonic() + seconds
    done = 0

    async def closed() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            o = await timed_post(client, "/translate", body())
            assert o.status == 200, o
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(closed() for _ in range(8)))
    return done / (time.monotonic() - started)


async def _open_loop(
    client: httpx.AsyncClient,
    body: Callable[[], dict[str, Any]],
    rate: float,
    seconds: float,
    rng: random.Random,
) -> list[Outcome]:
    """Poisson arrivals at ``rate`` per second for ``seconds``; every outcome."""
    tasks = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tasks.append(asyncio.ensure_future(timed_post(client, "/translate", body())))
        await asyncio.sleep(rng.expovariate(rate))
    return list(await asyncio.gather(*tasks))


async def test_open_loop_mixed_load_at_three_quarters_of_capacity(
    server_factory: Callable[..., Server],
) -> None:
    # Finding 13: the default batching mode under a mixed open-loop load.
    srv = server_factory(S2S_MODELS="tiny-marian", S2S_PRECISION="fp32")
    rng = random.Random(13)
    factor = 6

    def mixed() -> dict[str, Any]:
        return _translate(1 if rng.random() < 0.7 else rng.randint(4, 8))

    async with _client(srv) as client:
        for _ in range(5):
            await timed_post(client, "/translate", mixed())  # warm
        unloaded = [await timed_post(client, "/translate", mixed()) for _ in range(30)]
        assert all(o.status == 200 for o in unloaded)
        unloaded_p99 = percentile((o.seconds for o in unloaded), 99)
        bound = factor * unloaded_p99 + 1.0
        capacity = await _closed_loop_capacity(client, mixed, 6)
        # This machine's speed drifts by up to ~30 % within minutes (CPU credits, a
        # neighbour), more than the 25 % headroom. A run whose p99 misses the bound is
        # judged only if the capacity measured right after it still exceeds the offered
        # rate; otherwise the machine, not the server, ran out of room, and the load is
        # offered once more at 75 % of the new capacity.
        for attempt in (1, 2):
            rate = 0.75 * capacity
            outcomes = await _open_loop(client, mixed, rate, OPEN_LOOP_S, rng)
            failures = [o for o in outcomes if o.status != 200]
            p99 = percentile((o.seconds for o in outcomes), 99)
            print(
                f"\nopen loop {attempt}: capacity {capacity:.1f} req/s, offered {rate:.1f} "
                f"req/s, {len(outcomes)} requests, unloaded p99 {unloaded_p99:.3f}s, "
                f"loaded p99 {p99:.3f}s (bound {bound:.3f}s)"
            )
            assert not failures, Counter((o.status, o.error) for o in failures)
            if p99 <= bound or attempt == 2:
                break
            capacity_after = await _closed_loop_capacity(client, mixed, 6)
            print(f"capacity after it {capacity_after:.1f} req/s")
            if capacity_after >= rate:
                break  # the machine kept its speed: the miss is the server's
            capacity = capacity_after
    # At 75 % of the (batched) capacity a request waits for the batch running when it
    # arrives and at most a few turns of those queued with it; batching serves a queue
    # of them in little more than one's time. 6x the unloaded p99 + 1 s is generous.
    assert p99 <= bound


def _overload_sentences(rng: random.Random) -> int:
    """Sentences of one overload request: mostly paragraphs, so that ~3x the server's
    capacity in requests stays within what one client process can send."""
    return 1 if rng.random() < 0.3 else rng.randint(6, 8)


def _dialect_body(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One overload request to one of the three translation dialects."""
    text = _translate(_overload_sentences(rng))["text"]
    kind = rng.randrange(3)
    if kind == 0:
        return "/translate", {"text": text, "source_lang": "en", "target_lang": "de"}
    if kind == 1:
        return "/v2/translate", {"text": [text], "source_lang": "EN", "target_lang": "DE"}
    return "/libretranslate/translate", {"q": text, "source": "en", "target": "de"}


def _answered(path: str, body: Any) -> bool:
    """Whether a 200 body carries a translation in its dialect's shape."""
    if path == "/translate":
        return bool(body["translations"][0])
    if path == "/v2/translate":
        return bool(body["translations"][0]["text"])
    return bool(body["translatedText"])


async def test_overload_keeps_goodput_and_loses_no_accepted_request(
    server_factory: Callable[..., Server],
) -> None:
    # Finding 1: at ~3x capacity accepted requests died at their deadline (504, 500 on
    # the LibreTranslate route, streams ending in an error) because admission ignored the
    # deadline and round-robin turns made every queued request finish late together.
    timeout_s = 5.0
    srv = server_factory(
        S2S_MODELS="tiny-marian", S2S_PRECISION="fp32", S2S_DEFAULT_TIMEOUT_MS="5000"
    )
    rng = random.Random(39)
    async with _client(srv) as client:
        for _ in range(5):
            await timed_post(client, "/translate", _translate(3))  # warm
        capacity = await _closed_loop_capacity(
            client, lambda: _translate(_overload_sentences(rng)), 5
        )
        offered = 3 * capacity
        paths: list[str] = []
        tasks = []
        started = time.monotonic()
        end = started + OVERLOAD_S
        while time.monotonic() < end:
            path, body = _dialect_body(rng)
            paths.append(path)
            tasks.append(asyncio.ensure_future(timed_post(client, path, body)))
            await asyncio.sleep(rng.expovariate(offered))
        outcomes = list(await asyncio.gather(*tasks))
        elapsed = time.monotonic() - started
    statuses = Counter(o.status for o in outcomes)
    accepted = [(p, o) for p, o in zip(paths, outcomes, strict=True) if o.status == 200]
    refused = [o for o in outcomes if o.status == 429]
    goodput = len(accepted) / elapsed
    refusal_p99 = percentile((o.seconds for o in refused), 99) if refused else 0.0
    print(
        f"\noverload: capacity {capacity:.1f} req/s, offered {offered:.1f} req/s "
        f"(sent {len(outcomes) / elapsed:.1f}) for {OVERLOAD_S:.0f} s: {dict(statuses)}; goodput "
        f"{goodput:.1f} req/s; 429 p99 {refusal_p99 * 1000:.0f} ms"
    )
    lost = [
        (path, round(o.sent_at - started, 1), round(o.seconds, 2), o.status, o.error)
        for path, o in zip(paths, outcomes, strict=True)
        if o.status not in (200, 429)
    ]
    # Nothing accepted is lost: no 5xx, no 504, no transport error.
    assert not lost, lost[:20]
    assert set(statuses) <= {200, 429}, statuses
    for path, o in accepted:
        assert _answered(path, o.body), (path, o.body)
        # The server enforces the deadline (a 504 past it, counted as lost above); the
        # client's clock adds its own send and read delays (this process is the load
        # generator, running flat out): generous.
        assert o.seconds < 2 * timeout_s, o.seconds
    assert refused, statuses  # it really was past capacity
    for o in refused:
        assert o.headers is not None and int(o.headers["retry-after"]) >= 1, o.headers
    assert refusal_p99 < REJECT_BOUND_S
    # The server stays busy with work that completes. The machine is shared with the load
    # generator (and in CI possibly more): half the capacity measured just before is the
    # floor judged here; the 60 s run of bench.overload reports the ratio.
    assert goodput >= 0.5 * capacity, (goodput, capacity)
