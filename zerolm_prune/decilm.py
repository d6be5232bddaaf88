"""The DeciLM / nemotron-nas export: a pruned LLaMA-family model as vLLM's ``nemotron_nas``
architecture reads it (per-layer FFN multipliers, whole-attention removal). Reading such a folder
back is ``checkpoint.load_decilm_as_llama`` (``load_pruned`` reads every pruned folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import _find_multiple, _source_dir, check_target, pruned_metadata, save_model_files, staged_dir
from .errors import UserError
from .models import get_adapter


def decilm_ffn_mult(width: int, hidden: int) -> float | None:
    """An ``ffn_mult`` that DeciLM turns back into exactly ``width``, or None if none exists.

    DeciLM derives the FFN width as ``find_multiple(int(2 * ffn_mult * hidden / 3), 256)``, so only
    multiples of 256 are reachable.
    """
    if width % 256:
        return None
    for mult in (round(1.5 * width / hidden, 6), round(1.5 * width / hidden, 10), 1.5 * width / hidden):
        if _find_multiple(int(2 * mult * hidden / 3), 256) == width:
            return mult
    return None


def decilm_block_configs(model_or_config: Any) -> list[dict[str, Any]]:
    """``block_configs`` of NVIDIA's nemotron-nas (DeciLM) format for a materialized LLaMA-family model.

    DeciLM keeps every layer's query heads and varies only the KV heads (``n_heads_in_group`` =
    query heads per KV head) and the FFN width (``ffn_mult``). Our subnets drop whole KV groups
    together with their query heads, so a subnet fits only if every layer keeps all query heads
    and every FFN width is a multiple of 256; otherwise a UserError says why.
    """
    adapter = get_adapter(model_or_config)
    if adapter.family != "llama":
        raise UserError("the DeciLM (nemotron-nas) format exists for LLaMA-family models only")
    config = adapter.config
    full_heads = int(config.num_attention_heads)
    blocks = []
    for geo in adapter.geometries():
        if geo.num_heads != full_heads:
            raise UserError(f"layer {geo.index} keeps {geo.num_heads} of {full_heads} query heads; DeciLM keeps all "
                            "query heads per layer, so only FFN-pruned subnets fit the nemotron-nas format")
        mult = decilm_ffn_mult(geo.ffn_dim, adapter.hidden_size)
        if mult is None:
            raise UserError(f"layer {geo.index}: FFN width {geo.ffn_dim} is not a multiple of 256, which DeciLM's "
                            "ffn_mult cannot express; pick FFN widths in steps of 256")
        blocks.append({
            "attention": {"n_heads_in_group": geo.num_heads // geo.num_kv_heads, "no_op": False,
                          "replace_with_linear": False, "sparsify": None},
            "ffn": {"ffn_mult": mult, "no_op": False, "replace_with_linear": False, "sparsify": None},
        })
    return blocks


def save_decilm(model: nn.Module, out_dir: str | Path, *, tokenizer: Any = None, subnet: Any = None,
                overwrite: bool = False, source: str | None = None) -> Path:
    """Write a nemotron-nas (``DeciLMForCausalLM``) folder: LLaMA weight names, ``block_configs``.

    vLLM serves this architecture natively; transformers needs NVIDIA's modelling code from the
    hub (not shipped here), so ``load_decilm_as_llama`` reads it back for checks.
    """
    blocks = decilm_block_configs(model)
    out = Path(out_dir).expanduser().resolve()
    check_target(out, _source_dir(model), overwrite)
    with staged_dir(out) as tmp:
        save_model_files(model, tmp)
        path = tmp / "config.json"
        config = json.loads(path.read_text())
        for key in ("layer_shapes", "auto_map", "_name_or_path", "num_key_value_heads", "intermediate_size"):
            config.pop(key, None)
        config.update({"model_type": "nemotron-nas", "architectures": ["DeciLMForCausalLM"], "block_configs": blocks})
        order = getattr(model, "zerolm_prune_order", None)
        meta = pruned_metadata(model.config, subnet=subnet, source=source, extra={"order": order} if order else None)
        meta["format"] = "nemotron-nas"
        config["zerolm_prune"] = meta
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return out
