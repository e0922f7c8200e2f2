"""Tables (Markdown) and plots (PNG) from the benchmark result documents.

Reads the JSON documents of ``bench.engine``, ``bench.load`` and ``bench.gpu`` and
rewrites the generated sections of ``docs/benchmarks.md`` (between ``<!-- BEGIN name -->``
and ``<!-- END name -->`` markers; the hand-written text around them stays) and the
plots in ``docs/benchmarks/``.

    python -m bench.report --engine .cache/bench/engine.json --load .cache/bench/load.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.rounds import lead_verdict

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
PLOTS = REPO / "docs" / "benchmarks"
Row = dict[str, Any]


def cell_key(row: Row) -> tuple[str, str, str, int]:
    """The cell a row belongs to: model, search, stopping rule, batch size."""
    return (row["model"], row["search"], row["stop"], int(row["batch_size"]))


def measured(rows: Sequence[Row]) -> list[Row]:
    """Rows that hold a measurement (not skipped, not a failed worker)."""
    return [r for r in rows if "tokens_per_s" in r]


def add_ratios(rows: Sequence[Row]) -> list[Row]:
    """Copies of the measured rows with ``vs_ct2_int8`` (tokens/s over the best CTranslate2
    int8 thread setting in the same cell) and ``vs_torch`` (over the best PyTorch fp32)."""
    best_ct2: dict[tuple[str, str, str, int], float] = {}
    torch: dict[tuple[str, str, str, int], float] = {}
    for row in measured(rows):
        key = cell_key(row)
        if row["backend"] == "ct2" and row["precision"] == "int8":
            best_ct2[key] = max(best_ct2.get(key, 0.0), row["tokens_per_s"])
        if row["backend"] == "torch" and row["precision"] == "fp32":
            torch[key] = max(torch.get(key, 0.0), row["tokens_per_s"])
    out = []
    for row in measured(rows):
        key = cell_key(row)
        ct2, pt = best_ct2.get(key), torch.get(key)
        out.append(
            {
                **row,
                "vs_ct2_int8": row["tokens_per_s"] / ct2 if ct2 else None,
                "vs_torch": row["tokens_per_s"] / pt if pt else None,
            }
        )
    return out


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _speed_cell(row: Row) -> str:
    """tokens/s (x CTranslate2 int8, x PyTorch); with rounds, the median and its
    min-max, and the ratio's median and min-max taken within each round."""
    if "tokens_per_s_min" not in row:
        return (
            f"{_num(row['tokens_per_s'])} ({_ratio(row['vs_ct2_int8'])}, {_ratio(row['vs_torch'])})"
        )
    speed = (
        f"{_num(row['tokens_per_s'])} [{_num(row['tokens_per_s_min'])}–"
        f"{_num(row['tokens_per_s_max'])}]"
    )
    if row.get("ratio_ct2_int8_median") is None:
        return f"{speed} ({_ratio(row['vs_torch'])} PyTorch)"
    ratio = (
        f"{row['ratio_ct2_int8_median']:.2f}× [{row['ratio_ct2_int8_min']:.2f}–"
        f"{row['ratio_ct2_int8_max']:.2f}]"
    )
    return f"{speed} ({ratio}, {_ratio(row['vs_torch'])})"


