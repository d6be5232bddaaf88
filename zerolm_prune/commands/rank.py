"""``zerolm-prune rank``: the exact best subnets of a search space under a budget, data-free.

Thin over ``zerolm_prune.search`` and ``zerolm_prune.driver.search_top_k``: build the capacity
table (real weights, or a random-init table of the shapes when the weights are not here), build
the ranker's table (default: the measured-best ``selfgen``; ``--ranker zerolm`` for ZeroLM as
published, the only choice without weights), run the exact top-k, print a table, write
ranked.json (what ``prune`` and ``eval`` read) and optionally the Pareto-front picture.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import inputs, loading
from ..assets import BUILTIN_MODELS
from ..atomic import check_writable
from ..errors import UserError
from .common import add_model_options, add_ranking_options
from .space import human, size_text

ORDER = 30

EPILOG = """\
budget:
  A number <= 1 is a fraction of the full unpruned model, a number > 1 an absolute count.
  --by params counts the WHOLE model: embeddings, final norm and an untied LM head plus the blocks,
  so 0.8 means 80% of the checkpoint's parameters. --by macs counts multiply-accumulates per token
  (LM head included, attention at --seq-len). LoRA A/B parameters count only with --include-lora.

ranked.json:
  {"model", "space", "budget" (absolute), "budget_fraction", "by", "alpha", "order", "table",
   "subnets": [{"rank" (0-based), "score", "params", "macs", "subnet": {"heads", "ffn", "ranks"}}]}
  Select one subnet elsewhere with ranked.json#K (K = 0-based entry, here equal to the rank): prune --subnet ranked.json#0.
  With a selfgen or energy order, the exact unit orders scored go to ranked.orders.json next to it
  (named by "orders_file"); prune cuts those units instead of recomputing the order.

examples:
  zerolm-prune rank smollm2-135m --space recipes/smollm2-135m.yaml --budget 0.8 --top-k 5 --plot front.png
  zerolm-prune rank --space recipes/llama-7b-lonas.yaml --budget 5.7e9 --top-k 10 --out ranked.json
  zerolm-prune rank smollm2-135m --space smollm2-135m --budget 0.6 --by macs --alpha auto
  zerolm-prune rank recipes/llama-7b-lonas.yaml --space nncf_lonas_llama_7b.json --budget 0.8
