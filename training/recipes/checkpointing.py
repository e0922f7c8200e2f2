"""Checkpoint files of the training recipes: the resumable state of a phased run, weight
snapshots, pruning the old ones and averaging the last few."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # train_marian imports this module
    from training.recipes.train_marian import Trainer

log = logging.getLogger(__name__)


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


@dataclass
class Position:
    """Where the run stands: optimizer steps, epoch, batches of the epoch already trained."""

    step: int = 0
    epoch: int = 1
    batch: int = 0


def save_state(
    path: Path, trainer: Trainer, position: Position, history: list[dict[str, float]]
) -> None:
    """Write the whole training state atomically (a kill mid-write keeps the last one)."""
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "position": asdict(position),
            "history": history,
        },
        tmp,
    )
    tmp.replace(path)


def load_state(path: Path, trainer: Trainer) -> tuple[Position, list[dict[str, float]]]:
    """Restore weights, optimizer, RNG and step from ``save_state``'s file (a file written
    before the RNG was saved resumes with the RNG as seeded)."""
    state = torch.load(path, weights_only=False)
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if "rng" in state:
        torch.set_rng_state(state["rng"])
    position = Position(**state["position"])
    trainer.step = position.step
    return position, list(state["history"])


def snapshot(work_dir: Path, trainer: Trainer, keep: int) -> None:
    """Save the weights as a snapshot; drop all but the newest ``keep``."""
    folder = work_dir / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(trainer.model.state_dict(), folder / f"step{trainer.step:07d}.pt")
    for old in sorted(folder.glob("step*.pt"))[:-keep]:
        old.unlink()


def select_snapshots(
    work_dir: Path, model: torch.nn.Module, score: Callable[[], dict[str, float]], metric: str
) -> tuple[str, dict[str, dict[str, float]]]:
    """Load into ``model`` the best by ``score()["mean"]`` (scored with each candidate
    loaded) of the last snapshot and the averages of the last 3 and 5 in
    ``work_dir/snapshots``; return its label and every candidate's scores."""
    snapshots = sorted((work_dir / "snapshots").glob("step*.pt"))
    candidates: dict[str, tuple[dict[str, float], dict[str, torch.Tensor]]] = {}
    for k in (1, 3, 5):
        if k > len(snapshots):
            continue
        state = average_checkpoints(snapshots[-k:])
        model.load_state_dict(state)
        scores = score()
        label = "last snapshot" if k == 1 else f"average of last {k} snapshots"
        log.info("%s: dev %s %s", label, metric, json.dumps(scores))
        candidates[label] = (scores, state)
    chosen = max(candidates, key=lambda name: candidates[name][0]["mean"])
    model.load_state_dict(candidates[chosen][1])
    log.info("selected %s (mean dev %s %.2f)", chosen, metric, candidates[chosen][0]["mean"])
    return chosen, {name: scores for name, (scores, _) in candidates.items()}
