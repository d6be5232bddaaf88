"""Saved folders rebuild exactly, load with stock transformers where zerolm_prune is absent, and
are written atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import tiny_llama_config
from zerolm_prune.checkpoint import (
    load_pruned, save_pretrained,
)
from zerolm_prune.errors import UserError
from zerolm_prune.loading import is_pruned_folder
from zerolm_prune.materialize import materialize
from zerolm_prune.modelcard import parse_front_matter
from zerolm_prune.space import LayerChoice, Subnet


def subnet_of(heads, ffn) -> Subnet:
    return Subnet([LayerChoice(h, f) for h, f in zip(heads, ffn)])


def logits(model, ids):
    with torch.no_grad():
        out = model(input_ids=ids)
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state


@pytest.fixture(scope="session")
def clean_python(tmp_path_factory) -> str:
    """A venv that sees torch/transformers but NOT zerolm_prune (no editable finder, no repo on path)."""
    root = tmp_path_factory.mktemp("clean-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    site = next((root / "venv" / "lib").glob("python*/site-packages"))
    # a path line in a .pth is appended to sys.path, but .pth files inside it are not run:
    # the parent venv's packages import, its editable zerolm_prune finder does not
    (site / "parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # and should zerolm_prune be installed there for real (a non-editable install), hide it as if absent
    (site / "block_zerolm.pth").write_text(
        "import sys, types; sys.meta_path.insert(0, types.SimpleNamespace(find_spec=lambda name, path=None, "
        "target=None: (_ for _ in ()).throw(ModuleNotFoundError(name)) if name.split('.')[0] == 'zerolm_prune' "
        "else None))\n")
    return str(root / "venv" / "bin" / "python")


def run_clean(python: str, code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    prelude = textwrap.dedent("""
        try:
            import zerolm_prune
            raise SystemExit("zerolm_prune must not be importable here")
        except ImportError:
            pass
        import torch
        torch.set_num_threads(1)
    """)
    proc = subprocess.run([python, "-I", "-c", prelude + textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def tiny_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(1)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=128, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=6, num_key_value_heads=3,
                                         max_position_embeddings=64)).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.k_proj.bias.normal_()
    return model


def test_nonuniform_roundtrip_and_stock_load(tmp_path, tiny_llama, tiny_bert, tiny_gpt2, minilm, clean_python):
    cases = {
        "llama": (tiny_llama, subnet_of([4, 8, 4], [50, 96, 7]), "AutoModelForCausalLM"),
        "qwen2": (tiny_qwen2(), subnet_of([2, 6], [20, 64]), "AutoModelForCausalLM"),
        "bert": (tiny_bert, subnet_of([3, 6], [40, 80]), "AutoModel"),
        "gpt2": (tiny_gpt2, subnet_of([2, 4], [10, 33]), "AutoModelForCausalLM"),
        "minilm": (minilm[0], subnet_of([12, 6, 3, 9, 1, 12], [1536, 700, 1536, 384, 1000, 64]), "AutoModel"),
    }
    ids = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(3))
    torch.save(ids, tmp_path / "ids.pt")
    expected = {}
    for name, (model, subnet, _auto) in cases.items():
        pruned = materialize(model, subnet)
        folder = save_pretrained(pruned, tmp_path / name, subnet=subnet, source=f"tiny-{name}")
        config = json.loads((folder / "config.json").read_text())
        assert config["zerolm_prune"]["subnet"] == subnet.to_dict() and is_pruned_folder(folder)
        assert config["layer_shapes"] and (folder / "modeling_zerolm.py").is_file() and config["auto_map"]
        assert parse_front_matter((folder / "README.md").read_text())["tags"][:2] == ["pruned", "zerolm-prune"]
        loaded, tokenizer = load_pruned(folder)
        assert tokenizer is None
        want = pruned.state_dict()
        got = loaded.state_dict()
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
        expected[name] = logits(pruned, ids)
        assert torch.equal(logits(loaded, ids), expected[name])

    out = run_clean(clean_python, f"""
        import transformers
        ids = torch.load("ids.pt", weights_only=True)
        for name, auto in {[(n, c[2]) for n, c in cases.items()]!r}:
            model = getattr(transformers, auto).from_pretrained(name, trust_remote_code=True, dtype=torch.float32).eval()
            assert type(model).__name__.startswith("ZeroLM"), type(model)
            with torch.no_grad():
                out = model(input_ids=ids)
            result = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
            torch.save(result, name + ".out.pt")
        print("stock-load-ok")
    """, tmp_path)
    assert "stock-load-ok" in out
    for name, want in expected.items():
        got = torch.load(tmp_path / f"{name}.out.pt", weights_only=True)
        assert (got - want).abs().max().item() < 1e-5


def test_uniform_subnet_is_a_plain_stock_folder(tmp_path, tiny_llama):
    from transformers import AutoModelForCausalLM

    pruned = materialize(tiny_llama, subnet_of([4, 4, 4], [48, 48, 48]))
    folder = save_pretrained(pruned, tmp_path / "uniform")
    config = json.loads((folder / "config.json").read_text())
    assert "layer_shapes" not in config and "auto_map" not in config
    assert config["architectures"] == ["LlamaForCausalLM"] and not (folder / "modeling_zerolm.py").exists()
    stock = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()  # no remote code
    ids = torch.randint(0, 128, (1, 6))
    assert torch.equal(logits(stock, ids), logits(pruned, ids))


def test_refuses_existing_folder_and_source(tmp_path, tiny_llama):
    pruned = materialize(tiny_llama, subnet_of([4, 8, 4], [50, 96, 7]))
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        save_pretrained(pruned, target)
    save_pretrained(pruned, target, overwrite=True)
    assert not (target / "keep.txt").exists() and (target / "model.safetensors").is_file()
    src = save_pretrained(pruned, tmp_path / "src")
    reloaded, _ = load_pruned(src)
    with pytest.raises(UserError, match="source checkpoint"):
        save_pretrained(reloaded, src, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no leftover temp folders


def test_interrupted_save_leaves_nothing(tmp_path, tiny_llama, monkeypatch):
    from zerolm_prune import checkpoint

    real_write = checkpoint.write_safetensors

    def dies_mid_way(folder, entries, **kw):
        def boom():
            raise OSError("disk full")

        # the real writer runs and fails on the third tensor, half a file already on disk
        return real_write(folder, entries[:2] + [(entries[2][0], entries[2][1], entries[2][2], boom)] + entries[3:], **kw)

    monkeypatch.setattr(checkpoint, "write_safetensors", dies_mid_way)
    pruned = materialize(tiny_llama, subnet_of([4, 8, 4], [50, 96, 7]))
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(pruned, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(checkpoint, "write_safetensors", real_write)
    save_pretrained(pruned, tmp_path / "out")  # the same call succeeds once the disk is back
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_smollm2_pruned_generates_the_same_without_zerolm_prune(tmp_path, smollm2, clean_python):
    model, tokenizer = smollm2
    subnet = subnet_of([9, 6] * 15, [1024, 512] * 15)
    pruned = materialize(model, subnet)
    ratio = sum(p.numel() for p in pruned.parameters()) / sum(p.numel() for p in model.parameters())
    assert 0.65 < ratio < 0.75
    folder = save_pretrained(pruned, tmp_path / "smol", tokenizer=tokenizer, subnet=subnet,
                             card={"params_before": sum(p.numel() for p in model.parameters()), "score": 1.5})
    prompt = "The capital of France is"
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        want = pruned.generate(ids, max_new_tokens=8, do_sample=False)[0].tolist()
    loaded, tok = load_pruned(folder)
    with torch.no_grad():
        assert loaded.generate(ids, max_new_tokens=8, do_sample=False)[0].tolist() == want
    out = run_clean(clean_python, f"""
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained("smol")
        model = AutoModelForCausalLM.from_pretrained("smol", trust_remote_code=True, dtype=torch.float32).eval()
        ids = tok({prompt!r}, return_tensors="pt").input_ids
        with torch.no_grad():
            print("TOKENS", model.generate(ids, max_new_tokens=8, do_sample=False)[0].tolist())
    """, tmp_path)
    line = next(line for line in out.splitlines() if line.startswith("TOKENS"))
    assert json.loads(line.split(" ", 1)[1]) == want


@pytest.mark.parametrize("order", ["prefix", "capacity"])
@pytest.mark.parametrize("family", ["llama", "bert", "gpt2"])
def test_streaming_folder_prune_matches_in_memory(tmp_path, family, order, tiny_llama, tiny_bert, tiny_gpt2):
    from zerolm_prune.materialize import materialize_folder

    model, subnet = {
        "llama": (tiny_llama, subnet_of([4, 8, 4], [50, 96, 7])),
        "bert": (tiny_bert, subnet_of([3, 6], [40, 80])),
        "gpt2": (tiny_gpt2, subnet_of([2, 4], [10, 33])),
    }[family]
    src = tmp_path / "src"
    model.save_pretrained(str(src), max_shard_size="20KB")  # a multi-shard input
    assert (src / "model.safetensors.index.json").is_file()
    if order == "capacity":
        pytest.importorskip("zerolm_prune.proxy.importance")
    out = materialize_folder(src, subnet, tmp_path / "out", order=order, max_shard_bytes=30_000)
    assert (out / "model.safetensors.index.json").is_file()  # and a multi-shard output
    loaded, _ = load_pruned(out)
    want = materialize(model, subnet, order=order).state_dict()
    got = loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    config = json.loads((out / "config.json").read_text())
    assert config["zerolm_prune"]["subnet"] == subnet.to_dict()
    with pytest.raises(UserError, match="source checkpoint"):
        materialize_folder(src, subnet, src, overwrite=True)
