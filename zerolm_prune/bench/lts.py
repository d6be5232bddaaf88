"""LTS (LiteTransformerSearch, Javaheripi et al. NeurIPS 2022) GPT-2 and Transformer-XL sets.

Each row is a heterogeneous decoder (per-layer ``n_head`` and ``d_inner``) trained from scratch;
the label is ``-valid_ppl`` (higher is better). Parameter counts come from the file (``params``:
``nonembedding``, ``total``, ``Attn``, ``FFN``); the non-embedding count is the baseline to beat.

Blocks, at init N(0, std^2):

* GPT-2 (``hf_gpt2_flex``): fused ``c_attn`` (3d x d), ``c_proj`` (d x d), ``c_fc`` (f x d),
  ``c_proj`` (d x f); the two ``c_proj`` use std / sqrt(2 n_layer) as Hugging Face GPT-2 does.
* Transformer-XL (``mem_transformer``, relative attention): ``qkv_net`` (3 H dh x d), ``r_net``
  (H dh x d), ``o_net`` (d x H dh), all without bias, FFN ``d_inner x d`` and ``d x d_inner``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import UserError
from .arch import Arch, Block, Matrix, block_params


def load_records(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"benchmark file {path} does not exist; pass --data random_GPT2_lm1b.json") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not JSON ({err.msg}); pass an LTS file such as random_GPT2_lm1b.json") from None
    if not isinstance(data, dict) or "architectures" not in data:
        raise UserError(f"{path} is not an LTS file (a dict with 'architectures')")
    rows = [a for a in data["architectures"] if (a.get("ppl") or {}).get("valid_ppl") is not None]
    if not rows:
        raise UserError(f"{path} has no architectures with ppl.valid_ppl")
    name = f"{data.get('experiment', '')} {data.get('source', '')} {Path(path).name}".lower()
    kind = "transxl" if ("transxl" in name or "transfo" in name) else "gpt2"
    return kind, rows


def _per_layer(value: Any, n: int) -> list[int]:
    return [int(v) for v in value] if isinstance(value, list) else [int(value)] * n


def build(row: dict[str, Any], kind: str = "gpt2") -> Arch:
    c = row["model_config"]
    d, n = int(c["d_model"]), int(c["n_layer"])
    heads = _per_layer(c["n_head"], n)
    inner = _per_layer(c["d_inner"], n)
    std = float(c.get("weight_init_std") or c.get("init_std") or 0.02)
    blocks = []
    for l in range(n):
        dh = int(c.get("d_head", -1)) if int(c.get("d_head", -1)) > 0 else d // heads[l]
        width = heads[l] * dh
        f = inner[l]
        if kind == "transxl":
            mats = [Matrix("attn", 3 * width, d, std, "qkv", bias=False), Matrix("attn", width, d, std, "side", bias=False),
                    Matrix("attn", d, width, std, "out", bias=False), Matrix("ffn", f, d, std, "ffn"),
                    Matrix("ffn", d, f, std, "ffn")]
        else:
            proj_std = std / math.sqrt(2 * n)
            mats = [Matrix("attn", 3 * d, d, std, "qkv"), Matrix("attn", d, d, proj_std, "out"),
                    Matrix("ffn", f, d, std, "ffn"), Matrix("ffn", d, f, proj_std, "ffn")]
        blocks.append(Block(d, heads[l], mats, "SDP"))
    params = row.get("params") or {}
    nonemb = int(params.get("nonembedding") or sum(block_params(b) for b in blocks))
    total = int(params.get("total") or nonemb)
    return Arch(row.get("id"), -float(row["ppl"]["valid_ppl"]), d, blocks, total, nonemb,
                {"kind": kind, "attn_params": params.get("Attn"), "ffn_params": params.get("FFN")})


def load(path: str | Path, kind: str | None = None) -> list[Arch]:
    """Rows of an LTS file; ``kind`` (gpt2 | transxl) is guessed from the experiment name if None."""
    guessed, rows = load_records(path)
    return [build(r, kind or guessed) for r in rows]