def engine_tables(document: dict[str, Any]) -> str:
    """One throughput table and one latency/memory table per (search, stopping rule)."""
    rows = add_ratios(document["rows"])
    failed = [r for r in document["rows"] if "error" in r or "skipped" in r]
    batches = sorted({int(r["batch_size"]) for r in rows})
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["search"], row["stop"]), []).append(row)
    parts = []
    for (search, stop), group in groups.items():
        labels = list(dict.fromkeys(r["label"] for r in group))
        by = {(r["label"], int(r["batch_size"])): r for r in group}
        stop_text = (
            f"fixed length ({document['max_new_tokens']} new tokens)"
            if stop == "fixed"
            else f"natural stopping (max {document['max_new_tokens']})"
        )
        parts.append(f"#### {document['model']}: {search}, {stop_text}\n")
        rounds = document.get("rounds")
        parts.append(
            "Generated tokens/s (× best CTranslate2 int8, × PyTorch fp32)"
            + (
                f"; median [min–max] over {rounds} interleaved rounds, the CTranslate2 "
                "ratio taken within each round:\n"
                if rounds
                else ":\n"
            )
        )
        head = "| backend | " + " | ".join(f"batch {b}" for b in batches) + " | same as ref |"
        parts += [head, "|" + "---|" * (len(batches) + 2)]
        for label in labels:
            cells = []
            agree = []
            for b in batches:
                r = by.get((label, b))
                if r is None:
                    cells.append("–")
                    continue
                cells.append(_speed_cell(r))
                if r.get("identical_to_ref") is not None:
                    agree.append(r["identical_to_ref"])
            same = f"{min(agree):.0%}" if agree else "–"
            parts.append(f"| {label} | " + " | ".join(cells) + f" | {same} |")
        parts.append("\nLatency per batch call, p50 ms / peak RSS MiB:\n")
        parts += [
            "| backend | " + " | ".join(f"batch {b}" for b in batches) + " |",
            "|" + "---|" * (len(batches) + 1),
        ]
        for label in labels:
            cells = []
            for b in batches:
                r = by.get((label, b))
                cells.append(
                    "–"
                    if r is None
                    else f"{_num(r['latency_ms_p50'], 1)} / {_num(r['peak_rss_mb'])}"
                )
            parts.append(f"| {label} | " + " | ".join(cells) + " |")
        parts.append("")
    if failed:
        parts.append("Not measured:\n")
        for r in failed:
            where = f" {r.get('search', '')} {r.get('stop', '')} batch {r.get('batch_size', '')}"
            parts.append(
                f"- {r['label']}{where if 'search' in r else ''}: "
                f"{r.get('error') or r.get('skipped')}"
            )
        parts.append("")
    return "\n".join(parts)


def engine_targets(document: dict[str, Any], label: str = "ours") -> list[str]:
    """The engine targets for ``label`` (a label prefix: every variant of our runtime),
    each with the measured value.

    With interleaved rounds: >= 1.3x the best CTranslate2 int8 in every greedy cell and
    >= 1.0x in every beam cell (issue 17), judged on
    the ratio's min-max over rounds (``bench.rounds.lead_verdict``). Without: the older
    single-run targets (>= 2x CTranslate2 and >= 4x PyTorch at batch 16-64, batch-1
    latency <= CTranslate2's)."""
    if document.get("rounds"):
        return _round_targets(document, label)
    rows = add_ratios(document["rows"])
    lines = []
    for row in rows:
        if not row["label"].startswith(label):
            continue
        where = f"{row['label']}, {row['search']} {row['stop']} batch {row['batch_size']}"
        if row["batch_size"] >= 16 and row["vs_ct2_int8"] is not None:
            lines.append(
                f"{where}: {row['vs_ct2_int8']:.2f}× best CTranslate2 int8 (target ≥ 2×), "
                f"{_ratio(row['vs_torch'])} PyTorch fp32 (target ≥ 4×)"
            )
        if row["batch_size"] == 1:
            ct2 = [
                r["latency_ms_p50"]
                for r in rows
                if r["backend"] == "ct2"
                and r["precision"] == "int8"
                and cell_key(r) == cell_key(row)
            ]
            if ct2:
                lines.append(
                    f"{where}: latency p50 {row['latency_ms_p50']:.1f} ms vs best CTranslate2 "
                    f"int8 {min(ct2):.1f} ms (target ≤)"
                )
    return lines


ROUND_TARGET = 1.3
BEAM_ROUND_TARGET = 1.0


