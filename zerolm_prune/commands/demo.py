"""``zerolm-prune demo``: the README's first command, on the embedded default (SmolLM2-135M)."""

from __future__ import annotations

import argparse

ORDER = 90


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the main job on the embedded default: SmolLM2-135M, its LoNAS-style space, real data, offline",
        description="Runs the whole flow on the built-in SmolLM2-135M with recipes/smollm2-135m.yaml "
        "(what `make demo` runs).",
    )
    p.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    p.add_argument("--limit", type=int, default=40, help="documents per task (default: 40)")
    p.set_defaults(func=run)


def default_space(adapter):
    """LoNAS-style default for a GQA model: keep all or two thirds of the KV groups, FFN 100..50%."""
    from ..space import LayerSpace, SearchSpace

    layers = []
    for geo in adapter.geometries():
        per_group = geo.heads_per_kv_group
        heads = sorted({geo.num_heads, per_group * max(1, (2 * geo.num_kv_heads) // 3)}, reverse=True)
        ffn = [int(round(geo.ffn_dim * r / 8)) * 8 for r in (1.0, 0.875, 0.75, 0.625, 0.5)]
        layers.append(LayerSpace(heads, ffn))
    return SearchSpace(layers, model="smollm2-135m", name="smollm2-135m default")


def run(args: argparse.Namespace) -> int:
    from ..loading import load_model
    from ..models import get_adapter
    from .info import format_info

    model, tokenizer = load_model("smollm2-135m")
    adapter = get_adapter(model)
    print(format_info(adapter))
    space = default_space(adapter)
    print(f"\nsearch space: {space.num_layers} layers x {space.layers[0].size} choices = {space.size:.3g} subnets")
    print(f"  heads per layer {space.layers[0].heads}  ffn per layer {space.layers[0].ffn}")
    print(f"  LoNAS heuristic subnet: heads {space.heuristic().layers[0].heads}, ffn {space.heuristic().layers[0].ffn}")
    return 0
