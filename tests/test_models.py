"""Adapters report the true geometry of real checkpoints and find every projection."""

from __future__ import annotations

import pytest
import torch

from zerolm_prune.errors import UserError
from zerolm_prune.models import BertAdapter, GPT2Adapter, LlamaAdapter, get_adapter


def test_smollm2_geometry(smollm2):
    model, _ = smollm2
    adapter = get_adapter(model)
    assert isinstance(adapter, LlamaAdapter)
    assert adapter.num_layers == 30
    for geo in adapter.geometries():
        assert (geo.num_heads, geo.num_kv_heads, geo.head_dim, geo.ffn_dim, geo.gated) == (9, 3, 64, 1536, True)
        assert geo.heads_per_kv_group == 3
    layer = adapter.layers(model)[0]
    shapes = {p.role: tuple(adapter.projection_weight(layer, p).shape) for p in adapter.projections}
    assert shapes == {"q": (576, 576), "k": (192, 576), "v": (192, 576), "o": (576, 576),
                      "gate": (1536, 576), "up": (1536, 576), "down": (576, 1536)}


def test_smollm2_generates_paris(smollm2):
    model, tok = smollm2
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert "Paris" in tok.decode(out[0][ids["input_ids"].shape[1]:])


def test_minilm_geometry(minilm):
    model, tok = minilm
    adapter = get_adapter(model)
    assert isinstance(adapter, BertAdapter)
    assert adapter.num_layers == 6 and adapter.hidden_size == 384
    for geo in adapter.geometries():
        assert (geo.num_heads, geo.num_kv_heads, geo.head_dim, geo.ffn_dim, geo.gated) == (12, 12, 32, 1536, False)
    # the adapter's module paths resolve on the real BertModel
    assert len(list(adapter.iter_projections(model))) == 6 * 6
    emb = model(**tok(["a real sentence"], return_tensors="pt")).last_hidden_state
    assert emb.shape[-1] == 384


def test_tiny_families_shapes(tiny_llama, tiny_bert, tiny_gpt2):
    for model, cls, n_proj in ((tiny_llama, LlamaAdapter, 7), (tiny_bert, BertAdapter, 6), (tiny_gpt2, GPT2Adapter, 4)):
        adapter = get_adapter(model)
        assert isinstance(adapter, cls)
        geo = adapter.geometry(0)
        layer = adapter.layers(model)[0]
        for proj in adapter.projections:
            w = adapter.projection_weight(layer, proj)
            assert w.shape[1] in (geo.hidden_size, geo.ffn_dim, geo.attn_width)
        assert len(adapter.projections) == n_proj
    gpt = get_adapter(tiny_gpt2)
    qkv = gpt.projection_weight(gpt.layers(tiny_gpt2)[0], gpt.projections[0])
    assert qkv.shape == (3 * 48, 48)  # Conv1D (in, out) transposed back to (out, in)


def test_layer_shapes_override(tiny_llama):
    config = tiny_llama.config
    config.layer_shapes = [{"num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 32}] * 3
    geo = get_adapter(config).geometry(1)
    assert (geo.num_heads, geo.num_kv_heads, geo.ffn_dim) == (4, 1, 32)


def test_unsupported_architecture_lists_supported():
    from transformers import T5Config

    with pytest.raises(UserError, match="supported model types: llama"):
        get_adapter(T5Config())
