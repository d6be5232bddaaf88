"""ZeroLM capacity and the per-choice capacity table of a search space.

ZeroLM (arXiv 2503.18646) scores an architecture by the capacity of its Linear weights,
``C(W) = (1/min(m, n)) * sum_i sigma_i^2 = ||W||_F^2 / min(m, n)`` (the mean squared singular
value), summed per block into ``S_Attn`` (Q, K, V, O or fused QKV) and ``S_FFN`` (gate, up,
down), then ``S = S_FFN + alpha * S_Attn``. Higher is better.

Why a table: a search space holds up to ~1e41 subnets. Because C is a sum of squared entries
over ``min(m, n)``, the capacity of any sliced matrix follows from per-unit squared norms (a unit
= a KV group or an FFN channel; see ``importance.py``) computed in ONE pass over the weights:
sort the units (prefix or capacity order), take cumulative sums, and a choice keeping ``k`` units
has ``C = cum[k] / min(kept rows, kept cols)``. Every layer's options are tabulated once; any
subnet then scores, counts params and MACs in O(layers) without touching weights again.

LoRA: with a peft adapter attached, a rank choice ``r`` scores the merged matrix
``W + (alpha / r_max) * B[:, :r] @ A[:r, :]`` of the kept rows/columns (LoNAS slices A and B as a
prefix and keeps the scale ``alpha / r_max``). Per-unit norms of the merged matrix are taken per
rank choice in the same pass, so width and rank interact exactly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import cost
from ..errors import UserError
from ..models import get_adapter
from ..space import Subnet
from ..units import ORDER_NAMES, WEIGHT_ONLY_ORDERS, check_order_name, kept_units, order_label, validate_orders
from .importance import UnitLayout, argsort_desc, unit_contribution, unit_layout, unit_sq_sums

if TYPE_CHECKING:  # pragma: no cover
    from ..models.base import ArchAdapter, LayerGeometry, Projection
    from ..space.types import LayerChoice, SearchSpace

#: old name of ``units.ORDER_NAMES``, kept for imports
ORDERS = ORDER_NAMES


def capacity(weight: Any) -> float:
    """ZeroLM capacity of one matrix: ``||W||_F^2 / min(m, n)`` (0 for an empty matrix)."""
    w = torch.as_tensor(weight)
    m, n = w.shape[-2], w.shape[-1]
    if min(m, n) == 0:
        return 0.0
    return float(torch.linalg.vector_norm(w.detach(), dtype=torch.float64).square()) / min(m, n)


@dataclass
class _ProjTable:
    """Cumulative squared mass of one projection's units, per rank variant (row) of its LoRA group."""

    proj: "Projection"
    layout: UnitLayout
    group: str | None  # LoRA group whose rank choice selects the variant, or None (one variant)
    ranks: dict[int, int]  # rank -> row of ``cum``; empty when there is a single variant
    cum: np.ndarray  # (variants, n_units + 1)


