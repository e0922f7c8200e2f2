"""The step API: a decode batch that requests join and leave between steps.

Requests that join at the same step form a *cohort*: they are encoded together (padded),
share one past length and run in one decoder call per step. Rows with different past
lengths cannot share a call (optimum's decoder derives positions from the past length and
has no decoder attention mask), so each step runs one decoder call per cohort.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np

from service.runtime.errors import InputTooLongError, RuntimeInputError
from service.runtime.options import ResolvedOptions
from service.runtime.search import (
    SearchGroup,
    SearchRequest,
    StepEvent,
    make_group,
    make_rng,
)
from service.runtime.sessions import CohortCache


class Backend(Protocol):
    """Encoder/decoder primitives (sessions.CpuBackend / CudaBackend)."""

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> CohortCache:
        """Run the encoder for a cohort."""
        ...

    def decode_first(self, cache: CohortCache, input_ids: np.ndarray) -> np.ndarray:
        """First decoder step; returns (rows, vocab) float32 logits."""
        ...

    def decode_next(self, cache: CohortCache, input_ids: np.ndarray) -> np.ndarray:
        """A cached decoder step; returns (rows, vocab) float32 logits."""
        ...

    def expand(self, cache: CohortCache, widths: np.ndarray) -> None:
        """Repeat row ``i`` of the caches ``widths[i]`` times."""
        ...

    def take(self, cache: CohortCache, rows: np.ndarray, self_only: bool = False) -> None:
        """Keep/reorder rows of the caches."""
        ...


def checked_input_ids(
    input_ids: Sequence[int], max_source_positions: int | None, vocab_size: int | None
) -> np.ndarray:
    """The input as an int64 vector; RuntimeInputError if empty, too long or outside the
    vocabulary."""
    ids = np.asarray(input_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise RuntimeInputError("empty input")
    if max_source_positions is not None and ids.size > max_source_positions:
        raise InputTooLongError(
            f"input has {ids.size} tokens; the model accepts at most {max_source_positions}",
            limit_tokens=max_source_positions,
        )
    if ids.min() < 0 or (vocab_size is not None and ids.max() >= vocab_size):
        raise RuntimeInputError("input token id outside the vocabulary")
    return ids


class _Cohort:
    """Requests that joined together: one cache, one decoder call per step."""

    def __init__(self, backend: Backend, groups: list[SearchGroup], cache: CohortCache) -> None:
        self.backend = backend
        self.groups = groups
        self.cache = cache
        self.cur_len = 1
        self.next_ids = np.zeros((0, 1), dtype=np.int64)

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    def advance(self, logits: np.ndarray) -> list[StepEvent]:
        """Run the search of every group on this step's logits and update the caches."""
        events: list[StepEvent] = []
        pieces: list[np.ndarray] = []
        tokens: list[np.ndarray] = []
        changed = False
        reorder_only = True
        offset = 0
        for group in self.groups:
            rows = group.rows
            result = group.step(logits[offset : offset + rows], self.cur_len)
            events.extend(result.events)
            tokens.append(result.next_tokens)
            if result.keep is None:
                pieces.append(np.arange(offset, offset + rows))
            else:
                pieces.append(result.keep + offset)
                changed = True
                reorder_only &= result.reordered_only
            offset += rows
        self.cur_len += 1
        self.groups = [g for g in self.groups if g.rows]
        if changed:
            index = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
            unchanged = reorder_only and np.array_equal(index, np.arange(index.size))
            if index.size and not unchanged:
                self.backend.take(self.cache, index, self_only=reorder_only)
        next_tokens = np.concatenate(tokens) if len(tokens) > 1 else tokens[0]
        self.next_ids = next_tokens.reshape(-1, 1)
        return events

    def step(self) -> list[StepEvent]:
        """One cached decoder call and search step."""
        logits = self.backend.decode_next(self.cache, self.next_ids)
        return self.advance(logits)

    def remove(self, key: Hashable) -> bool:
        """Drop a request's rows from the caches; False if it is not in this cohort."""
        offset = 0
        total = self.rows
        for group in self.groups:
            rows = group.rows
            keep = group.remove(key)
            if keep is not None:
                index = np.concatenate(
                    [np.arange(offset), keep + offset, np.arange(offset + rows, total)]
                )
                self.next_ids = self.next_ids[index]
                self.groups = [g for g in self.groups if g.rows]
                if index.size:
                    self.backend.take(self.cache, index)
                return True
            offset += rows
        return False


