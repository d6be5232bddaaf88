"""Speed of the capacity table (issue #4): build time vs one plain weight pass, and scoring 1e6 subnets.

Targets: building the SmolLM2-135M table costs at most 3x one plain pass that reads every
projection weight once; scoring 1e6 subnets from a table takes under 1 s. Both are measured side
by side in this run (best of ``--repeat``), on one thread.

    python benchmarks/bench_capacity.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--subnets", type=int, default=1_000_000)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.models import get_adapter
    from zerolm_prune.proxy import CapacityTable
    from zerolm_prune.space import LayerSpace, SearchSpace

    model, _ = smollm2_135m()
    adapter = get_adapter(model)
    # a LoNAS-style space: 3 head choices (whole KV groups) x 5 FFN widths per layer
    space = SearchSpace([LayerSpace([9, 6, 3], [1536, 1344, 1152, 960, 768]) for _ in range(adapter.num_layers)])
    weights = [adapter.projection_weight(layer, p).detach() for layer in adapter.layers(model) for p in adapter.projections]
    n_params = sum(w.numel() for w in weights)

    def plain_pass():
        with torch.no_grad():
            return sum(float(torch.linalg.vector_norm(w)) for w in weights)

    # interleaved rounds, best of each: load from other processes hits all three alike
    runs = {"plain": plain_pass,
            "prefix": lambda: CapacityTable.from_model(model, space, order="prefix"),
            "capacity": lambda: CapacityTable.from_model(model, space, order="capacity")}
    best = {k: float("inf") for k in runs}
    for _ in range(args.repeat):
        for k, fn in runs.items():
            best[k] = min(best[k], best_of(fn, 1))
    plain = best.pop("plain")
    build = best
    print(f"SmolLM2-135M: {len(weights)} projection weights, {n_params / 1e6:.1f}M parameters, "
          f"{space.layers[0].size} options per layer, {adapter.num_layers} layers")
    print(f"plain pass (read every weight once)   {plain * 1e3:8.1f} ms")
    for order, t in build.items():
        print(f"capacity table, order={order:<9}     {t * 1e3:8.1f} ms   ratio {t / plain:5.2f}x   (target <= 3x)")

    table = CapacityTable.from_model(model, space)
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(len(o), size=args.subnets) for o in table.options], axis=1)
    score = best_of(lambda: table.score_indices(idx, 0.5), args.repeat)
    params = best_of(lambda: table.total_params(idx), args.repeat)
    print(f"score {args.subnets:,} subnets                {score * 1e3:8.1f} ms   (target < 1000 ms)")
    print(f"params of {args.subnets:,} subnets            {params * 1e3:8.1f} ms")

    from transformers import LlamaConfig

    big = SearchSpace([LayerSpace([32], [11008, 9632, 8256, 6880, 5504]) for _ in range(32)])
    t = best_of(lambda: CapacityTable.random_init(LlamaConfig(), big, seed=0), 1)
    print(f"random_init table, LLaMA-7B shapes     {t * 1e3:8.1f} ms   (no weights built)")


if __name__ == "__main__":
    main()
