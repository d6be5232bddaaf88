"""Exact budgeted top-k vs NSGA-II (LoNAS's search) on the same capacity tables, side by side.

Run: python benchmarks/bench_search.py [--quick]

Cases (all: top-10 under 0.8 of the full model's whole-model parameters, alpha 1):
  * LLaMA-7B LoNAS space (recipes/llama-7b-lonas.yaml, 32 layers x 20 options) on its random-init
    table (shapes only, as `zerolm-prune rank` scores it offline): options collapsed as the CLI does
    (LoRA ranks are invisible to a random-init score), every option kept (exact ties), and LoRA
    counted with every option kept (--include-lora: the ranks change the budget);
  * 100 layers x 60 options: a LLaMA-style config with 100 layers and a 3 x 10 x 2 space
    (heads x FFN x rank), random-init table, LoRA counted;
  * the LLaMA-7B table with every rank option given its own score and cost (what a real LoRA
    adapter and --include-lora make of it; synthetic perturbation of the random-init table);
  * 100 layers x 60 options of random arrays (values N(0,1), costs uniform 1e7..1e8), and the
    same with values rising with cost in each layer (the hard case: many near-equal trade-offs).
NSGA-II runs 200 evaluations (LoNAS's budget) on the same values and costs; the exact score must be
at least as high. Times are wall-clock medians of a few repeats on this machine (1 thread).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.search_baselines import nsga2_search  # noqa: E402
from zerolm_prune.search import _layer_costs, rank_subnets, resolve_budget, top_k  # noqa: E402


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def table_case(table, *, include_lora: bool, distinct: bool, repeats: int, evaluations: int, seed: int = 0):
    info = resolve_budget(table, 0.8, include_lora=include_lora)
    t_exact, entries = timed(lambda: rank_subnets(table, budget=0.8, top_k=10, include_lora=include_lora,
                                                  distinct=distinct), repeats)
    values = table.layer_values(1.0)
    costs, fixed = _layer_costs(table, "params", include_lora)
    objective = _additive(values)
    cost = _additive([c.astype(np.float64) for c in costs])
    t_ga, found = timed(lambda: nsga2_search(objective, [len(v) for v in values], cost=cost,
                                             budget=info.absolute - fixed, evaluations=evaluations, seed=seed), 1)
    return t_exact, entries[0]["score"], t_ga, (found[0][0] if found else float("nan"))


def _additive(columns):
    def f(idx):
        return float(sum(columns[i][j] for i, j in enumerate(idx)))
    return f


def lora_like_arrays(table, seed: int = 0):
    """The LLaMA-7B table as a real LoRA adapter would make it: every rank option gets its own
    score (merged LoRA) and cost (LoRA counted): 20 distinct options, near ties everywhere."""
    rng = np.random.default_rng(seed)
    values = [v + rng.normal(0, 1e-3 * float(np.std(v)) + 1e-6, v.size) for v in table.layer_values(1.0)]
    costs = [p + lp for p, lp in zip(table.params, table.lora_params)]
    budget = 0.8 * (table.fixed_params + sum(int(c.max()) for c in costs)) - table.fixed_params
    return values, costs, budget


def random_arrays(layers: int, choices: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    values = [rng.normal(size=choices) for _ in range(layers)]
    costs = [rng.integers(10**7, 10**8, choices) for _ in range(layers)]
    return values, costs, 0.8 * sum(int(c.max()) for c in costs)


def sorted_random_arrays(layers: int, choices: int, seed: int = 0):
    """Values rising with cost in every layer (like widths): many near-equivalent trade-offs."""
    rng = np.random.default_rng(seed)
    values = [np.sort(rng.uniform(0, 1, choices)) * rng.uniform(0.5, 2) for _ in range(layers)]
    costs = [np.sort(rng.integers(10**7, 10**8, choices)) for _ in range(layers)]
    return values, costs, 0.8 * sum(int(c.max()) for c in costs)


def array_case(values, costs, budget, *, repeats: int, evaluations: int, seed: int = 0):
    layers, choices = len(values), len(values[0])
    t_exact, found = timed(lambda: top_k(values, costs, budget, 10), repeats)
    t_ga, ga = timed(lambda: nsga2_search(_additive(values), [choices] * layers, cost=_additive(costs), budget=budget,
                                          evaluations=evaluations, seed=seed), 1)
    return t_exact, found[0][0], t_ga, ga[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat per case")
    parser.add_argument("--evaluations", type=int, default=200, help="NSGA-II evaluations (default: 200, as LoNAS)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    import torch

    torch.set_num_threads(1)
    from transformers import LlamaConfig

    from zerolm_prune.proxy import CapacityTable
    from zerolm_prune.space import LayerSpace, SearchSpace, load_space

    import pymoo.algorithms.moo.nsga2  # noqa: F401 - import cost is not search cost

    space = load_space(str(ROOT / "recipes" / "llama-7b-lonas.yaml"))
    t = time.perf_counter()
    llama = CapacityTable.random_init(space.config_object(), space)
    t_table = time.perf_counter() - t

    config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5504, num_hidden_layers=100,
                         num_attention_heads=16, num_key_value_heads=4, head_dim=128, tie_word_embeddings=False)
    layers = [LayerSpace([16, 12, 8], [5504, 4816, 4128, 3440, 2752, 2064, 1376, 1024, 688, 344], {"all": [16, 8]})
              for _ in range(100)]
    big_space = SearchSpace(layers, model="synthetic-100L", config=config.to_dict(),
                            lora={"groups": {"all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                     "down_proj"]}, "alpha": 32, "r_max": 16})
    t = time.perf_counter()
    big = CapacityTable.random_init(config, big_space)
    t_big_table = time.perf_counter() - t

    rows = [
        ("LLaMA-7B LoNAS 32x20, ranks collapsed (CLI default)", 32, len(llama.options[0]),
         *table_case(llama, include_lora=False, distinct=True, repeats=repeats, evaluations=args.evaluations)),
        ("LLaMA-7B LoNAS 32x20, all 20 options (exact ties)", 32, len(llama.options[0]),
         *table_case(llama, include_lora=False, distinct=False, repeats=repeats, evaluations=args.evaluations)),
        ("LLaMA-7B LoNAS 32x20, LoRA counted, all 20 options", 32, len(llama.options[0]),
         *table_case(llama, include_lora=True, distinct=False, repeats=repeats, evaluations=args.evaluations)),
        ("LLaMA-style 100x60, random-init table, LoRA counted, all 60 options", 100, len(big.options[0]),
         *table_case(big, include_lora=True, distinct=False, repeats=repeats, evaluations=args.evaluations)),
        ("LLaMA-style 100x60, same, useless rank copies dropped (CLI default)", 100, len(big.options[0]),
         *table_case(big, include_lora=True, distinct=True, repeats=repeats, evaluations=args.evaluations)),
        ("LLaMA-7B 32x20 with LoRA-dependent scores and costs (synthetic)", 32, 20,
         *array_case(*lora_like_arrays(llama), repeats=repeats, evaluations=args.evaluations)),
        ("random arrays 100x60", 100, 60, *array_case(*random_arrays(100, 60), repeats=repeats,
                                                      evaluations=args.evaluations)),
        ("random arrays 100x60, values rising with cost", 100, 60,
         *array_case(*sorted_random_arrays(100, 60), repeats=repeats, evaluations=args.evaluations)),
    ]
    print(f"# bench_search ({platform.processor() or platform.machine()}, {os.cpu_count()} cpus, 1 thread, "
          f"NSGA-II {args.evaluations} evaluations)")
    print(f"table build (random init, shapes only): LLaMA-7B {t_table:.2f} s, 100-layer {t_big_table:.2f} s\n")
    print("| case | exact top-10 (s) | NSGA-II (s) | NSGA-II / exact time | exact best score | NSGA-II best score | exact >= NSGA-II |")
    print("|---|---:|---:|---:|---:|---:|:---:|")
    for name, _layers, _choices, t_exact, s_exact, t_ga, s_ga in rows:
        print(f"| {name} | {t_exact:.3f} | {t_ga:.2f} | {t_ga / t_exact:.3g}x | {s_exact:.6f} | {s_ga:.6f} | "
              f"{'yes' if s_exact >= s_ga else 'NO'} |")
        assert s_exact >= s_ga, f"{name}: NSGA-II beat the exact search"


if __name__ == "__main__":
    main()
