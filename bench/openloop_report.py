"""Tables, targets and the plot of a ``bench.openloop`` document (docs/benchmarks.md).

The issue's targets compare ``continuous`` batching with ``dynamic`` at
75 % of capacity (p99 latency <= 0.5x, TTFT p99 <= 0.3x) and at the highest load
(throughput >= dynamic's). With several rounds each ratio is taken within a round and a
target counts as met only when it holds in every round (the worst round decides).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.openloop import ALONE_SHARE

Row = dict[str, Any]
CANDIDATE, BASELINE = "continuous", "dynamic"
TARGET_SHARE = 0.75


def _cells(rows: Sequence[Row], target: str, share: float) -> list[Row]:
    return [r for r in rows if r["target"] == target and math.isclose(r["load_share"], share)]


def _number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _spread(values: Sequence[float | None], digits: int = 0) -> str:
    """Median, with [min-max] when the rounds differ."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return "-"
    middle = _number(statistics.median(clean), digits)
    if min(clean) == max(clean):
        return middle
    return f"{middle} [{_number(min(clean), digits)}-{_number(max(clean), digits)}]"


COLUMNS: tuple[tuple[str, Callable[[Row], float | None], int], ...] = (
    ("done/s", lambda r: r["throughput_per_s"], 2),
    ("p50 ms", lambda r: r["p50_ms"], 0),
    ("p99 ms", lambda r: r["p99_ms"], 0),
    ("TTFT p50 ms", lambda r: r["ttft_p50_ms"], 0),
    ("TTFT p99 ms", lambda r: r["ttft_p99_ms"], 0),
    ("queue mean ms", lambda r: r["queue_mean_ms"], 0),
    ("queue p99 ms", lambda r: r["queue_p99_ms"], 0),
    ("rejected %", lambda r: 100 * r["rejected_share"], 1),
    ("failed", lambda r: r["failed"], 0),
    ("unfinished", lambda r: r["unfinished"], 0),
)


def tables(document: dict[str, Any]) -> str:
    """One table per load level with a row per target (one table with a row per level when
    there is one target), each cell median [min-max] of rounds."""
    rows = document["rows"]
    targets = list(dict.fromkeys(r["target"] for r in rows))
    shares = sorted({r["load_share"] for r in rows})
    if len(targets) == 1:
        return _levels_table(rows, targets[0], shares)
    header = "| target | " + " | ".join(name for name, _, _ in COLUMNS) + " |"
    rule = "|---" * (len(COLUMNS) + 1) + "|"
    parts = []
    for share in shares:
        rate = next(r["rate_per_s"] for r in rows if math.isclose(r["load_share"], share))
        offered = [r["offered"] for r in rows if math.isclose(r["load_share"], share)]
        if math.isclose(share, ALONE_SHARE):
            title = (
                f"**One request at a time** ({min(offered)}-{max(offered)} requests per round, "
                "each sent when the last answered: the latency floor)"
            )
        else:
            title = (
                f"**{share:.0%} of capacity** ({rate:.2f} arrivals/s, "
                f"{min(offered)}-{max(offered)} requests per round)"
            )
        parts.append(f"{title}\n\n{header}\n{rule}")
        for target in targets:
            cells = _cells(rows, target, share)
            if cells:
                values = [_spread([get(c) for c in cells], digits) for _, get, digits in COLUMNS]
                parts[-1] += f"\n| {target} | " + " | ".join(values) + " |"
    return "\n\n".join(parts) + "\n"


def _levels_table(rows: Sequence[Row], target: str, shares: Sequence[float]) -> str:
    """``target``'s rows, one per load level."""
    names = " | ".join(name for name, _, _ in COLUMNS)
    lines = [
        f"`{target}`, median [min-max] over rounds:\n",
        f"| load | arrivals/s | requests | {names} |",
        "|---" * (len(COLUMNS) + 3) + "|",
    ]
    for share in shares:
        cells = _cells(rows, target, share)
        offered = [c["offered"] for c in cells]
        load = "alone" if math.isclose(share, ALONE_SHARE) else f"{share:.0%}"
        rate = "-" if load == "alone" else f"{cells[0]['rate_per_s']:.2f}"
        values = [_spread([get(c) for c in cells], digits) for _, get, digits in COLUMNS]
        lines.append(f"| {load} | {rate} | {_spread(offered)} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def _ratios(
    rows: Sequence[Row], share: float, metric: str, candidate: str, baseline: str
) -> list[float]:
    """candidate / baseline of ``metric`` within each round that has both."""
    ratios = []
    for cell in _cells(rows, candidate, share):
        paired = [b for b in _cells(rows, baseline, share) if b["round"] == cell["round"]]
        if paired and paired[0][metric] and not math.isnan(paired[0][metric]):
            ratios.append(cell[metric] / paired[0][metric])
    return ratios


def _verdict(ratios: list[float], bound: float, at_most: bool) -> str:
    if not ratios:
        return "not measured"
    worst = max(ratios) if at_most else min(ratios)
    met = worst <= bound if at_most else worst >= bound
    span = ", ".join(f"{r:.2f}x" for r in ratios)
    sign = "<=" if at_most else ">="
    verdict = "met" if met else "MISSED"
    return f"{verdict} (worst round {worst:.2f}x, target {sign} {bound}x; rounds: {span})"


