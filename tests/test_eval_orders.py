"""``eval --subnets ranked.json`` and the ``run`` driver cut the units that were scored.

Why: rank scores selfgen subnets on LLaMA models; eval used to default to prefix, so it evaluated
other networks than the ones ranked, and a recomputed selfgen order can flip near-tied units under
another thread count. Eval now follows the ranked file's order and its saved ``ranked.orders.json``;
the driver saves that sidecar and reuses it on resume. Real SmolLM2-135M weights throughout.
"""

from __future__ import annotations

import json

import pytest
import torch
from orders_support import (
    WEIGHTS,
    assert_cut_by,
    copy_ranked,
    count_recomputes,
    cut_layers,
    forbid_recompute,
    rank_selfgen,
)
from safetensors.torch import load_file

import zerolm_prune.eval_runs as eval_runs_mod
import zerolm_prune.materialize as materialize_mod
from zerolm_prune.assets import smollm2_135m_dir
from zerolm_prune.cli import main
from zerolm_prune.driver import prune_to_budget
from zerolm_prune.loading import load_config
from zerolm_prune.models import get_adapter
from zerolm_prune.rankers.orders import load_orders
from zerolm_prune.search import read_ranked

QUICK = ["--suite", "piqa", "--limit", "1", "--quiet"]


@pytest.fixture(scope="module")
def adapter():
    return get_adapter(load_config("smollm2-135m"))


@pytest.fixture(scope="module")
def base():
    return load_file(str(smollm2_135m_dir() / "model.safetensors"))


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    return rank_selfgen(tmp_path_factory.mktemp("ranked"), top_k=1)


@pytest.fixture
def ranked_copy(ranked, tmp_path):
    return copy_ranked(ranked[0], tmp_path)


def capture_subnets(monkeypatch) -> list[dict[str, torch.Tensor]]:
    """The weights of every subnet eval materializes (eval keeps no copy once it is evaluated)."""
    seen: list[dict[str, torch.Tensor]] = []
    real = materialize_mod.materialize

    def spy(*args, **kwargs):
        net = real(*args, **kwargs)
        seen.append({k: v.detach().clone() for k, v in net.state_dict().items() if k.endswith(WEIGHTS)})
        return net

    monkeypatch.setattr(materialize_mod, "materialize", spy)
    monkeypatch.setattr(eval_runs_mod, "materialize", spy)  # bound at its import, which may come first
    return seen


def test_eval_defaults_to_the_saved_selfgen_units(ranked, adapter, base, tmp_path, monkeypatch, capsys):
    out, computed = ranked
    subnet = read_ranked(f"{out}#0")[0]["subnet"]
    layers = cut_layers(subnet, adapter)
    assert layers and any(computed[l]["ffn"][: subnet["ffn"][l]] != list(range(subnet["ffn"][l])) for l in layers)
    forbid_recompute(monkeypatch)
    seen = capture_subnets(monkeypatch)
    run_dir = tmp_path / "run"
    assert main(["eval", "smollm2-135m", "--subnets", f"{out}#0", *QUICK, "--out", str(run_dir)]) == 0
    assert "note:" not in capsys.readouterr().err
    results = json.loads((run_dir / "results.json").read_text())
    assert results["order"] == "selfgen" and results["orders_file"] == str(out.parent / "ranked.orders.json")
    assert [c["name"] for c in results["candidates"]] == ["full", "rank0"]
    assert all(c["done"] for c in results["candidates"])
    assert len(seen) == 1
    assert_cut_by(seen[0], base, computed, subnet, adapter, layers)  # the very units rank scored


def test_eval_cuts_what_a_tampered_sidecar_says(ranked_copy, adapter, base, tmp_path, monkeypatch):
    sidecar = ranked_copy.parent / "ranked.orders.json"
    data = json.loads(sidecar.read_text())
    subnet = read_ranked(f"{ranked_copy}#0")[0]["subnet"]
    tampered = cut_layers(subnet, adapter)[0]
    original = dict(data["orders"][str(tampered)])
    data["orders"][str(tampered)] = {"heads": original["heads"][::-1], "ffn": original["ffn"][::-1]}
    sidecar.write_text(json.dumps(data))
    saved = {int(k): v for k, v in data["orders"].items()}
    keep = subnet["ffn"][tampered]
    assert set(saved[tampered]["ffn"][:keep]) != set(original["ffn"][:keep])  # the tamper changes the cut

    forbid_recompute(monkeypatch)
    seen = capture_subnets(monkeypatch)
    assert main(["eval", "smollm2-135m", "--subnets", str(ranked_copy), *QUICK, "--out", str(tmp_path / "run")]) == 0
    assert len(seen) == 1
    assert_cut_by(seen[0], base, saved, subnet, adapter, cut_layers(subnet, adapter))


