"""NAS-Bench-BERT (FlexiBERT benchmark, Serianni & Kalita ACL 2023): loader and three readings.

Each record is an ELECTRA-small-like encoder with per-layer token mixer (SA/SDP, SA/WMA, LT/DFT,
LT/DCT, DSC k), head count and FFN; the label is the GLUE mean. The data's README explains why
one record can be read three ways, and each gives different proxy numbers:

* ``proxy-code`` -- what the public PyTorch proxy code (Serianni's ``modeling_electra.py``,
  reused by LPZero and, per its reported #Params, by ZeroLM) builds: ``ElectraConfig`` without
  ``hidden_size``, so every model has hidden 256 and FFN width 1024 (global
  ``intermediate_size``) whatever the record says; the per-layer mixer and head count are used.
  LT layers have no output dense there; DSC keeps half the heads for attention plus a span
  convolution (``conv_kernel_layer``, ``conv_out_layer``, pointwise 1x1 conv).
* ``faithful`` -- the same module structure at the record's true hidden size and per-layer
  ``feed_forward_dimension``, plus an output dense after LT layers too (the design's layers all
  end in ``output dense + LayerNorm``; only the proxy code's LT path skips it).
* ``trained-as`` -- what the published TF trainer most likely trained (its ``is "SA"``
  comparisons are always False): plain SDP attention everywhere at the true hidden size, a first
  FFN dense of 4*hidden, ``num_feed_forward - 1`` extra denses of ``feed_forward_dimension``.

Init: N(0, 0.02) for every matrix (ELECTRA's ``initializer_range``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError
from .arch import Arch, Block, Matrix, block_params

READINGS = ("proxy-code", "faithful", "trained-as")
STD = 0.02
VOCAB, EMBED, MAX_POS, TYPES = 30522, 128, 512, 2


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Completed records with a GLUE score; UserError for a file of another schema."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"benchmark file {path} does not exist; pass --data BERT_benchmark.json") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not JSON ({err.msg}); pass the NAS-Bench-BERT BERT_benchmark.json") from None
    if not isinstance(data, list) or not data or "hparams" not in data[0]:
        raise UserError(f"{path} is not a NAS-Bench-BERT file (a list of records with 'hparams' and 'scores')")
    out = [r for r in data if r.get("scores", {}).get("glue") is not None]
    if not out:
        raise UserError(f"{path} has no records with scores.glue")
    return out


def _layers(record: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    over = record["hparams"]["model_hparam_overrides"]
    return int(over["hidden_size"]), list(over["nas_config"]["encoder_layers"])


def _mixer(layer: dict[str, Any], h: int, *, with_lt_out: bool) -> tuple[str, list[Matrix]]:
    op, param, heads = layer["operation_type"], layer["operation_parameter"], int(layer["num_operation_heads"])
    if op == "SA":
        mats = [Matrix("attn", h, h, STD, "q"), Matrix("attn", h, h, STD, "k"), Matrix("attn", h, h, STD, "branch")]
        if param == "WMA":
            mats.append(Matrix("attn", h, h, STD, "qk", bias=False))  # between query and key
        mats.append(Matrix("attn", h, h, STD, "out"))
        return str(param), mats
    if op == "DSC":
        k = int(param)
        nh = max(heads // 2, 1)
        width = nh * (h // heads)
        mats = [Matrix("attn", width, h, STD, "q"), Matrix("attn", width, h, STD, "k"),
                Matrix("attn", width, h, STD, "branch"),
                Matrix("attn", width, h, STD, "side", bias=False),  # pointwise 1x1 conv of the key conv
                Matrix("attn", nh * k, width, STD, "side"),  # conv_kernel_layer
                Matrix("attn", width, h, STD, "branch"),  # conv_out_layer
                Matrix("attn", h, h, STD, "out")]
        return f"DSC{k}", mats
    if op == "LT":
        mats = [Matrix("attn", h, h, STD, "branch")]
        if with_lt_out:
            mats.append(Matrix("attn", h, h, STD, "out"))
        return str(param), mats
    raise ValueError(f"unknown operation_type {op!r}")


def _ffn(h: int, first: int, extra: int, n_extra: int) -> list[Matrix]:
    mats = [Matrix("ffn", first, h, STD, "ffn")]
    width = first
    for _ in range(n_extra):
        mats.append(Matrix("ffn", extra, width, STD, "ffn"))
        width = extra
    mats.append(Matrix("ffn", h, width, STD, "ffn"))
    return mats


def build(record: dict[str, Any], reading: str = "proxy-code") -> Arch:
    """The record's blocks under ``reading`` (see the module docstring)."""
    if reading not in READINGS:
        raise UserError(f"unknown reading {reading!r}; choose one of: {', '.join(READINGS)}")
    true_h, layers = _layers(record)
    h = 256 if reading == "proxy-code" else true_h
    blocks = []
    for layer in layers:
        heads = int(layer["num_operation_heads"])
        nff = int(layer["num_feed_forward"])
        if reading == "trained-as":
            mixer, mats = _mixer({**layer, "operation_type": "SA", "operation_parameter": "SDP"}, h, with_lt_out=True)
            mats = mats + _ffn(h, 4 * h, int(layer["feed_forward_dimension"]), nff - 1)
        else:
            f = 1024 if reading == "proxy-code" else int(layer["feed_forward_dimension"])
            mixer, mats = _mixer(layer, h, with_lt_out=reading == "faithful")
            mats = mats + _ffn(h, f, f, nff - 1)
        blocks.append(Block(h, heads, mats, mixer))
    embed = (VOCAB + MAX_POS + TYPES) * EMBED + 2 * EMBED + ((EMBED * h + h) if h != EMBED else 0)
    nonemb = sum(block_params(b) for b in blocks)
    return Arch(record.get("id"), float(record["scores"]["glue"]), true_h, blocks, embed + nonemb, nonemb,
                {"true_hidden": true_h, "reading": reading})


def load(path: str | Path, reading: str = "proxy-code") -> list[Arch]:
    return [build(r, reading) for r in load_records(path)]