def targets(
    document: dict[str, Any], candidate: str = CANDIDATE, baseline: str = BASELINE
) -> list[str]:
    """The issue's three open-loop targets for ``candidate`` against ``baseline``."""
    rows = document["rows"]
    shares = sorted({r["load_share"] for r in rows})
    if not shares:
        return []
    top = shares[-1]
    p99 = _ratios(rows, TARGET_SHARE, "p99_ms", candidate, baseline)
    ttft = _ratios(rows, TARGET_SHARE, "ttft_p99_ms", candidate, baseline)
    throughput = _ratios(rows, top, "throughput_per_s", candidate, baseline)
    lines = [
        f"{candidate} p99 latency at {TARGET_SHARE:.0%} / {baseline}'s: "
        + _verdict(p99, 0.5, True),
        f"{candidate} TTFT p99 at {TARGET_SHARE:.0%} / {baseline}'s: " + _verdict(ttft, 0.3, True),
        f"{candidate} throughput at {top:.0%} / {baseline}'s: " + _verdict(throughput, 1.0, False),
    ]
    return lines + floor(rows, candidate, baseline)


def floor(rows: Sequence[Row], candidate: str, baseline: str) -> list[str]:
    """How the p99 target compares with the latency floor: ``candidate``'s p99 with one
    request at a time, over ``baseline``'s p99 at the target load, per round. Above 0.5x,
    the p99 target asks for requests faster than they run with the server to themselves."""
    ratios = []
    for cell in _cells(rows, candidate, ALONE_SHARE):
        paired = [b for b in _cells(rows, baseline, TARGET_SHARE) if b["round"] == cell["round"]]
        if paired and paired[0]["p99_ms"] and not math.isnan(paired[0]["p99_ms"]):
            ratios.append((cell["p99_ms"], cell["p99_ms"] / paired[0]["p99_ms"]))
    if not ratios:
        return []
    best = min(r for _, r in ratios)
    reach = "below" if best > 0.5 else "above"
    rounds = ", ".join(f"{ms:,.0f} ms = {r:.2f}x" for ms, r in ratios)
    return [
        f"floor: {candidate} one request at a time, p99 / {baseline}'s p99 at "
        f"{TARGET_SHARE:.0%}: {rounds} (the 0.5x target is {reach} the floor)"
    ]


def header(document: dict[str, Any]) -> str:
    """Command, machine, mix, capacity."""
    machine = document.get("machine", {})
    mix = ", ".join(f"{kind} {share:.0%}" for kind, share in document["mix"].items())
    settings = document.get("settings", {})
    return (
        f"`{document['command']}` ({document['started']}, {document['duration_s'] / 60:.0f} min; "
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores)\n\n"
        f"Mix: {mix} (texts from {', '.join(document['sources'].values())}); packages "
        f"{', '.join(document['packages'])}, {settings.get('precision', '?')}, "
        f"{settings.get('threads', '?')} threads, max batch {settings.get('max_batch_size', '?')}. "
        f"Capacity = {document['capacity_per_s']:.2f} requests/s "
        f"({document['capacity_reference']}, "
        f"{settings.get('capacity_clients', '?')} closed-loop clients); "
        f"{settings.get('duration_s', '?')} s of arrivals per level, "
        f"{settings.get('rounds', 1)} round(s).\n"
    )


def plot(document: dict[str, Any], out_dir: Path, name: str = "openloop") -> Path:
    """p99 latency, TTFT p99 and throughput against load, one line per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = document["rows"]
    panels = (
        ("p99_ms", "p99 latency ms", True),
        ("ttft_p99_ms", "TTFT p99 ms", True),
        ("throughput_per_s", "completed requests/s", False),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 4.2))
    for target in dict.fromkeys(r["target"] for r in rows):
        shares = sorted(
            {
                r["load_share"]
                for r in rows
                if r["target"] == target and not math.isclose(r["load_share"], ALONE_SHARE)
            }
        )
        for ax, (metric, label, log) in zip(axes, panels, strict=True):
            values = []
            for share in shares:
                clean = [
                    c[metric]
                    for c in _cells(rows, target, share)
                    if c[metric] is not None and not math.isnan(c[metric])
                ]
                values.append(statistics.median(clean) if clean else math.nan)
            ax.plot([100 * s for s in shares], values, marker="o", label=target)
            ax.set_ylabel(label)
            if log:
                ax.set_yscale("log")
    for ax in axes:
        ax.set_xlabel("arrival rate, % of capacity")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def section(
    document: dict[str, Any], doc_dir: Path, plots_dir: Path, name: str = "openloop"
) -> str:
    """The whole docs/benchmarks.md ``name`` section (its plot is ``name``.png)."""
    image = plot(document, plots_dir, name)
    goals = [line for line in targets(document) if not line.endswith("not measured")]
    listed = "".join(f"- {line}\n" for line in goals)
    return (
        header(document)
        + "\n"
        + tables(document)
        + (f"\nTargets (issue 19):\n\n{listed}" if goals else "")
        + f"\n![{name}]({image.relative_to(doc_dir).as_posix()})\n"
    )
