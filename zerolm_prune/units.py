"""The unit order: which KV groups and FFN channels a pruned width keeps. One home for it.

A *unit* is what pruning removes whole: a KV group (its K/V head, the query heads that share it
and the matching columns of O; one head under multi-head attention) or an FFN channel (a row of
gate/up, a column of down). A *unit order* ranks a layer's units, most important first; a width
keeps the first ``k`` of them, applied in ascending index order (a prefix stays a prefix).

This module owns, for every other module:

- the order names (``ORDER_NAMES``; ``WEIGHT_ONLY_ORDERS`` are computed layer by layer from the
  weights, the others need the whole model: ``rankers.orders.resolve_orders`` computes them);
- their validation, with one message (``check_order_name``, ``validate_orders``), and the one
  check that a cutting consumer got a resolved order (``resolved_order``);
- the saved orders sidecar of a ranked.json (``save_orders`` / ``load_orders`` /
  ``ranked_orders_file``);
- the kept units of a choice (``kept_units``, ``kept_kv_heads``) and the plan of kept rows of a
  layer (``LayerPlan``, ``plan_from_orders``): Torch-Pruning's dependency group, the one object
  that the capacity table scores, ``rankers.apply.sliced`` masks and ``materialize`` cuts.

A resolved order (``UnitOrders``) is ``None`` (prefix) or ``{layer: {"heads": [...], "ffn": [...]}}``
with int keys and full permutations (a missing or null entry keeps that dimension's prefix).
It imports nothing of the package but ``errors``, ``atomic`` and ``loading``, so any module can use it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .atomic import write_json
from .errors import UserError
from .loading import resolve

if TYPE_CHECKING:  # pragma: no cover
    from .models.base import ArchAdapter, LayerGeometry, Projection
    from .space.types import LayerChoice

#: unit orders computed from the weights alone, layer by layer (no forward pass): the ones
#: streaming folders and the capacity table can apply without loading the whole model
WEIGHT_ONLY_ORDERS: tuple[str, ...] = ("prefix", "capacity")

#: every unit order name: energy and selfgen need the whole model (``rankers.orders``).
#: Explicit orders dicts are accepted beside them.
ORDER_NAMES: tuple[str, ...] = WEIGHT_ONLY_ORDERS + ("energy", "selfgen")

#: a resolved order: ``None`` (prefix) or ``{layer: {"heads": [KV groups best first], "ffn": [...]}}``
UnitOrders = "dict[int, dict[str, list[int]]] | None"


def check_order_name(name: Any, *, names: Sequence[str] = ORDER_NAMES) -> str:
    """``name`` if it is a unit order this package computes, else THE one-line UserError."""
    if not isinstance(name, str) or name not in names:
        raise UserError(f"unknown unit order {name!r}; choose one of: {', '.join(names)} "
                        "(from Python also an explicit orders dict)")
    return name


def order_label(order: Any) -> str:
    """What to record in ranked.json / checkpoint metadata: the name, or "custom" for a dict."""
    if order is None:
        return "prefix"
    return order if isinstance(order, str) else "custom"


# ---- kept units of a choice ----------------------------------------------------------------------

def num_groups(geo: "LayerGeometry") -> int:
    """Head units of a layer: KV groups under GQA, heads under multi-head attention."""
    return geo.num_kv_heads if geo.num_kv_heads != geo.num_heads else geo.num_heads


def kept_kv_heads(geo: "LayerGeometry", heads: int) -> int:
    """KV heads that remain when ``heads`` query heads are kept (whole groups under GQA)."""
    if geo.num_kv_heads == geo.num_heads:
        return heads
    return heads // geo.heads_per_kv_group


def kept_units(kind: str, geo: "LayerGeometry", choice: "LayerChoice") -> int:
    """Units a choice keeps: FFN channels, or KV groups (MHA and fused QKV: one head per unit)."""
    if kind == "ffn":
        if not 0 <= choice.ffn <= geo.ffn_dim:
            raise UserError(f"layer {geo.index}: FFN width {choice.ffn} is outside 0..{geo.ffn_dim}; fix the space")
        return choice.ffn
    hpg = geo.heads_per_kv_group
    if choice.heads % hpg or not 0 <= choice.heads <= geo.num_heads:
        raise UserError(
            f"layer {geo.index}: {choice.heads} heads is not a multiple of {hpg} heads per KV group within "
            f"0..{geo.num_heads}; use whole KV groups"
        )
    return choice.heads // hpg


@dataclass(frozen=True)
class LayerPlan:
    """What one block keeps: KV groups (ascending), query heads, FFN channels.

    The dependency group of a layer: every tensor that touches a dropped unit shrinks together,
    so scoring (capacity table), running in place (``rankers.apply.sliced``) and cutting
    (``materialize``) all read their rows from here."""

    index: int
    geometry: "LayerGeometry"
    choice: "LayerChoice"
    groups: tuple[int, ...]
    channels: tuple[int, ...]

    @property
    def heads(self) -> list[int]:
        per = self.geometry.heads_per_kv_group
        return [g * per + j for g in self.groups for j in range(per)]

    @property
    def num_kv_heads(self) -> int:
        return len(self.groups) if self.geometry.num_kv_heads != self.geometry.num_heads else len(self.heads)

    def q_rows(self) -> list[int]:
        hd = self.geometry.head_dim
        return [h * hd + d for h in self.heads for d in range(hd)]

    def kv_rows(self) -> list[int]:
        hd = self.geometry.head_dim
        kv_heads = self.groups if self.geometry.num_kv_heads != self.geometry.num_heads else self.heads
        return [g * hd + d for g in kv_heads for d in range(hd)]

    def indices(self, proj: "Projection") -> tuple[list[int] | None, list[int] | None]:
        """(kept output rows, kept input columns) of ``proj`` in (out, in) convention; None = all."""
        geo = self.geometry
        heads_cut = len(self.heads) < geo.num_heads
        ffn_cut = len(self.channels) < geo.ffn_dim
        role = proj.role
        if role == "q":
            return (self.q_rows() if heads_cut else None), None
        if role in ("k", "v"):
            return (self.kv_rows() if heads_cut else None), None
        if role == "o":
            return None, (self.q_rows() if heads_cut else None)
        if role == "qkv":  # GPT-2 fused: [q | k | v], each num_heads*head_dim wide
            if not heads_cut:
                return None, None
            width, rows = geo.attn_width, self.q_rows()
            return [part * width + r for part in range(3) for r in rows], None
        if role in ("gate", "up"):
            return (list(self.channels) if ffn_cut else None), None
        if role == "down":
            return None, (list(self.channels) if ffn_cut else None)
        raise ValueError(f"unknown projection role {role!r}")


def plan_from_orders(geo: "LayerGeometry", choice: "LayerChoice", group_order: Sequence[int] | None = None,
                     channel_order: Sequence[int] | None = None, *, label: str = "given") -> LayerPlan:
    """The plan of ``choice`` on a layer whose units rank as given (``None``: prefix order).

    The first ``choice.heads // heads_per_kv_group`` groups and ``choice.ffn`` channels of the
    orders are kept, in ascending index order. ``label`` names the order in the error raised
    when an order yields duplicate or too few units."""
    per = geo.heads_per_kv_group
    if choice.heads % per:
        raise UserError(f"layer {geo.index}: {choice.heads} heads is not a multiple of {per} query heads per KV group")
    keep_groups = choice.heads // per
    group_order = range(num_groups(geo)) if group_order is None else group_order
    channel_order = range(geo.ffn_dim) if channel_order is None else channel_order
    groups = tuple(sorted(int(g) for g in list(group_order)[:keep_groups]))
    channels = tuple(sorted(int(c) for c in list(channel_order)[: choice.ffn]))
    if len(set(groups)) != keep_groups or len(set(channels)) != choice.ffn:
        raise RuntimeError(f"layer {geo.index}: the {label} order returned duplicate or too few indices")
    return LayerPlan(geo.index, geo, choice, groups, channels)


# ---- explicit orders: validation, save, load -----------------------------------------------------

def validate_orders(orders: Mapping, adapter: Any, *, partial: bool = False) -> dict[int, dict[str, list[int]]]:
    """Check an explicit orders dict against the model's geometry; normalise keys to int.

    Every layer must be present; per layer, "heads" must be a permutation of the KV groups and
    "ffn" of the FFN channels (a missing or null entry keeps that dimension's prefix order).
    ``partial``: check only the layers given (``plan_layer`` validating one layer).
    """
    out: dict[int, dict[str, list[int]]] = {}
    n = adapter.num_layers
    for key, entry in orders.items():
        try:
            l = int(key)
        except (TypeError, ValueError):
            raise UserError(f"orders: layer key {key!r} is not a layer index") from None
        if not 0 <= l < n:
            raise UserError(f"orders: layer {l} is out of range; the model has {n} layers (0..{n - 1})")
        if l in out:
            raise UserError(f"orders: layer {l} appears twice")
        if not isinstance(entry, Mapping) or set(entry) - {"heads", "ffn"}:
            raise UserError(f"orders: layer {l} must be {{\"heads\": [...], \"ffn\": [...]}}, got {entry!r:.80}")
        geo = adapter.geometry(l)
        sizes = {"heads": num_groups(geo),
                 "ffn": geo.ffn_dim}
        norm: dict[str, list[int]] = {}
        for dim, size in sizes.items():
            units = entry.get(dim)
            if units is None:
                continue
            try:
                units = [int(u) for u in units]
            except (TypeError, ValueError):
                raise UserError(f"orders: layer {l} {dim!r} must be a list of unit indices") from None
            if sorted(units) != list(range(size)):
                what = "KV groups" if dim == "heads" else "FFN channels"
                raise UserError(f"orders: layer {l} {dim!r} must be a permutation of its {size} {what} "
                                f"(0..{size - 1}), got {len(units)} entries; rerun `zerolm-prune rank` to rewrite it, "
                                "or pass --order (from Python: recompute it with compute_orders)")
            norm[dim] = units
        out[l] = norm
    missing = [l for l in range(n) if l not in out]
    if missing and not partial:
        raise UserError(f"orders: layers {missing[:5]}{'...' if len(missing) > 5 else ''} are missing; "
                        f"give an entry for each of the {n} layers")
    return out


def resolved_order(order: Any, adapter: Any) -> "str | dict[int, dict[str, list[int]]]":
    """``order`` as a consumer that cuts units takes it (``materialize``, ``materialize_folder``,
    ``plan_layer``): a weight-only name (computed layer by layer from the weights), or an explicit
    orders dict, validated, with int keys; ``None`` (``resolve_orders``' prefix) is ``"prefix"``.

    Why energy and selfgen are refused: they need the whole model (selfgen a forward pass on
    sampled text), so a consumer computing them itself would redo it per call and could cut other
    units than the ones scored; the caller resolves them once at its top and passes the dict down.
    """
    if order is None:
        return "prefix"
    if isinstance(order, str):
        if order in WEIGHT_ONLY_ORDERS:
            return order
        check_order_name(order)
        raise UserError(f"the {order!r} unit order needs the whole model: resolve it first "
                        f"(zerolm_prune.rankers.orders.resolve_orders(model, {order!r})) and pass the orders dict")
    if isinstance(order, Mapping):
        return validate_orders(order, adapter)
    raise UserError(f"unit order must be a name ({', '.join(WEIGHT_ONLY_ORDERS)}) or an orders dict, "
                    f"got {type(order).__name__}")


#: what ``save_orders`` writes and ``load_orders`` checks (the sidecar of a ranked.json)
SAVED_ORDERS_FORMAT = "zerolm-prune unit orders"


def orders_fingerprint(adapter: Any) -> dict[str, Any]:
    """The geometry an orders dict is tied to: layer count, hidden size, per-layer KV groups and
    FFN widths (what ``validate_orders`` checks, plus the hidden size, in one comparable dict)."""
    geos = [adapter.geometry(l) for l in range(adapter.num_layers)]
    return {"layers": adapter.num_layers, "hidden_size": int(adapter.hidden_size),
            "kv_groups": [int(num_groups(g)) for g in geos],
            "ffn": [int(g.ffn_dim) for g in geos]}


def save_orders(path: Any, orders: Mapping, *, name: str, adapter: Any, model: Any = None) -> Any:
    """Write the exact orders dict a ranking was scored with (compact JSON, atomic), so that
    ``prune`` cuts the same units instead of recomputing them (selfgen can flip near-tied units
    under another thread count). ``load_orders`` reads it back."""
    checked = validate_orders(orders, adapter)
    data = {"format": SAVED_ORDERS_FORMAT, "version": 1, "order": name, "model": model,
            "fingerprint": orders_fingerprint(adapter),
            "orders": {str(l): checked[l] for l in sorted(checked)}}
    return write_json(path, data, indent=None)


def load_orders(path: Any, adapter: Any, *, name: str | None = None) -> dict[int, dict[str, list[int]]]:
    """The orders dict ``save_orders`` wrote, checked against ``adapter`` (one-line UserErrors):
    the file's format, its order name (when ``name`` is given), the model fingerprint and each
    layer's permutations (``validate_orders``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise UserError(f"{path}: cannot read the saved unit orders ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}); rerun `zerolm-prune rank` "
                        "or delete it to recompute the order") from None
    if not isinstance(data, dict) or data.get("format") != SAVED_ORDERS_FORMAT or not isinstance(data.get("orders"), Mapping):
        raise UserError(f"{path} is not a unit orders file written by `zerolm-prune rank`")
    if name is not None and data.get("order") not in (None, name):
        raise UserError(f"{path} holds the {data['order']!r} order but the ranked file was scored with {name!r}; "
                        "rerun `zerolm-prune rank`")
    saved, here = data.get("fingerprint"), orders_fingerprint(adapter)
    if isinstance(saved, Mapping) and dict(saved) != here:
        diff = [k for k in here if saved.get(k) != here[k]]
        raise UserError(f"{path} was computed on a model of another shape ({', '.join(diff)} differ: "
                        f"{here['layers']} layers, hidden {here['hidden_size']} here); prune the model it was ranked on")
    try:
        return validate_orders(data["orders"], adapter)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None


def ranked_orders_file(spec: Any, source: Mapping, *, order: str | None = None, model: Any = None,
                       doing: str = "materializing") -> Any:
    """The unit orders sidecar ``rank`` saved next to a ranked file (``source["orders_file"]``, from
    ``read_ranked``), for ``prune`` and ``eval`` to cut exactly the units that were scored; ``None``
    means the order is computed again from its name. ``spec``: the ranked file (``path#k`` allowed);
    ``order``: an order the user asked for (another one than the file's ignores the sidecar);
    ``model``: the model it is applied to. Notes on stderr, one line each: another order than the one
    scored (``doing`` with it), a named sidecar that is missing, a model other than the ranked one.
    A one-line UserError when the file's order is no name this package can compute (``custom``: an
    orders dict given from Python) and no sidecar holds it. Read the file with
    ``load_orders(path, adapter, name=source["order"])``."""
    ranked, scored = str(spec).partition("#")[0], source.get("order")
    if order and scored and order != scored:
        print(f"note: {spec} was scored with order {scored!r}; {doing} with {order!r}", file=sys.stderr)
    name = source.get("orders_file")
    path = Path(ranked).parent / name if isinstance(name, str) and name and not (order and order != scored) else None
    if path is not None and not path.is_file():
        if (order or scored) in ORDER_NAMES:
            print(f"note: {ranked} names unit orders file {name}, which is missing; recomputing the {scored!r} order "
                  "(near-tied units may differ from what rank scored)", file=sys.stderr)
        path = None
    if path is None:
        if order:
            check_order_name(order)
        if (order or scored or "prefix") not in ORDER_NAMES:
            raise UserError(f"{ranked} was scored with unit order {scored!r}, which cannot be computed again "
                            f"(no saved {name or 'orders file'}); pass --order ({', '.join(ORDER_NAMES)}) or, "
                            "from Python, the same orders dict it was scored with")
        return None
    if _other_model(source.get("model"), model):
        print(f"note: using the unit orders saved by rank for {source['model']} on {model}; "
              f"pass --order to compute them on {model} instead", file=sys.stderr)
    return path


def _other_model(ranked_on: Any, applied_to: Any) -> bool:
    """Whether the model a ranked file names and the one it is now applied to differ: the same
    folder reached by another spelling (a built-in name, a relative path, a symlink) is the same."""
    if not ranked_on or not applied_to or str(ranked_on) == str(applied_to):
        return False


    try:
        a, b = resolve(str(ranked_on)), resolve(str(applied_to))
    except UserError:  # a folder that is gone: cannot tell, so say so
        return True
    if a == b:
        return False
    pa, pb = Path(a), Path(b)
    return not (pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve())