"""



def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rank",
        help="exact top-k subnets of a search space under a params/MACs budget, ranked without data",
        description="Score every subnet of the search space without data and return the exact top-k under the "
        "budget (a multiple-choice knapsack over layers, solved exactly). The default ranker on real weights is "
        "selfgen (per-layer KL on text the model generates itself, then a fidelity re-rank of the top 10; see "
        "benchmarks/RANKING.md for why); --ranker zerolm scores ZeroLM capacity (S = S_FFN + alpha * S_Attn) as "
        "published. "
        "MODEL's real weights are scored when it is available locally; otherwise (or with --shapes-only) a "
        "random-init table of the space's shapes is used, as in the NAS benchmarks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="built-in asset (smollm2-135m, minilm-l6), local folder or hub id (default: the space's "
                        "model); for a LoNAS NNCF --space, a recipe YAML supplying the config and LoRA settings")
    p.add_argument("--space", required=True, metavar="SPACE",
                   help="recipe YAML (or a recipe name), LoNAS NNCF JSON or saved space JSON")
    p.add_argument("--budget", required=True, type=float,
                   help="<= 1: fraction of the full model (embeddings included); > 1: absolute params or MACs")
    p.add_argument("--by", choices=("params", "macs"), default="params", help="what the budget counts (default: params)")
    p.add_argument("--top-k", type=int, default=10, help="how many subnets to return (default: 10)")
    add_ranking_options(p)
    p.add_argument("--include-lora", action="store_true", help="count LoRA A/B parameters in the budget")
    p.add_argument("--all-ties", action="store_true",
                   help="rank options that differ only in what neither score nor budget sees (e.g. LoRA ranks "
                        "without --include-lora) separately; by default the first listed stands for them")
    p.add_argument("--seq-len", type=inputs.seq_len, default=512, help="context length for attention MACs/token (default: 512)")
    p.add_argument("--shapes-only", action="store_true",
                   help="score a random-init table of the shapes instead of loading weights")
    p.add_argument("--seed", type=inputs.seed, default=0, help="seed of the random-init table (default: 0)")
    p.add_argument("--out", default=None, metavar="JSON", help="write the ranked subnets here (ranked.json)")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw the Pareto front with the chosen subnets marked")
    add_model_options(p)
    p.set_defaults(func=run)


def _parse_alpha(text: str | None) -> float | None:
    from ..search import DEFAULT_ALPHA  # lazy: keeps `zerolm-prune --help` fast

    if text is None:
        return DEFAULT_ALPHA
    if text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--alpha must be a number or 'auto', got {text!r}") from None


def _available_locally(spec: str) -> bool:
    return spec in BUILTIN_MODELS or Path(spec).expanduser().is_dir()


def _load_weights(spec: str, *, trust_remote_code: bool, device: str | None):
    """The model of MODEL; ranking needs no tokenizer, so a plain checkpoint folder without one
    loads too (``loading.load_model`` insists on a tokenizer)."""
    folder = Path(spec).expanduser()
    if not folder.is_dir() or loading.is_pruned_folder(folder):
        return loading.load_model(spec, trust_remote_code=trust_remote_code, device=device)[0]
    import torch  # lazy: keeps `zerolm-prune --help` fast
    from transformers import AutoModel, AutoModelForCausalLM

    from ..models import get_adapter

    config = loading.load_config(spec, trust_remote_code=trust_remote_code)
    get_adapter(config)  # unsupported families fail here with a clear line
    cls = AutoModelForCausalLM if loading._is_causal(config) else AutoModel
    try:
        model = cls.from_pretrained(str(folder), dtype=torch.float32, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise UserError(f"{spec}: could not load its weights ({str(err).splitlines()[0]})") from None
    model.eval()
    return model.to(device) if device else model


def _config_only(spec: str) -> bool:
    """A local folder with config.json and no weight files: shapes only."""
    folder = Path(spec).expanduser()
    if not (folder.is_dir() and (folder / "config.json").is_file()):
        return False
    return not any(any(folder.glob(pattern)) for pattern in ("*.safetensors", "*.bin", "*.pt", "*.gguf"))


@dataclass
class TableSource:
    """What ``build_table`` found: the table, the model's name, a note for the summary, the model
    (None for a random-init table) and the unit order resolved once for the whole rank."""

    table: Any
    model_name: str | None
    note: str
    model: Any
    order: str
    unit_orders: dict | None = None


def build_table(args: argparse.Namespace, space) -> TableSource:
    """The capacity table of real weights (the driver's steps: default order, unit orders resolved
    once, capacity table) or, without weights, a random-init table of the shapes."""
    from ..proxy import CapacityTable  # lazy: keeps `zerolm-prune --help` fast
    from ..space import validate_space

    # a recipe as MODEL only supplies an NNCF space's config and LoRA settings (and its model name)
    explicit = args.model is not None and not args.model.endswith((".yaml", ".yml"))
    spec = args.model if explicit else space.model
    reason = None
    if args.shapes_only:
        reason = "--shapes-only"
    elif spec is None:
        reason = "the space names no model"
    elif not explicit and not _available_locally(spec):
        reason = f"{spec} is not available locally"
    elif _config_only(spec):
        reason = f"{spec} holds a config but no weights"
    if reason is None:
        from ..driver import capacity_table, default_order, unit_orders_for
        from ..models import get_adapter

        model = _load_weights(spec, trust_remote_code=args.trust_remote_code, device=args.device)
        adapter = get_adapter(model)
        validate_space(space, adapter)
        order = args.order or default_order(model, adapter)
        unit_orders = unit_orders_for(model, adapter, order)
        table = capacity_table(model, space, order, unit_orders, adapter, seq_len=args.seq_len, progress=True)
        return TableSource(table, spec, f"real weights of {spec} ({order} order)", model, order, unit_orders)
    if space.config and not (explicit and _config_only(spec)):
        config = space.config_object()
    elif spec is not None:
        config = loading.load_config(spec, trust_remote_code=args.trust_remote_code)
    else:
        raise UserError("the space has neither a model nor an embedded config; pass MODEL or use a recipe with a config")
    from ..models import get_adapter

    validate_space(space, get_adapter(config))
    table = CapacityTable.random_init(config, space, seed=args.seed, seq_len=args.seq_len)
    if args.order in ("selfgen", "energy"):
        raise UserError(f"--order {args.order} needs the model's weights ({reason}); use --order prefix or capacity")
    order_note = "" if args.order in (None, "prefix") else "; --order is moot for i.i.d. random weights"
    note = f"random-init table of the shapes (seed {args.seed}) because {reason}{order_note}"
    return TableSource(table, spec, note, None, args.order or "prefix")


def layer_summary(subnet: dict) -> str:
    """``heads 9x24 6x6 | ffn 1536x10 1152x20 | qkv 32x30`` (value x layers, largest first)."""
    parts = []
    for name, values in [("heads", subnet["heads"]), ("ffn", subnet["ffn"])] + sorted((subnet.get("ranks") or {}).items()):
        counts = sorted(Counter(values).items(), reverse=True)
        parts.append(f"{name} " + " ".join(f"{v}x{n}" for v, n in counts))
    return " | ".join(parts)


def _differs(subnet: dict, best: dict) -> str:
    """Layers where ``subnet`` differs from the best one: ``L3,L17`` (empty for the best itself)."""
    n = len(best["heads"])
    keys = ["heads", "ffn"]
    layers = [i for i in range(n)
              if any(subnet[k][i] != best[k][i] for k in keys)
              or any(subnet.get("ranks", {}).get(g, [None] * n)[i] != r[i] for g, r in (best.get("ranks") or {}).items())]
    return ",".join(f"L{i}" for i in layers)


def format_table(entries: list[dict], full: int, by: str) -> str:
    lines = [f"{'rank':>4} {'score':>14} {'params':>9} {'MACs/tok':>9} {'%full':>6}  per-layer choices (value x layers)"
             "  [layers that differ from rank 0]"]
    for e in entries:
        diff = _differs(e["subnet"], entries[0]["subnet"]) if e is not entries[0] else ""
        lines.append(f"{e['rank']:>4} {e['score']:>14.9g} {human(e['params']):>9} {human(e['macs']):>9} "
                     f"{100 * e[by] / full:>5.1f}%  {layer_summary(e['subnet'])}" + (f"  [{diff}]" if diff else ""))
    if entries:
        best = entries[0]["subnet"]
        rows = [("heads", best["heads"]), ("ffn", best["ffn"])] + sorted((best.get("ranks") or {}).items())
        width = max(len(name) for name, _ in rows)
        lines.append("")
        for i, (name, values) in enumerate(rows):
            lines.append(f"{'rank 0 per layer:' if i == 0 else '':<17} {name:<{width}} {values}")
    return "\n".join(lines)


def _pick_ranker(name: str | None, model) -> str:
    """The ranker to use: the default on real weights, zerolm (the only one) without them."""
    from ..rankers import DEFAULT_RANKER  # lazy: keeps `zerolm-prune --help` fast

    ranker = name or (DEFAULT_RANKER if model is not None else "zerolm")
    if model is None and ranker != "zerolm":
        raise UserError(f"--ranker {ranker} needs the model's weights; without them only --ranker zerolm can score "
                        "(a random-init table of the shapes)")
    return ranker


def _print_summary(args: argparse.Namespace, space, src: TableSource, info, ranker: str, alpha: float,
                   alpha_method: str, entries: list[dict]) -> None:
    unit = "params" if args.by == "params" else "MACs/token"
    print(f"model   {src.model_name or '(none)'}: {src.note}")
    print(f"space   {space.name or args.space}: {space.num_layers} layers, {size_text(space.size)} subnets")
    print(f"budget  {human(info.absolute)} {unit} = {info.fraction:.3f} of the full model ({human(info.full)}"
          f"{', LoRA included' if args.include_lora else ''}); subnets span {human(info.minimal)}..{human(info.maximal)}")
    print(f"ranker  {ranker}" + (f", alpha {alpha:g} ({alpha_method})" if ranker == "zerolm"
                                 else " (--ranker zerolm for ZeroLM as published)") + "\n")
    print(format_table(entries, info.full, args.by))
    if len(entries) < args.top_k:
        kind = "subnets" if args.all_ties else "distinct subnets (see --all-ties)"
        print(f"\nonly {len(entries)} {kind} fit the budget (asked for {args.top_k})")


def _plot(args: argparse.Namespace, space, src: TableSource, scoring, entries: list[dict], info, ranker: str,
          alpha: float) -> None:
    """The Pareto front of the ranker's stage-1 score with the ranked subnets and two references."""
    from ..plots import plot_front  # lazy: keeps `zerolm-prune --help` fast
    from ..search import front_for_plot, layer_costs

    table = src.table
    costs, fixed = layer_costs(table, args.by, args.include_lora)
    front, exact = front_for_plot(scoring.values, costs)
    total = table.total_params if args.by == "params" else table.total_macs
    refs = {}
    for name, subnet in (("LoNAS heuristic subnet", space.heuristic()), ("largest subnet", space.maximal())):
        idx = table.indices_of(subnet)
        refs[name] = (float(total(idx, include_lora=args.include_lora)), scoring.stage1(idx))
    plot_front(
        args.plot, [(float(c + fixed), s) for c, s, _ in front],
        [(float(e[args.by]), e["stage1"]) for e in entries], budget=float(info.absolute), by=args.by,
        references=refs, exact=exact,
        title=f"{space.name or args.space}: {ranker} score vs {args.by}"
        + (f", alpha {alpha:g}" if ranker == "zerolm" else "") + f", {src.note.split(' (')[0]}",
        ylabel="ZeroLM score  S = S_FFN + alpha * S_Attn" if ranker == "zerolm"
        else f"{ranker} stage-1 score (higher = closer to the full model)",
    )
    print(f"wrote {args.plot} ({'exact' if exact else 'approximate'} Pareto front: {len(front):,} points)")


