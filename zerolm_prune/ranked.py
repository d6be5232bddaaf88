"""ranked.json: the file ``rank`` and ``run`` write and ``prune``, ``eval`` and ``score`` read.

One writer (atomic, with the unit orders sidecar) and one reader (``path#k`` picks entry k), so
every command agrees on the format.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .atomic import write_json
from .errors import UserError
from .units import save_orders


def write_ranked(path: str, document: dict, *, orders: dict | None = None, adapter=None) -> None:
    """Write ranked.json atomically (a temp file in the same folder, then ``os.replace``).

    ``orders``: the unit orders dict the subnets were scored with (``compute_orders``; needs
    ``adapter``). It goes to a sidecar next to the file (``ranked.json`` -> ``ranked.orders.json``,
    written first, so the ranked file never names a sidecar that is not there yet), named in the
    document as ``"orders_file"`` (relative to the ranked file), so that ``prune`` cuts exactly
    these units instead of recomputing the order.
    """
    if orders is not None:
        target = Path(path)
        stem = target.name[:-len(".json")] if target.name.endswith(".json") else target.name
        sidecar = target.with_name(f"{stem}.orders.json")
        save_orders(sidecar, orders, name=document.get("order"), adapter=adapter, model=document.get("model"))
        header = {k: v for k, v in document.items() if k != "subnets"}  # the name before the long list
        document = {**header, "orders_file": sidecar.name,
                    **({"subnets": document["subnets"]} if "subnets" in document else {})}
    write_json(path, document)


def read_ranked(spec: str, *, allow_bare: bool = True) -> list[dict]:
    """Entries of a ranked.json; ``ranked.json#k`` selects entry k (0-based position in the file).

    The one reader of subnet files (``prune``, ``eval`` and ``score`` build on it). With
    ``allow_bare``, a file holding a single subnet (``{"heads": [...], "ffn": [...]}``) reads as one
    entry with an empty ``source``.

    For files written by ``rank`` the position equals the entry's ``rank`` (best first); files
    written by the ``run`` driver may add baselines (``rank`` null) after the ranked ones, and
    ``prune``/``eval`` count positions the same way. Each entry is ``{"rank", "score", "params",
    "macs", "subnet": {...}}``; turn ``subnet`` into a ``Subnet`` with ``Subnet.from_dict``. The
    document's other keys (model, space, alpha, ...) are copied into each entry under ``"source"``;
    ``source["orders_file"]``, when there, names the unit orders sidecar (``write_ranked``) relative
    to the file's folder.
    """
    path, _, pick = spec.partition("#")
    if not os.path.isfile(path):
        raise UserError(f"{path}: file not found; write one with `zerolm-prune rank ... --out {path}`")
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}); rewrite it with `zerolm-prune rank`") from None
    if allow_bare and isinstance(doc, dict) and "heads" in doc and "ffn" in doc and "subnets" not in doc:
        if pick:
            raise UserError(f"{path} is a single subnet; drop '#{pick}'")
        return [{"subnet": doc, "source": {}}]
    if not isinstance(doc, dict) or not isinstance(doc.get("subnets"), list):
        raise UserError(f"{path} has no 'subnets' list; is it a ranked.json written by `zerolm-prune rank`?")
    if not doc["subnets"]:
        raise UserError(f"{path} lists no subnets; rerun `zerolm-prune rank` with a feasible budget")
    source = {k: v for k, v in doc.items() if k != "subnets"}
    entries = []
    for i, entry in enumerate(doc["subnets"]):
        if not isinstance(entry, dict) or "subnet" not in entry:
            raise UserError(f"{path}: entry {i} has no 'subnet'; rewrite the file with `zerolm-prune rank`")
        entries.append({**entry, "source": source})
    if not pick:
        return entries
    try:
        k = int(pick)
    except ValueError:
        raise UserError(f"{spec!r}: the part after '#' must be an entry index such as #0") from None
    if not 0 <= k < len(entries):
        raise UserError(f"{path} has no entry {k} (it has entries 0..{len(entries) - 1}); pick one of those")
    return [entries[k]]
