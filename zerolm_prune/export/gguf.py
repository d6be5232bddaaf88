"""GGUF export for llama.cpp: pruned LLaMA-family models, uniform or with per-layer shapes.

Why two architectures: llama.cpp reads per-layer arrays for ``feed_forward_length``,
``attention.head_count`` and ``attention.head_count_kv``, but its ``llama`` graph sizes every
layer like layer 0 and refuses a non-uniform file. Its ``deci`` graph (``src/models/deci.cpp``,
written for NVIDIA's Nemotron-NAS) builds each layer from its own sizes. So a subnet whose layers
all have the same shape is written as ``llama`` (every llama.cpp build and tool reads it), any
other as ``deci``, with ``attention.key_length`` / ``value_length`` always written explicitly
(llama.cpp's default is ``n_embd / n_head`` of layer 0, wrong once heads are pruned).

Tensors follow llama.cpp's converter for LLaMA: gguf-py's name map, and Q/K rows permuted from
Hugging Face's half-split rotary layout to llama.cpp's interleaved one (per layer, with that
layer's head counts). 1-D tensors (norms, biases) stay float32 in every ``outtype``.

Biases: both graphs add an optional ``attn_output.bias`` and ``ffn_down.bias`` (what bias
compensation after pruning adds), and Q/K/V biases, so they are carried. Layers without
attention (0 heads) or without an FFN are written as llama.cpp's Deci graph expects; where that
graph would drop something (a bias on a removed block, a removed FFN after a kept attention,
whose output Deci's graph discards, or no attention in layer 0, from which llama.cpp reads the
head size), the block is written as a minimal all-zero block instead, which computes exactly
the same thing.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Iterator

import gguf
import numpy as np
import torch
from torch import nn

from .. import loading
from ..atomic import _write_via
from ..errors import UserError
from .gguf_vocab import add_tokenizer

OUTTYPES = ("f32", "f16", "q8_0")
_FILE_TYPE = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
_QTYPE = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
          "q8_0": gguf.GGMLQuantizationType.Q8_0}
LLAMA_MODEL_TYPES = ("llama", "mistral")
#: channels of the all-zero FFN written where a layer has none but llama.cpp needs one (a Q8_0 block)
ZERO_FFN = 32


@dataclasses.dataclass(frozen=True)
class LayerShape:
    """What one block holds, read from its tensors (0 = removed)."""

    heads: int
    kv_heads: int
    ffn: int


def _config_value(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def head_dim_of(config: Any) -> int:
    """The head size: pruning drops whole heads, so it is the unpruned one (config.head_dim)."""
    head_dim = getattr(config, "head_dim", None)
    return int(head_dim) if head_dim else int(config.hidden_size) // int(config.num_attention_heads)


def layer_shapes(state: dict[str, torch.Tensor], n_layers: int, head_dim: int) -> list[LayerShape]:
    """Per-layer head / KV-head / FFN counts from the weights themselves (missing or empty = 0)."""
    def rows(name: str) -> int:
        tensor = state.get(name)
        return 0 if tensor is None else int(tensor.shape[0])

    shapes = []
    for i in range(n_layers):
        p = f"model.layers.{i}."
        shape = LayerShape(rows(p + "self_attn.q_proj.weight") // head_dim,
                           rows(p + "self_attn.k_proj.weight") // head_dim, rows(p + "mlp.gate_proj.weight"))
        if (shape.heads == 0) != (shape.kv_heads == 0) or (shape.kv_heads and shape.heads % shape.kv_heads):
            raise UserError(f"layer {i}: {shape.heads} query heads for {shape.kv_heads} KV heads; "
                            "GGUF needs whole KV groups (query heads a multiple of KV heads)")
        shapes.append(shape)
    return shapes


def _zero_attention(state: dict[str, torch.Tensor], prefix: str, hidden: int, head_dim: int) -> None:
    """One all-zero head: its output is exactly ``o_proj.bias`` (or 0), as with no attention."""
    for name in ("q_proj", "k_proj", "v_proj"):
        state[f"{prefix}self_attn.{name}.weight"] = torch.zeros(head_dim, hidden)
    state[f"{prefix}self_attn.o_proj.weight"] = torch.zeros(hidden, head_dim)
    state.setdefault(f"{prefix}input_layernorm.weight", torch.ones(hidden))


def _zero_ffn(state: dict[str, torch.Tensor], prefix: str, hidden: int) -> None:
    """An all-zero gated FFN: its output is exactly ``down_proj.bias`` (or 0), as with no FFN."""
    state[f"{prefix}mlp.gate_proj.weight"] = torch.zeros(ZERO_FFN, hidden)
    state[f"{prefix}mlp.up_proj.weight"] = torch.zeros(ZERO_FFN, hidden)
    state[f"{prefix}mlp.down_proj.weight"] = torch.zeros(hidden, ZERO_FFN)
    state.setdefault(f"{prefix}post_attention_layernorm.weight", torch.ones(hidden))


def fill_for_llamacpp(state: dict[str, torch.Tensor], shapes: list[LayerShape], hidden: int,
                      head_dim: int) -> list[LayerShape]:
    """Write zero blocks where llama.cpp's Deci graph would otherwise drop or misread something."""
    out = []
    for i, shape in enumerate(shapes):
        p = f"model.layers.{i}."
        heads, kv, ffn = shape.heads, shape.kv_heads, shape.ffn
        if heads == 0 and (i == 0 or p + "self_attn.o_proj.bias" in state):
            _zero_attention(state, p, hidden, head_dim)
            heads = kv = 1
        if ffn == 0 and (heads > 0 or p + "mlp.down_proj.bias" in state):
            _zero_ffn(state, p, hidden)
            ffn = ZERO_FFN
        if heads == 0:  # Deci reads no attention tensors for such a layer: drop what is left
            for key in [k for k in state if k.startswith(p + "self_attn.") or k == p + "input_layernorm.weight"]:
                del state[key]
        if ffn == 0:
            for key in [k for k in state if k.startswith(p + "mlp.") or k == p + "post_attention_layernorm.weight"]:
                del state[key]
        out.append(LayerShape(heads, kv, ffn))
    return out