def run(args: argparse.Namespace) -> int:
    """The driver's first steps (``build_table``: load, unit orders once, capacity table; then the
    budget resolved once by ``check_search``, ``resolve_alpha``, ``make_scoring``,
    ``search_top_k``), printed as a table and written as ranked.json."""
    from ..driver import make_scoring, resolve_alpha, search_top_k  # lazy: keeps `zerolm-prune --help` fast
    from ..ranked import write_ranked
    from ..search import check_search
    from ..space import load_space

    _parse_alpha(args.alpha)  # a typo fails before the model loads
    if args.ranker:
        from ..rankers import ranker_class

        ranker_class(args.ranker)  # so does an unknown ranker
    for path in (args.out, args.plot):  # an unwritable output fails now, not after the scoring
        if path:
            check_writable(path)
    space = load_space(args.space, model=args.model)
    src = build_table(args, space)
    table = src.table
    info = check_search(table, args.budget, by=args.by, top_k=args.top_k, include_lora=args.include_lora)  # before scoring
    alpha, alpha_method = resolve_alpha(args.alpha, table)
    ranker = _pick_ranker(args.ranker, src.model)
    scoring = make_scoring(ranker, table, src.model, table.adapter, alpha, unit_orders=src.unit_orders)
    entries = search_top_k(table, scoring, budget=args.budget, by=args.by, top_k=args.top_k,
                           include_lora=args.include_lora, distinct=not args.all_ties, model=src.model,
                           adapter=table.adapter, info=info)
    for e in entries:  # ranked.json keeps its documented fields; the extras stay in memory
        for key in ("name", "kind", "note"):
            e.pop(key, None)
    _print_summary(args, space, src, info, ranker, alpha, alpha_method, entries)
    document = {
        "model": src.model_name, "space": args.space, "space_name": space.name, "budget": info.absolute,
        "budget_fraction": info.fraction, "by": args.by, "include_lora": args.include_lora,
        "seq_len": args.seq_len, "ranker": ranker, "alpha": alpha, "alpha_method": alpha_method,
        "distinct": not args.all_ties, "order": src.order, "table": table.source, "subnets": entries,
    }
    if args.out:  # with the exact unit orders dict scored, for prune to reuse
        write_ranked(args.out, document, orders=src.unit_orders, adapter=table.adapter)
        print(f"\nwrote {args.out} ({len(entries)} subnets; select one with {args.out}#0)"
              + (f" and its {src.order} unit orders next to it" if src.unit_orders is not None else ""))
    if args.plot:
        _plot(args, space, src, scoring, entries, info, ranker, alpha)
    return 0
