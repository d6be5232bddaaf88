"""``zerolm-prune bench``: rank correlation of ZeroLM and baselines on NAS benchmarks with labels."""

from __future__ import annotations

import argparse

from .. import inputs
from ..atomic import write_json
from ..errors import UserError

ORDER = 80


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="FILE", help="benchmark file (any file of the same schema)")
    p.add_argument("--alpha", default="auto", metavar="auto|VALUE",
                   help="alpha in S = S_FFN + alpha*S_Attn; 'auto' fits it by ZeroLM's benchmark sampling on "
                        "--fit-fraction of the rows and reports every proxy on the other rows (default: auto)")
    p.add_argument("--fit-fraction", type=inputs.open_fraction, default=0.3, help="share of rows used to fit alpha (default 0.3)")
    p.add_argument("--seed", type=inputs.seed, default=0, help="seed of the split, the random init and the bootstrap")
    p.add_argument("--bootstrap", type=inputs.bootstrap, default=1000, help="bootstrap resamples for the 95%% intervals (0: none)")
    p.add_argument("--grad", action="store_true",
                   help="also sample SynFlow and SNIP on built surrogates (slow: minutes); the closed-form "
                        "expected SynFlow is always reported")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="Kendall tau / Spearman rho of ZeroLM, our variants and baselines on NAS benchmarks",
        description="Score every architecture of a labelled NAS benchmark at random init with ZeroLM, our "
        "capacity variants and the baselines (#params, MACs, hidden x layers, magnitude, random, SynFlow, "
        "SNIP), and print rank correlations with bootstrap 95% intervals.\n\nExamples:\n"
        "  zerolm-prune bench nasbench-bert --data BERT_benchmark.json --json out.json\n"
        "  zerolm-prune bench nasbench-bert --data BERT_benchmark.json --reading trained-as\n"
        "  zerolm-prune bench lts --data random_GPT2_lm1b.json --alpha 1.0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    nb = sub.add_parser("nasbench-bert", help="NAS-Bench-BERT / FlexiBERT (GLUE)",
                        description="Rank correlation with GLUE on NAS-Bench-BERT (BERT_benchmark.json schema).")
    _common(nb)
    nb.add_argument("--reading", default="proxy-code", choices=("proxy-code", "faithful", "trained-as"),
                    help="how a record becomes matrices: as the public proxy code builds it (hidden 256, FFN "
                         "1024; the published numbers), faithfully, or as the TF trainer most likely trained "
                         "it (plain attention) (default: proxy-code)")
    nb.set_defaults(func=run)
    lt = sub.add_parser("lts", help="LTS GPT-2 / Transformer-XL (perplexity)",
                        description="Rank correlation with -valid_ppl on an LTS file (random_GPT2_lm1b.json schema).")
    _common(lt)
    lt.add_argument("--kind", choices=("gpt2", "transxl"), default=None,
                    help="block layout (default: guessed from the file's experiment name)")
    lt.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from ..bench.run import format_table, run_benchmark  # lazy: keeps `zerolm-prune --help` fast

    if args.alpha != "auto":  # fail before minutes of scoring
        try:
            float(args.alpha)
        except ValueError:
            raise UserError(f"--alpha must be 'auto' or a number, got {args.alpha!r}") from None
    if args.alpha == "auto" and not 0 < args.fit_fraction < 1:
        raise UserError(f"--fit-fraction must be between 0 and 1, got {args.fit_fraction}")
    kwargs = dict(alpha=args.alpha, fit_fraction=args.fit_fraction, seed=args.seed, bootstrap=args.bootstrap,
                  grad=args.grad, progress=True)
    if args.benchmark == "nasbench-bert":
        result = run_benchmark("nasbench-bert", args.data, reading=args.reading, **kwargs)
        title = f"NAS-Bench-BERT ({args.reading} reading), label: GLUE"
    else:
        result = run_benchmark("lts", args.data, kind=args.kind, **kwargs)
        title = f"LTS {result.get('kind')}, label: -valid_ppl"
    print(format_table(result, title))
    print("* = our recommended data-free variant; baselines are what a proxy must beat")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
