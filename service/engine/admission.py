"""What a request costs a batch: decoder rows and padded encoder tokens.

A beam-search request occupies ``num_beams`` decoder rows, a sampled one
``num_return_sequences``; the encoder output and the cross-attention caches are as long
as the batch's longest input for every row. ``max_batch_size`` counts rows and
``max_batch_tokens`` padded tokens (longest input x rows), so a 16-beam request costs 16.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.runtime import ResolvedOptions


def rows_of(options: ResolvedOptions) -> int:
    """Decoder rows one request with ``options`` occupies."""
    return options.num_beams if options.is_beam else options.num_return_sequences


def padded_tokens(costs: Iterable[tuple[int, int]]) -> int:
    """Padded tokens of a batch of (input length, rows) requests: longest input x rows."""
    items = list(costs)
    if not items:
        return 0
    return max(length for length, _ in items) * sum(rows for _, rows in items)
