"""Report tables, ratios, doc sections and plots from synthetic result documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.report import (
    add_ratios,
    engine_tables,
    gpu_section,
    main,
    replace_section,
    service_targets,
    thread_scaling,
)


def _row(label: str, backend: str, precision: str, batch: int, tps: float) -> dict[str, Any]:
    return {
        "label": label,
        "backend": backend,
        "precision": precision,
        "model": "marian-tiny",
        "search": "greedy",
        "stop": "fixed",
        "batch_size": batch,
        "tokens_per_s": tps,
        "latency_ms_p50": 10.0,
        "peak_rss_mb": 300.0,
        "identical_to_ref": 1.0,
    }


def _engine_doc() -> dict[str, Any]:
    return {
        "model": "marian-tiny",
        "max_new_tokens": 8,
        "started": "2026-01-01T00:00:00Z",
        "duration_s": 1.0,
        "command": "python -m bench.engine",
        "machine": {"cpu": "test cpu", "cores": 2, "load_avg_1m": 0.1},
        "rows": [
            _row("torch fp32 t2", "torch", "fp32", 1, 100.0),
            _row("ct2 int8 t1", "ct2", "int8", 1, 400.0),
            _row("ct2 int8 t2", "ct2", "int8", 1, 300.0),
            _row("ours int8 t2", "ours", "int8", 1, 800.0),
            {"label": "optimum int8 t2", "error": "worker timed out after 9s"},
        ],
    }


def test_ratios_use_best_ct2_int8_and_torch() -> None:
    rows = {r["label"]: r for r in add_ratios(_engine_doc()["rows"])}
    assert rows["ours int8 t2"]["vs_ct2_int8"] == pytest.approx(2.0)
    assert rows["ours int8 t2"]["vs_torch"] == pytest.approx(8.0)
    assert rows["ct2 int8 t2"]["vs_ct2_int8"] == pytest.approx(0.75)
    assert "optimum int8 t2" not in rows


def test_engine_tables_show_ratios_and_failures() -> None:
    text = engine_tables(_engine_doc())
    assert "| ours int8 t2 | 800 (2.00×, 8.00×) | 100% |" in text
    assert "optimum int8 t2: worker timed out" in text
    assert "10.0 / 300" in text


def test_service_targets_from_levels() -> None:
    def level(target: str, c: int, tps: float, p50: float) -> dict[str, Any]:
        return {"target": target, "concurrency": c, "tokens_per_s": tps, "p50_ms": p50}

    doc = {
        "offline": {"batch1_p50_ms": 20.0, "batch": 64, "tokens_per_s": 1000.0},
        "rows": [
            level("continuous", 1, 40, 22.5),
            level("continuous", 32, 600, 50),
            level("continuous", 64, 950, 60),
            level("naive", 32, 50, 900),
        ],
    }
    lines = service_targets(doc)
    assert any("95%" in line for line in lines)
    assert any("2.5 ms" in line for line in lines)
    assert any("12.00×" in line for line in lines)


def test_paired_http_overhead_replaces_the_difference_of_medians() -> None:
    doc = {
        "offline": {"batch1_p50_ms": 20.0, "batch": 64, "tokens_per_s": 1000.0},
        "rows": [{"target": "continuous", "concurrency": 1, "tokens_per_s": 40, "p50_ms": 99}],
        "http_overhead": [
            {
                "target": "continuous",
                "sentences": 24,
                "repeats": 3,
                "added_p50_ms": 1.25,
                "added_p25_ms": 0.5,
                "added_p75_ms": 2.0,
                "service_p50_ms": 21.0,
                "offline_p50_ms": 19.75,
            }
        ],
    }
    (line,) = service_targets(doc)
    assert line.startswith("p50 added by the service (HTTP, text processing, scheduling)")
    assert "at concurrency 1, continuous: +1.2 ms" in line
    assert "24 sentences" in line and "+0.5 / +2.0 ms" in line


def test_replace_section_replaces_or_appends() -> None:
    text = "# T\n\n<!-- BEGIN a -->\nold\n<!-- END a -->\n\ntail\n"
    out = replace_section(text, "a", "new")
    assert "new" in out and "old" not in out and out.endswith("tail\n")
    out = replace_section(out, "b", "bee")
    assert out.rstrip().endswith("<!-- BEGIN b -->\nbee\n<!-- END b -->")


def test_gpu_section_says_not_run() -> None:
    assert gpu_section({"ran": False, "reason": "no GPU here."}).startswith("**Not run.** no GPU")
    assert "Not run" in gpu_section(None)


def test_main_writes_doc_and_plots(tmp_path: Path) -> None:
    import json

    engine = tmp_path / "engine.json"
    engine.write_text(json.dumps(_engine_doc()))
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nprose stays\n")
    assert main(["--engine", str(engine), "--doc", str(doc), "--plots", str(tmp_path / "p")]) == 0
    text = doc.read_text()
    assert (
        "prose stays" in text and "<!-- BEGIN engine -->" in text and "<!-- BEGIN gpu -->" in text
    )
    png = tmp_path / "p" / "engine-marian-tiny-greedy-fixed.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_engine_targets_compare_ours_int8_with_ct2_and_torch() -> None:
    from bench.report import engine_targets

    doc = _engine_doc()
    doc["rows"] += [
        {**_row("torch fp32 t2", "torch", "fp32", 32, 100.0)},
        {**_row("ct2 int8 t1", "ct2", "int8", 32, 500.0)},
        {**_row("ours int8 t2", "ours", "int8", 32, 450.0)},
    ]
    lines = engine_targets(doc)
    assert any(
        "ours int8 t2, greedy fixed batch 32: 0.90× best CTranslate2 int8" in line
        and "4.50×" in line
        for line in lines
    )
    assert any(
        "batch 1: latency p50 10.0 ms vs best CTranslate2 int8 10.0 ms" in line for line in lines
    )


def test_main_writes_the_ceiling_section(tmp_path: Path) -> None:
    import json

    ceiling = tmp_path / "ceiling.json"
    row = {"batch": 32, "source_per_generated": 2.3, "macs_per_generated_token": 1.05e8}
    row |= {"bound_t1": 700.0, "bound_t2": 1300.0, "ours int8 t1": 350.0}
    document = {
        "model": "marian-full",
        "engine": "engine.json",
        "started": "2026-01-01T00:00:00Z",
        "duration_s": 3.0,
        "command": "python -m bench.ceiling",
        "machine": {"cpu": "test cpu", "cores": 2, "load_avg_1m": 0.1},
        "labels": ["ours int8 t1", "ct2 int8 t1"],
        "rows": [row],
    }
    ceiling.write_text(json.dumps(document))
    doc = tmp_path / "benchmarks.md"
    assert main(["--ceiling", str(ceiling), "--doc", str(doc), "--plots", str(tmp_path)]) == 0
    text = doc.read_text()
    assert "<!-- BEGIN ceiling -->" in text
    assert "| 32 | 2.30 | 105 | 700 | 1300 | 350 (50%) | – |" in text


def test_thread_scaling_pairs_each_round_of_one_and_two_threads() -> None:
    rows = [
        {**_row(f"ours int8 t{n}", "ours", "int8", 8, 0.0), "threads": n, "tokens_per_s_rounds": r}
        for n, r in ((1, [100.0, 200.0, 100.0]), (2, [150.0, 220.0, 190.0]))
    ]
    rows.append({**_row("ct2 int8 t2", "ct2", "int8", 8, 0.0), "threads": 2})  # no t1 pair
    table = thread_scaling({"rows": rows})
    # Within each round: 1.5, 1.1, 1.9 (not the ratio of the medians, 190 / 100).
    assert "| ours int8 | greedy fixed | 8 | 1.50× [1.10–1.90] |" in table
    assert "ct2" not in table
    assert thread_scaling({"rows": rows[:1]}) == ""
