"""Decoding with the positioned decoder: rows at different steps share one call.

Drives the two graphs of ``export/positioned_decoder.py`` (``cross_kv.onnx`` and
``decoder_positioned.onnx``) with numpy and ONNX Runtime only (no torch, no asyncio).
:class:`PositionedGreedy` holds the slots (the cache, joins, holes, compaction) and has a
plain greedy ``step`` used to validate the export; :class:`PositionedDecodeBatch` is the
runtime's step API over it (``Seq2SeqRuntime.new_positioned_batch``, the engine's
``continuous`` mode), with the project's search (logits processors, sampling) per request.

State of a running batch (one *slot* per batch index: a live row or a hole):

- ``past``: per layer a self key and value [slots, heads, past_len, head_dim], right-aligned
  (a row's ``n`` valid entries are the last ``n`` columns, zeros before them);
  ``mask`` [slots, past_len] marks them. The decoder returns ``present`` = past plus the
  new step, which becomes the next past as it is: no copy in the steady state.
- ``cross``: per layer the cross key and value [slots, heads, src_len, head_dim], computed
  once when a row joins, zero-padded on the right to the longest source of the batch;
  ``enc_mask`` [slots, src_len].

A leaving row becomes a masked *hole* and the next joiner is written into it in place
(its all-padding past, its cross key/values); joiners beyond the holes are concatenated
on the batch axis of the self cache, and written in place after the live slots of the
cross cache, whose buffers keep room for more slots (grown by half when full): at 64 rows
and source width 186 the cross cache of full Marian is about 290 MB, and concatenating it
at such joins was 6 % of the server's samples at saturation (py-spy, open-loop mix).
Holes are dropped, and leading past columns / trailing source columns that no live row
uses are trimmed, in one copy when the compaction policy says so (see
:class:`PositionedGreedy`). Measured at base geometry (batch 32, 6 layers, 8 heads, past
60, source 30: 47 MB self cache + 24 MB cross; numpy, one loaded 2-core machine, so
indicative), one concatenation or one drop costs 45-55 ms against about 30 ms for one
decoder step, so a copy at every join and leave would cost more than a step.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.runtime.generator import Backend, checked_input_ids
from service.runtime.options import ResolvedOptions
from service.runtime.search import SearchGroup, SearchRequest, StepEvent, make_group, make_rng


@dataclass
class _Row:
    key: Hashable
    last: int
    position: int
    max_new_tokens: int
    tokens: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class RowEvent:
    """One row's result of a step: its new token, and whether the row has finished."""

    key: Hashable
    token: int
    finished: bool


def _num_layers(session: Any) -> int:
    names = [i.name for i in session.get_inputs()]
    return sum(1 for n in names if n.startswith("past_key_values.") and n.endswith(".decoder.key"))