def _permute(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Hugging Face's rotary layout (halves) to llama.cpp's (pairs), as its LLaMA converter does."""
    return (weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def _tensor_data(name: str, tensor: torch.Tensor, outtype: str) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    data = tensor.detach().to(torch.float32).cpu().numpy()
    if data.ndim < 2 or outtype == "f32":
        return data, gguf.GGMLQuantizationType.F32
    qtype = _QTYPE[outtype]
    if qtype == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
        qtype = gguf.GGMLQuantizationType.F16  # rows that do not fill whole Q8_0 blocks, as the converter does
    return gguf.quants.quantize(data, qtype), qtype


def gguf_tensors(state: dict[str, torch.Tensor], shapes: list[LayerShape], arch: gguf.MODEL_ARCH,
                 tied: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """``(gguf_name, tensor)`` in llama.cpp's names and rotary layout; unknown tensors are refused."""
    names = gguf.get_tensor_name_map(arch, len(shapes))
    for key, tensor in state.items():
        if key == "lm_head.weight" and tied:
            continue
        if key.endswith("rotary_emb.inv_freq"):
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UserError(f"tensor {key} has no place in llama.cpp's {gguf.MODEL_ARCH_NAMES[arch]} architecture; "
                            "GGUF export supports LLaMA-family weights (with optional biases) only")
        if ".self_attn.q_proj." in key or ".self_attn.k_proj." in key:
            shape = shapes[int(key.split(".")[2])]
            tensor = _permute(tensor, shape.heads if ".q_proj." in key else shape.kv_heads)
        yield name, tensor


def _rope(writer: gguf.GGUFWriter, config: Any) -> None:
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    kind = params.get("rope_type") or params.get("type") or "default"
    if kind != "default":
        raise UserError(f"rope type {kind!r} is not supported by the GGUF export yet (only the default rotary embedding)")
    theta = params.get("rope_theta") or getattr(config, "rope_theta", None)
    if theta is not None:
        writer.add_rope_freq_base(float(theta))


def _add_hparams(writer: gguf.GGUFWriter, config: Any, shapes: list[LayerShape], head_dim: int, uniform: bool,
                 outtype: str) -> None:
    def per_layer(field: str) -> int | list[int]:
        values = [getattr(s, field) for s in shapes]
        return values[0] if uniform else values

    writer.add_name(str(_config_value(config, "name_or_path", "_name_or_path", default="") or "pruned").rstrip("/")
                    .split("/")[-1] or "pruned")
    writer.add_context_length(int(_config_value(config, "max_position_embeddings", default=2048)))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(len(shapes))
    writer.add_feed_forward_length(per_layer("ffn"))
    writer.add_head_count(per_layer("heads"))
    writer.add_head_count_kv(per_layer("kv_heads"))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(int(config.vocab_size))
    _rope(writer, config)
    writer.add_file_type(_FILE_TYPE[outtype])


def write_gguf(state: dict[str, torch.Tensor], config: Any, tokenizer_dir: str | Path, path: str | Path, *,
               outtype: str = "f32") -> Path:
    """Write Hugging Face LLaMA weights ``state`` (per-layer shapes read from the tensors) to ``path``
    atomically; returns the path. ``tokenizer_dir`` holds tokenizer.json or tokenizer.model."""
    if outtype not in OUTTYPES:
        raise UserError(f"--outtype {outtype}: choose one of {', '.join(OUTTYPES)}")
    if getattr(config, "model_type", None) not in LLAMA_MODEL_TYPES:
        raise UserError(f"GGUF export supports LLaMA-family models ({', '.join(LLAMA_MODEL_TYPES)}); "
                        f"this is {getattr(config, 'model_type', None)!r}")
    state = dict(state)
    head_dim, hidden = head_dim_of(config), int(config.hidden_size)
    shapes = layer_shapes(state, int(config.num_hidden_layers), head_dim)
    uniform = len(set(shapes)) == 1 and shapes[0].heads > 0 and shapes[0].ffn > 0
    if not uniform:
        shapes = fill_for_llamacpp(state, shapes, hidden, head_dim)
    arch = gguf.MODEL_ARCH.LLAMA if uniform else gguf.MODEL_ARCH.DECI
    tied = bool(getattr(config, "tie_word_embeddings", False)) or "lm_head.weight" not in state
    n_vocab = int(state["model.embed_tokens.weight"].shape[0])

    def writer_to(tmp: str) -> None:
        writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[arch])
        _add_hparams(writer, config, shapes, head_dim, uniform, outtype)
        add_tokenizer(writer, tokenizer_dir, n_vocab)
        for name, tensor in gguf_tensors(state, shapes, arch, tied):
            data, qtype = _tensor_data(name, tensor, outtype)
            writer.add_tensor(name, data, raw_dtype=qtype if qtype == gguf.GGMLQuantizationType.Q8_0 else None)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return _write_via(path, writer_to, suffix=".gguf")


