"""How well inline markup survives translation (docs/quality.md, "Inline markup").

``python -m training.recipes.eval_markup --package models/NAME --target de --markdown OUT``

Reads the committed set of tagged English sentences (``markup-inline.en.html``: one
``<p>`` a line with inline ``b``/``i``/``a``/``span``/``strong``/``em``, some nested),
translates each through ``service.text.markup`` and the service's runtime exactly as the
``html`` format of the API does, and reports:

- the share of sentences whose tags were all placed inside the in-context translation
  of the whole sentence (``Plan.in_context``), rather than falling back to pieces;
- BLEU of the tagged output with its tags stripped against the untagged translation of
  the same sentence (100 when every sentence was placed in context: the fallback is what
  costs);
- examples of both outcomes.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path

import sacrebleu

from service.runtime import GenerationOptions, load_runtime
from service.text import markup

SENTENCES = Path(__file__).with_name("markup-inline.en.html")
_TAG = re.compile(r"<[^>]+>")


def strip_tags(document: str) -> str:
    """The text of a one-paragraph document (tags removed, references decoded)."""
    return " ".join(html.unescape(_TAG.sub("", document)).split())


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--package", type=Path, required=True)
    p.add_argument("--source", default="en")
    p.add_argument("--target", required=True)
    p.add_argument("--precision", default="int8")
    p.add_argument("--beams", type=int, default=None, help="default: the package's")
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    documents = [line for line in SENTENCES.read_text("utf-8").splitlines() if line.strip()]
    runtime = load_runtime(args.package, device="cpu", precision=args.precision)
    options = GenerationOptions(num_beams=args.beams)

    def translate(texts: list[str]) -> list[str]:
        outs = runtime.generate_texts(
            texts, options, source_lang=args.source, target_lang=args.target
        )
        return [alternatives[0] for alternatives in outs]

    plans = [markup.extract(d) for d in documents]
    units = sorted({t for plan in plans for t in plan.texts})
    translated = dict(zip(units, translate(units), strict=True))
    rows: list[dict[str, object]] = []
    for document, plan in zip(documents, plans, strict=True):
        translations = [translated[t] for t in plan.texts]
        out = plan.rebuild(translations)
        whole = translated[plan.texts[0]]
        rows.append(
            {
                "source": document,
                "output": out,
                "untagged": whole,
                "in_context": all(plan.in_context(translations)),
                "matched": all(plan.in_context(translations, matched_only=True)),
            }
        )
    placed = sum(bool(r["in_context"]) for r in rows)
    matched = sum(bool(r["matched"]) for r in rows)
    bleu = sacrebleu.corpus_bleu(
        [strip_tags(str(r["output"])) for r in rows], [[str(r["untagged"]) for r in rows]]
    ).score
    summary = {
        "package": str(args.package),
        "direction": f"{args.source}->{args.target}",
        "sentences": len(rows),
        "in_context": placed,
        "in_context_share": placed / len(rows),
        "matched": matched,
        "matched_share": matched / len(rows),
        "bleu_stripped_vs_untagged": bleu,
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({**summary, "rows": rows}, indent=1, ensure_ascii=False))
    if args.markdown:
        lines = [
            f"{args.source}->{args.target}: {placed} of {len(rows)} sentences "
            f"({100 * placed / len(rows):.1f} %) placed in context, {matched} "
            f"({100 * matched / len(rows):.1f} %) with every element's own translation found "
            "there (the rest by position); BLEU of the tagged "
            f"output, tags stripped, against the untagged translation: {bleu:.1f}",
            "",
            "| source | output | in context |",
            "|---|---|---|",
        ]
        shown = [r for r in rows if r["in_context"]][:5] + [r for r in rows if not r["in_context"]][
            :5
        ]
        for r in shown:
            cells = [str(r["source"]), str(r["output"])]
            lines.append(
                "| "
                + " | ".join("`" + c.replace("|", "\\|") + "`" for c in cells)
                + f" | {'yes' if r['in_context'] else 'no'} |"
            )
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
