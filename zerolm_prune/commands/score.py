"""``zerolm-prune score [MODEL] --subnets FILE``: score given subnets with any data-free ranker."""

from __future__ import annotations

import argparse
import os

from .. import inputs, loading
from ..atomic import write_json
from ..errors import UserError
from .common import add_model_options

ORDER = 45


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="score the subnets of a ranked.json with a data-free ranker (zerolm, energy, selfgen-kl, fidelity, ...)",
        description="Score every subnet of FILE (the ranked.json format written by `rank`) with one ranker and "
        "write {\"scores\": [{\"index\", \"score\"}], \"ranker\"}; higher is better, index = position in FILE. "
        "Use it to compare rankers or to re-rank the exact search's shortlist with the fidelity second stage."
        "\n\nExamples:\n  zerolm-prune score smollm2-135m --subnets ranked.json --ranker fidelity --json scores.json\n"
        "  zerolm-prune score --subnets ranked.json --ranker zerolm --json zerolm.json   # MODEL from the file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="built-in asset, folder or hub id (default: the 'model' recorded in FILE)")
    p.add_argument("--subnets", required=True, metavar="FILE", help="ranked.json (or any JSON with a 'subnets' list)")
    p.add_argument("--ranker", default=None, help="ranker name (default: the package default; see --list-rankers)")
    p.add_argument("--alpha", type=inputs.alpha_number, default=None, help="alpha of the zerolm ranker (S_FFN + alpha*S_Attn)")
    p.add_argument("--json", dest="out", required=True, metavar="OUT", help="where to write the scores")
    add_model_options(p)
    p.set_defaults(func=run)


def _write(path: str, doc: dict) -> None:
    write_json(path, doc)


def read_subnets(path: str) -> tuple[list, dict]:
    """(subnets, the document's other keys) of a ranked.json; UserError on anything malformed."""
    from ..ranked import read_ranked  # lazy: keeps `zerolm-prune --help` fast
    from ..space import Subnet

    entries = read_ranked(path)
    subnets = []
    for i, entry in enumerate(entries):
        try:
            subnets.append(Subnet.from_dict(entry["subnet"]))
        except (TypeError, KeyError, ValueError) as err:
            raise UserError(f"{path}: entry {i} is not a subnet ({err}); expected {{\"subnet\": {{\"heads\": [...], \"ffn\": [...]}}}}") from None
    if len({s.num_layers for s in subnets}) != 1:
        raise UserError(f"{path}: the subnets have different layer counts; score subnets of one model at a time")
    return subnets, entries[0]["source"]


def run(args: argparse.Namespace) -> int:
    import torch  # lazy: keeps `zerolm-prune --help` fast

    from ..models import get_adapter
    from ..rankers import DEFAULT_RANKER, get_ranker, space_of

    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    subnets, meta = read_subnets(args.subnets)
    model_spec = args.model or meta.get("model")
    if not model_spec:
        raise UserError(f"{args.subnets} records no 'model'; pass MODEL (e.g. zerolm-prune score smollm2-135m --subnets ...)")
    options = {}
    name = args.ranker or DEFAULT_RANKER
    if args.alpha is not None:
        if name != "zerolm":
            raise UserError("--alpha applies to the zerolm ranker only; drop it or pass --ranker zerolm")
        options["alpha"] = args.alpha
    ranker = get_ranker(name, **options)
    model, _ = loading.load_model(model_spec, trust_remote_code=args.trust_remote_code, device=args.device)
    adapter = get_adapter(model)
    if subnets[0].num_layers != adapter.num_layers:
        raise UserError(f"{args.subnets}: subnets have {subnets[0].num_layers} layers but {model_spec} has {adapter.num_layers}")
    from ..space import validate_subnet

    for s in subnets:
        validate_subnet(s, adapter)
    scores = ranker.score(model, subnets, space=space_of(subnets, model), adapter=adapter)
    doc = {"ranker": ranker.name, "provenance": ranker.provenance, "model": model_spec, "subnets_file": args.subnets,
           "scores": [{"index": i, "score": float(s)} for i, s in enumerate(scores)]}
    _write(args.out, doc)
    best = max(range(len(scores)), key=lambda i: scores[i])
    print(f"scored {len(scores)} subnets with {ranker.name}; best index {best} (score {scores[best]:.6g}) -> {args.out}")
    return 0
