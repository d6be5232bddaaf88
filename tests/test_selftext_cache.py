"""Self-generated text is sampled once per model and weights; a weight change invalidates it."""

from __future__ import annotations

import torch

from zerolm_prune.rankers.selfgen import _sample_text, self_text


def test_cached_text_equals_fresh_sampling_and_follows_the_weights(tiny_llama):
    first = self_text(tiny_llama, seqs=2, length=12, seed=3)
    assert torch.equal(first, _sample_text(tiny_llama, seqs=2, length=12, seed=3, temperature=1.0, top_k=0))
    first[0, 0] = -1  # callers get a copy: mutating it must not poison the cache
    again = self_text(tiny_llama, seqs=2, length=12, seed=3)
    assert again[0, 0] != -1
    with torch.no_grad():  # in-place edit of the LM head: the cached text no longer belongs to the model
        tiny_llama.lm_head.weight.mul_(-3.0)
    edited = self_text(tiny_llama, seqs=2, length=12, seed=3)
    assert torch.equal(edited, _sample_text(tiny_llama, seqs=2, length=12, seed=3, temperature=1.0, top_k=0))
    assert not torch.equal(edited, again)
