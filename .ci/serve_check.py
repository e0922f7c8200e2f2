"""CI: ``make serve`` on the committed packages answers translation, summarization and chat.

Starts ``make serve`` on a free loopback port, waits for ``/ready``, asks each task once,
checks the answers (a summary must be shorter than its dialogue and no copy of it, a chat
reply must not just echo the message, and the openai SDK must
get the same reply through ``/v1/chat/completions``), then stops the server with SIGTERM
and expects a clean exit. Exit status 0 when all of that holds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60
CHAT_MESSAGE = "Hello, how are you?"
# The summarizer issue's example: the answer must be shorter than it and no copy of it.
DIALOGUE = (
    "Anna: are we still meeting at 5?\n"
    "Ben: yes, at the cafe near the station.\n"
    "Anna: great, see you there."
)


def _is_copy(summary: str, text: str) -> bool:
    """Whether ``summary``'s words are a run of ``text``'s words (case and punctuation
    ignored)."""

    def words(t: str) -> str:
        return " " + " ".join(w.strip(".,!?:;").lower() for w in t.split()) + " "

    return words(summary) in words(text)


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(base: str, path: str, body: dict[str, object] | None = None) -> tuple[int, object]:
    """(status, decoded JSON body) of a GET (no body) or a JSON POST."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    """Poll /ready until 200; fail if the server exits or the timeout passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"make serve exited with {server.returncode} before it was ready")
        try:
            if call(base, "/ready")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            pass
        time.sleep(1)
    raise SystemExit(f"make serve was not ready within {READY_TIMEOUT_S} s")


# Everyday sentences in every direction of the default translator, with a word the
# translation must contain.
TRANSLATIONS = [
    ("Where is the train station?", "en", "de", "Bahnhof"),
    ("Ich habe Hunger.", "de", "en", "hungry"),
    ("Where is the train station?", "en", "fr", "gare"),
    ("Merci beaucoup.", "fr", "en", "thank"),
]


def check(base: str) -> list[str]:
    """Problems found with the three tasks (empty when all answered well)."""
    problems: list[str] = []
    status, models = call(base, "/models")
    print("/models:", json.dumps(models)[:2000])
    for text, source, target, word in TRANSLATIONS:
        status, body = call(
            base, "/translate", {"text": text, "source_lang": source, "target_lang": target}
        )
        print(f"/translate {source}->{target}:", status, body)
        got = body.get("translations", [""])[0] if isinstance(body, dict) else ""
        if status != 200 or word.lower() not in got.lower():
            problems.append(f"/translate {text!r} {source}->{target}: {status} {body}")
    status, body = call(
        base, "/translate", {"text": "Ich habe Hunger.", "source_lang": "de", "target_lang": "fr"}
    )
    print("/translate de->fr:", status, body)
    if status != 200 or not isinstance(body, dict) or body.get("pivot") != "en":
        problems.append(f"/translate de->fr (through English) answered {status} {body}")
    status, body = call(base, "/summarize", {"text": DIALOGUE})
    print("/summarize:", status, body)
    summary = body.get("summaries", [""])[0] if isinstance(body, dict) else ""
    if status != 200 or not summary.strip():
        problems.append(f"/summarize answered {status} {body}")
    elif len(summary) >= len(DIALOGUE) or _is_copy(summary, DIALOGUE):
        problems.append(
            f"/summarize gave no summary (as long as its input, or a copy): {summary!r}"
        )
    status, body = call(base, "/chat", {"messages": [{"role": "user", "content": CHAT_MESSAGE}]})
    print("/chat:", status, body)
    reply = body.get("message", {}).get("content", "") if isinstance(body, dict) else ""
    if status != 200 or not reply.strip():
        problems.append(f"/chat answered {status} {body}")
    elif reply.strip().lower() == CHAT_MESSAGE.lower():
        problems.append(f"/chat only echoed the message: {reply!r}")
    else:
        sdk_reply = openai_reply(base)
        print("/v1/chat/completions (openai SDK):", sdk_reply)
        if sdk_reply != reply:
            problems.append(f"openai SDK got {sdk_reply!r}, /chat {reply!r}")
    return problems


def openai_reply(base: str) -> str:
    """The reply the real openai SDK gets to CHAT_MESSAGE (package decoding defaults)."""
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0)
    done = client.chat.completions.create(
        model=chat_model(base),
        messages=[{"role": "user", "content": CHAT_MESSAGE}],
    )
    return done.choices[0].message.content or ""


def chat_model(base: str) -> str:
    """The name of the served chat package."""
    _, models = call(base, "/models")
    rows = models.get("models", []) if isinstance(models, dict) else []
    return next(str(m["name"]) for m in rows if m.get("task") == "chat")


def main() -> int:
    """Run the check; returns the exit status."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "S2S_DATA_DIR"}
    server = subprocess.Popen(
        ["make", "serve", "HOST=127.0.0.1", f"PORT={port}"], env=env, start_new_session=True
    )
    try:
        wait_ready(base, server)
        problems = check(base)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            problems = ["make serve did not stop within 60 s of SIGTERM"]
    for problem in problems:
        print("FAIL:", problem, file=sys.stderr)
    print("serve check:", "FAIL" if problems else "PASS")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
