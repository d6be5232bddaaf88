"""Speed of pruned SmolLM2 subnets in llama.cpp and in transformers, side by side in one run.

Models: the dense SmolLM2-135M; the search's pick (default selfgen ranker, exact search) at 0.8
and 0.6 of the whole model's parameters; and, at each budget, the uniform subnet (same heads and
FFN width in every layer) closest in size to the pick, to show whether non-uniform layers
(llama.cpp's ``deci`` graph) cost speed against uniform ones (its ``llama`` graph).

Measured: prompt processing (one batch of ``--prompt`` tokens) and generation (``--gen`` tokens
one at a time after the prompt, KV cache on) in tokens/s, at ``--threads`` threads, in llama.cpp
(llama-cpp-python, GGUF files written by ``zerolm_prune.export``) and in transformers (fp32,
``torch.set_num_threads``). Runs are interleaved (every model once per round, ``--rounds``
rounds) and medians are reported, so that load from other processes hits all models alike.
The ideal speed-up is the inverse of the parameter ratio (decoding reads every weight once per
token; the tied embedding is read once, as the LM head).

Run: python benchmarks/bench_llamacpp.py [--work DIR] [--rounds 5] [--outtypes f32,q8_0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

SPACE_FFN = "1,0.875,0.75,0.625,0.5,0.375,0.25"
SPACE_HEADS = "1,0.67,0.34"


def search(budgets: list[float], ranker: str | None = None) -> tuple[dict, dict[float, dict]]:
    """The default search (selfgen order and ranker, exact) over the ratio space, one table for all
    budgets (what ``zerolm-prune rank`` does per budget): ``(unit orders, {budget: best entry})``."""
    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.driver import make_scoring, search_top_k
    from zerolm_prune.models import get_adapter
    from zerolm_prune.proxy import CapacityTable
    from zerolm_prune.rankers.orders import compute_orders
    from zerolm_prune.space import load_space

    model, _ = smollm2_135m()
    adapter = get_adapter(model)
    space = load_space("smollm2-135m", ffn=SPACE_FFN, heads=SPACE_HEADS)
    # selfgen ranks units on self-generated text, other rankers by energy; resolved once here, the
    # table, the scoring and materialize take the dict (they refuse names that need the model)
    orders = compute_orders(model, "selfgen" if ranker in (None, "selfgen", "selfgen-kl") else "energy",
                            adapter=adapter)
    table = CapacityTable.from_model(model, space, order=orders, adapter=adapter, progress=True)
    scoring = make_scoring(ranker, table, model, adapter, 1.0, unit_orders=orders if isinstance(orders, dict) else None)
    best = {b: search_top_k(table, scoring, budget=b, top_k=1, model=model, adapter=adapter)[0] for b in budgets}
    return orders, best


def uniform_closest(layer: dict, config, target: int, full: int) -> dict:
    """The uniform subnet of the space (same choice in every layer) whose parameter count is closest
    to ``target``."""
    hidden, head_dim, n = config.hidden_size, config.head_dim, config.num_hidden_layers
    group = config.num_attention_heads // config.num_key_value_heads

    def per_layer(heads: int, ffn: int) -> int:
        return hidden * head_dim * (2 * heads + 2 * heads // group) + 3 * hidden * ffn

    full_layer = per_layer(config.num_attention_heads, config.intermediate_size)
    best = min(((h, f) for h in layer.heads for f in layer.ffn),
               key=lambda hf: abs(full - n * (full_layer - per_layer(*hf)) - target))
    return {"heads": [best[0]] * n, "ffn": [best[1]] * n}


def prepare(work: Path, budgets: list[float], outtypes: list[str], ranker: str | None = None) -> dict[str, dict]:
    """Search, prune and export every model once (reused when the files exist)."""
    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.checkpoint import save_pretrained
    from zerolm_prune.export import export_gguf
    from zerolm_prune.materialize import materialize
    from zerolm_prune.space import Subnet, load_space

    work.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict] = {"dense": {"folder": None}}
    for b in budgets:
        models[f"search {b}"] = {"folder": work / f"search-{b}"}
        models[f"uniform ~{b}"] = {"folder": work / f"uniform-{b}"}
    if not all(m["folder"] is None or m["folder"].exists() for m in models.values()):
        model, tokenizer = smollm2_135m()
        full = sum(p.numel() for p in model.parameters())
        orders, best = search(budgets, ranker)
        layer = load_space("smollm2-135m", ffn=SPACE_FFN, heads=SPACE_HEADS).layers[0]
        for b in budgets:
            uniform = uniform_closest(layer, model.config, best[b]["params"], full)
            picks = {f"search {b}": (Subnet.from_dict(best[b]["subnet"]), orders),
                     # which units a uniform subnet keeps does not change its speed
                     f"uniform ~{b}": (Subnet.from_dict(uniform), "prefix")}
            for name, (subnet, order) in picks.items():
                folder = models[name]["folder"]
                if not folder.exists():
                    save_pretrained(materialize(model, subnet, order=order), folder, tokenizer=tokenizer,
                                    subnet=subnet)
    for name, m in models.items():
        m["gguf"] = {}
        for t in outtypes:
            path = work / f"{name.replace(' ', '_').replace('~', '')}-{t}.gguf"
            if not path.exists():
                export_gguf("smollm2-135m" if m["folder"] is None else m["folder"], path, outtype=t)
            m["gguf"][t] = path
    return models


def llamacpp_speed(path: Path, prompt: list[int], gen: int, threads: int) -> tuple[float, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=len(prompt) + gen + 8, n_batch=len(prompt), n_threads=threads,
                n_threads_batch=threads, verbose=False)
    llm.eval(prompt[:8])  # warm-up (first-touch of the mapped weights)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    for i in range(gen):
        llm.eval([prompt[i % len(prompt)]])
    t2 = time.perf_counter()
    llm.close()
    return len(prompt) / (t1 - t0), gen / (t2 - t1)


def torch_speed(model, prompt: list[int], gen: int) -> tuple[float, float]:
    ids = torch.tensor([prompt])
    with torch.no_grad():
        model(input_ids=ids[:, :8])  # warm-up
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        t1 = time.perf_counter()
        past = out.past_key_values
        for i in range(gen):
            out = model(input_ids=ids[:, i % len(prompt)].view(1, 1), past_key_values=past, use_cache=True)
            past = out.past_key_values
        t2 = time.perf_counter()
    return len(prompt) / (t1 - t0), gen / (t2 - t1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/zerolm-bench-llamacpp")
    parser.add_argument("--budgets", default="0.8,0.6")
    parser.add_argument("--outtypes", default="f32,q8_0")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--gen", type=int, default=64)
    parser.add_argument("--ranker", default=None, help="the search's ranker (default: the package default, selfgen)")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from zerolm_prune.loading import load_model

    outtypes = args.outtypes.split(",")
    models = prepare(Path(args.work), [float(b) for b in args.budgets.split(",")], outtypes, args.ranker)
    torch.set_num_threads(args.threads)
    hf = {name: load_model("smollm2-135m" if m["folder"] is None else str(m["folder"]))[0] for name, m in models.items()}
    params = {name: sum(p.numel() for p in model.parameters()) for name, model in hf.items()}
    rng = np.random.default_rng(0)
    prompt = rng.integers(100, 49000, size=args.prompt).tolist()
    engines = [f"llama.cpp {t}" for t in outtypes] + ["transformers fp32"]
    raw: dict[str, dict[str, list[tuple[float, float]]]] = {n: {e: [] for e in engines} for n in models}
    for r in range(args.rounds):  # interleaved: A B C ... A B C ...
        for name, m in models.items():
            for t in outtypes:
                raw[name][f"llama.cpp {t}"].append(llamacpp_speed(m["gguf"][t], prompt, args.gen, args.threads))
            raw[name]["transformers fp32"].append(torch_speed(hf[name], prompt, args.gen))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    report(raw, params, engines, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"raw": raw, "params": params, "args": vars(args)}, indent=1))
    return 0


def report(raw: dict, params: dict, engines: list[str], args: argparse.Namespace) -> None:
    dense = params["dense"]
    print(f"\nmedians of {args.rounds} interleaved rounds; {args.threads} threads; prompt {args.prompt} tokens, "
          f"generation {args.gen} tokens; load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| engine | model | params | ratio | ideal speed-up | prompt tok/s | gen tok/s | prompt speed-up | "
          "gen speed-up | gen: % of ideal |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for engine in engines:
        base = [statistics.median(x[i] for x in raw["dense"][engine]) for i in (0, 1)]
        for name in raw:
            pp, tg = (statistics.median(x[i] for x in raw[name][engine]) for i in (0, 1))
            ratio = params[name] / dense
            print(f"| {engine} | {name} | {params[name] / 1e6:.1f}M | {ratio:.3f} | {1 / ratio:.2f}x | {pp:.0f} | "
                  f"{tg:.1f} | {pp / base[0]:.2f}x | {tg / base[1]:.2f}x | {tg / base[1] * ratio:.0%} |")


if __name__ == "__main__":
    sys.exit(main())
