"""The HTTP-vs-offline batch benchmark: request body and report (no server)."""

from __future__ import annotations

from bench.http_batch import MAX_NEW, markdown, request_body, spread


def test_request_body_forces_the_same_work_as_offline() -> None:
    body = request_body(["A man.", "Two dogs."])
    assert body["text"] == ["A man.", "Two dogs."]
    assert body["options"] == {"max_new_tokens": MAX_NEW, "min_new_tokens": MAX_NEW, "num_beams": 1}


def test_markdown_judges_the_worst_round() -> None:
    rows = [
        {
            "threads": 2,
            "batch": batch,
            "offline_tokens_per_s": [500.0, 520.0, 510.0],
            "http_tokens_per_s": [480.0, 500.0, 400.0],
            "ratios": [0.96, 0.96, worst],
        }
        for batch, worst in ((32, 0.92), (64, 0.78))
    ]
    table = markdown(
        {"command": "python -m bench.http_batch", "started": "t", "rounds": 3, "rows": rows}
    )
    assert "| 2 | 32 | 510 [500-520] | 480 [400-500] | 0.96 [0.92-0.96] | met |" in table
    assert "| 2 | 64 |" in table and "missed (worst 0.78)" in table
    assert spread([1.0, 3.0, 2.0], 1) == "2.0 [1.0-3.0]"
