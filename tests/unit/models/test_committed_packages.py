"""The model packages committed in models/: what make serve serves on a fresh clone.

Without the data folder: every task has a package, each loads with its checksums verified,
says what it is and under which licence, and answers like the model it claims to be. With
the data folder (``data`` marker): the quality floor of the translation model on the test
set it was judged on. The chat default is the DailyDialog-trained model (docs/quality.md#chat).
"""

from __future__ import annotations

import gzip
from difflib import SequenceMatcher
from pathlib import Path

import sacrebleu

from service.runtime import GenerationOptions, Manifest, Seq2SeqRuntime, load_runtime
from service.text.chat import ChatConventions, Message, render

MODELS = Path(__file__).resolve().parents[3] / "models"
PACKAGES = {"translation": "multi30k-en-de", "summarization": "copy-summarizer"}
PACKAGES["chat"] = "dailydialog-chat"
GREEDY = GenerationOptions(num_beams=1)
PROMPTS = [
    "Hello, how are you?",
    "What would you like to eat tonight?",
    "I lost my wallet on the bus this morning.",
    "Can you tell me the way to the train station?",
    "Do you like playing tennis?",
    "How much does this coat cost?",
]


def _runtime(task: str) -> Seq2SeqRuntime:
    return load_runtime(MODELS / PACKAGES[task], device="cpu", intra_op_threads=1, verify=True)


def _chat_input(runtime: Seq2SeqRuntime, text: str) -> str:
    chat = runtime.manifest.chat
    assert chat is not None
    conventions = ChatConventions(chat.turn_separator, chat.max_history_turns)
    return render([Message("user", text)], conventions)


def test_every_task_has_a_committed_package_that_says_what_it_is() -> None:
    tasks = {}
    for manifest_path in sorted(MODELS.glob("*/manifest.json")):
        manifest = Manifest.load(manifest_path.parent)
        tasks[manifest.task] = manifest.name
        assert "/work/" not in manifest.description and "/work/" not in manifest.source.ref
    assert tasks == PACKAGES
    description = Manifest.load(MODELS / "copy-summarizer").description
    assert "Plumbing model" in description and "copy its input" in description
    assert "Licence" in Manifest.load(MODELS / "multi30k-en-de").description
    chat = Manifest.load(MODELS / "dailydialog-chat").description
    assert "DailyDialog" in chat and "CC BY-NC-SA 4.0" in chat


def test_translation_package_translates() -> None:
    runtime = _runtime("translation")
    [[german]] = runtime.generate_texts(["A man is riding a bicycle."], GREEDY, "en", "de")
    assert "Mann" in german and "Fahrrad" in german


def test_summarization_package_copies_its_input() -> None:
    runtime = _runtime("summarization")
    text = "A man rides a bike down the street."
    [[summary]] = runtime.generate_texts([text], GREEDY)
    words = set(text.lower().split())
    assert len(words & set(summary.lower().split())) >= len(words) // 2


def test_chat_package_answers_each_message_in_its_own_words() -> None:
    runtime = _runtime("chat")
    replies = [
        r[0].strip() for r in runtime.generate_texts([_chat_input(runtime, p) for p in PROMPTS])
    ]
    for reply, prompt in zip(replies, PROMPTS, strict=True):
        assert len(reply.split()) >= 2, (prompt, reply)
        # A reply, not the message repeated (what the plumbing model did).
        similarity = SequenceMatcher(None, prompt.lower(), reply.lower()).ratio()
        assert similarity < 0.8, (prompt, reply)
    # Input-dependent: a collapsed model gives one reply to every message.
    assert len(set(replies)) >= len(PROMPTS) // 2, replies


def test_translation_quality_on_multi30k_test(data_dir: Path) -> None:
    runtime = _runtime("translation")
    path = data_dir / "multi30k"
    with gzip.open(path / "test_2016_flickr.en.gz", "rt", encoding="utf-8") as handle:
        sources = [line.strip() for line in handle][:100]
    with gzip.open(path / "test_2016_flickr.de.gz", "rt", encoding="utf-8") as handle:
        references = [line.strip() for line in handle][:100]
    hypotheses = [r[0] for r in runtime.generate_texts(sources, GREEDY, "en", "de")]
    # docs/quality.md: int8 greedy BLEU 37.2 on all 1,000 sentences.
    assert sacrebleu.corpus_bleu(hypotheses, [references]).score > 30
