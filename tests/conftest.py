"""Shared fixtures: real assets (loaded once per worker) and tiny random models of each family."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# two xdist workers on two cores: one thread each avoids oversubscription
torch.set_num_threads(int(os.environ.get("ZEROLM_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def smollm2():
    from zerolm_prune.assets import smollm2_135m

    return smollm2_135m()


@pytest.fixture(scope="session")
def minilm():
    from zerolm_prune.assets import minilm_l6

    return minilm_l6()


def tiny_llama_config(**overrides):
    from transformers import LlamaConfig

    kw = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=8,
              num_key_value_heads=2, head_dim=8, max_position_embeddings=64, tie_word_embeddings=False)
    kw.update(overrides)
    return LlamaConfig(**kw)


def tiny_bert_config(**overrides):
    from transformers import BertConfig

    kw = dict(vocab_size=128, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
              max_position_embeddings=64)
    kw.update(overrides)
    return BertConfig(**kw)


def tiny_gpt2_config(**overrides):
    from transformers import GPT2Config

    kw = dict(vocab_size=128, n_embd=48, n_inner=80, n_layer=2, n_head=4, n_positions=64)
    kw.update(overrides)
    return GPT2Config(**kw)


@pytest.fixture
def tiny_llama():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config()).eval()


@pytest.fixture
def tiny_bert():
    from transformers import BertModel

    torch.manual_seed(0)
    return BertModel(tiny_bert_config()).eval()


@pytest.fixture
def tiny_gpt2():
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(tiny_gpt2_config()).eval()
