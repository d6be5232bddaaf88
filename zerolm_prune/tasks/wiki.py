"""Scoring of the offline perplexity task (real Wikipedia paragraphs from BoolQ).

Mirrors lm-eval's wikitext ``process_results``: the summed log-likelihood of a document paired
with its word and byte counts, aggregated by lm-eval as weighted perplexities. Token perplexity
needs the tokenizer, so ``zerolm_prune.evaluate.perplexity`` adds it from the logged samples.
"""

from __future__ import annotations

import re
from typing import Any


def process_results(doc: dict[str, Any], results: list[float]) -> dict[str, tuple[float, int]]:
    (loglikelihood,) = results
    text = doc["text"]
    words = len(re.split(r"\s+", text))
    n_bytes = len(text.encode("utf-8"))
    return {
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