class CapacityTable:
    """Per layer, per option of a ``SearchSpace``: ZeroLM Attn/FFN capacity, params and MACs.

    Attributes (per layer ``l``, numpy arrays aligned with ``options[l]``): ``attn``, ``ffn``
    (capacity sums), ``attn_energy``, ``ffn_energy`` (the same without the ``1/min(m,n)``
    normalisation: squared Frobenius mass), ``params`` (block params, LoRA excluded),
    ``lora_params``, ``macs`` (per token at ``seq_len``); ints ``fixed_params``, ``fixed_macs``.
    """

    def __init__(self, space: "SearchSpace", adapter: "ArchAdapter", *, order: str, source: str,
                 options: list[list["LayerChoice"]], columns: dict[str, list[np.ndarray]],
                 fixed_params: int, fixed_macs: int, seq_len: int = 1):
        self.space = space
        self.adapter = adapter
        self.order = order
        self.source = source
        self.seq_len = seq_len
        self.options = options
        self.attn = columns["attn"]
        self.ffn = columns["ffn"]
        self.attn_energy = columns["attn_energy"]
        self.ffn_energy = columns["ffn_energy"]
        self.params = columns["params"]
        self.lora_params = columns["lora_params"]
        self.macs = columns["macs"]
        self.fixed_params = int(fixed_params)
        self.fixed_macs = int(fixed_macs)
        self._index = [{c: i for i, c in enumerate(opts)} for opts in options]

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: Any, space: "SearchSpace", *, order: Any = "prefix", label: str | None = None,
                   adapter: "ArchAdapter | None" = None, seq_len: int = 1, progress: bool = False) -> "CapacityTable":
        """Table of a model's real weights in one pass (a peft LoRA adapter is merged per rank).

        ``order``: which units a width keeps, exactly as ``materialize(order=...)`` keeps them: a
        weight-only name (prefix, capacity: computed here layer by layer) or a resolved orders dict
        ``{layer: {"heads": [...], "ffn": [...]}}`` (``rankers.orders.resolve_orders`` computes
        energy and selfgen: the table does not run the model). ``self.order`` records ``label`` or
        the name ("custom" for a dict).
        """
        adapter = adapter or get_adapter(model)
        layers = adapter.layers(model)
        _check_layer_count(space, adapter)
        unit_orders = None
        if isinstance(order, str) and order in ORDER_NAMES and order not in WEIGHT_ONLY_ORDERS:
            raise UserError(f"the {order!r} unit order needs the whole model: resolve it first "
                            f"(rankers.orders.resolve_orders(model, {order!r})) and pass the orders dict")
        if isinstance(order, Mapping):
            unit_orders = validate_orders(order, adapter)
        else:
            check_order_name(order)
        order = label or order_label(order)
        groups = _projection_groups(adapter, space)
        lora_scale = _space_lora_scale(space)

        def sums(index: int, geo: "LayerGeometry"):
            layer = layers[index]
            out = []
            for proj in adapter.projections:
                layout = unit_layout(geo, proj.role)
                module = adapter.projection_module(layer, proj)
                weight = getattr(module, "base_layer", module).weight  # = adapter.projection_weight
                weight = weight.t() if proj.transposed else weight
                base = unit_sq_sums(weight, layout, proj.role)
                lora = _lora_parts(module)
                group = groups.get(proj.role)
                variants: dict[int | None, np.ndarray] = {None: base}
                if lora is not None:
                    a, b, scale, r_full = lora
                    scale = lora_scale if lora_scale is not None else scale
                    ranks = space.layers[index].ranks.get(group) if group else None
                    if ranks:
                        variants = {}
                        for r in ranks:
                            if r > r_full:
                                raise UserError(
                                    f"layer {index}: LoRA rank {r} for {proj.name} exceeds the adapter's rank {r_full}; "
                                    "fix the space's rank lists"
                                )
                            variants[int(r)] = base if r == 0 else unit_sq_sums(
                                _merged(weight, a, b, scale, r), layout, proj.role)
                    else:  # attached but not elastic here: scored at its full rank
                        group = None
                        variants = {None: unit_sq_sums(_merged(weight, a, b, scale, r_full), layout, proj.role)}
                elif group is not None and space.layers[index].ranks.get(group):
                    group = None  # no adapter on this module: every rank gives W itself
                out.append((proj, layout, group, base, variants))
            return out

        return cls._tabulate(space, adapter, order, "model", sums, seq_len=seq_len, progress=progress,
                             unit_orders=unit_orders)

    @classmethod
    def random_init(cls, config: Any, space: "SearchSpace", *, seed: int = 0, seq_len: int = 1,
                    std: float | None = None) -> "CapacityTable":
        """Table of a freshly initialised model, from shapes alone (no weights are built).

        Entries of a Linear weight at init are i.i.d. N(0, std^2) (transformers' ``_init_weights``;
        GPT-2 scales ``c_proj`` by ``1/sqrt(2 n_layer)``), so the squared mass of a unit of ``k``
        entries is exactly ``std^2 * chi2(k)`` and units are independent: drawing one chi-square
        per unit gives the table's exact distribution in seconds even for LLaMA-7B shapes. peft
        initialises B = 0, so LoRA ranks do not change capacity at init.
        """
        adapter = get_adapter(config)
        _check_layer_count(space, adapter)
        rng = np.random.default_rng(seed)
        base_std = float(std if std is not None else getattr(adapter.config, "initializer_range", 0.02))

        def sums(index: int, geo: "LayerGeometry"):
            out = []
            for proj in adapter.projections:
                layout = unit_layout(geo, proj.role)
                s = _init_std(adapter, proj, base_std)
                draw = s * s * rng.chisquare(layout.unit_size * layout.other, size=layout.n_units)
                out.append((proj, layout, None, draw, {None: draw}))
            return out

        return cls._tabulate(space, adapter, "prefix", f"random_init(seed={seed})", sums, seq_len=seq_len)

    @classmethod
    def _tabulate(cls, space: "SearchSpace", adapter: "ArchAdapter", order: str, source: str,
                  sums: Callable[[int, "LayerGeometry"], list], *, seq_len: int = 1,
                  progress: bool = False, unit_orders: dict | None = None) -> "CapacityTable":
        config = adapter.config
        columns: dict[str, list[np.ndarray]] = {k: [] for k in
                                                ("attn", "ffn", "attn_energy", "ffn_energy", "params", "lora_params", "macs")}
        options: list[list[LayerChoice]] = []
        # layers of one shape and one choice list share options, kept units and counts
        shared: dict[Any, tuple[list, dict[str, np.ndarray], dict[str, np.ndarray], dict]] = {}
        iterator: Any = range(space.num_layers)
        if progress:
            iterator = tqdm(iterator, desc="capacity table", unit="layer")
        for index in iterator:
            geo = adapter.geometry(index)
            entries = sums(index, geo)
            # importance order from the base weights, shared by every projection of a kind
            orders: dict[str, np.ndarray] = {}
            for kind in ("heads", "ffn"):
                kind_entries = [e for e in entries if e[1].kind == kind]
                if not kind_entries:
                    continue
                n = kind_entries[0][1].n_units
                given = (unit_orders or {}).get(index, {}).get(kind)
                if given is not None:
                    orders[kind] = np.asarray(given, dtype=np.int64)
                elif order == "capacity":
                    contrib = sum(unit_contribution(e[3], e[1]) for e in kind_entries)
                    orders[kind] = argsort_desc(contrib)
                else:
                    orders[kind] = np.arange(n)
            tables = []
            for proj, layout, group, _base, variants in entries:
                perm = orders[layout.kind]
                keys = list(variants)
                cum = np.zeros((len(keys), layout.n_units + 1))
                for row, key in enumerate(keys):
                    cum[row, 1:] = np.cumsum(np.asarray(variants[key], dtype=np.float64)[perm])
                if None in variants:
                    group = None  # a single variant: no rank choice selects it
                ranks = {int(k): i for i, k in enumerate(keys)} if group is not None else {}
                tables.append(_ProjTable(proj, layout, group, ranks, cum))
            ls = space.layers[index]
            key = (dataclasses.replace(geo, index=0), tuple(ls.heads), tuple(ls.ffn),
                   tuple(sorted((g, tuple(v)) for g, v in ls.ranks.items())))
            if key not in shared:
                opts = ls.options()
                kept = {kind: np.array([kept_units(kind, geo, c) for c in opts], dtype=np.int64)
                        for kind in ("heads", "ffn")}
                ints = {k: np.zeros(len(opts), dtype=np.int64) for k in ("params", "lora_params", "macs")}
                for j, choice in enumerate(opts):
                    p = cost.block_params(geo, choice, config=config, lora=space.lora, include_lora=False)
                    ints["params"][j] = p
                    ints["lora_params"][j] = cost.block_params(geo, choice, config=config, lora=space.lora,
                                                               include_lora=True) - p
                    ints["macs"][j] = cost.block_macs(geo, choice, config=config, seq_len=seq_len, lora=space.lora)
                shared[key] = (opts, kept, ints, {})
            opts, kept, ints, rank_rows = shared[key]
            options.append(opts)
            n_opt = len(opts)
            col = {k: np.zeros(n_opt) for k in ("attn", "ffn", "attn_energy", "ffn_energy")}
            for t in tables:
                k = kept[t.layout.kind]
                if t.ranks:
                    rk = (t.group, tuple(sorted(t.ranks.items())))
                    if rk not in rank_rows:
                        rank_rows[rk] = np.array([t.ranks.get(c.rank(t.group), 0) for c in opts], dtype=np.int64)
                    mass = t.cum[rank_rows[rk], k]
                else:
                    mass = t.cum[0, k]
                denom = np.minimum(k * t.layout.unit_size, t.layout.other).astype(np.float64)
                col[t.proj.module] += np.divide(mass, denom, out=np.zeros(n_opt), where=denom > 0)
                col[t.proj.module + "_energy"] += mass
            for k, v in {**col, **ints}.items():
                columns[k].append(v)
        return cls(space, adapter, order=order, source=source, options=options, columns=columns,
                   fixed_params=cost.fixed_params(adapter), fixed_macs=cost.fixed_macs(adapter), seq_len=seq_len)

    # ---- queries --------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.options)

    def layer_values(self, alpha: float) -> list[np.ndarray]:
        """Per layer, per option: ``S_FFN + alpha * S_Attn`` (sum these over layers for S)."""
        return [f + alpha * a for f, a in zip(self.ffn, self.attn)]

    def indices_of(self, subnet: "Subnet") -> np.ndarray:
        """Per-layer option indices of ``subnet`` (UserError when a choice is not in the space)."""
        if subnet.num_layers != self.num_layers:
            raise UserError(f"the subnet has {subnet.num_layers} layers but the space {self.num_layers}; "
                            "use a subnet of this space")
        out = np.empty(self.num_layers, dtype=np.int64)
        for i, (choice, index) in enumerate(zip(subnet.layers, self._index)):
            try:
                out[i] = index[choice]
            except KeyError:
                raise UserError(f"layer {i}: choice heads={choice.heads} ffn={choice.ffn} ranks={dict(choice.ranks)} "
                                "is not an option of the space") from None
        return out

    def subnet_at(self, indices: Any) -> "Subnet":
        return Subnet([self.options[i][int(j)] for i, j in enumerate(indices)])

    def score(self, subnet: "Subnet", alpha: float) -> float:
        idx = self.indices_of(subnet)
        return float(sum(self.ffn[i][j] + alpha * self.attn[i][j] for i, j in enumerate(idx)))

    def score_indices(self, indices: np.ndarray, alpha: float) -> np.ndarray:
        """Vectorised scores of many subnets: ``indices`` is (N, layers) of option indices."""
        indices = np.asarray(indices)
        values = self.layer_values(alpha)
        out = np.zeros(indices.shape[0])
        for i, v in enumerate(values):
            out += v[indices[:, i]]
        return out

    def _sum_column(self, column: list[np.ndarray], indices: Any) -> Any:
        indices = np.asarray(indices)
        if indices.ndim == 1:
            return int(sum(int(column[i][j]) for i, j in enumerate(indices)))
        total = np.zeros(indices.shape[0], dtype=np.int64)
        for i, c in enumerate(column):
            total += c[indices[:, i]]
        return total

    def total_params(self, indices: Any, include_lora: bool = False) -> Any:
        """Whole-model params (fixed + blocks, LoRA optional) of one index vector or an (N, L) array."""
        total = self.fixed_params + self._sum_column(self.params, indices)
        if include_lora:
            total = total + self._sum_column(self.lora_params, indices)
        return total

    def total_macs(self, indices: Any, include_lora: bool = False) -> Any:
        total = self.fixed_macs + self._sum_column(self.macs, indices)
        if include_lora:
            total = total + self._sum_column(self.lora_params, indices)  # r*(in+out) MACs per token
        return total

    def components(self, subnet: "Subnet") -> dict[str, float]:
        """``S_Attn``, ``S_FFN`` and their unnormalised masses for one subnet."""
        idx = self.indices_of(subnet)
        return {k: float(sum(getattr(self, k)[i][j] for i, j in enumerate(idx)))
                for k in ("attn", "ffn", "attn_energy", "ffn_energy")}