def _tokenizer_dir(source: str | Path | None, tokenizer: Any, tmp: Path) -> Path:
    """The folder with the model's tokenizer files: the source folder, else the tokenizer saved to ``tmp``."""
    if source is not None and Path(source).is_dir() and any(
            (Path(source) / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        return Path(source)
    if tokenizer is None:
        raise UserError("GGUF export needs the model's tokenizer (pass tokenizer=..., or a folder that has one)")
    tokenizer.save_pretrained(str(tmp))
    return tmp


def export_gguf(model: str | Path | nn.Module, path: str | Path, *, outtype: str = "f32", tokenizer: Any = None,
                trust_remote_code: bool = False) -> Path:
    """Write ``model`` (a folder written by ``prune``, any LLaMA-family model folder, a built-in asset
    name, or a loaded model with ``tokenizer``) as a GGUF file for llama.cpp; returns the path.

    ``outtype``: ``f32`` (exact), ``f16`` or ``q8_0`` (llama.cpp's 8-bit blocks). Uniform subnets
    become llama.cpp's ``llama`` architecture, non-uniform ones its ``deci`` architecture.
    """
    source = None
    if not isinstance(model, nn.Module):
        source = loading.resolve(str(model))
        model, loaded_tokenizer = loading.load_model(str(model), trust_remote_code=trust_remote_code)
        tokenizer = tokenizer or loaded_tokenizer
    state = {k: v for k, v in model.state_dict().items()}
    with tempfile.TemporaryDirectory(prefix="zerolm-gguf-tok-") as tmp:
        folder = _tokenizer_dir(source, tokenizer, Path(tmp))
        return write_gguf(state, model.config, folder, path, outtype=outtype)
