"""What every model family must tell the rest of the tool.

An ``ArchAdapter`` is the only place that knows where a family keeps its layers and projections.
Everything else (capacity tables, slicing, parameter counts) asks it, so adding a family means
adding one adapter. Geometry comes from the config alone, so shapes-only work (sizes, a
random-init table) needs no weights; pruned checkpoints record per-layer shapes in
``config.layer_shapes`` and the adapter honours them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

from torch import nn


@dataclass(frozen=True)
class Projection:
    """One Linear-like weight inside a block.

    ``role`` is family-neutral (q, k, v, o, qkv, gate, up, down); ``path`` is the attribute path
    below the layer module; ``transposed`` marks GPT-2's Conv1D, which stores (in, out).
    """

    role: str
    path: str
    module: str  # "attn" or "ffn": which capacity sum it feeds
    transposed: bool = False

    @property
    def name(self) -> str:
        """Last path component: what peft's ``target_modules`` matches."""
        return self.path.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class LayerGeometry:
    """Head and channel geometry of one block."""

    index: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    ffn_dim: int
    gated: bool

    @property
    def heads_per_kv_group(self) -> int:
        """Query heads that share one KV head: a pruned head count must be a multiple of it."""
        return self.num_heads // self.num_kv_heads if self.num_kv_heads else 1

    @property
    def attn_width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim


class ArchAdapter:
    """Base class; subclasses fill the class variables and ``_base_geometry``."""

    family: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()
    #: attribute path from the base model (``model.<base_model_prefix>``) to the ModuleList of blocks
    layers_path: ClassVar[str] = ""
    #: base-model attribute name in the ``*For*`` heads (``model``, ``bert``, ``transformer``)
    base_model_prefix: ClassVar[str] = ""
    projections: ClassVar[tuple[Projection, ...]] = ()
    #: LoNAS groups: LoRA modules that share one elastic rank
    lora_groups: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: width granularity of FFN choices (1 = any width)
    ffn_multiple: ClassVar[int] = 1

    def __init__(self, config: Any):
        self.config = config

    # ---- geometry -------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    def _base_geometry(self, index: int) -> LayerGeometry:  # pragma: no cover - abstract
        raise NotImplementedError

    def geometry(self, index: int) -> LayerGeometry:
        """Geometry of block ``index``, per-layer overrides of a pruned checkpoint included."""
        if not 0 <= index < self.num_layers:
            raise IndexError(f"layer {index} out of range 0..{self.num_layers - 1}")
        geo = self._base_geometry(index)
        shapes = getattr(self.config, "layer_shapes", None)
        if shapes:
            s = shapes[index]
            heads = int(s.get("num_attention_heads", geo.num_heads))
            if "num_key_value_heads" in s:
                kv = int(s["num_key_value_heads"])
            elif geo.num_kv_heads == geo.num_heads:  # multi-head attention stays multi-head
                kv = heads
            else:
                kv = geo.num_kv_heads
            geo = LayerGeometry(index, geo.hidden_size, heads, kv, geo.head_dim,
                                int(s.get("intermediate_size", geo.ffn_dim)), geo.gated)
        return geo

    def geometries(self) -> list[LayerGeometry]:
        return [self.geometry(i) for i in range(self.num_layers)]

    @property
    def attn_projections(self) -> tuple[Projection, ...]:
        return tuple(p for p in self.projections if p.module == "attn")

    @property
    def ffn_projections(self) -> tuple[Projection, ...]:
        return tuple(p for p in self.projections if p.module == "ffn")

    def target_name(self, proj: Projection) -> str:
        """Name peft's ``target_modules`` should use: the last path part unless it is ambiguous
        (BERT has three ``dense`` modules per layer), then the full path below the layer."""
        clashes = sum(p.name == proj.name for p in self.projections)
        return proj.name if clashes == 1 else proj.path

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """Module names a LoRA adapter may target (peft ``target_modules``)."""
        return tuple(dict.fromkeys(self.target_name(p) for p in self.projections))

    # ---- module access --------------------------------------------------------------------
    def base_model(self, model: nn.Module) -> nn.Module:
        # peft wraps: PeftModel.base_model.model is the transformers model
        inner = model
        get_base = getattr(inner, "get_base_model", None)
        if callable(get_base):
            inner = get_base()
        return getattr(inner, self.base_model_prefix, inner)

    def layers(self, model: nn.Module) -> nn.ModuleList:
        module = self.base_model(model)
        for part in self.layers_path.split("."):
            module = getattr(module, part)
        return module  # type: ignore[return-value]

    def projection_module(self, layer: nn.Module, proj: Projection) -> nn.Module:
        module = layer
        for part in proj.path.split("."):
            module = getattr(module, part)
        return module

    def projection_weight(self, layer: nn.Module, proj: Projection):
        """The (out, in) weight of ``proj`` (Conv1D transposed back), base weight under peft."""
        module = self.projection_module(layer, proj)
        base = getattr(module, "base_layer", module)
        weight = base.weight
        return weight.t() if proj.transposed else weight

    def iter_projections(self, model: nn.Module) -> Iterator[tuple[int, Projection, nn.Module]]:
        for index, layer in enumerate(self.layers(model)):
            for proj in self.projections:
                yield index, proj, self.projection_module(layer, proj)

    def layer_key_prefix(self, index: int, with_base: bool = True) -> str:
        """State-dict key prefix of block ``index`` (e.g. ``model.layers.3.``)."""
        body = f"{self.layers_path}.{index}."
        return f"{self.base_model_prefix}.{body}" if with_base and self.base_model_prefix else body

    # ---- description ----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        geo0 = self.geometry(0)
        return {
            "family": self.family,
            "model_type": getattr(self.config, "model_type", "?"),
            "layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "num_heads": geo0.num_heads,
            "num_kv_heads": geo0.num_kv_heads,
            "head_dim": geo0.head_dim,
            "ffn_dim": geo0.ffn_dim,
            "gated_ffn": geo0.gated,
            "vocab_size": self.vocab_size,
            "attn_projections": [self.target_name(p) for p in self.attn_projections],
            "ffn_projections": [self.target_name(p) for p in self.ffn_projections],
            "lora_targets": list(self.lora_targets),
            "lora_groups": {k: list(v) for k, v in self.lora_groups.items()},
        }
