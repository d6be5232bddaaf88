"""``zerolm-prune space RECIPE_OR_MODEL``: what a search space contains and what its subnets cost.

Shapes come from the recipe's embedded config (or a MODEL's config.json), never from weights, so
LLaMA-7B's space prints offline in a second.
"""

from __future__ import annotations

import argparse
import json

from .. import inputs
from ..atomic import write_text
from ..errors import UserError

ORDER = 20


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "space",
        help="print a search space: per-layer choices, size, params/MACs of maximal, heuristic, minimal subnets",
        description="Print the elastic search space of a recipe, a LoNAS NNCF config, a saved space JSON, or a "
        "MODEL (ratios of its geometry). Reads configs only: no weights are downloaded or loaded.\n\n"
        "Examples:\n"
        "  zerolm-prune space recipes/llama-7b-lonas.yaml\n"
        "  zerolm-prune space smollm2-135m --ffn 1,0.875,0.75,0.625,0.5 --heads 1,0.67 --rank 32,28\n"
        "  zerolm-prune space nncf_lonas_llama_7b.json --model recipes/llama-7b-lonas.yaml --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="RECIPE_OR_MODEL",
                   help="recipe YAML (or its name in recipes/), LoNAS NNCF JSON, saved space JSON, or a MODEL")
    p.add_argument("--model", default=None,
                   help="model of an NNCF file (a MODEL or a recipe supplying config and LoRA settings); "
                        "for a recipe, replaces its model name")
    p.add_argument("--ffn", default=None, metavar="RATIOS", help="FFN width ratios, e.g. 1,0.875,0.75,0.625,0.5")
    p.add_argument("--heads", default=None, metavar="RATIOS",
                   help="kept KV-group ratios (whole groups with their query heads), e.g. 1,0.67")
    p.add_argument("--rank", default=None, metavar="RANKS", help="LoRA rank choices for every LoRA group, e.g. 32,28")
    p.add_argument("--seq-len", type=inputs.seq_len, default=512,
                   help="context length for the attention part of MACs/token (default: 512)")
    p.add_argument("--json", action="store_true", help="print the space and the costs as JSON")
    p.add_argument("--out", default=None, help="also write the space as JSON to this file (reusable as a source)")
    p.set_defaults(func=run)


