"""Grow a trained narrow model into a benchmark-sized one that computes (almost) the same function.

A full-size model (Marian like opus-mt-en-de, BART like distilbart...) does not learn its copy
task within minutes on a CPU: measured here, 300-600 steps of a 74 M Marian on 2 cores gave one
caption for every input. A model with the same depth, heads and vocabulary but ``factor`` times
narrower learns it in minutes, and replication widening (Net2Net-style) then turns it into a
full-width model whose every hidden unit is copied ``factor`` times:

- every hidden vector of the wide model is ``scale * R(h)``, where ``R`` repeats each unit of the
  narrow model's ``h`` ``factor`` times side by side (``repeat_interleave``, so attention heads
  stay contiguous blocks);
- LayerNorm / RMSNorm statistics of ``R(h)`` equal those of ``h``, element-wise activations
  commute with ``R``, and a linear layer ``W`` becomes ``kron(W, ones) / factor``;
- query projections absorb the change of the attention scaling, the shared embedding the change
  of the embedding scale, and ``scale`` is chosen so the tied output projection gives exactly
  the narrow model's logits.

Learned position tables (BART, BlenderBot) and T5's relative bias widen exactly. Marian, Pegasus
and M2M100 add fixed sinusoids computed from the model width, which are no replication of any
narrow table: the narrow model trains with the block means of the wide sinusoids instead
(``narrow_positions``), so every linear read is exact and only the normalisation statistics see
the within-block remainder (the wide model is then close to, not equal to, the narrow one; the
build's input-dependence probe checks the wide model itself).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import torch
from transformers import PreTrainedModel

from training.checkpoint_recipes import Dims

# Linear layers reading the residual stream (scaled) and producing replicated vectors.
_READS = re.compile(r"\.(q_proj|k_proj|v_proj|fc1|q|k|v|wi|wi_0|wi_1)\.(weight|bias)$")
_QUERIES = re.compile(r"\.(q_proj|q)\.(weight|bias)$")
# Linear layers writing into the residual stream.
_WRITES = re.compile(r"\.(out_proj|fc2|o|wo)\.(weight|bias)$")
_NORMS = re.compile(r"(layer_norm|layernorm_embedding|layernorm)\.(weight|bias)$")
_EMBEDDINGS = re.compile(r"(^|\.)(shared|embed_tokens|lm_head)\.weight$")
_POSITIONS = re.compile(r"\.embed_positions\.weight$")
# Per-head or per-vocabulary tensors that do not depend on the width.
_UNCHANGED = re.compile(r"(relative_attention_bias\.weight|final_logits_bias)$")


class WideningError(ValueError):
    """The two models do not have the shapes replication widening needs."""


def narrow_dims(dims: Dims, factor: int) -> Dims:
    """The narrow dimensions: same depth, heads and vocabulary, ``factor`` times narrower."""
    if dims.d_model % (factor * dims.heads) or dims.ffn % factor:
        raise WideningError(
            f"d_model {dims.d_model} (with {dims.heads} heads) and ffn {dims.ffn} must be "
            f"divisible by the widening factor {factor}"
        )
    return replace(dims, d_model=dims.d_model // factor, ffn=dims.ffn // factor)


def _is_t5(model: PreTrainedModel) -> bool:
    return model.config.model_type in ("t5", "mt5")


def _embed_scale_ratio(model: PreTrainedModel, factor: int) -> float:
    """Narrow embedding scale / wide embedding scale (sqrt(d_model) where the family scales)."""
    return 1.0 / math.sqrt(factor) if getattr(model.config, "scale_embedding", False) else 1.0


def stream_scale(model: PreTrainedModel, factor: int) -> float:
    """The factor on the wide residual stream that keeps the tied output logits exact.

    Tied logits read the stream (``scale``) with the embedding (``scale x embed ratio``) over
    ``factor`` copies of each unit; T5 also rescales by ``d_model ** -0.5`` before them.
    """
    if _is_t5(model):
        return float(factor) ** -0.25
    return 1.0 / math.sqrt(factor * _embed_scale_ratio(model, factor))


def _query_factor(model: PreTrainedModel, factor: int) -> float:
    # Scores sum over factor x more (identical) terms; BART-style attention also divides by
    # sqrt(head_dim), which grew by sqrt(factor); T5 does not scale scores.
    return 1.0 / factor if _is_t5(model) else 1.0 / math.sqrt(factor)


def _replicate(tensor: torch.Tensor, factor: int, dims: tuple[int, ...]) -> torch.Tensor:
    out = tensor
    for dim in dims:
        out = out.repeat_interleave(factor, dim=dim)
    return out


def sinusoid_block_means(wide_table: torch.Tensor, factor: int, scale: float) -> torch.Tensor:
    """The narrow position table whose replication is closest to a fixed wide sinusoid table."""
    rows, width = wide_table.shape
    return wide_table.reshape(rows, width // factor, factor).mean(dim=2) / scale


def fixed_position_tables(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The position tables of ``model`` that are fixed sinusoids (not trained), by module name.

    Marian and Pegasus keep them as a ``weight`` without gradient, M2M100 as a ``weights``
    buffer; learned tables (BART, BlenderBot) and T5 (no table) are not included.
    """
    tables = {}
    for name, module in model.named_modules():
        if not name.endswith("embed_positions"):
            continue
        table = getattr(module, "weights", None)
        if table is None:
            table = module.weight
            if table.requires_grad:
                continue
        tables[name] = table
    return tables


