"""``zerolm-prune run``: the whole flow in one command, resumable."""

from __future__ import annotations

import argparse

from .. import inputs
from .common import add_model_options, add_ranking_options, positive_int

ORDER = 80

EXAMPLES = """\
Examples:
  zerolm-prune run smollm2-135m --space recipes/smollm2-135m.yaml --budget 0.8 --top-k 3 --limit 40 --out runs/smol
  zerolm-prune run minilm-l6 --space recipes/minilm-l6.yaml --budget 0.7 --out runs/minilm      # BERT path
  zerolm-prune run meta-llama/Llama-3.2-1B --budget 0.8 --out runs/l3   # hub model, default ratio space

The run folder gets ranked.json, front.png, models/<candidate>/ (loadable checkpoints with model
cards), eval/results.json, eval/proxy_vs_accuracy.png, report.md and report.json. Rerunning the
same command reuses everything already finished.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="load, rank, save and evaluate the best subnets under a budget (plus baselines), in one command",
        description="Prune MODEL to a budget and evaluate the result: capacity table, exact top-k search, the "
        "LoNAS heuristic / uniform / random baselines at the same budget, saved checkpoints with model cards, "
        "lm-eval on real offline data, report.md.\n\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="built-in asset (smollm2-135m, minilm-l6), local folder or hub id")
    p.add_argument("--space", default=None, help="recipe YAML, LoNAS NNCF JSON or saved space (default: the "
                   "shipped recipe of a built-in model, else FFN 100..50%% and heads 100/67%% of MODEL)")
    p.add_argument("--budget", type=float, default=0.8, help="fraction of the full model (<= 1) or an absolute count")
    p.add_argument("--by", choices=("params", "macs"), default="params", help="what the budget counts")
    p.add_argument("--top-k", type=int, default=3, help="proxy candidates to save and evaluate (default 3)")
    add_ranking_options(p)
    p.add_argument("--suite", default="commonsense", help="commonsense (6 tasks) or lonas8 (8 tasks); encoders "
                   "always run the GLUE probe")
    p.add_argument("--limit", type=positive_int, default=None, help="documents per task (quick runs); default: all")
    p.add_argument("--source", choices=("local", "hub"), default="local", help="task data: offline copies (local) "
                   "or lm-eval's own hub datasets")
    p.add_argument("--data-dir", default=None, help="a folder of your own JSONL/arrow task files (local source)")
    p.add_argument("--no-baselines", action="store_true", help="skip the heuristic/uniform/random candidates")
    p.add_argument("--no-save", action="store_true", help="do not write checkpoints (evaluate in memory only)")
    p.add_argument("--no-eval", action="store_true", help="stop after saving the checkpoints")
    p.add_argument("--no-perplexity", action="store_true", help="skip the perplexity column")
    p.add_argument("--perplexity-limit", type=positive_int, default=None, help="passages for perplexity (default: all)")
    p.add_argument("--seed", type=inputs.seed, default=0, help="seed of the random baseline")
    p.add_argument("--batch-size", default="1", help="lm-eval batch size, or auto")
    p.add_argument("--recover-tokens", type=positive_int, default=None, help="after evaluating, recover every "
                   "candidate by self-distillation on N self-generated tokens (zerolm-prune recover) and report "
                   "before and after")
    p.add_argument("--out", required=True, help="run folder (reused on rerun)")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..driver import prune_to_budget  # lazy: keeps `zerolm-prune --help` fast
    from ..evaluate import parse_batch_size

    prune_to_budget(
        args.model, args.space or args.model, args.budget, out=args.out, by=args.by, top_k=args.top_k,
        alpha=args.alpha, ranker=args.ranker, order=args.order, suite=args.suite, limit=args.limit, source=args.source,
        data_dir=args.data_dir, baselines=not args.no_baselines, save=not args.no_save, evaluate=not args.no_eval,
        perplexity=not args.no_perplexity, perplexity_limit=args.perplexity_limit, seed=args.seed,
        batch_size=parse_batch_size(args.batch_size), device=args.device, trust_remote_code=args.trust_remote_code,
        recover_tokens=args.recover_tokens,
    )
    return 0
