"""``zerolm-prune demo``: the README's first command, on the embedded default (SmolLM2-135M).

Exactly ``run smollm2-135m --space smollm2-135m --budget 0.8 --top-k 3`` on the real offline
commonsense data with a small ``--limit``, so that a newcomer sees the whole flow (ranking,
baselines, saved checkpoints, lm-eval, report) in a few minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse

from .common import positive_int

ORDER = 90


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the main job on the embedded default: SmolLM2-135M, its LoNAS-style space, real data, offline",
        description="Run the whole flow on the built-in SmolLM2-135M with recipes/smollm2-135m.yaml at 0.8 of the "
        "parameters: top-3 subnets by the proxy plus the LoNAS-heuristic, uniform and random baselines, saved as "
        "checkpoints and evaluated on the six commonsense tasks (real validation data, offline). This is what "
        "`make demo` runs. Rerunning resumes.",
    )
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--limit", type=positive_int, default=10, help="documents per task (default: 10; the whole demo stays under 15 min on 2 CPU cores)")
    p.add_argument("--budget", type=float, default=0.8, help="fraction of the parameters to keep (default 0.8)")
    p.add_argument("--batch-size", default="8", help="lm-eval batch size (default 8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..driver import prune_to_budget  # lazy: keeps `zerolm-prune --help` fast
    from ..evaluate import parse_batch_size

    prune_to_budget("smollm2-135m", "smollm2-135m", args.budget, out=args.out, top_k=3, suite="commonsense",
                    limit=args.limit, perplexity_limit=2 * args.limit, batch_size=parse_batch_size(args.batch_size))
    return 0