def narrow_positions(narrow: PreTrainedModel, wide: PreTrainedModel, factor: int) -> list[str]:
    """Give ``narrow`` the block means of ``wide``'s fixed sinusoidal position tables.

    Returns the names of the tables it replaced (none for learned or relative positions). Call
    it before training ``narrow``; the tables are not trained (they are not parameters with
    gradients in these families) and are not saved by ``save_pretrained``.
    """
    scale = stream_scale(wide, factor)
    wide_tables = fixed_position_tables(wide)
    replaced = []
    for name, table in fixed_position_tables(narrow).items():
        with torch.no_grad():
            table.copy_(sinusoid_block_means(wide_tables[name].detach(), factor, scale))
        replaced.append(name)
    return replaced


def widen_into(narrow: PreTrainedModel, wide: PreTrainedModel, factor: int) -> None:
    """Overwrite ``wide``'s weights with the replication widening of ``narrow``'s.

    Both models must share family, depth, heads and vocabulary, with ``wide`` ``factor`` times
    wider (``narrow_dims``). Fixed sinusoidal position tables keep ``wide``'s own values.
    """
    scale = stream_scale(wide, factor)
    query = _query_factor(wide, factor)
    embed = scale * _embed_scale_ratio(wide, factor)
    wide_state = wide.state_dict()
    # Fixed sinusoids keep the wide model's own table (M2M100's is not in the state at all).
    fixed_positions = {f"{name}.weight" for name in fixed_position_tables(wide)}
    new_state: dict[str, torch.Tensor] = {}
    for name, tensor in narrow.state_dict().items():
        if name not in wide_state:
            raise WideningError(f"{name} of the narrow model is missing in the wide one")
        tensor = tensor.detach().float()
        if _UNCHANGED.search(name):
            out = tensor
        elif name in fixed_positions:
            continue
        elif _POSITIONS.search(name):
            out = scale * _replicate(tensor, factor, (1,))
        elif _EMBEDDINGS.search(name):
            out = embed * _replicate(tensor, factor, (1,))
        elif _NORMS.search(name):
            out = scale * _replicate(tensor, factor, (0,))
        elif _READS.search(name):
            q = query if _QUERIES.search(name) else 1.0
            if name.endswith("weight"):
                out = q * _replicate(tensor, factor, (0, 1)) / (factor * scale)
            else:
                out = q * _replicate(tensor, factor, (0,))
        elif _WRITES.search(name):
            if name.endswith("weight"):
                out = scale * _replicate(tensor, factor, (0, 1)) / factor
            else:
                out = scale * _replicate(tensor, factor, (0,))
        else:
            raise WideningError(f"no widening rule for {name}")
        if out.shape != wide_state[name].shape:
            raise WideningError(
                f"{name}: widened shape {tuple(out.shape)} != wide model's "
                f"{tuple(wide_state[name].shape)}"
            )
        new_state[name] = out.to(wide_state[name].dtype)
    uncovered = set(wide_state) - set(new_state) - fixed_positions
    if uncovered:
        raise WideningError(f"the narrow model has no weights for {sorted(uncovered)[:3]}")
    wide.load_state_dict(new_state, strict=False)
    wide.tie_weights()


def perturb(model: PreTrainedModel, relative: float, seed: int) -> None:
    """Add Gaussian noise of ``relative`` x each matrix's std to every 2-D weight.

    Breaks the exact block structure of a widened model (so int8 quantization and kernels see
    ordinary, full-rank weights) while keeping what it computes close.
    """
    if relative <= 0:
        return
    generator = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.dim() != 2 or not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
            param.add_(noise * (relative * float(param.std())))
