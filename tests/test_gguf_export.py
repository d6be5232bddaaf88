"""GGUF export: the real SmolLM2, dense and pruned, runs in a real llama.cpp (llama-cpp-python)
with the same greedy tokens as in transformers.

The model is exported once per module (f32 for exactness, f16 and q8_0 for closeness); each check
then runs llama.cpp on the files. Prompts go in as token ids, so the model comparison does not
depend on the tokenizer; the tokenizer has its own test.
"""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch
from llama_cpp import Llama

from zerolm_prune.checkpoint import save_pretrained
from zerolm_prune.cli import main
from zerolm_prune.export import export_gguf
from zerolm_prune.export.gguf import write_gguf
from zerolm_prune.materialize import materialize
from zerolm_prune.space import LayerChoice, Subnet

pytestmark = pytest.mark.slow

PROMPT = "The capital of France is Paris. The capital of Germany is"
N_NEW = 20
UNIFORM = Subnet([LayerChoice(6, 1024)] * 30)
NONUNIFORM = Subnet([LayerChoice(h, f) for h, f in zip([9, 6, 6, 9, 6] * 6, [1536, 1344, 1152, 960, 768, 1536] * 5)])


def hf_greedy(model, ids: list[int], n: int = N_NEW) -> list[int]:
    """Plain argmax decoding (generate() would stop at, or with min_new_tokens suppress, EOS)."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(ids):]


def hf_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].numpy()


def llamacpp(path) -> Llama:
    """llama.cpp with an f32 KV cache: its default f16 cache alone moves SmolLM2 logits by up to ~1
    (measured on a 3-head uniform subnet: 1.12 with f16, 0.001 with f32), which is not the export's doing."""
    return Llama(model_path=str(path), n_ctx=256, n_batch=256, n_threads=1, logits_all=True, verbose=False,
                 type_k=0, type_v=0)  # GGML_TYPE_F32


def cpp_greedy(llm: Llama, ids: list[int], n: int = N_NEW) -> list[int]:
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([out[-1]])
    return out