def test_eval_recomputes_a_missing_sidecar_with_a_note(ranked_copy, tmp_path, monkeypatch, capsys):
    (ranked_copy.parent / "ranked.orders.json").unlink()
    calls = count_recomputes(monkeypatch)
    run_dir = tmp_path / "run"
    assert main(["eval", "smollm2-135m", "--subnets", str(ranked_copy), *QUICK, "--out", str(run_dir)]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "ranked.orders.json" in notes[0] and "missing" in notes[0]
    assert calls == ["selfgen"]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["order"] == "selfgen" and "orders_file" not in results


def test_eval_with_another_order_notes_it_and_ignores_the_sidecar(ranked_copy, adapter, base, tmp_path, monkeypatch,
                                                                  capsys):
    forbid_recompute(monkeypatch)  # prefix needs no computed order, and the sidecar must not be used
    seen = capture_subnets(monkeypatch)
    run_dir = tmp_path / "run"
    assert main(["eval", "smollm2-135m", "--subnets", str(ranked_copy), "--order", "prefix", *QUICK,
                 "--out", str(run_dir)]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "scored with order 'selfgen'; evaluating with 'prefix'" in notes[0]
    assert json.loads((run_dir / "results.json").read_text())["order"] == "prefix"
    subnet = read_ranked(str(ranked_copy))[0]["subnet"]
    prefix = {l: {"heads": list(range(adapter.geometry(l).num_kv_heads)), "ffn": list(range(adapter.geometry(l).ffn_dim))}
              for l in range(adapter.num_layers)}
    assert_cut_by(seen[0], base, prefix, subnet, adapter, cut_layers(subnet, adapter))


def test_corrupt_sidecar_fails_eval_in_one_line(ranked_copy, tmp_path, monkeypatch, capsys):
    sidecar = ranked_copy.parent / "ranked.orders.json"
    data = json.loads(sidecar.read_text())
    data["orders"]["3"]["ffn"] = data["orders"]["3"]["ffn"][:-1]
    sidecar.write_text(json.dumps(data))
    forbid_recompute(monkeypatch)
    run_dir = tmp_path / "run"
    assert main(["eval", "smollm2-135m", "--subnets", str(ranked_copy), *QUICK, "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "must be a permutation of its 1536 FFN channels" in errors[0], err
    assert "rerun `zerolm-prune rank`" in errors[0] and "Traceback" not in err
    assert not (run_dir / "results.json").exists()


def test_driver_saves_the_orders_and_a_resume_reuses_them(smollm2, adapter, tmp_path, monkeypatch):
    out = tmp_path / "run"
    kw = dict(out=out, top_k=1, ranker="zerolm", order="selfgen", baselines=False, save=False, suite="piqa",
              limit=1, perplexity=False, loaded=smollm2, progress=False)
    calls = count_recomputes(monkeypatch)
    prune_to_budget("smollm2-135m", "smollm2-135m", 0.8, evaluate=False, log=lambda *a: None, **kw)
    assert calls == ["selfgen"]
    doc = json.loads((out / "ranked.json").read_text())
    assert doc["order"] == "selfgen" and doc["orders_file"] == "ranked.orders.json"
    sidecar = load_orders(out / "ranked.orders.json", adapter, name="selfgen")

    # the resume: evaluating the reused candidates cuts the saved units, nothing recomputed
    forbid_recompute(monkeypatch)
    seen = capture_subnets(monkeypatch)
    lines: list[str] = []
    report = prune_to_budget("smollm2-135m", "smollm2-135m", 0.8, evaluate=True,
                             log=lambda *a: lines.append(" ".join(map(str, a))), **kw)
    assert not [line for line in lines if "note:" in line]
    assert {r["name"] for r in report["candidates"]} == {"full", "top1"}
    assert json.loads((out / "eval" / "results.json").read_text())["order"] == "selfgen"
    assert len(seen) == 1
    base = {k: v for k, v in smollm2[0].state_dict().items() if k.endswith(WEIGHTS)}
    subnet = doc["subnets"][0]["subnet"]
    for weights in seen:
        assert_cut_by(weights, base, sidecar, subnet, adapter, cut_layers(subnet, adapter))

    # a sidecar gone: the resume says so and recomputes by name
    (out / "ranked.orders.json").unlink()
    calls = count_recomputes(monkeypatch)
    lines.clear()
    prune_to_budget("smollm2-135m", "smollm2-135m", 0.8, evaluate=False,
                    log=lambda *a: lines.append(" ".join(map(str, a))), **kw)
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == 1 and "ranked.orders.json is missing" in notes[0]
    assert calls == ["selfgen"]
    # ... and writes the dict it now cuts with, so a later `prune` of ranked.json matches this run
    assert load_orders(out / "ranked.orders.json", adapter, name="selfgen") == sidecar
