"""LoRA through stock peft: truncated ranks keep the LoNAS scale, merged == unmerged exports,
LoNAS-format adapters load."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from zerolm_prune import lora
from zerolm_prune.checkpoint import load_pruned, save_pretrained
from zerolm_prune.errors import UserError
from zerolm_prune.materialize import materialize
from zerolm_prune.space import LayerChoice, Subnet

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GROUP_OF = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "gate_proj": "gateup", "up_proj": "gateup",
            "down_proj": "down"}


def with_lora(model, r=8, alpha=16.0, seed=0):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=r, lora_alpha=alpha, target_modules=TARGETS,
                                                                 lora_dropout=0.0))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in lora.lora_modules(peft_model).values():
            for part in (module.lora_A["default"], module.lora_B["default"]):
                part.weight.copy_(torch.randn(part.weight.shape, generator=gen) * 0.2)  # B non-zero
    return peft_model.eval()


def subnet(heads, ffn, ranks) -> Subnet:
    groups = sorted(ranks)
    return Subnet([LayerChoice(h, f, tuple((g, ranks[g][i]) for g in groups)) for i, (h, f) in enumerate(zip(heads, ffn))])


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(1))


def test_truncation_keeps_lonas_scale(tiny_llama):
    peft_model = with_lora(tiny_llama)
    ranks = {"qkv": [4, 8, 2], "gateup": [6, 3, 8], "down": [8, 1, 5]}
    # reference: the full-rank adapter with components r.. zeroed, scale alpha/r_max untouched
    ref = copy.deepcopy(peft_model)
    with torch.no_grad():
        for name, module in lora.lora_modules(ref).items():
            layer = int(name.split(".layers.")[1].split(".")[0])
            group = GROUP_OF.get(name.rsplit(".", 1)[1])
            if group:
                module.lora_A["default"].weight[ranks[group][layer]:] = 0
    pruned = materialize(peft_model, subnet([8, 8, 8], [96, 96, 96], ranks))
    q = lora.lora_modules(pruned)["model.layers.2.self_attn.q_proj"]
    assert q.lora_A["default"].weight.shape == (2, 64) and q.scaling["default"] == pytest.approx(16.0 / 8)
    assert (logits(pruned, IDS) - logits(ref, IDS)).abs().max().item() < 1e-5


def test_merged_and_unmerged_exports_agree(tmp_path, tiny_llama):
    from peft import PeftModel

    peft_model = with_lora(tiny_llama)
    choice = subnet([4, 8, 4], [50, 96, 7], {"qkv": [4, 8, 2], "gateup": [6, 3, 8], "down": [8, 1, 5]})
    pruned = materialize(peft_model, choice)
    want = logits(pruned, IDS)

    merged = lora.merge(copy.deepcopy(pruned))
    assert not lora.lora_modules(merged)
    assert (logits(merged, IDS) - want).abs().max().item() < 1e-5
    save_pretrained(merged, tmp_path / "merged", subnet=choice)
    merged_back, _ = load_pruned(tmp_path / "merged")
    assert (logits(merged_back, IDS) - want).abs().max().item() < 1e-5

    adapter_dir = lora.save_adapter(pruned, tmp_path / "adapter")
    saved = json.loads((adapter_dir / "adapter_config.json").read_text())
    key = r"model\.layers\.2\.self_attn\.q_proj"
    assert saved["r"] == 8 and saved["rank_pattern"][key] == 2 and saved["alpha_pattern"][key] == pytest.approx(16.0 * 2 / 8)
    save_pretrained(lora.unload(pruned), tmp_path / "base", subnet=choice)
    base, _ = load_pruned(tmp_path / "base")
    stock = PeftModel.from_pretrained(base, str(adapter_dir)).eval()  # stock peft, no code of ours
    assert (logits(stock, IDS) - want).abs().max().item() < 1e-5


def test_lonas_release_format_loads(tmp_path, tiny_llama):
    peft_model = with_lora(tiny_llama, r=4, alpha=8.0, seed=2)
    folder = lora.save_lonas_adapter(peft_model, tmp_path / "lonas")
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.bin"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] == 4 and "merge_weights" in config  # peft 0.5-era keys kept as LoNAS wrote them
    state = torch.load(folder / "adapter_model.bin", weights_only=True)
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in state
    loaded = lora.load_adapter(copy.deepcopy(tiny_llama), folder)
    assert torch.equal(logits(loaded, IDS), logits(peft_model, IDS))


def test_adapter_errors(tmp_path, tiny_llama):
    with pytest.raises(UserError, match="no adapter_config.json"):
        lora.load_adapter(copy.deepcopy(tiny_llama), tmp_path)
    folder = lora.save_lonas_adapter(with_lora(tiny_llama, r=4), tmp_path / "a")
    state = torch.load(folder / "adapter_model.bin", weights_only=True)
    state.pop("base_model.model.model.layers.1.mlp.up_proj.lora_B.weight")
    torch.save(state, folder / "adapter_model.bin")
    with pytest.raises(UserError, match="1 LoRA tensors missing"):
        lora.load_adapter(copy.deepcopy(tiny_llama), folder)
    with pytest.raises(UserError, match="outside 1..8"):
        materialize(with_lora(tiny_llama), subnet([8] * 3, [96] * 3, {"qkv": [9, 8, 8]}))


def test_sliced_lora_equals_masked_full_adapter(tiny_llama):
    """Slicing base + LoRA together computes what the full adapter computes with pruned inputs zeroed."""
    from zerolm_prune.materialize import plan_layer
    from zerolm_prune.models import get_adapter

    peft_model = with_lora(tiny_llama, seed=4)
    choice = subnet([4, 8, 4], [50, 96, 7], {"qkv": [8, 8, 8]})
    ref = copy.deepcopy(peft_model)
    adapter = get_adapter(ref)
    with torch.no_grad():
        for i, c in enumerate(choice.layers):
            plan = plan_layer(adapter, ref, i, c, "prefix")
            hd = plan.geometry.head_dim
            head_cols = [h * hd + d for h in range(plan.geometry.num_heads) if h not in plan.heads for d in range(hd)]
            ffn_cols = [j for j in range(plan.geometry.ffn_dim) if j not in plan.channels]
            layer = adapter.layers(ref)[i]
            for module, cols in ((layer.self_attn.o_proj, head_cols), (layer.mlp.down_proj, ffn_cols)):
                module.base_layer.weight[:, cols] = 0
                module.lora_A["default"].weight[:, cols] = 0  # the LoRA path reads the pruned inputs too
    pruned = materialize(peft_model, choice)
    assert (logits(pruned, IDS) - logits(ref, IDS)).abs().max().item() < 1e-5


def test_gpt2_conv1d_lora_merged_equals_unmerged(tiny_gpt2):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(copy.deepcopy(tiny_gpt2), LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True))
    with torch.no_grad():
        for module in lora.lora_modules(peft_model).values():
            module.lora_B["default"].weight.normal_(0, 0.3)
    pruned = materialize(peft_model.eval(), subnet([2, 3], [10, 80], {"qkv": [2, 3]}))
    c_attn = lora.lora_modules(pruned)["transformer.h.0.attn.c_attn"]
    assert c_attn.lora_B["default"].weight.shape == (3 * 24, 2)  # q, k and v parts of two heads
    want = logits(pruned, IDS)
    assert (logits(lora.merge(copy.deepcopy(pruned)), IDS) - want).abs().max().item() < 1e-5


def test_streaming_merge_equals_in_memory_merge(tmp_path, tiny_llama):
    from zerolm_prune.materialize import materialize_folder

    peft_model = with_lora(tiny_llama, r=8, alpha=16.0, seed=5)
    adapter_dir = lora.save_lonas_adapter(peft_model, tmp_path / "lonas")
    src = tmp_path / "src"
    tiny_llama.save_pretrained(str(src), max_shard_size="20KB")
    choice = subnet([4, 8, 4], [50, 96, 7], {"qkv": [4, 8, 2], "gateup": [6, 3, 8], "down": [8, 1, 5]})
    want = lora.merge(materialize(peft_model, choice))
    out = materialize_folder(src, choice, tmp_path / "out", merge_adapter=adapter_dir)
    got, _ = load_pruned(out)
    assert (logits(got, IDS) - logits(want, IDS)).abs().max().item() < 1e-5
    w, g = want.state_dict(), got.state_dict()
    assert all((w[k] - g[k]).abs().max().item() < 1e-6 for k in w)