def cpp_logits(llm: Llama, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


@pytest.fixture(scope="module")
def exported(smollm2, tmp_path_factory):
    """{name: (transformers model, {outtype: gguf path})}, each model exported once."""
    model, tokenizer = smollm2
    root = tmp_path_factory.mktemp("gguf")
    out = {"dense": (model, {"f32": export_gguf(model, root / "dense.gguf", outtype="f32", tokenizer=tokenizer)})}
    for name, subnet in (("uniform", UNIFORM), ("nonuniform", NONUNIFORM)):
        pruned = materialize(model, subnet)
        folder = save_pretrained(pruned, root / name, tokenizer=tokenizer, subnet=subnet)
        types = ("f32", "f16", "q8_0") if name == "nonuniform" else ("f32",)
        out[name] = (pruned, {t: export_gguf(folder, root / f"{name}-{t}.gguf", outtype=t) for t in types})
    return out, tokenizer


def test_architecture_and_per_layer_metadata(exported):
    models, _ = exported
    for name, arch in (("dense", "llama"), ("uniform", "llama"), ("nonuniform", "deci")):
        fields = gguf.GGUFReader(models[name][1]["f32"]).fields
        assert fields["general.architecture"].contents() == arch
        assert fields[f"{arch}.attention.key_length"].contents() == 64
    fields = gguf.GGUFReader(models["nonuniform"][1]["f32"]).fields
    assert fields["deci.feed_forward_length"].contents() == [layer.ffn for layer in NONUNIFORM.layers]
    assert fields["deci.attention.head_count"].contents() == [layer.heads for layer in NONUNIFORM.layers]
    assert fields["deci.attention.head_count_kv"].contents() == [layer.heads // 3 for layer in NONUNIFORM.layers]
    fields = gguf.GGUFReader(models["uniform"][1]["f32"]).fields
    assert fields["llama.attention.head_count"].contents() == 6 and fields["llama.feed_forward_length"].contents() == 1024


@pytest.mark.parametrize("name", ["dense", "uniform", "nonuniform"])
def test_f32_same_greedy_tokens_as_transformers(exported, name):
    models, tokenizer = exported
    model, files = models[name]
    ids = tokenizer(PROMPT).input_ids
    llm = llamacpp(files["f32"])
    assert cpp_greedy(llm, ids) == hf_greedy(model, ids)
    diff = np.abs(cpp_logits(llm, ids) - hf_logits(model, ids)).max()
    assert diff < 0.05, f"{name}: max logit difference {diff}"


@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_f16_q8_agree_closely(exported, outtype):
    models, tokenizer = exported
    model, files = models["nonuniform"]
    ids = tokenizer(PROMPT).input_ids
    want = hf_greedy(model, ids)
    llm = llamacpp(files[outtype])
    assert cpp_greedy(llm, ids, 5) == want[:5]
    # teacher-forced on transformers' continuation: the next-token pick agrees almost everywhere
    seq = ids + want
    agree = (cpp_logits(llm, seq).argmax(-1) == hf_logits(model, seq).argmax(-1)).mean()
    # measured with this subnet (prefix order, a weak model with near-ties): f16 1.00, q8_0 0.84
    assert agree >= {"f16": 0.95, "q8_0": 0.8}[outtype], f"{outtype}: top-1 agreement {agree:.2f}"


def test_tokenizer_matches_transformers(exported):
    models, tokenizer = exported
    llm = Llama(model_path=str(models["dense"][1]["f32"]), vocab_only=True, verbose=False)
    for text in ["Hello world, 12345 apples cost $3.50!", "  leading spaces\tand\nnew lines",
                 "naïve café — ünïcödé 日本語", "<|im_start|>user\nHi<|im_end|>"]:
        want = tokenizer(text, add_special_tokens=False).input_ids
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == want, text
        assert llm.detokenize(want, special=True).decode() == tokenizer.decode(want)


def test_biases_and_removed_blocks_run_exactly(smollm2, tmp_path):
    """o_proj / down_proj biases (what bias compensation adds) and layers with 0 heads or 0 FFN
    channels: the reference is the same model with those blocks' weights zeroed in transformers."""
    model, tokenizer = smollm2
    ref = materialize(model, NONUNIFORM)
    torch.manual_seed(0)
    no_attn, no_ffn = {0: True, 4: False, 7: False}, {5: False, 7: False, 9: True}  # layer -> has a bias
    with torch.no_grad():
        for i, layer in enumerate(ref.model.layers):
            layer.self_attn.o_proj.bias = torch.nn.Parameter(torch.randn(576) * 0.02) if i % 2 else None
            layer.mlp.down_proj.bias = torch.nn.Parameter(torch.randn(576) * 0.02) if i % 3 else None
        for i, bias in no_attn.items():
            ref.model.layers[i].self_attn.o_proj.weight.zero_()
            ref.model.layers[i].self_attn.o_proj.bias = torch.nn.Parameter(torch.randn(576) * 0.02) if bias else None
        for i, bias in no_ffn.items():
            ref.model.layers[i].mlp.down_proj.weight.zero_()
            ref.model.layers[i].mlp.down_proj.bias = torch.nn.Parameter(torch.randn(576) * 0.02) if bias else None
    state = dict(ref.state_dict())
    for i in no_attn:  # the removed blocks are absent from the export, biases excepted
        for key in [k for k in state if k.startswith(f"model.layers.{i}.self_attn.") and not k.endswith("o_proj.bias")]:
            del state[key]
        del state[f"model.layers.{i}.input_layernorm.weight"]
    for i in no_ffn:
        for key in [k for k in state if k.startswith(f"model.layers.{i}.mlp.") and not k.endswith("down_proj.bias")]:
            del state[key]
        del state[f"model.layers.{i}.post_attention_layernorm.weight"]
    tok_dir = tmp_path / "tok"
    tokenizer.save_pretrained(str(tok_dir))
    path = write_gguf(state, ref.config, tok_dir, tmp_path / "edge.gguf", outtype="f32")
    fields = gguf.GGUFReader(path).fields
    heads, ffn = fields["deci.attention.head_count"].contents(), fields["deci.feed_forward_length"].contents()
    assert heads[0] == 1 and heads[4] == 0 and heads[7] == 0  # layer 0 keeps a zero head: llama.cpp reads head size there
    assert ffn[5] == 32 and ffn[7] == 0 and ffn[9] == 32      # zero FFNs where Deci's graph would drop output
    ids = tokenizer(PROMPT).input_ids
    assert cpp_greedy(llamacpp(path), ids) == hf_greedy(ref, ids)


def test_cli_export_and_prune_format_gguf(exported, tmp_path, capsys):
    models, tokenizer = exported
    folder = models["uniform"][1]["f32"].parent / "uniform"
    out = tmp_path / "u.gguf"
    assert main(["export", str(folder), "--format", "gguf", "--outtype", "f32", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert gguf.GGUFReader(out).fields["general.file_type"].contents() == gguf.LlamaFileType.ALL_F32
    ids = tokenizer(PROMPT).input_ids
    assert cpp_greedy(llamacpp(out), ids, 3) == hf_greedy(models["uniform"][0], ids, 3)

    subnet = tmp_path / "s.json"
    subnet.write_text(json.dumps(NONUNIFORM.to_dict()))
    out = tmp_path / "p.gguf"
    assert main(["prune", "smollm2-135m", "--subnet", str(subnet), "--format", "gguf", "--outtype", "f32",
                 "--out", str(out)]) == 0
    assert "GGUF f32" in capsys.readouterr().out
    assert cpp_greedy(llamacpp(out), ids, 5) == hf_greedy(models["nonuniform"][0], ids, 5)


def test_export_refuses_other_families_in_one_line(tmp_path, tiny_gpt2, capsys):
    from test_checkpoint_cli import save_with_tokenizer

    folder = save_with_tokenizer(tiny_gpt2, tmp_path / "gpt2")
    out = tmp_path / "x.gguf"
    assert main(["export", str(folder), "--format", "gguf", "--out", str(out)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(err) == 1 and err[0].startswith("zerolm-prune: error: GGUF export supports LLaMA-family")
    assert not out.exists() and not list(tmp_path.glob(".x.gguf*"))


def test_sentencepiece_tokenizer_and_nonuniform_tiny_model(tmp_path):
    """A Llama-2-style sentencepiece vocabulary (tokenizer.model, trained here on the README) goes
    through gguf-py's SentencePieceVocab: llama.cpp splits text exactly as sentencepiece does, and a
    non-uniform tiny model gives transformers' logits."""
    from pathlib import Path

    import sentencepiece as spm
    from transformers import LlamaForCausalLM

    from conftest import tiny_llama_config

    corpus = tmp_path / "corpus.txt"
    corpus.write_text((Path(__file__).parents[1] / "README.md").read_text())
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=400,
                                   model_type="bpe", character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2,
                                   remove_extra_whitespaces=False, normalization_rule_name="identity",
                                   minloglevel=2)  # Llama-2's tokenizer.model keeps whitespace as written
    folder = tmp_path / "tok"
    folder.mkdir()
    (tmp_path / "sp.model").rename(folder / "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(vocab_size=sp.vocab_size())).eval()
    for p in model.parameters():  # larger weights: logits far from ties
        p.data.mul_(20 if p.ndim == 2 else 1)
    pruned = materialize(model, Subnet([LayerChoice(4, 48), LayerChoice(8, 96), LayerChoice(4, 32)]))
    path = write_gguf(pruned.state_dict(), pruned.config, folder, tmp_path / "spm.gguf", outtype="f32")
    assert gguf.GGUFReader(path).fields["tokenizer.ggml.model"].contents() == "llama"
    llm = llamacpp(path)
    for text in ["Data-free structured pruning of language models.", "  two  spaces, 42 numbers"]:
        assert llm.tokenize(text.encode(), add_bos=False) == sp.encode(text), text
    ids = [1] + sp.encode("The tests run the real model in llama.cpp")
    assert np.abs(cpp_logits(llm, ids) - hf_logits(pruned, ids)).max() < 1e-3
    assert cpp_greedy(llm, ids, 10) == hf_greedy(pruned, ids, 10)


def test_cli_outtypes_are_the_exporters():
    from zerolm_prune.commands.export import OUTTYPES as CLI_OUTTYPES
    from zerolm_prune.export import OUTTYPES

    assert CLI_OUTTYPES == OUTTYPES
