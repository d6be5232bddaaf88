"""``zerolm-prune prune`` and ``publish`` end to end on a real (tiny, random) checkpoint folder."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from zerolm_prune.checkpoint import load_pruned
from zerolm_prune.cli import main
from zerolm_prune.materialize import materialize
from zerolm_prune.modelcard import parse_front_matter
from zerolm_prune.space import Subnet

SUBNETS = [
    {"heads": [8, 8, 8], "ffn": [96, 96, 96]},
    {"heads": [4, 8, 4], "ffn": [50, 96, 7]},
]


def save_with_tokenizer(model, folder):
    import shutil

    from zerolm_prune.assets import smollm2_135m_dir

    model.save_pretrained(str(folder))
    # a real tokenizer: loading.load_model expects one next to the weights
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (smollm2_135m_dir() / name).is_file():
            shutil.copyfile(smollm2_135m_dir() / name, folder / name)
    return folder


@pytest.fixture
def model_dir(tmp_path, tiny_llama):
    return save_with_tokenizer(tiny_llama, tmp_path / "base")


@pytest.fixture
def ranked(tmp_path):
    path = tmp_path / "ranked.json"
    path.write_text(json.dumps({
        "model": "tiny", "space": "tiny space", "budget": 0.8, "alpha": 0.5, "order": "prefix",
        "subnets": [{"rank": i, "score": 10.0 - i, "params": 0, "macs": 0, "subnet": s} for i, s in enumerate(SUBNETS)],
    }))
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    # progress bars may share stderr; the error itself is exactly one line
    errors = [line for line in err.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and errors[0].startswith("zerolm-prune: error:"), err
    return errors[0]


@pytest.mark.parametrize("mode", ["streamed", "in-memory"])
def test_prune_ranked_entry(tmp_path, model_dir, ranked, tiny_llama, capsys, mode):
    out = tmp_path / "pruned"
    extra = ["--in-memory"] if mode == "in-memory" else []
    assert main(["prune", str(model_dir), "--subnet", f"{ranked}#1", "--out", str(out)] + extra) == 0
    printed = capsys.readouterr().out
    assert "saved to" in printed and (("streamed" in printed) == (mode == "streamed"))
    model, tokenizer = load_pruned(out)
    assert tokenizer is not None
    want = materialize(tiny_llama, Subnet.from_dict(SUBNETS[1]))
    ids = torch.randint(0, 128, (1, 8))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, want(input_ids=ids).logits)
    meta = json.loads((out / "config.json").read_text())["zerolm_prune"]
    assert meta["subnet"] == SUBNETS[1] and meta["order"] == "prefix" and meta["score"] == 9.0
    card = (out / "README.md").read_text()
    front = parse_front_matter(card)
    assert front["library_name"] == "transformers" and "zerolm-prune" in front["tags"]
    assert "| proxy score | 9 |" in card and "hf_" not in card


def test_prune_bare_subnet_and_errors(tmp_path, model_dir, capsys):
    bare = tmp_path / "subnet.json"
    bare.write_text(json.dumps({"heads": [4, 4, 4], "ffn": [48, 48, 48]}))
    assert main(["prune", str(model_dir), "--subnet", str(bare), "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert "layer_shapes" not in json.loads((tmp_path / "a" / "config.json").read_text())

    bad = tmp_path / "bad.json"
    for subnet, message in [({"heads": [8, 8], "ffn": [96, 96]}, "2 layers but the model has 3"),
                            ({"heads": [8, 8, 8], "ffn": [96, 200, 96]}, "FFN width 200 is outside 1..96")]:
        bad.write_text(json.dumps(subnet))
        assert main(["prune", str(model_dir), "--subnet", str(bad), "--out", str(tmp_path / "b")]) == 2
        assert message in one_error_line(capsys)
        assert not (tmp_path / "b").exists()
    assert main(["prune", str(model_dir), "--subnet", f"{bad}#3", "--out", str(tmp_path / "b")]) == 2
    assert "single subnet" in one_error_line(capsys)
    assert main(["prune", str(model_dir), "--subnet", str(tmp_path / "nope.json"), "--out", str(tmp_path / "b")]) == 2
    one_error_line(capsys)
    assert main(["prune", str(model_dir), "--subnet", str(bare), "--out", str(tmp_path / "a")]) == 2
    assert "not empty" in one_error_line(capsys)


def test_prune_with_adapter_merged_and_unmerged(tmp_path, model_dir, tiny_llama, capsys):
    from peft import LoraConfig, PeftModel, get_peft_model

    from zerolm_prune import lora

    peft_model = get_peft_model(copy.deepcopy(tiny_llama), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]))
    with torch.no_grad():
        for module in lora.lora_modules(peft_model).values():
            module.lora_B["default"].weight.normal_(0, 0.3)
    lora.save_lonas_adapter(peft_model, tmp_path / "lonas")
    subnet = tmp_path / "s.json"
    subnet.write_text(json.dumps({"heads": [4, 8, 4], "ffn": [50, 96, 7], "ranks": {"qkv": [2, 4, 1], "gateup": [3, 1, 4]}}))
    ids = torch.randint(0, 128, (1, 8))
    outs = {}
    for merge in (True, False):
        out = tmp_path / f"out-{merge}"
        argv = ["prune", str(model_dir), "--subnet", str(subnet), "--out", str(out), "--adapter", str(tmp_path / "lonas")]
        assert main(argv + (["--merge"] if merge else [])) == 0
        assert ("streamed" in capsys.readouterr().out) == merge  # merging streams; an unmerged export loads
        model, _ = load_pruned(out)
        if not merge:
            saved = json.loads((out / "adapter" / "adapter_config.json").read_text())
            assert saved["base_model_name_or_path"] == str(out.resolve())  # the pruned folder, not the dense one
            model = PeftModel.from_pretrained(model, str(out / "adapter"))
        with torch.no_grad():
            outs[merge] = model(input_ids=ids).logits
    assert (outs[True] - outs[False]).abs().max().item() < 1e-5
    capsys.readouterr()


def test_publish_dry_run_and_offline(tmp_path, model_dir, ranked, capsys, monkeypatch):
    out = tmp_path / "pruned"
    assert main(["prune", str(model_dir), "--subnet", f"{ranked}#1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["publish", str(out), "--repo-id", "me/tiny-pruned", "--dry-run"]) == 0
    listing = capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "modeling_zerolm.py", "README.md"):
        assert name in listing
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["publish", str(out), "--repo-id", "me/tiny-pruned"]) == 2
    assert "unreachable" in one_error_line(capsys)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(hc, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    assert main(["publish", str(out), "--repo-id", "me/tiny-pruned"]) == 2
    assert "no Hugging Face token" in one_error_line(capsys)
    assert main(["publish", str(model_dir), "--repo-id", "me/x", "--dry-run"]) == 2
    assert "not written by" in one_error_line(capsys)


def test_prune_capacity_order_matches_api(tmp_path, model_dir, ranked, tiny_llama, capsys):
    pytest.importorskip("zerolm_prune.proxy.importance")
    out = tmp_path / "cap"
    assert main(["prune", str(model_dir), "--subnet", f"{ranked}#1", "--out", str(out), "--order", "capacity"]) == 0
    captured = capsys.readouterr()
    assert "scored with order 'prefix'" in captured.err  # the user is told about the mismatch
    assert "streamed" in captured.out
    model, _ = load_pruned(out)
    want = materialize(tiny_llama, Subnet.from_dict(SUBNETS[1]), order="capacity")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), want.state_dict().values()))


def test_model_card_with_results():
    from zerolm_prune.modelcard import render

    card = render({"base_model": "smollm2-135m", "params_before": 134_515_008, "params_after": 94_000_000,
                   "score": 12.5, "model_name": "smol-pruned", "subnet": SUBNETS[1],
                   "results": {"tasks": {"boolq": {"acc": 0.61, "acc_stderr": 0.01},
                                         "hellaswag": {"acc": 0.3, "acc_norm": 0.35}}, "mean": 0.48}})
    front = parse_front_matter(card)
    assert front["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    results = front["model-index"][0]["results"]
    assert {(r["dataset"]["name"], r["metrics"][0]["type"], r["metrics"][0]["value"]) for r in results} == {
        ("boolq", "acc", 0.61), ("hellaswag", "acc_norm", 0.35)}
    assert "| boolq | acc | 0.6100 |" in card and "69.9%" in card
    with pytest.raises(ValueError, match="access token"):
        render({"base_model": "me/x", "notes": "hf_" + "a" * 34})


def test_load_model_reads_a_pruned_folder(tmp_path):
    from transformers import LlamaForCausalLM

    from conftest import tiny_llama_config
    from zerolm_prune.checkpoint import save_pretrained
    from zerolm_prune.loading import load_model

    torch.manual_seed(0)
    base = LlamaForCausalLM(tiny_llama_config(intermediate_size=768)).eval()
    pruned = materialize(base, Subnet.from_dict({"heads": [8, 4, 8], "ffn": [256, 768, 512]}))
    ids = torch.randint(0, 128, (1, 5))
    folder = save_pretrained(pruned, tmp_path / "plain")
    model, _ = load_model(str(folder))  # loading.load_model routes pruned folders to load_pruned
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, pruned(input_ids=ids).logits)


def test_hub_models_are_fetched_as_files_and_streamed(tmp_path, model_dir, ranked, tiny_llama, capsys, monkeypatch):
    import huggingface_hub

    from zerolm_prune import loading

    calls = []

    def fake_snapshot(repo_id, allow_patterns=None, **kw):
        calls.append((repo_id, allow_patterns))
        return str(model_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.setattr(loading, "load_config", lambda spec, **kw: __import__("transformers").AutoConfig.from_pretrained(str(model_dir)))
    assert main(["prune", "someone/tiny-llama", "--subnet", f"{ranked}#1", "--out", str(tmp_path / "out")]) == 0
    assert "streamed" in capsys.readouterr().out
    assert calls and calls[0][0] == "someone/tiny-llama" and "*.safetensors" in calls[0][1]
    model, _ = load_pruned(tmp_path / "out")
    want = materialize(tiny_llama, Subnet.from_dict(SUBNETS[1]))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), want.state_dict().values()))