class DecodeBatch:
    """A running decode batch: ``add`` requests, ``step`` until they finish, ``remove``
    to cancel. Not thread-safe: one worker thread drives it."""

    def __init__(
        self,
        backend: Backend,
        pad_token_id: int,
        decoder_start_token_id: int,
        max_source_positions: int | None,
        vocab_size: int | None = None,
    ) -> None:
        self.backend = backend
        self.pad_token_id = pad_token_id
        self.start_token = decoder_start_token_id
        self.max_source_positions = max_source_positions
        self.vocab_size = vocab_size
        self._pending: list[tuple[SearchRequest, np.ndarray]] = []
        self._cohorts: list[_Cohort] = []
        self._keys: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def rows(self) -> int:
        """Decoder rows in use (a beam-search request holds num_beams rows)."""
        return sum(c.rows for c in self._cohorts) + sum(r.width for r, _ in self._pending)

    def keys(self) -> list[Hashable]:
        """Keys of all requests in the batch (pending and decoding)."""
        return list(self._keys)

    def add(self, key: Hashable, input_ids: Sequence[int], options: ResolvedOptions) -> None:
        """Queue a request; it is encoded and starts decoding at the next ``step``."""
        if key in self._keys:
            raise ValueError(f"request key {key!r} is already in the batch")
        ids = checked_input_ids(input_ids, self.max_source_positions, self.vocab_size)
        rng = make_rng(options.seed) if options.do_sample else None
        self._pending.append((SearchRequest(key, options, rng), ids))
        self._keys.add(key)

    def remove(self, key: Hashable) -> bool:
        """Cancel a request and free its rows; False if it is not in the batch."""
        if key not in self._keys:
            return False
        self._keys.discard(key)
        for i, (req, _) in enumerate(self._pending):
            if req.key == key:
                del self._pending[i]
                return True
        for cohort in self._cohorts:
            if cohort.remove(key):
                break
        self._cohorts = [c for c in self._cohorts if c.rows]
        return True

    def step(self) -> list[StepEvent]:
        """Advance every request by one token (new joiners: encoder + first decoder step)."""
        events: list[StepEvent] = []
        for cohort in self._cohorts:
            events.extend(cohort.step())
        if self._pending:
            events.extend(self._start_cohort())
        for event in events:
            if event.finished:
                self._keys.discard(event.key)
        self._cohorts = [c for c in self._cohorts if c.rows]
        return events

    def _start_cohort(self) -> list[StepEvent]:
        pending, self._pending = self._pending, []
        # Requests with equal options become one group; groups need contiguous rows.
        by_key: dict[ResolvedOptions, list[tuple[SearchRequest, np.ndarray]]] = {}
        for item in pending:
            by_key.setdefault(item[0].options.group_key, []).append(item)
        ordered = [item for items in by_key.values() for item in items]
        lengths = [ids.size for _, ids in ordered]
        width = max(lengths)
        input_ids = np.full((len(ordered), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(ordered), width), dtype=np.int64)
        for row, (_, ids) in enumerate(ordered):
            input_ids[row, : ids.size] = ids
            mask[row, : ids.size] = 1
        cache = self.backend.encode(input_ids, mask)
        start = np.full((len(ordered), 1), self.start_token, dtype=np.int64)
        logits = self.backend.decode_first(cache, start)
        # All beams / sampled sequences of a request start identical: compute once, repeat.
        widths = np.array([req.width for req, _ in ordered])
        if (widths > 1).any():
            logits = logits[np.repeat(np.arange(len(ordered)), widths)]
            self.backend.expand(cache, widths)
        groups = [
            make_group(opts, [req for req, _ in items], self.start_token)
            for opts, items in by_key.items()
        ]
        cohort = _Cohort(self.backend, groups, cache)
        events = cohort.advance(logits)
        if cohort.rows:
            self._cohorts.append(cohort)
        return events
