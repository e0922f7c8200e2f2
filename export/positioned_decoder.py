"""A decoder export whose rows may sit at different steps of one decoder call.

optimum's merged decoder (``export/onnx_export.py``) derives each position from the length
of the past key/values and has no self-attention mask, so every row of one call must share
a past length (the runtime's *cohorts*). This module exports, with ``torch.onnx`` (the
TorchScript exporter), an alternative pair of graphs built from the checkpoint's own
modules (same weights, same operations as transformers' eager attention):

``cross_kv.onnx``
    ``encoder_hidden_states`` [batch, src_len, d_model] ->
    ``past_key_values.{i}.encoder.key`` / ``.value`` [batch, heads, src_len, head_dim] for
    every decoder layer: the cross-attention key/values, computed **once per row** when the
    row joins (not recomputed every step). A first-step ``If`` branch, as in optimum's
    merged decoder, cannot serve a call whose rows are at different steps (some would need
    the branch, some not), so the projection is its own graph, run for the joiners only.

``decoder_positioned.onnx``
    inputs ``input_ids`` [batch, 1] (int64), ``position_ids`` [batch, 1] (int64: how many
    target tokens precede this one in its row; 0 for the decoder start token),
    ``self_attention_mask`` [batch, past_len + 1] (int64, 1 = attend; the last column is the
    new token itself), ``encoder_attention_mask`` [batch, src_len] (int64), then per layer
    ``past_key_values.{i}.decoder.key`` / ``.value`` [batch, heads, past_len, head_dim],
    then per layer ``past_key_values.{i}.encoder.key`` / ``.value`` (from ``cross_kv.onnx``).
    Outputs ``logits`` [batch, 1, vocab] and per layer ``present.{i}.decoder.key`` /
    ``.value`` [batch, heads, past_len + 1, head_dim] = past with the new step appended.
    ``encoder_hidden_states`` is *not* an input: the decoder only ever needs its
    projections, which the rows carry as cross key/values.

Cache layout and why the graph returns the whole present
--------------------------------------------------------
The padded self-attention cache is **right-aligned**: a row with ``n`` past tokens holds
them in the last ``n`` of the ``past_len`` slots, padding (masked out, zeros) first. The
new step is appended at slot ``past_len`` for every row, so the returned ``present`` is
again right-aligned and is fed back unchanged as the next ``past``: in the steady state
the driver copies nothing (the one copy per step is the ``Concat`` inside the graph, the
same one the merged decoder does today, which attention needs anyway). Membership
changes are the driver's business (``service/runtime/positioned.py``): a leaver leaves a
masked hole that the next joiner fills in place, and holes and leading columns unused by
every row are dropped in one copy now and then. Returning only the new step's
key/values instead would make the driver scatter one column per row and then hand ORT a
contiguous past of its own, an extra full copy per step on CPU; it pays off only with a
preallocated device cache under IO binding (CUDA, not built here).

Right alignment also makes T5's relative position bias batch-uniform: slot ``j`` of a
row whose query sits at position ``p`` holds the token at position ``p - (past_len - j)``,
so the relative distance is ``j - past_len`` for every row, and the bias is one
[1, heads, 1, past_len + 1] tensor, exactly what transformers computes for a lone row.

Families
--------
Absolute positions are looked up per row from ``position_ids``:

- ``marian`` (sinusoidal table, no offset), ``pegasus`` (sinusoidal, no offset),
  ``blenderbot`` (learned, no offset): post-norm Marian, pre-norm Pegasus/BlenderBot.
- ``bart`` (learned, offset 2; ``layernorm_embedding``), post-norm.
- ``m2m100`` (sinusoidal, index ``position + padding_idx + 1``; a generated pad token
  takes the padding row, as transformers' ``create_position_ids_from_input_ids`` does).
- ``t5`` (relative position bias, see above; the graph has no ``position_ids`` input,
  the exporter drops the unused input, and the driver feeds only the inputs a graph has),
  incl. gated feed-forward (mT5/T5 v1.1) and the tied-embedding rescale before ``lm_head``.

Validated (``tests/unit/export/test_positioned_decoder.py``, the tiny trained checkpoint
of each family, ORT CPU fp32, greedy): all six families of :data:`FAMILIES` give
transformers' greedy tokens (a) alone, (b) in one padded batch, (c) joining a running
batch at later steps, with rows at different positions in one call. T5's gated
feed-forward with an untied ``lm_head`` (mT5 / T5 v1.1; the tiny T5 is ``relu``, tied) is
checked on a random-init model only. Beam search is not validated. Other
``model_type``s (mBART, BlenderBot-small, ...) raise :class:`UnsupportedFamilyError`
rather than guess the layer layout.

Exactness is per-row: a row's logits are bitwise the same whatever rows share its call
(measured), but padding (more past columns or a longer source than the row's own)
changes them by about 1e-6 (the reductions in attention group differently), like padded
batches of the merged decoder; tokens stay the same unless two logits are that close.

Precision: the export is fp32. Quantizing both graphs with the project's per-row int8
(``export.quantize.quantize_file`` with ``Int8Options(method="per_row")``, one activation
scale per row) keeps alone == batched == joined token for token (tested, all six
families); ORT's dynamic int8 (one activation scale per tensor, i.e. per batch) does not
(measured on tiny Marian: 3 of 6 rows changed when batched), so it must not be used for
this decoder. The pipeline's ORT fusions (:func:`fuse_decoder`: SkipLayerNormalization,
BiasGelu, ...) keep it token-exact (tested). No fp16/CUDA variant yet.

Cost: one step costs about what optimum's with-past decoder costs at the same batch, and
the two graphs together are the size of the merged decoder (the cross K/V weights live
only in ``cross_kv.onnx``); rows at different past lengths share one call instead of one
call per length (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILIES: dict[str, str] = {
    "marian": "marian",
    "bart": "bart",
    "pegasus": "pegasus",
    "blenderbot": "blenderbot",
    "m2m_100": "m2m100",
    "t5": "t5",
}
"""transformers ``model_type`` -> project family name, for the families this export supports."""

_PRE_NORM = {"pegasus", "blenderbot", "m2m_100"}
OPSET = 17
DECODER_FILE = "decoder_positioned.onnx"
CROSS_KV_FILE = "cross_kv.onnx"
# The decoder's contract: the self-attention mask covers the past and the new step.
PAST_AXIS = "past_len"
MASK_AXIS = "past_len_plus_1"
DIM_RELATIONS = {MASK_AXIS: (PAST_AXIS, 1)}


class UnsupportedFamilyError(ValueError):
    """The checkpoint's ``model_type`` has no positioned-decoder wrapper."""