def _round_targets(document: dict[str, Any], label: str) -> list[str]:
    lines = []
    for row in measured(document["rows"]):
        if not row["label"].startswith(label) or row.get("ratio_ct2_int8_min") is None:
            continue
        low = row["ratio_ct2_int8_min"]
        target = BEAM_ROUND_TARGET if row["search"].startswith("beam") else ROUND_TARGET
        verdict = "met in every round" if low >= target else "missed"
        lines.append(
            f"{row['label']}, {row['search']} {row['stop']} batch {row['batch_size']}: "
            f"{row['ratio_ct2_int8_median']:.2f}× [{low:.2f}–{row['ratio_ct2_int8_max']:.2f}] "
            f"best CTranslate2 int8 (target ≥ {target}×: {verdict}; {lead_verdict(row)})"
        )
    return lines


def thread_scaling(document: dict[str, Any]) -> str:
    """Per backend and cell measured at 1 and 2 threads in interleaved rounds: tokens/s at 2
    threads over tokens/s at 1, taken within each round (median [min-max]); "" when the
    document has no such pair."""
    rows = [r for r in measured(document["rows"]) if r.get("tokens_per_s_rounds")]
    by_key = {(r["backend"], r["precision"], int(r["threads"]), cell_key(r)): r for r in rows}
    lines = []
    for (backend, precision, threads, cell), row in by_key.items():
        single = by_key.get((backend, precision, 1, cell))
        if threads != 2 or single is None:
            continue
        ratios = [
            two / one
            for two, one in zip(
                row["tokens_per_s_rounds"], single["tokens_per_s_rounds"], strict=True
            )
        ]
        lines.append(
            f"| {backend} {precision} | {cell[1]} {cell[2]} | {cell[3]} | "
            f"{statistics.median(ratios):.2f}× [{min(ratios):.2f}–{max(ratios):.2f}] |"
        )
    if not lines:
        return ""
    return (
        "Scaling with threads: tokens/s at 2 threads over tokens/s at 1, within each round "
        "(median [min–max]):\n\n| backend | search | batch | 2 threads / 1 |\n|---|---|---|---|\n"
        + "\n".join(lines)
        + "\n\n"
    )


def _target_list(lines: list[str]) -> str:
    if not lines:
        return ""
    return "Engine targets (our runtime int8):\n\n" + "".join(f"- {x}\n" for x in lines) + "\n"


def run_header(document: dict[str, Any]) -> str:
    """When, where and how a document was measured."""
    m = document["machine"]
    return (
        f"Measured {document['started']} ({document['duration_s']:.0f} s), {m['cpu']}, "
        f"{m['cores']} cores usable, load average at the end {m['load_avg_1m']}. "
        f"Package: `{document.get('package', '?')}`. Command: `{document['command']}`\n"
    )


def load_tables(document: dict[str, Any]) -> str:
    """The concurrency sweep table and the service targets derived from it."""
    rows = document["rows"]
    offline = document["offline"]
    parts = [
        f"Offline engine (same sentences, no HTTP): batch-1 p50 "
        f"{offline['batch1_p50_ms']:.1f} ms; batch {offline['batch']}: "
        f"{offline['tokens_per_s']:.1f} tokens/s.\n",
        "| target | concurrency | answered | errors | req/s | tokens/s | p50 ms | p95 ms "
        "| p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        parts.append(
            f"| {r['target']} | {r['concurrency']} | {r['requests']} | "
            f"{r['errors'] + r['unfinished']} | {r['requests_per_s']:.2f} | "
            f"{r['tokens_per_s']:.1f} | {_num(r['p50_ms'], 1)} | {_num(r['p95_ms'], 1)} | "
            f"{_num(r['p99_ms'], 1)} |"
        )
    parts += ["", "Service targets:", ""]
    parts += [f"- {line}" for line in service_targets(document)]
    return "\n".join(parts) + "\n"


