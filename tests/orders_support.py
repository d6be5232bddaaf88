"""Shared by the tests of saved unit orders (tests/test_saved_orders.py, tests/test_eval_orders.py).

A selfgen ``rank`` on the real SmolLM2-135M with a spy on ``compute_orders``, and the checks that a
checkpoint or an evaluated subnet cut exactly the units an orders dict names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import zerolm_prune.rankers.orders as orders_mod
from zerolm_prune.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMOL = str(ROOT / "recipes" / "smollm2-135m.yaml")
REAL_COMPUTE = orders_mod.compute_orders
WEIGHTS = ("mlp.gate_proj.weight", "mlp.down_proj.weight", "self_attn.k_proj.weight", "self_attn.q_proj.weight")


def rank_selfgen(folder: Path, top_k: int) -> tuple[Path, dict]:
    """``rank --order selfgen`` into ``folder``, and the orders dict rank actually computed."""
    out = folder / "ranked.json"
    computed = []

    def spy(*args, **kwargs):
        computed.append(REAL_COMPUTE(*args, **kwargs))
        return computed[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(orders_mod, "compute_orders", spy)
        assert main(["rank", "smollm2-135m", "--space", SMOL, "--budget", "0.8", "--top-k", str(top_k),
                     "--order", "selfgen", "--ranker", "zerolm", "--out", str(out)]) == 0
    assert len(computed) == 1 and json.loads(out.read_text())["orders_file"] == "ranked.orders.json"
    return out, computed[0]


def copy_ranked(out: Path, tmp_path: Path) -> Path:
    """The ranked file and its sidecar in a folder of one test's own (tests may tamper with it)."""
    folder = tmp_path / "ranked"
    folder.mkdir()
    for name in ("ranked.json", "ranked.orders.json"):
        shutil.copyfile(out.parent / name, folder / name)
    return folder / "ranked.json"


def forbid_recompute(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the unit order was recomputed instead of using the saved one")

    monkeypatch.setattr(orders_mod, "compute_orders", refuse)


def count_recomputes(monkeypatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(orders_mod, "compute_orders", lambda *a, **k: calls.append(a[1]) or REAL_COMPUTE(*a, **k))
    return calls


def assert_cut_by(weights: dict, base: dict, orders: dict, subnet: dict, adapter, layers) -> None:
    """The subnet's rows/columns are exactly the first units of ``orders`` in each of ``layers``."""
    for l in layers:
        geo = adapter.geometry(l)
        per, hd = geo.heads_per_kv_group, geo.head_dim
        channels = sorted(orders[l]["ffn"][: subnet["ffn"][l]])
        groups = sorted(orders[l]["heads"][: subnet["heads"][l] // per])
        kv_rows = [g * hd + d for g in groups for d in range(hd)]
        q_rows = [(g * per + j) * hd + d for g in groups for j in range(per) for d in range(hd)]
        p = f"model.layers.{l}."
        want = {"mlp.gate_proj.weight": base[p + "mlp.gate_proj.weight"][channels],
                "mlp.down_proj.weight": base[p + "mlp.down_proj.weight"][:, channels],
                "self_attn.k_proj.weight": base[p + "self_attn.k_proj.weight"][kv_rows],
                "self_attn.q_proj.weight": base[p + "self_attn.q_proj.weight"][q_rows]}
        for name, tensor in want.items():
            got = weights[p + name]
            assert torch.equal(got, tensor.to(got.dtype)), f"layer {l} {name}"


def cut_layers(subnet: dict, adapter) -> list[int]:
    """Layers where the subnet drops both KV groups and FFN channels (so the order decides what stays)."""
    return [l for l in range(adapter.num_layers)
            if subnet["heads"][l] < adapter.geometry(l).num_heads and subnet["ffn"][l] < adapter.geometry(l).ffn_dim]
