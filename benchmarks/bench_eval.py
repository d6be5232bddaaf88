"""Evaluation throughput of SmolLM2-135M through lm-eval on CPU: batch size 1 vs larger batches.

Why: a full commonsense run takes hours on a laptop CPU; the batch size is the one knob a user
has. Run: ``python benchmarks/bench_eval.py [--limit 40] [--tasks piqa,hellaswag] [--threads 1]``.
Prints seconds per task for each batch size, the speed-up over batch 1, and checks the metrics
are unchanged (batching only pads; the scores must agree).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--tasks", default="piqa,hellaswag")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from zerolm_prune.assets import smollm2_135m
    from zerolm_prune.evaluate import evaluate_model, make_lm

    model, tokenizer = smollm2_135m()
    tasks = args.tasks.split(",")
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    timings: dict[int, dict[str, float]] = {}
    scores: dict[int, dict[str, tuple]] = {}
    for bs in sizes:
        lm = make_lm(model, tokenizer, batch_size=bs)
        timings[bs], scores[bs] = {}, {}
        for task in tasks:
            start = time.perf_counter()
            res = evaluate_model(model, tokenizer, suite=[task], limit=args.limit, lm=lm, progress=False)
            timings[bs][task] = time.perf_counter() - start
            m = res["tasks"][task]
            scores[bs][task] = (m["acc"], m["acc_norm"])
    print(f"SmolLM2-135M, lm-eval {res['lm_eval_version']}, limit {args.limit}, {args.threads} thread(s)")
    print(f"{'task':<12}" + "".join(f"{'bs ' + str(b):>10}" for b in sizes) + f"{'speed-up':>10}{'same acc':>10}")
    for task in tasks:
        base = timings[sizes[0]][task]
        same = all(abs(scores[b][task][0] - scores[sizes[0]][task][0]) < 1e-9 for b in sizes)
        print(f"{task:<12}" + "".join(f"{timings[b][task]:>9.1f}s" for b in sizes)
              + f"{base / timings[sizes[-1]][task]:>9.2f}x{str(same):>10}")


if __name__ == "__main__":
    main()