def _level(rows: Sequence[Row], target: str, concurrency: int) -> Row | None:
    return next(
        (r for r in rows if r["target"] == target and r["concurrency"] == concurrency), None
    )


def service_targets(document: dict[str, Any]) -> list[str]:
    """The issue's service targets, each with the measured value."""
    rows, offline = document["rows"], document["offline"]
    lines = []
    c64 = _level(rows, "continuous", 64)
    if c64:
        share = c64["tokens_per_s"] / offline["tokens_per_s"]
        lines.append(
            f"continuous at concurrency 64 reaches {share:.0%} of the offline engine's "
            f"tokens/s at batch {offline['batch']} (target ≥ 90 %)"
        )
    cont = _level(rows, "continuous", 32)
    c1 = _level(rows, "continuous", 1)
    paired = document.get("http_overhead") or []
    for pair in paired:
        lines.append(
            f"p50 added by the service (HTTP, text processing, scheduling) at concurrency 1, "
            f"{pair['target']}: {pair['added_p50_ms']:+.1f} ms (median over "
            f"{pair['sentences']} sentences of service − offline runtime, each the median of "
            f"{pair['repeats']} alternating runs; "
            f"quartiles {pair['added_p25_ms']:+.1f} / {pair['added_p75_ms']:+.1f} ms; "
            f"service p50 {pair['service_p50_ms']:.1f} ms; target ≤ 3 ms)"
        )
    if c1 and not paired:
        added = c1["p50_ms"] - offline["batch1_p50_ms"]
        lines.append(
            f"p50 added by HTTP at concurrency 1: {added:.1f} ms (service p50 "
            f"{c1['p50_ms']:.1f} ms − engine p50 {offline['batch1_p50_ms']:.1f} ms; "
            f"target ≤ 3 ms)"
        )
    naive = _level(rows, "naive", 32)
    if cont and naive and naive["tokens_per_s"]:
        lines.append(
            f"continuous / naive pipeline at concurrency 32: "
            f"{cont['tokens_per_s'] / naive['tokens_per_s']:.2f}×"
        )
    return lines


def ceiling_section(document: dict[str, Any]) -> str:
    """The work bound beside the measured backends (``bench.ceiling``)."""
    from bench.ceiling import markdown

    return (
        f"{document['model']}, greedy, fixed length; engine rows from `{document['engine']}`.\n"
        + run_header(document)
        + "\nGenerated tokens/s: the bound if only the int8 MatMuls cost time (the model's "
        "weight MatMuls as one graph per decoder step and one for the encoder, per-row int8 "
        "as exported, fastest of 9 runs, 1 and 2 ORT threads), and each measured backend "
        "(share of the bound at its own thread count):\n\n"
        + markdown(document["rows"], document["labels"])
    )


def gpu_section(document: dict[str, Any] | None) -> str:
    """The GPU result, or the statement that it has not run."""
    if document is None or not document.get("ran"):
        reason = (document or {}).get("reason", "no GPU result document")
        return f"**Not run.** {reason}\n"
    return f"GPU: {document['gpu']}.\n\n" + run_header(document) + "\n" + engine_tables(document)


