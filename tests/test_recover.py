"""Recovery by self-distillation on a tiny LLaMA (built in-test, pruned with the package API)."""

from __future__ import annotations

import json
import pytest
import torch

from conftest import tiny_llama_config
from zerolm_prune.checkpoint import load_pruned, save_pretrained
from zerolm_prune.materialize import materialize
from zerolm_prune.recover import RecoverConfig, load_recovered, recover
from zerolm_prune.recover.corpus import sample_batch
from zerolm_prune.recover.trainer import full_kl
from zerolm_prune.space import LayerChoice, Subnet


@pytest.fixture
def teacher():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(bos_token_id=1, eos_token_id=2)).eval()
    with torch.no_grad():  # a peakier teacher than random init: KL differences are visible
        model.lm_head.weight.mul_(8.0)
    return model


@pytest.fixture
def pruned_dir(tmp_path, teacher):
    subnet = Subnet([LayerChoice(h, f) for h, f in zip([8, 4, 8], [96, 40, 48])])
    return save_pretrained(materialize(teacher, subnet), tmp_path / "pruned", subnet=subnet, source="tiny")


def _config(**kw) -> RecoverConfig:
    base = dict(tokens=2048, seq_len=32, batch_size=8, lora_rank=8, lr=3e-3, gen_batch=16, teacher_top_k=16,
                save_steps=4, epochs=2)
    base.update(kw)
    return RecoverConfig(**base)


def _heldout_kl(student, teacher) -> float:
    ids, _, _ = sample_batch(teacher, None, rows=16, length=32, seed=12345, sample_top_k=50, keep_top_k=0)
    with torch.no_grad():
        return float(full_kl(student(input_ids=ids).logits[:, :-1], teacher(input_ids=ids).logits[:, :-1]))


@pytest.mark.parametrize("top_k", [16, 0])
def test_kl_to_teacher_falls_on_heldout_text(tmp_path, teacher, pruned_dir, top_k):
    before = _heldout_kl(load_pruned(pruned_dir)[0], teacher)
    out = recover(pruned_dir, "unused", tmp_path / "rec", _config(teacher_top_k=top_k), progress=False,
                  cache_root=tmp_path / "cache", loaded_teacher=(teacher, None), log=lambda *a: None)
    after = _heldout_kl(load_recovered(out["out"])[0], teacher)
    assert after < 0.8 * before, (before, after)
    assert out["final_loss"] < out["first_loss"]
    adapter = json.loads((tmp_path / "rec" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(pruned_dir)
    assert not list(tmp_path.glob(".rec*")), "the work folder is removed after success"


def test_merged_equals_adapter_attached(tmp_path, teacher, pruned_dir):
    kw = dict(progress=False, cache_root=tmp_path / "cache", loaded_teacher=(teacher, None), log=lambda *a: None)
    recover(pruned_dir, "unused", tmp_path / "adapter", _config(), **kw)
    recover(pruned_dir, "unused", tmp_path / "merged", _config(merge=True), **kw)
    attached, _ = load_recovered(tmp_path / "adapter")
    merged, _ = load_pruned(tmp_path / "merged")
    meta = json.loads((tmp_path / "merged" / "config.json").read_text())["zerolm_prune"]
    assert meta["subnet"] and meta["recovered"]["steps"] > 0
    ids = torch.randint(3, 128, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, m = attached(input_ids=ids).logits, merged(input_ids=ids).logits
        plain = load_pruned(pruned_dir)[0](input_ids=ids).logits
    # equal up to float32 rounding of W + BA (logits here are ~4 in size), far below what recovery changed
    assert torch.allclose(a, m, atol=2e-3), (a - m).abs().max()
    assert (a - m).abs().max() < 0.01 * (plain - m).abs().max()


class _Crash(Exception):
    pass


def test_resume_after_interruption_gives_same_weights(tmp_path, teacher, pruned_dir):
    from transformers import TrainerCallback

    class CrashAfter(TrainerCallback):  # a kill right after the step-4 checkpoint was written
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 6:
                raise _Crash()

    kw = dict(progress=False, cache_root=tmp_path / "cache", loaded_teacher=(teacher, None), log=lambda *a: None)
    recover(pruned_dir, "unused", tmp_path / "straight", _config(), **kw)
    with pytest.raises(_Crash):
        recover(pruned_dir, "unused", tmp_path / "resumed", _config(), callbacks=[CrashAfter()], **kw)
    assert not (tmp_path / "resumed").exists(), "nothing half-written at --out"
    assert (tmp_path / ".resumed.recover-work" / "checkpoints" / "checkpoint-4").is_dir()
    with pytest.raises(Exception, match="other settings"):
        recover(pruned_dir, "unused", tmp_path / "resumed", _config(lr=1e-2), **kw)
    result = recover(pruned_dir, "unused", tmp_path / "resumed", _config(), **kw)
    assert result["resumed_from"] == "checkpoint-4"
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_user_text_file_offline(tmp_path, teacher, pruned_dir):
    from zerolm_prune.recover.corpus import read_user_text

    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "a b"}) + "\n\n" + json.dumps({"id": 1, "body": "c"}) + "\n")
    assert read_user_text(str(tmp_path / "t.jsonl")) == ["a b", "c"]
    (tmp_path / "t.txt").write_text("plain text")
    assert read_user_text(str(tmp_path / "t.txt")) == ["plain text"]


