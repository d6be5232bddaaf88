"""``zerolm-prune prune MODEL --subnet ranked.json#k --out DIR``: write a physically smaller model."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import loading
from ..errors import UserError
from ..units import ORDER_NAMES, WEIGHT_ONLY_ORDERS, load_orders, ranked_orders_file
from .common import add_model_options

ORDER = 40


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prune",
        help="materialize one ranked subnet as a smaller checkpoint (safetensors, config, tokenizer, card)",
        description="Cut MODEL down to a subnet and save it. The folder loads with "
        "`zerolm_prune.checkpoint.load_pruned`, and with stock transformers: a plain stock config when every "
        "layer has the same shape, otherwise `from_pretrained(DIR, trust_remote_code=True)` using the "
        "modelling code shipped in the folder.\n\nExamples:\n"
        "  zerolm-prune prune smollm2-135m --subnet ranked.json#0 --out pruned/\n"
        "  zerolm-prune prune llama-folder --subnet best.json --adapter lonas-adapter/ --merge --out pruned/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="built-in asset (smollm2-135m, minilm-l6), local folder or hub id")
    p.add_argument("--subnet", required=True, metavar="FILE[#k]",
                   help="ranked.json from `zerolm-prune rank` (#k picks entry k, 0-based; default #0) or a Subnet JSON file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist or be empty)")
    p.add_argument("--order", choices=ORDER_NAMES, default=None,
                   help="which heads/channels to keep: prefix (LoNAS), capacity (data-free importance), selfgen "
                   "(units ranked by what they write on text the model generates itself; ~40x lower SmolLM2 "
                   "subnet perplexity than prefix) or energy (weight norms); computing selfgen/energy loads the model, "
                   "while the units rank saved next to a ranked file (ranked.orders.json) stream like prefix; "
                   "default: the order the ranked file was scored with, else prefix")
    p.add_argument("--adapter", metavar="PEFT_DIR", default=None,
                   help="a peft LoRA adapter (current or LoNAS release format); its ranks follow the subnet")
    p.add_argument("--merge", action="store_true",
                   help="merge the truncated LoRA into the weights (default: save it as DIR/adapter, a stock peft adapter)")
    p.add_argument("--format", choices=("auto", "gguf"), default="auto",
                   help="auto: a folder (stock config or per-layer shapes); gguf: one GGUF file for llama.cpp at --out "
                   "(as `zerolm-prune export`)")
    p.add_argument("--outtype", choices=("f32", "f16", "q8_0"), default="f16", help="GGUF weight type (--format gguf)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--in-memory", action="store_true",
                   help="load the whole model even when MODEL is a safetensors folder (default there: stream "
                   "tensor by tensor, so checkpoints larger than RAM can be pruned)")
    add_model_options(p)
    p.set_defaults(func=run)


def read_subnet(spec: str) -> tuple[Any, dict[str, Any]]:
    """``(Subnet, entry)`` from ``ranked.json[#k]`` (default: entry 0, the best) or a bare Subnet JSON."""
    from ..ranked import read_ranked  # lazy: keeps `zerolm-prune --help` fast
    from ..space import Subnet

    entry = dict(read_ranked(spec)[0])
    try:
        return Subnet.from_dict(entry["subnet"]), entry
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{spec}: malformed subnet ({err})") from None


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _read_inputs(args: argparse.Namespace):
    """Everything checked before any weights load: the subnet (LoRA ranks dropped without an
    adapter), its ranked.json entry and source, the order name, rank's saved unit orders (or None)
    and the adapter of MODEL's config."""
    from ..materialize import check_subnet  # lazy: keeps `zerolm-prune --help` fast
    from ..models import get_adapter

    if args.merge and not args.adapter:
        raise UserError("--merge needs --adapter PEFT_DIR (there is no LoRA adapter to merge)")
    subnet, entry = read_subnet(args.subnet)
    source = entry.get("source") or {}
    order = args.order or source.get("order") or "prefix"
    saved = ranked_orders_file(args.subnet, source, order=args.order, model=args.model)
    if subnet.rank_groups() and not args.adapter:
        print("note: the subnet picks LoRA ranks but no --adapter was given; ranks are ignored", file=sys.stderr)
        from ..space import LayerChoice, Subnet

        subnet = Subnet([LayerChoice(c.heads, c.ffn) for c in subnet.layers])  # record what was applied
    config_adapter = get_adapter(loading.load_config(args.model, trust_remote_code=args.trust_remote_code))
    check_subnet(subnet, config_adapter)  # before weights
    unit_orders = None
    if saved is not None:  # the exact dict rank scored with, checked before any weights load
        unit_orders = load_orders(saved, config_adapter, name=source.get("order"))
    return subnet, entry, source, order, unit_orders


def _split_adapter(args: argparse.Namespace, model):
    """After the cut: the LoRA adapter merged (--merge) or saved aside to ship beside the folder.
    Returns (model, extra files for save_pretrained, the temporary adapter folder or None)."""
    from .. import lora  # lazy: keeps `zerolm-prune --help` fast

    extra: dict[str, Path] = {}
    tmp_adapter = None
    if args.adapter:
        if args.merge:
            model = lora.merge(model)
        else:
            tmp_adapter = Path(tempfile.mkdtemp(prefix="zerolm-adapter-"))
            lora.save_adapter(model, tmp_adapter)
            extra["adapter"] = tmp_adapter
            model = lora.unload(model)
    return model, extra, tmp_adapter


def _write(args: argparse.Namespace, model, tokenizer, subnet, entry: dict, source: dict, order: str,
           params_before: int, extra: dict, tmp_adapter: Path | None) -> int:
    """Save the pruned model (a folder, or GGUF with --format gguf) and print what was written."""
    from ..checkpoint import save_pretrained  # lazy: keeps `zerolm-prune --help` fast

    card = {
        "base_model": source.get("model") or args.model,
        "params_before": params_before,
        "score": entry.get("score"),
        "alpha": source.get("alpha"),
        "budget": _budget(source),
        "order": order,
    }
    try:
        if args.format == "gguf":
            if extra:
                raise UserError("--format gguf stores plain weights; add --merge to fold the adapter in")
            from ..export import export_gguf

            out = export_gguf(model, args.out, outtype=args.outtype, tokenizer=tokenizer)
            print(f"pruned {args.model}: {params_before / 1e6:.2f}M -> {_count(model) / 1e6:.2f}M params, "
                  f"order {order}; wrote {out} (GGUF {args.outtype}, for llama.cpp)")
            return 0
        else:
            if tmp_adapter is not None:  # the adapter's base is the pruned folder, not the dense source
                _point_adapter_at(tmp_adapter, Path(args.out).expanduser().resolve())
            out = save_pretrained(model, args.out, tokenizer=tokenizer, subnet=subnet, card=card,
                                  overwrite=args.overwrite, source=args.model, extra_files=extra,
                                  metadata={"order": order, "score": entry.get("score")})
    finally:
        if tmp_adapter is not None:
            shutil.rmtree(tmp_adapter, ignore_errors=True)
    after = _count(model)
    shapes = "per-layer shapes (load with trust_remote_code=True or zerolm_prune)" \
        if getattr(model.config, "layer_shapes", None) else "stock config"
    print(f"pruned {args.model}: {params_before / 1e6:.2f}M -> {after / 1e6:.2f}M params "
          f"({after / params_before:.1%}), order {order}, {shapes}")
    if extra:
        print(f"LoRA adapter (truncated ranks, stock peft): {out / 'adapter'}")
    print(f"saved to {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Inputs checked (``_read_inputs``), then streamed from the safetensors files where that can
    cut the same units, else loaded, cut in memory under the order resolved once here, and
    written (``_split_adapter``, ``_write``)."""
    from .. import lora  # lazy: keeps `zerolm-prune --help` fast
    from ..materialize import can_stream, check_subnet, materialize
    from ..models import get_adapter
    from ..rankers.orders import resolve_orders

    subnet, entry, source, order, unit_orders = _read_inputs(args)
    folder = _local_folder(args.model, loading.resolve(args.model), allow_download=not args.in_memory)
    if (not args.in_memory and (not args.adapter or args.merge) and args.format == "auto"
            # selfgen/energy need the loaded model, unless rank saved the dict they stand for
            and (order in WEIGHT_ONLY_ORDERS or unit_orders is not None)
            and folder.is_dir() and can_stream(folder)):
        return _run_streaming(args, folder, subnet, entry, source, order, unit_orders)
    model, tokenizer = loading.load_model(args.model, trust_remote_code=args.trust_remote_code, device=args.device)
    adapter = get_adapter(model)
    check_subnet(subnet, adapter)
    params_before = _count(model)  # base weights only: LoRA parameters are not part of the model size
    # rank's saved dict (the units it scored, to the index), else the order computed from the base
    # weights as rank scored them (before any adapter); prefix/capacity stay names
    resolved = unit_orders if unit_orders is not None else (
        order if order in WEIGHT_ONLY_ORDERS else resolve_orders(model, order, adapter=adapter))
    if args.adapter:
        model = lora.load_adapter(model, args.adapter)
    model = materialize(model, subnet, order=resolved, adapter=adapter, inplace=True)
    model, extra, tmp_adapter = _split_adapter(args, model)
    model.zerolm_prune_order = order  # the name, not "custom": the dict above was computed from it
    return _write(args, model, tokenizer, subnet, entry, source, order, params_before, extra, tmp_adapter)


def _folder_params(folder: Path) -> int:
    """Parameter count of a safetensors folder from tensor headers (nothing is loaded)."""
    from safetensors import safe_open  # lazy: keeps `zerolm-prune --help` fast

    from ..materialize import _weight_files

    total = 0
    for file in _weight_files(folder):
        with safe_open(str(file), framework="pt") as reader:
            for key in reader.keys():
                n = 1
                for dim in reader.get_slice(key).get_shape():
                    n *= int(dim)
                total += n
    return total


def _run_streaming(args: argparse.Namespace, folder: Path, subnet, entry: dict[str, Any], source: dict[str, Any],
                   order: str, unit_orders: dict | None = None) -> int:
    """Folder to folder without loading the model; ``unit_orders`` (rank's saved dict) cuts the units
    the name ``order`` stands for, so a selfgen ranking streams too."""
    from ..materialize import materialize_folder  # lazy: keeps `zerolm-prune --help` fast

    before = _folder_params(folder)
    card = {"base_model": source.get("model") or args.model, "params_before": before, "score": entry.get("score"),
            "alpha": source.get("alpha"), "budget": _budget(source), "order": order}
    out = materialize_folder(folder, subnet, args.out, order=unit_orders if unit_orders is not None else order,
                             overwrite=args.overwrite, card=card,
                             source=args.model, metadata={"order": order, "score": entry.get("score")},
                             merge_adapter=args.adapter)
    after = _folder_params(out)
    config = json.loads((out / "config.json").read_text())
    shapes = "per-layer shapes (load with trust_remote_code=True or zerolm_prune)" \
        if config.get("layer_shapes") else "stock config"
    merged = f", LoRA {args.adapter} merged at the subnet's ranks" if args.adapter else ""
    print(f"pruned {args.model} (streamed from safetensors{merged}): {before / 1e6:.2f}M -> {after / 1e6:.2f}M params "
          f"({after / before:.1%}), order {order}, {shapes}")
    print(f"saved to {out}")
    return 0


def _point_adapter_at(adapter_dir: Path, base: Path) -> None:
    """Set the saved adapter's ``base_model_name_or_path`` to the pruned folder: its shapes fit that
    folder, not the dense source, so peft's AutoPeftModel must load the base from there."""
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = str(base)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _budget(source: dict[str, Any]) -> Any:
    """The budget as a fraction when the ranked file records one (rank writes both)."""
    fraction = source.get("budget_fraction")
    if isinstance(fraction, (int, float)):
        return f"{fraction:.3g} of the parameters" if source.get("by", "params") == "params" else f"{fraction:.3g}"
    return source.get("budget")


#: what a streamed prune needs from a hub repository (no .bin / .pt / .h5 duplicates)
HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.jinja", "vocab*", "merges.txt"]


def _local_folder(spec: str, resolved: str, *, allow_download: bool) -> Path:
    """A local folder for MODEL: itself, or the hub snapshot (safetensors + configs + tokenizer).

    Hub models are fetched as files and streamed rather than loaded, so a model larger than RAM
    can be pruned. Any failure here (offline, no safetensors) just means the in-memory path.
    """
    path = Path(resolved)
    if path.is_dir() or not allow_download:
        return path
    try:
        from huggingface_hub import snapshot_download  # lazy: keeps `zerolm-prune --help` fast

        return Path(snapshot_download(spec, allow_patterns=HUB_PATTERNS))
    except Exception:  # offline, gated, unknown: load_model reports the real problem in one line
        return path
