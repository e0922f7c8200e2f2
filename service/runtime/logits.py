"""Logits processors in numpy, with the order and semantics of transformers 4.57.

Each processor works on a block of rows sharing one set of options: ``input_ids`` is the
(rows, cur_len) decoder sequence so far (decoder start token first) and ``scores`` the
(rows, vocab) float32 scores, modified in place and returned. ``LogitsPipeline`` chains
them in the order of ``GenerationMixin._get_logits_processor``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from service.runtime.options import ResolvedOptions

NEG_INF = np.float32(-np.inf)


class LogitsProcessor:
    """One processing stage: ``scores`` changed in place and returned."""

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Process ``scores`` given the decoder ``input_ids``."""
        raise NotImplementedError


class RepetitionPenalty(LogitsProcessor):
    """Divide positive / multiply negative scores of tokens already in the sequence."""

    def __init__(self, penalty: float) -> None:
        self.penalty = np.float32(penalty)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Penalize every token present in the row's sequence once."""
        rows = np.arange(scores.shape[0])[:, None]
        picked = scores[rows, input_ids]
        scores[rows, input_ids] = np.where(
            picked < 0, picked * self.penalty, picked / self.penalty
        ).astype(np.float32, copy=False)
        return scores


class NoRepeatNGram(LogitsProcessor):
    """Ban tokens that would repeat an n-gram already in the sequence."""

    def __init__(self, ngram_size: int) -> None:
        self.n = ngram_size

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Set banned continuations of the last n-1 tokens to -inf."""
        n = self.n
        cur_len = input_ids.shape[1]
        if cur_len + 1 < n or cur_len < n:
            return scores
        if n == 1:
            rows = np.arange(scores.shape[0])[:, None]
            scores[rows, input_ids] = NEG_INF
            return scores
        windows = sliding_window_view(input_ids, n, axis=1)  # (rows, cur_len-n+1, n)
        tail = input_ids[:, cur_len - n + 1 :]  # the last n-1 tokens
        match = np.all(windows[:, :, : n - 1] == tail[:, None, :], axis=2)
        row_idx, win_idx = np.nonzero(match)
        if row_idx.size:
            scores[row_idx, windows[row_idx, win_idx, n - 1]] = NEG_INF
        return scores


class NoBadWords(LogitsProcessor):
    """Ban single tokens always, and the last token of longer words after their prefix."""

    def __init__(self, bad_words_ids: Sequence[Sequence[int]], vocab_size: int) -> None:
        single = np.zeros(vocab_size, dtype=bool)
        self.multi: list[tuple[np.ndarray, int]] = []
        for word in bad_words_ids:
            if len(word) == 1:
                single[word[0]] = True
            else:
                self.multi.append((np.asarray(word[:-1], dtype=np.int64), int(word[-1])))
        # Indices, not the boolean mask: a mask over a 58k vocabulary is scanned at every
        # call (about 0.1 ms a call, measured), the few indices are not.
        self.banned = np.flatnonzero(single)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Set banned tokens to -inf."""
        if self.banned.size:
            scores[:, self.banned] = NEG_INF
        cur_len = input_ids.shape[1]
        for prefix, last in self.multi:
            if prefix.size + 1 > cur_len:
                continue
            hit = np.all(input_ids[:, cur_len - prefix.size :] == prefix, axis=1)
            scores[hit, last] = NEG_INF
        return scores


class MinLength(LogitsProcessor):
    """Forbid EOS while the sequence is shorter than ``min_length``."""

    def __init__(self, min_length: int, eos_token_ids: Sequence[int]) -> None:
        self.min_length = min_length
        self.eos = list(eos_token_ids)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Set EOS to -inf before ``min_length``."""
        if input_ids.shape[1] < self.min_length:
            scores[:, self.eos] = NEG_INF
        return scores


class _ForceTokens(LogitsProcessor):
    def __init__(self, at_length: int, token_ids: Sequence[int]) -> None:
        self.at_length = at_length
        self.tokens = list(token_ids)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """At the trigger length, only the forced token(s) remain (score 0)."""
        if input_ids.shape[1] == self.at_length:
            scores[:] = NEG_INF
            scores[:, self.tokens] = 0.0
        return scores


class ForcedBOS(_ForceTokens):
    """Force the first generated token (target language token)."""

    def __init__(self, bos_token_id: int) -> None:
        super().__init__(1, [bos_token_id])


class ForcedEOS(_ForceTokens):
    """Force EOS as the last token allowed by ``max_length``."""

    def __init__(self, max_length: int, eos_token_ids: Sequence[int]) -> None:
        super().__init__(max_length - 1, eos_token_ids)


class SuppressTokens(LogitsProcessor):
    """Always set the given tokens to -inf."""

    def __init__(self, token_ids: Sequence[int]) -> None:
        self.tokens = list(token_ids)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Suppress the tokens."""
        scores[:, self.tokens] = NEG_INF
        return scores