def _cli(args, capsys) -> tuple[int, str]:
    from zerolm_prune.cli import main

    try:
        code = main(["recover", *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["{tmp}/missing", "--teacher", "{pruned}", "--out", "{tmp}/o"], "not a model folder"),
    (["{pruned}", "--teacher", "{pruned}", "--out", "{tmp}/o", "--tokens", "0"], "--tokens"),
    (["{pruned}", "--teacher", "{pruned}", "--out", "{tmp}/o", "--tokens", "many"], "--tokens"),
    (["{pruned}", "--teacher", "{pruned}", "--out", "{tmp}/o", "--lora-rank", "-1"], "--lora-rank"),
    (["{pruned}", "--teacher", "{tmp}/nope", "--out", "{tmp}/o"], "nope"),
    (["{pruned}", "--teacher", "{pruned}", "--out", "{pruned}"], "source checkpoint"),
    (["{pruned}", "--teacher", "{pruned}", "--out", "{tmp}/o", "--data", "{tmp}/nofile.txt"], "--data"),
])
def test_bad_inputs_one_line_exit_2(tmp_path, pruned_dir, capsys, args, message):
    code, err = _cli([a.format(tmp=tmp_path, pruned=pruned_dir) for a in args], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("zerolm-prune") and "error:" in lines[0] and message in lines[0], err
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o*"))


def test_run_step_reports_before_and_after(tmp_path, teacher, monkeypatch):
    """`run --recover-tokens`: every saved candidate is recovered (merged) and report.md shows both."""
    from types import SimpleNamespace

    from zerolm_prune.recover import run_step

    subnet = Subnet([LayerChoice(h, f) for h, f in zip([8, 4, 8], [96, 40, 48])])
    save_pretrained(materialize(teacher, subnet), tmp_path / "models" / "top1", subnet=subnet, source="tiny")
    evaluated = []
    monkeypatch.setattr(run_step, "_evaluate", lambda folder, *a: evaluated.append(folder) or
                        {"tasks": {"piqa": {"score": 0.6, "n": 10}}, "mean": 0.6, "perplexity": {"token_perplexity": 30.0}})
    row = dict(name="top1", kind="top", rank=0, score=-1.0, zerolm=1.0, params=10, macs=10, note="", done=True,
               tasks={"piqa": {"acc": 0.5, "score": 0.5, "n": 10}}, mean=0.5, perplexity={"token_perplexity": 40.0},
               fidelity=None, checkpoint="models/top1")
    full = dict(row, name="full", kind="full", rank=None, score=None, checkpoint=None, perplexity={"token_perplexity": 20.0})
    report = {"model": "tiny", "ranker": "selfgen", "budget": 8, "budget_fraction": 0.8, "by": "params", "alpha": 1.0,
              "alpha_method": "default", "order": "prefix", "metrics": {"piqa": "acc"}, "candidates": [full, row],
              "pictures": {}}
    settings = SimpleNamespace(suite="commonsense", limit=10, source="local", data_dir=None, perplexity=True,
                               perplexity_limit=20)
    monkeypatch.setattr(run_step, "RecoverConfig", lambda **kw: RecoverConfig(**{**kw, "seq_len": 32, "gen_batch": 16}))
    out = run_step.recover_candidates(tmp_path, report, model="tiny", tokens=512, settings=settings,
                                      loaded=(teacher, None), progress=False, log=lambda *a: None)
    assert evaluated == [tmp_path / "recovered" / "top1"] and (tmp_path / "recovered" / "top1" / "config.json").is_file()
    text = (tmp_path / "report.md").read_text()
    assert "## After recovery (512" in text and "| top1 | 40.0 | 30.0 | 0.500 ±" in text
    assert out["recovered"]["candidates"][0]["after"]["mean"] == 0.6
    # a rerun reuses the recovered model and its evaluation
    run_step.recover_candidates(tmp_path, report, model="tiny", tokens=512, settings=settings, loaded=(teacher, None),
                                progress=False, log=lambda *a: None)
    assert len(evaluated) == 1


def test_full_fine_tuning_writes_a_merged_checkpoint(tmp_path, teacher, pruned_dir):
    """--lora-rank 0: every student weight trains; the result is a plain pruned checkpoint."""
    before = _heldout_kl(load_pruned(pruned_dir)[0], teacher)
    recover(pruned_dir, "unused", tmp_path / "ft", _config(lora_rank=0, merge=True, lr=1e-3), progress=False,
            cache_root=tmp_path / "cache", loaded_teacher=(teacher, None), log=lambda *a: None)
    assert not (tmp_path / "ft" / "adapter_config.json").exists()
    assert _heldout_kl(load_pruned(tmp_path / "ft")[0], teacher) < 0.8 * before
    with pytest.raises(Exception, match="--merge"):
        RecoverConfig(lora_rank=0)