@dataclass(frozen=True)
class PositionedExport:
    """The two graphs :func:`export_positioned` wrote."""

    decoder: Path
    cross_kv: Path
    num_layers: int
    num_heads: int
    head_dim: int


def _names(num_layers: int) -> tuple[list[str], list[str], list[str]]:
    """Input names of the self past, of the cross key/values, and the present output names."""
    past = [
        f"past_key_values.{i}.decoder.{kv}" for i in range(num_layers) for kv in ("key", "value")
    ]
    cross = [
        f"past_key_values.{i}.encoder.{kv}" for i in range(num_layers) for kv in ("key", "value")
    ]
    present = [f"present.{i}.decoder.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    return past, cross, present


def _wrappers(model: Any) -> tuple[Any, Any, int, int, int]:
    """Build the (step, cross-kv) torch modules for ``model``; also layers, heads, head dim."""
    import torch
    from torch import nn

    config = model.config
    model_type = config.model_type
    if model_type not in FAMILIES:
        raise UnsupportedFamilyError(
            f"no positioned decoder for model_type {model_type!r}; supported: {sorted(FAMILIES)}"
        )
    decoder = model.get_decoder()
    mask_min = torch.finfo(torch.float32).min

    def attend(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scaling: float | None
    ) -> torch.Tensor:
        """Eager attention of one query step: [B, H, 1, Dh] x [B, H, L, Dh] -> [B, 1, H*Dh]."""
        scores = torch.matmul(q, k.transpose(2, 3))
        if scaling is not None:
            scores = scores * scaling
        weights = nn.functional.softmax(scores + bias, dim=-1)
        out = torch.matmul(weights, v).transpose(1, 2)
        return out.reshape(out.shape[0], 1, out.shape[2] * out.shape[3])

    def heads(x: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
        """[B, L, H*Dh] -> [B, H, L, Dh]."""
        return x.view(x.shape[0], x.shape[1], n_heads, head_dim).transpose(1, 2)

    def mask_bias(mask: torch.Tensor) -> torch.Tensor:
        """[B, L] 1/0 -> additive [B, 1, 1, L] (0 or float32 min), as transformers builds it."""
        keep = mask[:, None, None, :].to(torch.bool)
        zero = torch.zeros((), dtype=torch.float32)
        return torch.where(keep, zero, torch.full((), mask_min, dtype=torch.float32))

    if model_type == "t5":
        blocks = list(decoder.block)
        num_layers = len(blocks)
        first = blocks[0].layer[0].SelfAttention
        n_heads, head_dim = first.n_heads, first.key_value_proj_dim
        bucket = type(first)._relative_position_bucket
        tie = bool(config.tie_word_embeddings)
        model_dim = config.d_model

        class T5Step(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.decoder = decoder
                self.lm_head = model.lm_head

            def forward(
                self,
                input_ids: torch.Tensor,
                position_ids: torch.Tensor,
                self_attention_mask: torch.Tensor,
                encoder_attention_mask: torch.Tensor,
                *kv: torch.Tensor,
            ) -> tuple[torch.Tensor, ...]:
                del position_ids  # right-aligned cache: relative distances are batch-uniform
                past, cross = kv[: 2 * num_layers], kv[2 * num_layers :]
                h = self.decoder.embed_tokens(input_ids)
                ones = torch.ones_like(self_attention_mask[0])
                relative = torch.cumsum(ones, 0) - ones.sum()  # slot j -> j - past_len
                buckets = bucket(
                    relative,
                    bidirectional=False,
                    num_buckets=first.relative_attention_num_buckets,
                    max_distance=first.relative_attention_max_distance,
                )
                position_bias = first.relative_attention_bias(buckets).transpose(0, 1)
                self_bias = position_bias[None, :, None, :] + mask_bias(self_attention_mask)
                cross_bias = mask_bias(encoder_attention_mask)
                presents: list[torch.Tensor] = []
                for i, block in enumerate(self.decoder.block):
                    sa = block.layer[0]
                    att = sa.SelfAttention
                    x = sa.layer_norm(h)
                    q = heads(att.q(x), n_heads, head_dim)
                    k = torch.cat([past[2 * i], heads(att.k(x), n_heads, head_dim)], dim=2)
                    v = torch.cat([past[2 * i + 1], heads(att.v(x), n_heads, head_dim)], dim=2)
                    presents += [k, v]
                    h = h + att.o(attend(q, k, v, self_bias, None))
                    ca = block.layer[1]
                    att = ca.EncDecAttention
                    q = heads(att.q(ca.layer_norm(h)), n_heads, head_dim)
                    h = h + att.o(attend(q, cross[2 * i], cross[2 * i + 1], cross_bias, None))
                    ff = block.layer[2]
                    h = h + ff.DenseReluDense(ff.layer_norm(h))
                h = self.decoder.final_layer_norm(h)
                if tie:
                    h = h * (model_dim**-0.5)
                return (self.lm_head(h), *presents)

        class T5Cross(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.decoder = decoder

            def forward(self, encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
                out: list[torch.Tensor] = []
                for block in self.decoder.block:
                    att = block.layer[1].EncDecAttention
                    out += [
                        heads(att.k(encoder_hidden_states), n_heads, head_dim),
                        heads(att.v(encoder_hidden_states), n_heads, head_dim),
                    ]
                return tuple(out)

        return T5Step().eval(), T5Cross().eval(), num_layers, n_heads, head_dim

    layers = list(decoder.layers)
    num_layers = len(layers)
    n_heads = layers[0].self_attn.num_heads
    head_dim = layers[0].self_attn.head_dim
    pre_norm = model_type in _PRE_NORM
    embed_scale = float(getattr(decoder, "embed_scale", 1.0) or 1.0)
    table_module = decoder.embed_positions
    pad_id = int(config.pad_token_id)
    if model_type == "m2m_100":
        table = table_module.weights
        offset = int(table_module.padding_idx) + 1
        pad_row: int | None = int(table_module.padding_idx)
    else:
        table = table_module.weight
        offset = int(getattr(table_module, "offset", 0))
        pad_row = None
    ln_embedding = getattr(decoder, "layernorm_embedding", None)
    final_norm = getattr(decoder, "layer_norm", None)
    logits_bias = getattr(model, "final_logits_bias", None)

    class Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = decoder
            self.lm_head = model.lm_head
            self.positions: torch.Tensor
            self.register_buffer("positions", table.detach().clone(), persistent=False)
            if logits_bias is not None:
                self.register_buffer("logits_bias", logits_bias.detach().clone(), persistent=False)
            else:
                self.logits_bias = None

        def forward(
            self,
            input_ids: torch.Tensor,
            position_ids: torch.Tensor,
            self_attention_mask: torch.Tensor,
            encoder_attention_mask: torch.Tensor,
            *kv: torch.Tensor,
        ) -> tuple[torch.Tensor, ...]:
            past, cross = kv[: 2 * num_layers], kv[2 * num_layers :]
            h = self.decoder.embed_tokens(input_ids)
            if embed_scale != 1.0:
                h = h * embed_scale
            index = position_ids + offset
            if pad_row is not None:
                index = torch.where(input_ids == pad_id, torch.full_like(index, pad_row), index)
            h = h + nn.functional.embedding(index, self.positions)
            if ln_embedding is not None:
                h = ln_embedding(h)
            self_bias = mask_bias(self_attention_mask)
            cross_bias = mask_bias(encoder_attention_mask)
            presents: list[torch.Tensor] = []
            for i, layer in enumerate(self.decoder.layers):
                att = layer.self_attn
                residual = h
                x = layer.self_attn_layer_norm(h) if pre_norm else h
                q = heads(att.q_proj(x), n_heads, head_dim)
                k = torch.cat([past[2 * i], heads(att.k_proj(x), n_heads, head_dim)], dim=2)
                v = torch.cat([past[2 * i + 1], heads(att.v_proj(x), n_heads, head_dim)], dim=2)
                presents += [k, v]
                h = residual + att.out_proj(attend(q, k, v, self_bias, att.scaling))
                if not pre_norm:
                    h = layer.self_attn_layer_norm(h)
                att = layer.encoder_attn
                residual = h
                x = layer.encoder_attn_layer_norm(h) if pre_norm else h
                q = heads(att.q_proj(x), n_heads, head_dim)
                out = attend(q, cross[2 * i], cross[2 * i + 1], cross_bias, att.scaling)
                h = residual + att.out_proj(out)
                if not pre_norm:
                    h = layer.encoder_attn_layer_norm(h)
                residual = h
                x = layer.final_layer_norm(h) if pre_norm else h
                h = residual + layer.fc2(layer.activation_fn(layer.fc1(x)))
                if not pre_norm:
                    h = layer.final_layer_norm(h)
            if final_norm is not None:
                h = final_norm(h)
            logits = self.lm_head(h)
            if self.logits_bias is not None:
                logits = logits + self.logits_bias
            return (logits, *presents)

    class Cross(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.decoder = decoder

        def forward(self, encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out: list[torch.Tensor] = []
            for layer in self.decoder.layers:
                att = layer.encoder_attn
                out += [
                    heads(att.k_proj(encoder_hidden_states), n_heads, head_dim),
                    heads(att.v_proj(encoder_hidden_states), n_heads, head_dim),
                ]
            return tuple(out)

    return Step().eval(), Cross().eval(), num_layers, n_heads, head_dim


def export_positioned(checkpoint_dir: Path, out_dir: Path) -> PositionedExport:
    """Export the positioned decoder and the cross key/value projection of a checkpoint.

    Writes ``out_dir/decoder_positioned.onnx`` and ``out_dir/cross_kv.onnx`` (fp32, opset
    17, every batch/length axis dynamic). Raises :class:`UnsupportedFamilyError` for a
    ``model_type`` outside :data:`FAMILIES`.
    """
    import torch
    from transformers import AutoModelForSeq2SeqLM

    from export.onnx_export import quiet

    model = AutoModelForSeq2SeqLM.from_pretrained(
        str(checkpoint_dir), attn_implementation="eager"
    ).eval()
    step, cross, num_layers, n_heads, head_dim = _wrappers(model)
    d_model = int(model.config.d_model)
    out_dir.mkdir(parents=True, exist_ok=True)
    past_names, cross_names, present_names = _names(num_layers)

    batch, past_len, src_len = 2, 3, 5
    enc = torch.randn(batch, src_len, d_model)
    past = [torch.randn(batch, n_heads, past_len, head_dim) for _ in past_names]
    cross_kv = [torch.randn(batch, n_heads, src_len, head_dim) for _ in cross_names]
    step_args = (
        torch.ones(batch, 1, dtype=torch.long),
        torch.full((batch, 1), past_len, dtype=torch.long),
        torch.ones(batch, past_len + 1, dtype=torch.long),
        torch.ones(batch, src_len, dtype=torch.long),
        *past,
        *cross_kv,
    )
    step_inputs = [
        "input_ids",
        "position_ids",
        "self_attention_mask",
        "encoder_attention_mask",
        *past_names,
        *cross_names,
    ]
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch"},
        "position_ids": {0: "batch"},
        "self_attention_mask": {0: "batch", 1: MASK_AXIS},
        "encoder_attention_mask": {0: "batch", 1: "src_len"},
        "logits": {0: "batch"},
    }
    axes.update({name: {0: "batch", 2: PAST_AXIS} for name in past_names})
    axes.update({name: {0: "batch", 2: "src_len"} for name in cross_names})
    axes.update({name: {0: "batch", 2: MASK_AXIS} for name in present_names})
    decoder_path = out_dir / DECODER_FILE
    cross_path = out_dir / CROSS_KV_FILE
    with quiet(), torch.no_grad():
        torch.onnx.export(
            step,
            step_args,
            str(decoder_path),
            input_names=step_inputs,
            output_names=["logits", *present_names],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
        cross_axes: dict[str, dict[int, str]] = {
            "encoder_hidden_states": {0: "batch", 1: "src_len"}
        }
        cross_axes.update({name: {0: "batch", 2: "src_len"} for name in cross_names})
        torch.onnx.export(
            cross,
            (enc,),
            str(cross_path),
            input_names=["encoder_hidden_states"],
            output_names=cross_names,
            dynamic_axes=cross_axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    return PositionedExport(
        decoder=decoder_path,
        cross_kv=cross_path,
        num_layers=num_layers,
        num_heads=n_heads,
        head_dim=head_dim,
    )


def fuse_decoder(exported: PositionedExport, family: str, dst: Path) -> dict[str, int]:
    """Apply the package pipeline's ONNX Runtime fusions (``export/optimize.py``: the same
    optimizer settings as for the merged decoder) to the positioned decoder, writing
    ``dst``; returns the fused-operator counts (empty when nothing fused). The Reshape
    pass is not repeated: the package runs it on the export before fusing."""
    from export.optimize import FUSION_MODEL_TYPE, fuse_graph

    model_type = FUSION_MODEL_TYPE[family]
    hidden = exported.num_heads * exported.head_dim
    fused = fuse_graph(
        exported.decoder, dst, model_type, exported.num_heads, hidden, constant_reshapes=False
    )
    return fused.fusions
