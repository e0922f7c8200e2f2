"""Structured logs: one JSON object per line with the request id and extras."""

from __future__ import annotations

import json
import logging

from service.api.logs import JsonFormatter, TextFormatter, request_id_var, setup_logging


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("service.access", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_request_id_and_extras() -> None:
    line = JsonFormatter().format(
        _record(
            "POST /translate 200",
            request_id="abc",
            route="/translate",
            status=200,
            color_message="\x1b[1mPOST\x1b[0m",
        )
    )
    data = json.loads(line)
    assert data["message"] == "POST /translate 200" and data["level"] == "info"
    assert data["request_id"] == "abc" and data["route"] == "/translate" and data["status"] == 200
    assert "color_message" not in data and data["time"].endswith("+00:00")


def test_setup_logging_adds_the_current_request_id(capsys: object) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("json", "info")
    token = request_id_var.set("req-42")
    try:
        logging.getLogger("service.test").info("hello", extra={"model": "m"})
    finally:
        request_id_var.reset(token)
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("uvicorn.access").disabled = False
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    data = json.loads(err.strip().splitlines()[-1])
    assert data["request_id"] == "req-42" and data["model"] == "m"


def test_text_format_appends_extras() -> None:
    record = _record("ready", request_id="r1", model="tiny")
    assert TextFormatter().format(record).endswith("[r1] ready model=tiny")
