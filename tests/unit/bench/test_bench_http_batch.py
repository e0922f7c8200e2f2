"""The HTTP-vs-offline-vs-CTranslate2 batch benchmark: request body and report (no server)."""

from __future__ import annotations

from bench.http_batch import MAX_NEW, markdown, request_body, spread


def test_request_body_forces_the_same_work_as_offline() -> None:
    body = request_body(["A man.", "Two dogs."])
    assert body["text"] == ["A man.", "Two dogs."]
    assert body["options"] == {"max_new_tokens": MAX_NEW, "min_new_tokens": MAX_NEW, "num_beams": 1}


def test_markdown_judges_the_worst_round_and_names_each_ctranslate2_setting() -> None:
    rows = [
        {
            "threads": 2,
            "batch": batch,
            "offline_tokens_per_s": [500.0, 520.0, 510.0],
            "http_tokens_per_s": [480.0, 500.0, 400.0],
            "ct2_tokens_per_s": {"ct2 t1": [300.0, 310.0, 320.0], "ct2 t2": [400.0, 390.0, 410.0]},
            "ratios": [0.96, 0.96, worst],
            "ct2_ratios": [1.2, 1.28, 0.98],
        }
        for batch, worst in ((32, 0.92), (64, 0.78))
    ]
    table = markdown(
        {"command": "python -m bench.http_batch", "started": "t", "rounds": 3, "rows": rows}
    )
    assert "CTranslate2 int8 t1 tok/s | CTranslate2 int8 t2 tok/s" in table
    assert (
        "| 2 | 32 | 480 [400-500] | 510 [500-520] | 310 [300-320] | 400 [390-410] | "
        "0.96 [0.92-0.96] (met) | 1.20 [0.98-1.28] |" in table
    )
    assert "| 2 | 64 |" in table and "(missed (worst 0.78))" in table
    assert spread([1.0, 3.0, 2.0], 1) == "2.0 [1.0-3.0]"
