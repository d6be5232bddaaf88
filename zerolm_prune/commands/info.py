"""``zerolm-prune info MODEL``: the geometry every other step relies on."""

from __future__ import annotations

import argparse
import json

from .. import loading
from .common import add_model_options

ORDER = 10


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="print a model's per-layer geometry (heads, KV groups, FFN width, LoRA targets)",
        description="Print the architecture summary and a per-layer table of MODEL. Reads only the "
        "config, so hub models need no weight download.\n\nExamples:\n  zerolm-prune info smollm2-135m\n"
        "  zerolm-prune info minilm-l6 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="built-in asset (smollm2-135m, minilm-l6), local folder or hub id")
    p.add_argument("--json", action="store_true", help="print the summary and layers as JSON")
    add_model_options(p)
    p.set_defaults(func=run)


def layer_table(adapter) -> list[dict]:
    rows = []
    for geo in adapter.geometries():
        rows.append({
            "layer": geo.index, "heads": geo.num_heads, "kv_heads": geo.num_kv_heads, "head_dim": geo.head_dim,
            "q_per_kv": geo.heads_per_kv_group, "ffn": geo.ffn_dim, "gated": geo.gated,
        })
    return rows


def format_info(adapter) -> str:
    s = adapter.summary()
    lines = [
        f"family      {s['family']} (model_type {s['model_type']})",
        f"layers      {s['layers']}   hidden {s['hidden_size']}   vocab {s['vocab_size']}",
        f"attention   {s['num_heads']} heads, {s['num_kv_heads']} KV heads, head_dim {s['head_dim']}"
        + ("  (GQA)" if s["num_kv_heads"] != s["num_heads"] else ""),
        f"ffn         {s['ffn_dim']} {'gated (gate/up/down)' if s['gated_ffn'] else 'ungated (up/down)'}",
        f"attn proj   {', '.join(s['attn_projections'])}",
        f"ffn proj    {', '.join(s['ffn_projections'])}",
        f"LoRA        targets {', '.join(s['lora_targets'])}; LoNAS groups "
        + "; ".join(f"{g}={'/'.join(m)}" for g, m in s["lora_groups"].items()),
        "",
        f"{'layer':>5} {'heads':>5} {'kv':>3} {'q/kv':>4} {'hdim':>4} {'ffn':>6}",
    ]
    for r in layer_table(adapter):
        lines.append(f"{r['layer']:>5} {r['heads']:>5} {r['kv_heads']:>3} {r['q_per_kv']:>4} {r['head_dim']:>4} {r['ffn']:>6}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..models import get_adapter  # lazy: keeps `zerolm-prune --help` fast

    adapter = get_adapter(loading.load_config(args.model, trust_remote_code=args.trust_remote_code))
    if args.json:
        print(json.dumps({"summary": adapter.summary(), "layers": layer_table(adapter)}, indent=2))
    else:
        print(format_info(adapter))
    return 0