def plot_engine(document: dict[str, Any], out_dir: Path, name: str = "engine") -> list[Path]:
    """tokens/s against batch size, one line per backend, one PNG per (search, stop)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = measured(document["rows"])
    paths = []
    for search, stop in dict.fromkeys((r["search"], r["stop"]) for r in rows):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        group = [r for r in rows if r["search"] == search and r["stop"] == stop]
        for label in dict.fromkeys(r["label"] for r in group):
            line = sorted((r for r in group if r["label"] == label), key=lambda r: r["batch_size"])
            ax.plot(
                [r["batch_size"] for r in line],
                [r["tokens_per_s"] for r in line],
                marker="o",
                label=label,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("generated tokens/s")
        ax.set_title(f"{document['model']} {search} {stop} ({document['machine']['cores']} cores)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        path = out_dir / f"{name}-{_slug(document['model'])}-{search}-{stop}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_load(document: dict[str, Any], out_dir: Path) -> list[Path]:
    """Throughput and p50/p99 latency against concurrency, one line per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = document["rows"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for target in dict.fromkeys(r["target"] for r in rows):
        line = sorted((r for r in rows if r["target"] == target), key=lambda r: r["concurrency"])
        xs = [r["concurrency"] for r in line]
        left.plot(xs, [r["tokens_per_s"] for r in line], marker="o", label=target)
        right.plot(xs, [r["p50_ms"] for r in line], marker="o", label=f"{target} p50")
        right.plot(xs, [r["p99_ms"] for r in line], linestyle="--", label=f"{target} p99")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    left.set_ylabel("generated tokens/s")
    right.set_ylabel("latency ms")
    right.set_yscale("log")
    fig.tight_layout()
    path = out_dir / "load.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def replace_section(text: str, name: str, content: str) -> str:
    """``text`` with the block between ``<!-- BEGIN name -->`` and ``<!-- END name -->``
    replaced by ``content`` (appended with new markers when absent)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{content.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip() + "\n\n" + block + "\n"


def _read(path: Path | None) -> Any:
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the doc sections and plots from whatever result documents exist."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--engine", type=Path, nargs="*", default=[], help="bench.engine documents")
    p.add_argument("--load", type=Path, help="bench.load document")
    p.add_argument("--openloop", type=Path, help="bench.openloop document")
    p.add_argument("--http-batch", type=Path, help="bench.http_batch document")
    p.add_argument("--gpu", type=Path, help="bench.gpu document")
    p.add_argument("--ceiling", type=Path, help="bench.ceiling document")
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--plots", type=Path, default=PLOTS)
    p.add_argument("--section", default="engine", help="doc section the engine tables replace")
    # A one-off run goes into a section of its own: the default sections hold the runs
    # `make bench` writes, and a report must not overwrite them with another run.
    p.add_argument("--openloop-section", default="openloop", help="doc section (and plot) name")
    p.add_argument("--ceiling-section", default="ceiling", help="doc section name")
    args = p.parse_args(argv)
    args.plots.mkdir(parents=True, exist_ok=True)
    text = args.doc.read_text() if args.doc.is_file() else "# Benchmarks\n"
    engine_parts = []
    for path in args.engine:
        document = _read(path)
        if document is None:
            continue
        plots = plot_engine(document, args.plots, _slug(path.stem))
        images = "\n".join(
            f"![{q.stem}]({q.relative_to(args.doc.parent).as_posix()})" for q in plots
        )
        engine_parts.append(
            f"### {path.stem}\n\n"
            + run_header(document)
            + "\n"
            + engine_tables(document)
            + thread_scaling(document)
            + _target_list(engine_targets(document))
            + images
            + "\n"
        )
    if engine_parts:
        text = replace_section(text, args.section, "\n".join(engine_parts))
    load = _read(args.load)
    if load is not None:
        plots = plot_load(load, args.plots)
        image = f"![load]({plots[0].relative_to(args.doc.parent).as_posix()})"
        text = replace_section(text, "load", run_header(load) + "\n" + load_tables(load) + image)
    openloop = _read(args.openloop)
    if openloop is not None:
        from bench.openloop_report import section

        name = args.openloop_section
        text = replace_section(text, name, section(openloop, args.doc.parent, args.plots, name))
    http_batch = _read(args.http_batch)
    if http_batch is not None:
        from bench.http_batch import markdown

        text = replace_section(text, "http-batch", markdown(http_batch))
    ceiling = _read(args.ceiling)
    if ceiling is not None:
        text = replace_section(text, args.ceiling_section, ceiling_section(ceiling))
    text = replace_section(text, "gpu", gpu_section(_read(args.gpu)))
    args.doc.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