class PositionedGreedy:
    """A greedy decode batch over the positioned decoder; rows join and leave at any step.

    ``decoder`` and ``cross_kv`` are ``onnxruntime.InferenceSession``s of the two graphs.
    ``forced_bos_token_id`` forces a row's first generated token (transformers'
    ``ForcedBOSTokenIdLogitsProcessor``); ``banned_token_ids`` are never chosen
    (single-token ``bad_words_ids``). A row ends at ``eos_token_id`` or after
    ``max_new_tokens`` tokens.

    A finished row leaves a *hole*: its slot stays in the arrays (masked, still computed,
    its output ignored) and the next joiner is written into it in place, so neither leaving
    nor joining copies the cache. The arrays are compacted (holes dropped and unused
    leading past columns trimmed, one copy) once holes make up ``compact_holes`` of the
    slots (0: at every leave), or once at least ``trim_columns`` leading past columns and
    half of them are unused by every live row.
    """

    def __init__(
        self,
        decoder: Any,
        cross_kv: Any,
        *,
        decoder_start_token_id: int,
        eos_token_id: int,
        forced_bos_token_id: int | None = None,
        banned_token_ids: Sequence[int] = (),
        compact_holes: float = 0.25,
        trim_columns: int = 16,
    ) -> None:
        self.decoder = decoder
        self.cross_kv = cross_kv
        self.num_layers = _num_layers(decoder)
        self.start = int(decoder_start_token_id)
        self.eos = int(eos_token_id)
        self.forced_bos = forced_bos_token_id
        self.banned = np.asarray(list(banned_token_ids), dtype=np.int64)
        self.compact_holes = compact_holes
        self.trim_columns = trim_columns
        self._present_names = [
            f"present.{i}.decoder.{kv}" for i in range(self.num_layers) for kv in ("key", "value")
        ]
        self.slots: list[_Row | None] = []
        self._pending: list[tuple[_Row, np.ndarray]] = []
        self.past: list[np.ndarray] = []
        self.mask = np.zeros((0, 0), dtype=np.int64)
        self._cross_buf: list[np.ndarray] = []  # [capacity, heads, src_len, head_dim]
        self.enc_mask = np.zeros((0, 0), dtype=np.int64)
        self.calls = 0
        self.reused_slots = 0
        self.compactions = 0
        self._inputs = {i.name for i in decoder.get_inputs()}

    @property
    def cross(self) -> list[np.ndarray]:
        """Per layer the cross key and value of every slot [slots, heads, src_len,
        head_dim]: views of the first rows of buffers with room for more slots, so a joiner
        beyond the holes is written in place instead of copying the whole cross cache."""
        slots = len(self.slots)
        return [buf[:slots] for buf in self._cross_buf]

    @property
    def cross_capacity(self) -> int:
        """Slots the cross key/value buffers hold before they must grow."""
        return int(self._cross_buf[0].shape[0]) if self._cross_buf else 0

    @property
    def rows(self) -> list[_Row]:
        """The live rows, in slot order."""
        return [row for row in self.slots if row is not None]

    def __len__(self) -> int:
        """Live rows, joiners waiting for the next step included."""
        return len(self.rows) + len(self._pending)

    @property
    def past_len(self) -> int:
        """Columns of the padded self-attention cache."""
        return int(self.mask.shape[1])

    @property
    def positions(self) -> list[int]:
        """Each live row's position (tokens before its next input), in slot order."""
        return [row.position for row in self.rows]

    def add(self, key: Hashable, encoder_hidden_states: np.ndarray, max_new_tokens: int) -> _Row:
        """Queue a row (its encoder output [src_len, d_model], no padding); it joins at the
        next :meth:`step`. Returns the row (its identity survives compaction)."""
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        row = _Row(key=key, last=self.start, position=0, max_new_tokens=max_new_tokens)
        self._pending.append((row, np.asarray(encoder_hidden_states, dtype=np.float32)))
        return row

    def _admit(self) -> None:
        """Project the joiners' cross key/values in one call; put them into holes (in place),
        append the rest (one concatenation)."""
        if not self._pending:
            return
        lengths = [enc.shape[0] for _, enc in self._pending]
        width = max(lengths)
        d_model = self._pending[0][1].shape[1]
        enc = np.zeros((len(lengths), width, d_model), dtype=np.float32)
        enc_mask = np.zeros((len(lengths), width), dtype=np.int64)
        for i, (_, states) in enumerate(self._pending):
            enc[i, : states.shape[0]] = states
            enc_mask[i, : states.shape[0]] = 1
        cross = self.cross_kv.run(None, {"encoder_hidden_states": enc})
        joiners = [row for row, _ in self._pending]
        self._pending = []
        if not self.rows:  # nothing live: start afresh (drops any holes, past_len 0)
            self.slots = list(joiners)
            self._cross_buf = [np.ascontiguousarray(c) for c in cross]
            self.enc_mask = enc_mask
            self.past = [
                np.zeros((len(joiners), c.shape[1], 0, c.shape[3]), dtype=np.float32) for c in cross
            ]
            self.mask = np.zeros((len(joiners), 0), dtype=np.int64)
            return
        src = max(width, self.enc_mask.shape[1])
        holes = [i for i, row in enumerate(self.slots) if row is None]
        end = len(self.slots) + max(0, len(joiners) - len(holes))
        capacity = self.cross_capacity
        if end > capacity:  # full: grow by half (one copy now and then, not at every join)
            capacity = max(end, 3 * capacity // 2)
        if src > self.enc_mask.shape[1] or capacity > self.cross_capacity:
            # a joiner's source is longer than any so far, or the buffers are full: one
            # copy for both
            self._resize_cross(capacity, src)
            self.enc_mask = _pad_axis(self.enc_mask, 1, src)
        placed = 0
        for slot, row in zip(holes, joiners, strict=False):
            for old, new in zip(self._cross_buf, cross, strict=True):
                old[slot, :, :width] = new[placed]
                old[slot, :, width:] = 0.0
            self.enc_mask[slot] = 0
            self.enc_mask[slot, :width] = enc_mask[placed]
            for p in self.past:
                p[slot] = 0.0
            self.mask[slot] = 0
            self.slots[slot] = row
            placed += 1
        self.reused_slots += placed
        rest = len(joiners) - placed
        if not rest:
            return
        self._append_cross(cross, placed, width)
        self.enc_mask = np.concatenate([self.enc_mask, _pad_axis(enc_mask[placed:], 1, src)])
        past_len = self.past_len
        self.past = [
            np.concatenate(
                [p, np.zeros((rest, p.shape[1], past_len, p.shape[3]), dtype=p.dtype)], axis=0
            )
            for p in self.past
        ]
        self.mask = np.concatenate([self.mask, np.zeros((rest, past_len), dtype=np.int64)])
        self.slots.extend(joiners[placed:])

    def _resize_cross(self, capacity: int, src: int) -> None:
        """New cross buffers of ``capacity`` slots and source width ``src`` (zero-padded)
        holding the current slots' key/values."""
        slots = len(self.slots)
        resized = []
        for buf in self._cross_buf:
            new = np.zeros((capacity, buf.shape[1], src, buf.shape[3]), dtype=buf.dtype)
            new[:slots, :, : buf.shape[2]] = buf[:slots]
            resized.append(new)
        self._cross_buf = resized

    def _append_cross(self, cross: Sequence[np.ndarray], placed: int, width: int) -> None:
        """Write the joiners ``cross[:, placed:]`` (source width ``width``) after the slots,
        into the buffers' spare room (``_admit`` made it)."""
        slots = len(self.slots)
        end = slots + cross[0].shape[0] - placed
        for buf, new in zip(self._cross_buf, cross, strict=True):
            buf[slots:end, :, :width] = new[placed:]
            buf[slots:end, :, width:] = 0.0

    def forward(self) -> np.ndarray | None:
        """Admit the joiners and run one decoder call for every slot; returns the logits
        [slots, vocab] (a hole's row is meaningless), or None when no row is live. The
        cache then holds the new step of every slot; each live row must next be either
        :meth:`advance`d by its chosen token or :meth:`release`d."""
        self._admit()
        if not self.rows:
            return None
        slots = len(self.slots)
        mask = np.concatenate([self.mask, np.ones((slots, 1), dtype=np.int64)], axis=1)
        feed: dict[str, np.ndarray] = {
            "input_ids": np.array(
                [[r.last if r is not None else self.start] for r in self.slots], dtype=np.int64
            ),
            "position_ids": np.array(
                [[r.position if r is not None else 0] for r in self.slots], dtype=np.int64
            ),
            "self_attention_mask": mask,
            "encoder_attention_mask": self.enc_mask,
        }
        if "position_ids" not in self._inputs:  # T5: relative positions, no position input
            del feed["position_ids"]
        for i in range(self.num_layers):
            feed[f"past_key_values.{i}.decoder.key"] = self.past[2 * i]
            feed[f"past_key_values.{i}.decoder.value"] = self.past[2 * i + 1]
            feed[f"past_key_values.{i}.encoder.key"] = self.cross[2 * i]
            feed[f"past_key_values.{i}.encoder.value"] = self.cross[2 * i + 1]
        outputs = self.decoder.run(["logits", *self._present_names], feed)
        self.calls += 1
        self.past = list(outputs[1:])
        self.mask = mask
        for i, row in enumerate(self.slots):
            if row is None:
                self.mask[i] = 0  # a hole: whatever it computed is not a row's past
        # [slots, 1, vocab] -> [slots, vocab] is a view (no copy of the logits every step);
        # the array is this call's own output, so the search may write into it.
        return np.ascontiguousarray(outputs[0][:, -1, :], dtype=np.float32)

    def advance(self, slot: int, token: int) -> None:
        """The live row in ``slot`` chose ``token``: its next input."""
        row = self.slots[slot]
        assert row is not None
        row.tokens.append(token)
        row.last = token
        row.position += 1

    def release(self, slot: int) -> None:
        """The row in ``slot`` leaves: its slot becomes a masked hole (no copy)."""
        self.slots[slot] = None
        self.mask[slot] = 0

    def copy_rows(self, targets: Sequence[int], sources: Sequence[int]) -> None:
        """Slot ``targets[j]`` takes the self-attention cache (and mask) of slot
        ``sources[j]`` (a beam continuing another beam of its request; the sources are read
        before any target is written). Cross key/values are not touched: the rows of one
        request share them."""
        dst = np.asarray(targets, dtype=np.int64)
        src = np.asarray(sources, dtype=np.int64)
        for p in self.past:
            p[dst] = p[src]
        self.mask[dst] = self.mask[src]

    def slot_index(self) -> dict[int, int]:
        """``id(row)`` -> slot of every live row (slots move when the arrays compact)."""
        return {id(row): i for i, row in enumerate(self.slots) if row is not None}

    def discard(self, key: Hashable) -> bool:
        """Drop the row ``key`` (waiting to join or live) at once; False if absent."""
        for i, (joiner, _) in enumerate(self._pending):
            if joiner.key == key:
                del self._pending[i]
                return True
        for slot, row in enumerate(self.slots):
            if row is not None and row.key == key:
                self.release(slot)
                self.compact()
                return True
        return False

    def step(self) -> list[RowEvent]:
        """Admit the joiners, run one decoder call for every slot, choose each live row's
        token, and turn the rows that finished into holes. Returns one event per live row."""
        logits = self.forward()
        if logits is None:
            return []
        if self.banned.size:
            logits[:, self.banned] = -np.inf
        chosen = logits.argmax(axis=-1)
        events: list[RowEvent] = []
        for i, row in enumerate(self.slots):
            if row is None:
                continue
            token = int(chosen[i])
            if row.position == 0 and self.forced_bos is not None:
                token = int(self.forced_bos)
            self.advance(i, token)
            done = token == self.eos or len(row.tokens) >= row.max_new_tokens
            events.append(RowEvent(key=row.key, token=token, finished=done))
            if done:
                self.release(i)
        self.compact()
        return events

    def compact(self) -> None:
        """Drop holes and trim unused leading past columns (one copy) when the policy says."""
        live = [i for i, row in enumerate(self.slots) if row is not None]
        holes = len(self.slots) - len(live)
        if not live:
            self.slots = []
            self.past = [p[:0, :, :0] for p in self.past]
            self._cross_buf = [np.empty((0, *c.shape[1:]), c.dtype) for c in self._cross_buf]
            self.mask = self.mask[:0, :0]
            self.enc_mask = self.enc_mask[:0]
            return
        used = np.flatnonzero(self.mask[live].any(axis=0))
        first = int(used[0]) if used.size else self.past_len
        trim = first > 0 and first >= self.trim_columns and 2 * first >= self.past_len
        if not trim and not (holes and holes >= self.compact_holes * len(self.slots)):
            return
        self.compactions += 1
        index = np.asarray(live, dtype=np.int64)
        enc_mask = self.enc_mask[index]
        src_used = np.flatnonzero(enc_mask.any(axis=0))
        src = int(src_used[-1]) + 1 if src_used.size else 0
        self.slots = [self.slots[i] for i in live]
        self.mask = np.ascontiguousarray(self.mask[index, first:])
        self.enc_mask = np.ascontiguousarray(enc_mask[:, :src])
        self.past = [np.ascontiguousarray(p[index, :, first:]) for p in self.past]
        self._compact_cross(live, src)

    def _compact_cross(self, live: list[int], src: int) -> None:
        """Move the ``live`` slots' cross key/values to the front of the buffers (in
        place, only the slots after the first hole move, while the source width stays) or
        into new buffers of width ``src``; either way the buffers keep their capacity for
        the joiners that follow. Row by row: numpy's ``take`` / fancy indexing would first
        copy the whole strided buffer."""
        compacted = []
        for buf in self._cross_buf:
            same_width = src == buf.shape[2]
            target = (
                buf
                if same_width
                else np.empty((buf.shape[0], buf.shape[1], src, buf.shape[3]), buf.dtype)
            )
            for j, i in enumerate(live):
                if i != j or not same_width:  # i >= j: a later slot moves to an earlier one
                    target[j] = buf[i, :, :src]
            compacted.append(target)
        self._cross_buf = compacted

    def tokens(self, key: Hashable) -> list[int]:
        """The tokens generated so far for a row still in the batch."""
        for row in self.rows:
            if row.key == key:
                return list(row.tokens)
        raise KeyError(key)


def _rows_of(logits: np.ndarray, slots: list[int]) -> np.ndarray:
    """The request's rows of ``logits``: a view where its slots are consecutive (a greedy
    request's one slot; beams placed together), else a copy. Requests hold disjoint
    slots, so a search writing into its view touches no other request's scores."""
    first = slots[0]
    if slots == list(range(first, first + len(slots))):
        return logits[first : first + len(slots)]
    return logits[slots]


def _pad_axis(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Zero-pad ``array`` at the end of ``axis`` to ``size``."""
    missing = size - array.shape[axis]
    if missing <= 0:
        return array
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, missing)
    return np.pad(array, widths)


def greedy_decode(
    batch: PositionedGreedy,
    joins: Sequence[tuple[int, Hashable, np.ndarray, int]],
) -> dict[Hashable, list[int]]:
    """Run ``batch`` until every row finished; ``joins`` are ``(step, key, encoder states,
    max_new_tokens)``: the row joins before decoder call number ``step`` (0-based).
    Returns every row's generated tokens (with the forced BOS and EOS when generated)."""
    plan = sorted(joins, key=lambda j: j[0])
    done: dict[Hashable, list[int]] = {}
    produced: dict[Hashable, list[int]] = {}
    step = 0
    while plan or len(batch):
        while plan and plan[0][0] <= step:
            _, key, states, budget = plan.pop(0)
            batch.add(key, states, budget)
            produced[key] = []
        for event in batch.step():
            produced[event.key].append(event.token)
            if event.finished:
                done[event.key] = produced[event.key]
        step += 1
    return done


@dataclass
class _Request:
    """A request of the step-API batch: its search group and its rows, in group order."""

    group: SearchGroup
    rows: list[_Row]
    cur_len: int = 1  # tokens in each row so far, the decoder start token included


class PositionedDecodeBatch:
    """The runtime's step API (``add`` / ``step`` / ``remove``, the same face as
    ``generator.DecodeBatch``) over the positioned decoder: every request, at whatever
    position, decodes in **one decoder call per step** (``slots``, a
    :class:`PositionedGreedy`), and a request may join at any step.

    A joiner costs one encoder call for all joiners of the step (``backend.encode``, the
    length groups of the CPU backend) and one ``cross_kv`` call; it then decodes its first
    token in the same step's decoder call as the running rows. Each request has its own
    search group (``search.make_group`` with its options: every logits processor, forced
    BOS/EOS, greedy, sampling with its own seeded generator, beam search), so its tokens do
    not depend on its neighbours. A request holds ``width`` slots (``num_beams`` for beam
    search, ``num_return_sequences`` when sampling, else 1), all at the same position.
    After each step the group says which of its rows continue from which (``keep``): beams
    that continue another beam take a copy of its self-attention cache rows
    (:meth:`PositionedGreedy.copy_rows`, the same copy a cohort's ``take`` does), rows that
    end become masked holes that the next joiner fills (:class:`PositionedGreedy`'s slots
    and compaction policy).
    """

    def __init__(
        self,
        slots: PositionedGreedy,
        backend: Backend,
        pad_token_id: int,
        decoder_start_token_id: int,
        max_source_positions: int | None,
        vocab_size: int | None,
    ) -> None:
        self.slots = slots
        self.backend = backend
        self.pad_token_id = pad_token_id
        self.start_token = decoder_start_token_id
        self.max_source_positions = max_source_positions
        self.vocab_size = vocab_size
        self._joining: list[tuple[SearchRequest, np.ndarray]] = []
        self._requests: dict[Hashable, _Request] = {}

    def __len__(self) -> int:
        """Requests in the batch (joining and decoding)."""
        return len(self._joining) + len(self._requests)

    @property
    def rows(self) -> int:
        """Decoder rows in use (a beam-search request holds num_beams rows)."""
        joining = sum(r.width for r, _ in self._joining)
        return joining + sum(len(r.rows) for r in self._requests.values())

    def keys(self) -> list[Hashable]:
        """Keys of all requests in the batch."""
        return [r.key for r, _ in self._joining] + list(self._requests)

    def add(self, key: Hashable, input_ids: Sequence[int], options: ResolvedOptions) -> None:
        """Queue a request; it is encoded and decodes its first token at the next step."""
        if key in self._requests or any(r.key == key for r, _ in self._joining):
            raise ValueError(f"request key {key!r} is already in the batch")
        ids = checked_input_ids(input_ids, self.max_source_positions, self.vocab_size)
        rng = make_rng(options.seed) if options.do_sample else None
        self._joining.append((SearchRequest(key, options, rng), ids))

    def remove(self, key: Hashable) -> bool:
        """Cancel a request and free its rows; False if it is not in the batch."""
        for i, (request, _) in enumerate(self._joining):
            if request.key == key:
                del self._joining[i]
                return True
        found = self._requests.pop(key, None)
        if found is None:
            return False
        index = self.slots.slot_index()
        for row in found.rows:
            self.slots.release(index[id(row)])
        self.slots.compact()
        return True

    def _encode_joiners(self) -> None:
        """One encoder call for the step's joiners; each row's states go to the slots."""
        joining, self._joining = self._joining, []
        width = max(ids.size for _, ids in joining)
        input_ids = np.full((len(joining), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(joining), width), dtype=np.int64)
        for row, (_, ids) in enumerate(joining):
            input_ids[row, : ids.size] = ids
            mask[row, : ids.size] = 1
        hidden = np.asarray(self.backend.encode(input_ids, mask).hidden)
        for i, (request, ids) in enumerate(joining):
            group = make_group(request.options, [request], self.start_token)
            states = hidden[i, : ids.size]
            budget = request.options.max_new_tokens
            rows = [self.slots.add(request.key, states, budget) for _ in range(request.width)]
            self._requests[request.key] = _Request(group, rows)

    def step(self) -> list[StepEvent]:
        """Advance every request by one token: one positioned decoder call for every live
        row (joiners included), then each request's search."""
        if self._joining:
            self._encode_joiners()
        logits = self.slots.forward()
        events: list[StepEvent] = []
        if logits is not None:
            index = self.slots.slot_index()
            for key, request in list(self._requests.items()):
                events.extend(self._advance(key, request, logits, index))
        self.slots.compact()
        return events

    def _advance(
        self, key: Hashable, request: _Request, logits: np.ndarray, index: dict[int, int]
    ) -> list[StepEvent]:
        """One request's search on its rows of ``logits``; its rows continue, copy another
        beam's cache, or become holes."""
        slots = [index[id(row)] for row in request.rows]
        result = request.group.step(_rows_of(logits, slots), request.cur_len)
        request.cur_len += 1
        rows = request.rows
        if result.keep is not None:
            keep = result.keep.tolist()
            if all(b > a for a, b in itertools.pairwise(keep)):  # rows left, none moved
                rows = [request.rows[k] for k in keep]
            else:  # beams continue other beams: copy their caches into the rows
                rows = request.rows[: len(keep)]
                self.slots.copy_rows(slots[: len(keep)], [slots[k] for k in keep])
            kept = {id(row) for row in rows}
            for row in request.rows:
                if id(row) not in kept:
                    self.slots.release(index[id(row)])
        request.rows = rows
        if not rows:
            del self._requests[key]
            return result.events
        for row, token in zip(rows, result.next_tokens.tolist(), strict=True):
            self.slots.advance(index[id(row)], int(token))
        return result.events