# ---- helpers --------------------------------------------------------------------------------------
def _check_layer_count(space: "SearchSpace", adapter: "ArchAdapter") -> None:
    if space.num_layers != adapter.num_layers:
        raise UserError(f"the search space has {space.num_layers} layers but the model {adapter.num_layers}; "
                        "use a space made for this model")


def _projection_groups(adapter: "ArchAdapter", space: "SearchSpace") -> dict[str, str]:
    """projection role -> LoRA group, from the space's LoRA description or the family's LoNAS groups."""
    groups = (space.lora or {}).get("groups") or {g: list(m) for g, m in adapter.lora_groups.items()}
    out: dict[str, str] = {}
    for group, names in groups.items():
        for name in names:
            for proj in adapter.projections:
                if name in (adapter.target_name(proj), proj.path, proj.name):
                    out[proj.role] = group
    return out


def _space_lora_scale(space: "SearchSpace") -> float | None:
    lora = space.lora or {}
    if lora.get("alpha") and lora.get("r_max"):
        return float(lora["alpha"]) / float(lora["r_max"])
    return None


def _lora_parts(module: Any):
    """(A, B, scaling, r) of a peft LoRA layer's active adapter, or None."""
    lora_a = getattr(module, "lora_A", None)
    if lora_a is None or len(lora_a) == 0:
        return None
    active = getattr(module, "active_adapters", None) or list(lora_a.keys())
    name = active[0] if active[0] in lora_a else next(iter(lora_a.keys()))
    a = lora_a[name].weight
    b = module.lora_B[name].weight
    return a, b, float(module.scaling[name]), int(a.shape[0])


def _merged(weight: Any, a: Any, b: Any, scale: float, rank: int):
    """``W + scale * B[:, :r] @ A[:r, :]`` in (out, in) orientation, float32 or wider."""
    w = weight.detach()
    dtype = torch.promote_types(w.dtype, torch.float32)
    with torch.no_grad():
        return w.to(dtype) + scale * (b.detach()[:, :rank].to(dtype) @ a.detach()[:rank, :].to(dtype))


def _init_std(adapter: "ArchAdapter", proj: "Projection", std: float) -> float:
    """Init std of a projection (GPT-2's residual projections are scaled by 1/sqrt(2 n_layer))."""
    if adapter.family == "gpt2" and proj.path.endswith("c_proj"):
        return std / math.sqrt(2 * adapter.num_layers)
    return std
