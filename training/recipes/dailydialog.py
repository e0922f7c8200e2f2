"""DailyDialog as (dialogue context -> next turn) pairs for training a small chat model.

The corpus (Li et al. 2017, CC BY-NC-SA 4.0) stores one dialogue a line, turns separated by
``__eou__``, in space-tokenized text ("you wanna buy some weed ?"). Turns are detokenized
with sacremoses (the Moses detokenizer; DailyDialog was tokenized in that style) after two
corpus-specific repairs, and each context is rendered with the service's own chat renderer
(``service.text.chat.render``), so the model trains on exactly what ``/chat`` feeds it.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from sacremoses import MosesDetokenizer

from service.text.chat import ChatConventions, Message, render

TURN_SEPARATOR = " <sep> "
# A piece of its own in the vocabulary, so turn boundaries survive tokenization.
SEPARATOR_SYMBOL = TURN_SEPARATOR.strip()
MAX_HISTORY_TURNS = 3
TRAIN_FILE = "dialogues_train.txt.gz"
TEST_FILE = "dialogues_test.txt.gz"

_APOSTROPHE = re.compile(r"(\w) ?[’'] ?(s|t|ll|re|m|d|ve)\b", re.IGNORECASE)
# "right.But" / "pingpong.Perhaps": sentences glued at a full stop in the original release.
_GLUED_SENTENCE = re.compile(r"([a-z]{2})([.?!])([A-Z][a-z])")
_DETOKENIZER = MosesDetokenizer(lang="en")


@dataclass(frozen=True)
class ChatPair:
    """One training example: the rendered context and the reply that followed it."""

    context: str
    reply: str


def conventions(max_history_turns: int = MAX_HISTORY_TURNS) -> ChatConventions:
    """How this recipe renders a history (and how the exported package must render it)."""
    return ChatConventions(turn_separator=TURN_SEPARATOR, max_history_turns=max_history_turns)


def detokenize(turn: str) -> str:
    """Readable text of one space-tokenized DailyDialog turn."""
    text = " ".join(turn.replace(SEPARATOR_SYMBOL, " ").split())
    text = _APOSTROPHE.sub(lambda m: f"{m.group(1)}'{m.group(2)}", text)
    text = _DETOKENIZER.detokenize(text.split())
    text = _GLUED_SENTENCE.sub(r"\1\2 \3", text)
    return text.replace("’", "'").strip()


def read_dialogues(path: Path, limit: int | None = None) -> list[list[str]]:
    """Detokenized dialogues (lists of turns) of one DailyDialog file."""
    dialogues: list[list[str]] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            turns = [detokenize(t) for t in line.split("__eou__")]
            turns = [t for t in turns if t]
            if len(turns) >= 2:
                dialogues.append(turns)
            if limit is not None and len(dialogues) >= limit:
                break
    return dialogues


def history(turns: list[str]) -> list[Message]:
    """Chat messages of a dialogue prefix, the last one being the user's (the model answers)."""
    count = len(turns)
    return [
        Message(role="user" if (count - i) % 2 == 1 else "assistant", content=turn)
        for i, turn in enumerate(turns)
    ]


def context_pairs(
    dialogues: list[list[str]],
    max_context_chars: int = 300,
    max_reply_chars: int = 200,
    max_history_turns: int = MAX_HISTORY_TURNS,
) -> list[ChatPair]:
    """Every (rendered context -> next turn) pair, with the oldest turns dropped to fit.

    Replies over ``max_reply_chars`` are left out (a small model learns little from them),
    and the context keeps the most recent turns (at most ``max_history_turns``) that fit
    ``max_context_chars`` (the last turn always stays).
    """
    style = conventions(max_history_turns)
    pairs: list[ChatPair] = []
    for turns in dialogues:
        for end in range(1, len(turns)):
            reply = turns[end]
            if len(reply) > max_reply_chars:
                continue
            prior = turns[max(0, end - style.max_history_turns) : end]
            while len(prior) > 1 and len(render(history(prior), style)) > max_context_chars:
                prior = prior[1:]
            pairs.append(ChatPair(render(history(prior), style), reply))
    return pairs
