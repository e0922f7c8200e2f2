"""Per-epoch checkpoint files: pruning the old ones and averaging the last few."""

from __future__ import annotations

from pathlib import Path

import torch


def prune_checkpoints(paths: list[Path], keep_last: int, keep: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (and epoch ``keep``); return the rest."""
    kept = paths[-keep_last:]
    for path in paths[:-keep_last]:
        if path.name != f"epoch{keep:03d}.pt":
            path.unlink(missing_ok=True)
    return kept


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the floating-point tensors of several state dicts."""
    if not paths:
        raise ValueError("nothing to average")
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        state = torch.load(path, weights_only=True)
        for name, tensor in state.items():
            if name not in total:
                total[name] = tensor.clone().double() if tensor.is_floating_point() else tensor
            elif tensor.is_floating_point():
                total[name] += tensor.double()
    return {
        name: (t / len(paths)).float() if t.is_floating_point() else t for name, t in total.items()
    }
