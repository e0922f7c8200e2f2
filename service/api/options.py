"""Request options -> the engine's GenerationOptions: the one conversion, per request schema."""

from __future__ import annotations

from service.api.schemas import ChatCompletionRequest, Options
from service.engine import GenerationOptions


def generation_options(options: Options) -> GenerationOptions:
    """The generation options of a task route's ``options`` (unset fields stay None)."""
    return GenerationOptions(
        max_new_tokens=options.max_new_tokens,
        min_new_tokens=options.min_new_tokens,
        num_beams=options.num_beams,
        do_sample=options.do_sample,
        temperature=options.temperature,
        top_k=options.top_k,
        top_p=options.top_p,
        repetition_penalty=options.repetition_penalty,
        no_repeat_ngram_size=options.no_repeat_ngram_size,
        length_penalty=options.length_penalty,
        seed=options.seed,
    )


def openai_options(body: ChatCompletionRequest) -> GenerationOptions:
    """OpenAI fields mapped: max_(completion_)tokens -> max_new_tokens; temperature 0 is
    greedy, > 0 samples (with top_p); n > 1 returns n sequences (sampled, or the n best
    beams when not sampling); seed seeds sampling."""
    sampling = body.temperature is not None and body.temperature > 0
    several = body.n > 1
    return GenerationOptions(
        max_new_tokens=body.max_completion_tokens or body.max_tokens,
        do_sample=sampling if body.temperature is not None else None,
        temperature=body.temperature if sampling else None,
        top_p=body.top_p if sampling else None,
        seed=body.seed,
        num_return_sequences=body.n if several else None,
        num_beams=body.n if several and not sampling else None,
    )