class SuppressTokensAtBegin(LogitsProcessor):
    """Set the given tokens to -inf at the first generated position."""

    def __init__(self, token_ids: Sequence[int], begin_index: int) -> None:
        self.tokens = list(token_ids)
        self.begin_index = begin_index

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Suppress the tokens when the sequence has ``begin_index`` tokens."""
        if input_ids.shape[1] == self.begin_index:
            scores[:, self.tokens] = NEG_INF
        return scores


#: Lower temperatures act as this one: sampling is already greedy there (a logit gap of
#: 0.01 becomes 100), and 1e-300 would be float32 zero (inf scores, NaN probabilities).
MIN_TEMPERATURE = 1e-4


class Temperature(LogitsProcessor):
    """Divide scores by the temperature (at least MIN_TEMPERATURE)."""

    def __init__(self, temperature: float) -> None:
        self.temperature = np.float32(max(temperature, MIN_TEMPERATURE))

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Scale in place."""
        np.divide(scores, self.temperature, out=scores)
        return scores


class TopK(LogitsProcessor):
    """Keep the ``top_k`` highest scores (ties with the k-th all kept)."""

    def __init__(self, top_k: int, min_tokens_to_keep: int = 1) -> None:
        self.top_k = max(top_k, min_tokens_to_keep)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Set scores below the k-th largest to -inf."""
        vocab = scores.shape[1]
        k = min(self.top_k, vocab)
        if k >= vocab:
            return scores
        kth = np.partition(scores, vocab - k, axis=1)[:, vocab - k : vocab - k + 1]
        scores[scores < kth] = NEG_INF
        return scores


class TopP(LogitsProcessor):
    """Nucleus filtering: drop the lowest-probability tokens whose mass is <= 1 - top_p."""

    def __init__(self, top_p: float, min_tokens_to_keep: int = 1) -> None:
        self.top_p = float(top_p)
        self.min_keep = min_tokens_to_keep

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Set the removed tokens to -inf."""
        order = np.argsort(scores, axis=1, kind="stable")  # ascending, like transformers
        sorted_scores = np.take_along_axis(scores, order, axis=1)
        probs = softmax(sorted_scores)
        # torch accumulates a float32 cumsum in double on CPU.
        cumulative = np.cumsum(probs, axis=1, dtype=np.float64).astype(np.float32)
        remove_sorted = cumulative <= np.float32(1 - self.top_p)
        remove_sorted[:, -self.min_keep :] = False
        remove = np.zeros_like(remove_sorted)
        np.put_along_axis(remove, order, remove_sorted, axis=1)
        scores[remove] = NEG_INF
        return scores


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise float32 softmax."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


# Rows per pass of log_softmax: 4 rows of a 58k vocabulary (~1 MB of float32) stay in
# cache between the subtract, exp and sum; measured for 128 x 58,101: 20 ms against 37 ms
# whole-array, bit-identical results.
_LOG_SOFTMAX_ROWS = 4


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise float32 log-softmax (x - max - log(sum(exp(x - max)))), as a new array."""
    out = np.empty(scores.shape, dtype=np.result_type(scores.dtype, np.float32))
    scratch = np.empty((min(_LOG_SOFTMAX_ROWS, scores.shape[0]), scores.shape[1]), out.dtype)
    for start in range(0, scores.shape[0], _LOG_SOFTMAX_ROWS):
        rows = scores[start : start + _LOG_SOFTMAX_ROWS]
        shifted = out[start : start + _LOG_SOFTMAX_ROWS]
        exp = scratch[: rows.shape[0]]
        np.subtract(rows, rows.max(axis=1, keepdims=True), out=shifted)
        np.exp(shifted, out=exp)
        shifted -= np.log(exp.sum(axis=1, keepdims=True))
    return out


class LogitsPipeline:
    """The processors one set of options needs, in transformers' order."""

    def __init__(self, options: ResolvedOptions) -> None:
        self.processors = build_processors(options)

    def __bool__(self) -> bool:
        return bool(self.processors)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Apply every processor in order."""
        for processor in self.processors:
            scores = processor(input_ids, scores)
        return scores


def build_processors(options: ResolvedOptions) -> list[LogitsProcessor]:
    """Processors for ``options``, ordered as in ``GenerationMixin._get_logits_processor``."""
    procs: list[LogitsProcessor] = []
    if options.repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(options.repetition_penalty))
    if options.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGram(options.no_repeat_ngram_size))
    if options.bad_words_ids:
        procs.append(NoBadWords(options.bad_words_ids, options.vocab_size))
    if options.min_length > 0:
        procs.append(MinLength(options.min_length, options.eos_token_ids))
    if options.forced_bos_token_id is not None:
        procs.append(ForcedBOS(options.forced_bos_token_id))
    if options.forced_eos_token_ids:
        procs.append(ForcedEOS(options.max_length, options.forced_eos_token_ids))
    if options.suppress_tokens:
        procs.append(SuppressTokens(options.suppress_tokens))
    if options.begin_suppress_tokens:
        procs.append(
            SuppressTokensAtBegin(options.begin_suppress_tokens, options.begin_suppress_index)
        )
    if options.do_sample:
        # Beam sampling keeps at least one token more than there are EOS tokens.
        min_keep = len(options.eos_token_ids) + 1 if options.num_beams > 1 else 1
        if options.temperature != 1.0:
            procs.append(Temperature(options.temperature))
        if options.top_k != 0:
            procs.append(TopK(options.top_k, min_keep))
        if options.top_p < 1.0:
            procs.append(TopP(options.top_p, min_keep))
    return procs
