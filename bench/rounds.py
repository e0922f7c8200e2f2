"""Interleaved rounds: the order backends run in, and what the rounds add up to.

A benchmark that runs backend A to the end and then backend B measures the machine's
drift as much as the backends (this 2-vCPU VM moves single cells by up to ±25 % between
runs). ``bench.engine --rounds N`` runs every backend once per round, alternating the
order (A B, B A, A B ...), and keeps each round's rows; this module folds them into one
row per backend and cell (median tokens/s, the min-max across rounds) and computes each
ratio *within* a round before taking the spread, so a lead only counts when the whole
min-max range of the ratio is above 1.0.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]
CellKey = tuple[str, str, str, int]


def round_order(specs: Sequence[str], round_index: int) -> list[str]:
    """The backends of round ``round_index`` (0-based): forward on even rounds, reversed
    on odd ones, so no backend always runs first (cold caches) or last (warm machine)."""
    ordered = list(specs)
    return ordered if round_index % 2 == 0 else ordered[::-1]


def cell_key(row: Row) -> CellKey:
    """The cell a row measures: model, search, stopping rule, batch size."""
    return (row["model"], row["search"], row["stop"], int(row["batch_size"]))


def _best_ct2_int8(rows: Sequence[Row]) -> dict[tuple[int, CellKey], float]:
    """Per (round, cell): the faster CTranslate2 int8 thread setting's tokens/s."""
    best: dict[tuple[int, CellKey], float] = {}
    for row in rows:
        if row.get("backend") == "ct2" and row.get("precision") == "int8":
            key = (int(row["round"]), cell_key(row))
            best[key] = max(best.get(key, 0.0), float(row["tokens_per_s"]))
    return best


def fold_rounds(rows: Sequence[Row]) -> list[Row]:
    """One row per (label, cell) out of per-round rows (each with a ``round`` field).

    ``tokens_per_s`` becomes the median over rounds, with ``tokens_per_s_min`` / ``_max``
    and ``rounds``; ``latency_ms_p50`` and ``peak_rss_mb`` are medians too. When the same
    round measured CTranslate2 int8, ``ratio_ct2_int8_rounds`` holds that round's ratio to
    its best thread setting, and ``ratio_ct2_int8_min`` / ``_max`` / ``_median`` the spread.
    Rows without a measurement (errors, skips) pass through once per label and cell.
    """
    measured = [r for r in rows if "tokens_per_s" in r]
    best = _best_ct2_int8(measured)
    groups: dict[tuple[str, CellKey], list[Row]] = {}
    for row in measured:
        groups.setdefault((row["label"], cell_key(row)), []).append(row)
    folded: list[Row] = []
    for (_, key), group in groups.items():
        speeds = [float(r["tokens_per_s"]) for r in group]
        ratios = [
            float(r["tokens_per_s"]) / best[(int(r["round"]), key)]
            for r in group
            if best.get((int(r["round"]), key))
        ]
        first = group[0]
        row = {
            **{k: v for k, v in first.items() if k not in ("round", "outputs")},
            "tokens_per_s": statistics.median(speeds),
            "tokens_per_s_min": min(speeds),
            "tokens_per_s_max": max(speeds),
            "tokens_per_s_rounds": speeds,
            "rounds": len(group),
            "latency_ms_p50": statistics.median(float(r["latency_ms_p50"]) for r in group),
            "peak_rss_mb": statistics.median(float(r["peak_rss_mb"]) for r in group),
        }
        if "outputs" in group[-1]:
            row["outputs"] = group[-1]["outputs"]
        if ratios:
            row["ratio_ct2_int8_rounds"] = ratios
            row["ratio_ct2_int8_median"] = statistics.median(ratios)
            row["ratio_ct2_int8_min"] = min(ratios)
            row["ratio_ct2_int8_max"] = max(ratios)
        folded.append(row)
    seen = {(r["label"], cell_key(r)) for r in measured}
    for row in rows:
        if "tokens_per_s" in row:
            continue
        failed = (row.get("label", ""), cell_key(row) if "search" in row else ("", "", "", 0))
        if failed not in seen:
            seen.add(failed)
            folded.append({k: v for k, v in row.items() if k != "round"})
    return folded


def lead_verdict(row: Row) -> str:
    """Whether a folded row's lead over CTranslate2 int8 holds in every round."""
    low, high = row.get("ratio_ct2_int8_min"), row.get("ratio_ct2_int8_max")
    if low is None or high is None:
        return "no CTranslate2 int8 in the same rounds"
    if low > 1.0:
        return "lead in every round"
    if high < 1.0:
        return "behind in every round"
    return "no lead: the rounds disagree"