def human(n: float) -> str:
    """6738415616 -> 6.74B: what people say about model sizes."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(int(n))


def size_text(size: int) -> str:
    """Exact below a million, else ``4.3e41``."""
    if size < 1_000_000:
        return str(size)
    mantissa, exponent = f"{size:.2g}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _compress(space) -> list[tuple[int, int, object]]:
    """Runs of identical layers: (first, last, LayerSpace)."""
    runs: list[tuple[int, int, object]] = []
    for i, layer in enumerate(space.layers):
        if runs and runs[-1][2] == layer:
            runs[-1] = (runs[-1][0], i, layer)
        else:
            runs.append((i, i, layer))
    return runs


def _values(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def summarize(space, *, seq_len: int = 512) -> dict:
    """Costs of the maximal, heuristic and minimal subnets (the numbers the command prints)."""
    from .. import cost  # lazy: keeps `zerolm-prune --help` fast

    adapter = space.adapter()
    rows = {}
    for label, subnet in (("maximal", space.maximal()), ("heuristic", space.heuristic()), ("minimal", space.minimal())):
        rows[label] = {
            "params": cost.subnet_params(adapter, subnet),
            "params_with_lora": cost.subnet_params(adapter, subnet, lora=space.lora, include_lora=True),
            "macs_per_token": cost.subnet_macs(adapter, subnet, seq_len=1),
            f"macs_per_token_seq{seq_len}": cost.subnet_macs(adapter, subnet, seq_len=seq_len),
            "subnet": subnet.to_dict(),
        }
    return {"fixed_params": cost.fixed_params(adapter), "subnets": rows}


def format_space(space, summary: dict, *, seq_len: int = 512) -> str:
    adapter = space.adapter()
    geo = adapter.geometry(0)
    lines = [
        f"space      {space.name or '-'}" + (f"  ({space.source})" if space.source else ""),
        f"model      {space.model or '-'}  ({adapter.family}: {adapter.num_layers} layers, hidden {adapter.hidden_size}, "
        f"{geo.num_heads} heads / {geo.num_kv_heads} KV heads, FFN {geo.ffn_dim}); shapes from the config, no weights",
    ]
    lora = space.lora or {}
    if lora:
        groups = "; ".join(f"{g}={'/'.join(m)}" for g, m in (lora.get("groups") or {}).items()) or "-"
        fixed = f"; fixed rank {lora.get('r_max')} on {'/'.join(lora['targets'])}" if lora.get("targets") else ""
        lines.append(f"LoRA       groups {groups}{fixed}; r_max {lora.get('r_max')}, alpha {lora.get('alpha')}")
    groups = sorted({g for layer in space.layers for g in layer.ranks})
    header = f"{'layers':<8} {'heads':<10} {'ffn':<34}" + "".join(f" {('rank ' + g):<12}" for g in groups) + "  choices"
    lines += ["", header]
    for first, last, layer in _compress(space):
        span = str(first) if first == last else f"{first}-{last}"
        row = f"{span:<8} {_values(layer.heads):<10} {_values(layer.ffn):<34}"
        row += "".join(f" {_values(layer.ranks.get(g, [])) or '-':<12}" for g in groups)
        lines.append(row + f"  {layer.size}")
    sizes = {layer.size for layer in space.layers}
    if len(sizes) == 1:
        layer = space.layers[0]
        dims = [("heads", layer.heads), ("ffn", layer.ffn)] + [(f"rank {g}", layer.ranks[g]) for g in sorted(layer.ranks)]
        dims = [(name, values) for name, values in dims if len(values) > 1] or [("fixed", [0])]
        factors = " x ".join(str(len(values)) for _, values in dims)
        names = " x ".join(name for name, _ in dims)
        per_layer = f"{space.num_layers} layers x ({factors}) = {space.num_layers} x {layer.size} choices ({names})"
    else:
        per_layer = f"{space.num_layers} layers, {min(sizes)} to {max(sizes)} choices each"
    lines += ["", f"size       {size_text(space.size)} subnets: {per_layer}", ""]
    full = summary["subnets"]["maximal"]["params"]
    lines.append(f"{'subnet':<10} {'params':>9} {'of max':>7} {'+LoRA':>9} {'MACs/token':>11} {f'@seq {seq_len}':>10}")
    for label, row in summary["subnets"].items():
        lines.append(
            f"{label:<10} {human(row['params']):>9} {100 * row['params'] / full:>6.1f}% {human(row['params_with_lora']):>9} "
            f"{human(row['macs_per_token']):>11} {human(row[f'macs_per_token_seq{seq_len}']):>10}"
        )
    lines.append(f"(params include {human(summary['fixed_params'])} outside the blocks: embeddings, norms, "
                 "pooler/LM head unless tied; heuristic = LoNAS's middle entry v[(len-1)//2] of every list)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..space import load_space  # lazy: keeps `zerolm-prune --help` fast

    if args.seq_len < 1:
        raise UserError(f"--seq-len {args.seq_len}: must be at least 1")
    space = load_space(args.source, model=args.model, ffn=args.ffn, heads=args.heads, rank=args.rank)
    summary = summarize(space, seq_len=args.seq_len)
    if args.out:
        write_text(args.out, space.to_json(indent=2))
    if args.json:
        print(json.dumps({"space": space.to_dict(), "size": space.size, "size_text": size_text(space.size),
                          "seq_len": args.seq_len, **summary}, indent=2))
    else:
        print(format_space(space, summary, seq_len=args.seq_len))
    return 0
