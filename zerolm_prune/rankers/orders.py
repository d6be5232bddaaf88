"""Which heads and channels to keep: unit orders other than LoNAS's prefix.

- ``prefix``: the first units (LoNAS as released).
- ``capacity`` (weights only): units by their own ZeroLM capacity contribution
  (``proxy.importance``; what ``materialize(order="capacity")`` has always used).
- ``energy`` (weights only): units by their output-path energy (rankers/weights.py). Kept for
  comparison: plain norm orders are known to do worse than prefix on SmolLM2 (issue #9).
- ``selfgen`` (new here): units by what they actually write on text the model generated itself:
  FFN channel j -> sum over tokens of (act_j * ||down[:, j]||)^2, KV group g -> sum over tokens of
  ||O_g z_g||^2 over its query heads. Like Wanda/activation-aware pruning, but the "calibration
  data" is the model's own samples, so no external dataset is involved.

An order maps layer index -> {"heads": KV groups most important first, "ffn": channels most
important first}; ``apply.sliced(..., orders=...)`` and the masks of the harness consume it.

Why one resolver (``resolve_orders``): the table that scores subnets (``CapacityTable``,
``selfgen-kl``, ``fidelity``) and ``materialize`` that cuts them must keep the same units to the
index, so every consumer accepts the same input (a name or an explicit orders dict, e.g. read back
from JSON with string layer keys) and turns it into one validated ``{int: {"heads", "ffn"}}`` here.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..proxy.capacity import ORDERS as ORDER_NAMES  # one list for every module
from ..proxy.importance import POLICIES as WEIGHT_ONLY_ORDERS  # noqa: F401  (no forward pass; for prune/rank)


def compute_orders(model: Any, name: str, *, adapter: Any = None, text: Any = None, seqs: int = 2,
                   length: int = 128, seed: int = 0) -> dict[int, dict[str, list[int]]] | None:
    """Per-layer unit orders of ``model`` by policy ``name`` (``None`` for prefix)."""
    from ..errors import UserError
    from ..models import get_adapter

    adapter = adapter or get_adapter(model)
    if name == "prefix":
        return None
    out: dict[int, dict[str, list[int]]] = {}
    if name == "capacity":
        from ..proxy.importance import ffn_channel_order, head_group_order

        for l in range(adapter.num_layers):
            out[l] = {"heads": [int(g) for g in head_group_order(adapter, model, l, "capacity")],
                      "ffn": [int(c) for c in ffn_channel_order(adapter, model, l, "capacity")]}
        return out
    if name == "energy":
        from .weights import unit_energies

        for l in range(adapter.num_layers):
            groups, ffn = unit_energies(adapter, model, l)
            out[l] = {"heads": _desc(groups), "ffn": _desc(ffn)}
        return out
    if name == "selfgen":
        import torch

        from .selfgen import SelfText

        if getattr(model, "get_output_embeddings", lambda: None)() is None:
            raise UserError("the selfgen unit order samples text from the model, so it needs a causal LM; "
                            "use --order prefix, capacity or energy for encoders")
        if any(p.transposed or p.role == "qkv" for p in adapter.projections):
            raise UserError("the selfgen unit order needs unfused q/k/v/o projections (LLaMA-style models); "
                            "use --order prefix, capacity or energy for this model")
        text = text or SelfText(model, seqs=seqs, length=length, seed=seed, adapter=adapter)
        layers = adapter.layers(model)
        for l in range(adapter.num_layers):
            geo = adapter.geometry(l)
            w = {p.role: adapter.projection_weight(layers[l], p).detach() for p in adapter.projections if p.role in ("o", "down")}
            with torch.no_grad():
                act = text.map_inputs[(l, "down")]
                ffn = (act.double().square().sum(0) * w["down"].double().square().sum(0)).numpy()
                z = text.map_inputs[(l, "o")]
                d, per = geo.head_dim, geo.heads_per_kv_group
                groups = np.zeros(geo.num_kv_heads)
                for h in range(geo.num_heads):
                    g = h // per if geo.num_kv_heads != geo.num_heads else h
                    groups[g] += float((z[:, h * d:(h + 1) * d] @ w["o"][:, h * d:(h + 1) * d].T).double().square().sum())
            out[l] = {"heads": _desc(groups), "ffn": _desc(ffn)}
        return out
    raise UserError(f"unknown unit order {name!r}; choose one of: {', '.join(ORDER_NAMES)}")


def order_label(order: Any) -> str:
    """What to record in ranked.json / checkpoint metadata: the name, or "custom" for a dict."""
    if order is None:
        return "prefix"
    return order if isinstance(order, str) else "custom"


def resolve_orders(model: Any, order: Any, *, adapter: Any = None, text: Any = None
                   ) -> dict[int, dict[str, list[int]]] | None:
    """A name (computed once, deterministic: seed 0) or an explicit orders dict (validated) ->
    ``{layer: {"heads": [...], "ffn": [...]}}``, or ``None`` for prefix (keep the first units)."""
    from ..errors import UserError
    from ..models import get_adapter

    if order is None or (isinstance(order, str) and order == "prefix"):
        return None
    if isinstance(order, str):
        if order not in ORDER_NAMES:
            raise UserError(f"unknown unit order {order!r}; choose one of: {', '.join(ORDER_NAMES)} "
                            "(or pass an explicit orders dict)")
        return compute_orders(model, order, adapter=adapter, text=text)
    if isinstance(order, Mapping):
        return validate_orders(order, adapter or get_adapter(model))
    raise UserError(f"unit order must be a name ({', '.join(ORDER_NAMES)}) or an orders dict, got {type(order).__name__}")


def validate_orders(orders: Mapping, adapter: Any, *, partial: bool = False) -> dict[int, dict[str, list[int]]]:
    """Check an explicit orders dict against the model's geometry; normalise keys to int.

    Every layer must be present; per layer, "heads" must be a permutation of the KV groups and
    "ffn" of the FFN channels (a missing or null entry keeps that dimension's prefix order).
    ``partial``: check only the layers given (``plan_layer`` validating one layer).
    """
    from ..errors import UserError

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
        sizes = {"heads": geo.num_kv_heads if geo.num_kv_heads != geo.num_heads else geo.num_heads,
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


#: what ``save_orders`` writes and ``load_orders`` checks (the sidecar of a ranked.json)
SAVED_ORDERS_FORMAT = "zerolm-prune unit orders"


def orders_fingerprint(adapter: Any) -> dict[str, Any]:
    """The geometry an orders dict is tied to: layer count, hidden size, per-layer KV groups and
    FFN widths (what ``validate_orders`` checks, plus the hidden size, in one comparable dict)."""
    geos = [adapter.geometry(l) for l in range(adapter.num_layers)]
    return {"layers": adapter.num_layers, "hidden_size": int(adapter.hidden_size),
            "kv_groups": [int(g.num_kv_heads if g.num_kv_heads != g.num_heads else g.num_heads) for g in geos],
            "ffn": [int(g.ffn_dim) for g in geos]}


def save_orders(path: Any, orders: Mapping, *, name: str, adapter: Any, model: Any = None) -> Any:
    """Write the exact orders dict a ranking was scored with (compact JSON, atomic), so that
    ``prune`` cuts the same units instead of recomputing them (selfgen can flip near-tied units
    under another thread count). ``load_orders`` reads it back."""
    from ..atomic import write_json

    checked = validate_orders(orders, adapter)
    data = {"format": SAVED_ORDERS_FORMAT, "version": 1, "order": name, "model": model,
            "fingerprint": orders_fingerprint(adapter),
            "orders": {str(l): checked[l] for l in sorted(checked)}}
    return write_json(path, data, indent=None)


def load_orders(path: Any, adapter: Any, *, name: str | None = None) -> dict[int, dict[str, list[int]]]:
    """The orders dict ``save_orders`` wrote, checked against ``adapter`` (one-line UserErrors):
    the file's format, its order name (when ``name`` is given), the model fingerprint and each
    layer's permutations (``validate_orders``)."""
    import json
    from pathlib import Path

    from ..errors import UserError

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
    import sys
    from pathlib import Path

    from ..errors import UserError

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
        if order and order not in ORDER_NAMES:
            raise UserError(f"unknown unit order {order!r}; choose one of: {', '.join(ORDER_NAMES)}")
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
    from pathlib import Path

    from ..errors import UserError
    from ..loading import resolve

    try:
        a, b = resolve(str(ranked_on)), resolve(str(applied_to))
    except UserError:  # a folder that is gone: cannot tell, so say so
        return True
    if a == b:
        return False
    pa, pb = Path(a), Path(b)
    return not (pa.is_dir() and pb.is_dir() and pa.resolve() == pb.resolve())


def _desc(values: np.ndarray) -> list[int]:
    """Indices by decreasing value; ties keep the original (prefix) order."""
    return [int(i) for i in np.argsort(-np.asarray(values), kind="stable")]
