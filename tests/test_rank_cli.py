"""``zerolm-prune rank`` end to end: shapes-only LLaMA-7B, real SmolLM2 weights, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zerolm_prune import cost
from zerolm_prune.cli import main
from zerolm_prune.search import read_ranked
from zerolm_prune.space import Subnet, load_space

ROOT = Path(__file__).resolve().parents[1]
LLAMA = str(ROOT / "recipes" / "llama-7b-lonas.yaml")
SMOL = str(ROOT / "recipes" / "smollm2-135m.yaml")
NNCF = str(ROOT / "tests" / "fixtures" / "lonas_nncf_llama_7b_commonsense.json")


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zerolm_prune.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_llama7b_shapes_only_ranked_json(tmp_path, capsys):
    out = tmp_path / "ranked.json"
    assert main(["rank", "--space", LLAMA, "--budget", "5.7e9", "--top-k", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "random-init table" in printed and "not available locally" in printed
    doc = json.loads(out.read_text())
    assert doc["model"] == "yahma/llama-7b-hf" and doc["budget"] == 5_700_000_000 and doc["by"] == "params"
    subnets = doc["subnets"]
    assert len(subnets) == 10
    scores = [e["score"] for e in subnets]
    assert scores == sorted(scores, reverse=True)
    space = load_space(LLAMA)
    adapter = space.adapter()
    for e in subnets:
        subnet = Subnet.from_dict(e["subnet"])
        assert space.contains(subnet)
        # params recounted from shapes by cost.py: whole model, LoRA not counted
        assert e["params"] == cost.subnet_params(adapter, subnet, lora=space.lora) <= 5.7e9
    assert len({json.dumps(e["subnet"]) for e in subnets}) == 10
    assert printed.count("\n   ") >= 10  # one table row per subnet
    assert read_ranked(f"{out}#3")[0]["subnet"] == subnets[3]["subnet"]


def test_nncf_space_with_recipe_as_model(capsys):
    assert main(["rank", LLAMA, "--space", NNCF, "--budget", "0.8", "--top-k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "random-init table" in printed and "0.800 of the full model" in printed


@pytest.mark.slow
def test_smollm2_real_weights_with_plot(tmp_path, capsys):
    png, out = tmp_path / "front.png", tmp_path / "ranked.json"
    assert main(["rank", "smollm2-135m", "--space", SMOL, "--budget", "0.8", "--top-k", "5", "--plot", str(png),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "real weights of smollm2-135m" in printed
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # no temp files left; the default selfgen order's unit orders sit next to ranked.json for prune
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.png", "ranked.json", "ranked.orders.json"]
    doc = json.loads(out.read_text())
    full = doc["budget"] / doc["budget_fraction"]
    assert abs(full - 134_515_008) < 2  # the real checkpoint's parameter count, tied embeddings once
    assert all(e["params"] <= doc["budget"] for e in doc["subnets"]) and len(doc["subnets"]) == 5


def test_alpha_auto_and_macs_budget(tmp_path):
    out = tmp_path / "r.json"
    assert main(["rank", "--space", SMOL, "--shapes-only", "--budget", "0.8", "--by", "macs", "--alpha", "auto",
                 "--top-k", "3", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["alpha_method"].startswith("auto") and doc["by"] == "macs"
    assert all(e["macs"] <= doc["budget"] for e in doc["subnets"])


@pytest.mark.parametrize("args, needle", [
    (["--budget", "0.3"], "use --budget 0.63"),
    (["--budget", "0.8", "--top-k", "10000000000000000000000000000000000000000000000000"], "larger than the search space"),
    (["--budget", "0.8", "--alpha", "big"], "--alpha must be a number or 'auto'"),
    (["--budget", "-1"], "positive"),
])
def test_user_mistakes_are_one_line_exit_2(args, needle, capsys):
    assert main(["rank", "--space", SMOL, "--shapes-only", *args]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("zerolm-prune: error:") and needle in lines[0], err


def test_user_mistake_in_a_fresh_process_has_no_traceback():
    proc = run_cli("rank", "--space", SMOL, "--shapes-only", "--budget", "0.1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.strip()][0].startswith("zerolm-prune: error: budget")


def test_help_documents_budget_counting():
    proc = run_cli("rank", "--help")
    assert proc.returncode == 0
    assert "embeddings" in proc.stdout and "ranked.json#K" in proc.stdout


def test_config_only_folder_scores_shapes(tmp_path, capsys):
    """A checkpoint folder with a config but no weights: random-init table of its shapes."""
    from conftest import tiny_llama_config

    folder = tmp_path / "tiny"
    tiny_llama_config().save_pretrained(folder)
    out = tmp_path / "r.json"
    assert main(["rank", str(folder), "--space", str(folder), "--budget", "0.9", "--top-k", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "holds a config but no weights" in printed and "random-init" in printed
    doc = json.loads(out.read_text())
    assert len(doc["subnets"]) == 3 and all(e["params"] <= doc["budget"] for e in doc["subnets"])


def test_real_weights_folder_is_loaded(tmp_path, capsys, tiny_llama):
    folder = tmp_path / "tiny"
    tiny_llama.save_pretrained(folder)
    assert main(["rank", str(folder), "--space", str(folder), "--budget", "0.9", "--top-k", "2"]) == 0
    assert "real weights of" in capsys.readouterr().out
