"""Encode a padded batch in groups of similar length, so the encoder does not run on padding.

A batch of real sentences is padded to its longest one: measured on WMT14 newstest with the
full-size Marian, 53 % of the encoder's token positions at batch 32 were padding, and the
encoder (once per request) took ~40 % of a 32-token greedy decode there. Rows are sorted by
length and cut into contiguous groups that minimise padded tokens plus a fixed per-call
cost; each group runs at its own width, and the outputs are written back into one
``(rows, width, d_model)`` array whose padding positions are zero (the decoder masks them).

A row's encoder output does not depend on how much padding it was run with (padding keys
are masked), so the result equals the one-call encoding up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# What one extra encoder call costs, in padded token positions (ORT call overhead and the
# lower efficiency of smaller matrix products).
CALL_COST_TOKENS = 16

Encode = Callable[[np.ndarray, np.ndarray], np.ndarray]


def length_groups(lengths: np.ndarray, call_cost: int = CALL_COST_TOKENS) -> list[np.ndarray]:
    """Row indices in groups of similar length, cheapest first-to-last split of the sorted rows.

    Minimises ``sum(rows_in_group * longest_in_group) + call_cost * groups`` exactly (dynamic
    programming over the rows sorted by length; groups of an optimal split are contiguous
    in that order).
    """
    order = np.argsort(lengths, kind="stable")
    ordered = np.asarray(lengths)[order].astype(np.int64)
    rows = len(ordered)
    best = np.zeros(rows + 1, dtype=np.int64)
    start = np.zeros(rows + 1, dtype=np.int64)
    for end in range(1, rows + 1):
        firsts = np.arange(end)
        costs = best[:end] + (end - firsts) * ordered[end - 1] + call_cost
        first = int(np.argmin(costs))
        best[end], start[end] = costs[first], first
    groups: list[np.ndarray] = []
    end = rows
    while end > 0:
        first = int(start[end])
        groups.append(order[first:end])
        end = first
    return groups[::-1]


def encode_grouped(encode: Encode, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """``encode(ids, mask)`` per length group of a right-padded batch, reassembled in row order."""
    lengths = attention_mask.sum(axis=1)
    groups = length_groups(lengths)
    if len(groups) == 1:
        return encode(input_ids, attention_mask)
    hidden: np.ndarray | None = None
    for rows in groups:
        width = max(1, int(lengths[rows].max()))
        part = encode(input_ids[rows, :width], attention_mask[rows, :width])
        if hidden is None:
            shape = (input_ids.shape[0], input_ids.shape[1], *part.shape[2:])
            hidden = np.zeros(shape, dtype=part.dtype)
        hidden[rows, :width] = part
    assert hidden is not None
    return hidden
