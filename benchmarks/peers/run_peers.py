"""Run the peers and our pipeline at whole-model parameter budgets; per-document NLL to a JSON.

    PYTHONPATH=. python -m benchmarks.peers.run_peers --budgets 0.8 --methods dense,flap,ours,ours-comp

Resumable: every (method, budget) row is written to --out as soon as it is measured and skipped
when already there (with the same text settings). ``python -m benchmarks.peers.report`` turns the
JSON into benchmarks/PEERS.md.

Methods: dense; flap, flap-nobias (FLAP's unit choice without its bias); wanda-sp; llm-pruner;
shortgpt; l2 (magnitude); ours (the default pipeline: selfgen ranker + selfgen order, what
``zerolm-prune run`` saves); ours-comp (the same subnet + bias compensation on self-generated
text, ``materialize(..., compensate=True)``); flap-selfgen (FLAP's metric, structure and bias with
the self-generated text in place of the calibration text: no data).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from . import common as C
from . import methods as M

HERE = Path(__file__).resolve().parent
OURS_CACHE = Path("/tmp/wt13/ours_table.json")  # not in git: a cache of the slow search table
CTABLE_CACHE = Path("/tmp/wt13/ours_ctable.json")


class Lazy:
    """Shared, once-computed inputs: calibration statistics, our search table, selfgen stats."""

    def __init__(self, model, tok, calib_seqs: int):
        self.model, self.tok, self.calib_seqs = model, tok, calib_seqs
        self._cache: dict = {}
        self.times: dict = {}

    def get(self, name, fn):
        if name not in self._cache:
            t = time.time()
            self._cache[name] = fn()
            self.times[name] = time.time() - t
        return self._cache[name]

    def calib(self):
        return self.get("calib_ids", lambda: C.calib_ids(self.tok)[: self.calib_seqs])

    def stats(self):
        return self.get("stats", lambda: C.map_stats(self.model, self.calib()))

    def selfgen_stats(self, seqs: int = 2):
        """FLAP's statistics on the self-generated text instead of calibration data."""
        def build():
            from zerolm_prune.rankers.selfgen import self_text

            ids = self_text(self.model, seqs=seqs, length=128, seed=0)
            return C.map_stats(self.model, ids, skip_first=1)
        return self.get("selfgen_stats" if seqs == 2 else f"selfgen_stats{seqs}", build)

    def means16(self):
        """Compensation means on 16 x 128 self-generated tokens (the default uses 2 x 128)."""
        return self.get("selfgen_means16", lambda: self.selfgen_stats(16).mean)

    def ours(self):
        """Our search table (selfgen order, selfgen-kl values), cached on disk between runs:
        it is the slow part and does not depend on the budget."""
        def build():
            import numpy as np

            from zerolm_prune.driver import Scoring, make_scoring
            from zerolm_prune.models import get_adapter
            from zerolm_prune.proxy import CapacityTable
            from zerolm_prune.rankers import get_ranker
            from zerolm_prune.rankers.orders import compute_orders, validate_orders
            from zerolm_prune.space import load_space

            adapter = get_adapter(self.model)
            space = load_space("smollm2-135m", model="smollm2-135m")
            if OURS_CACHE.is_file():
                saved = json.loads(OURS_CACHE.read_text())
                orders = validate_orders(saved["orders"], adapter)
                table = CapacityTable.from_model(self.model, space, order=orders, adapter=adapter, progress=False)
                ranker = get_ranker("selfgen", unit_order=orders, progress=False)
                scoring = Scoring("selfgen", [np.array(v) for v in saved["values"]], ranker, 1.0)
                self.times["ours_table_cached"] = saved["seconds"]
                return adapter, orders, table, scoring
            t = time.time()
            orders = compute_orders(self.model, "selfgen", adapter=adapter)
            table = CapacityTable.from_model(self.model, space, order=orders, adapter=adapter, progress=False)
            scoring = make_scoring(None, table, self.model, adapter, 1.0, progress=False, unit_orders=orders)
            OURS_CACHE.parent.mkdir(parents=True, exist_ok=True)
            OURS_CACHE.write_text(json.dumps({"orders": {str(k): v for k, v in orders.items()},
                                              "values": [v.tolist() for v in scoring.values],
                                              "seconds": time.time() - t}))
            return adapter, orders, table, scoring
        return self.get("ours_table", build)

    def means(self):
        from zerolm_prune.compensate import selfgen_means

        return self.get("selfgen_means", lambda: selfgen_means(self.model))


def prune(method: str, model, lazy: Lazy, budget: float, full: int):
    """A pruned copy of ``model`` and what it keeps (for the record)."""
    net = copy.deepcopy(model)
    info: dict = {}
    if method == "dense":
        return net, info
    if method in ("flap", "flap-nobias"):
        M.flap(net, lazy.stats(), budget, full, bias=method == "flap")
    elif method == "flap-selfgen":
        M.flap(net, lazy.selfgen_stats(), budget, full, bias=True)
    elif method == "flap-selfgen16":
        M.flap(net, lazy.selfgen_stats(16), budget, full, bias=True)
    elif method == "ours-comp16":
        from zerolm_prune.driver import search_top_k
        from zerolm_prune.materialize import materialize
        from zerolm_prune.space import Subnet

        del net
        adapter, orders, table, scoring = lazy.ours()
        best = search_top_k(table, scoring, budget=budget, top_k=1, model=model, adapter=adapter)[0]
        net = materialize(model, Subnet.from_dict(best["subnet"]), order=orders, compensate=lazy.means16())
        info["subnet"] = best["subnet"]
    elif method == "wanda-sp":
        M.wanda_sp(net, lazy.stats(), budget, full)
    elif method == "l2":
        M.magnitude(net, None, budget, full)
    elif method == "llm-pruner":
        M.llm_pruner(net, lazy.calib(), budget, full)
    elif method == "shortgpt":
        M.shortgpt(net, lazy.stats(), budget, full)
        info["dropped_layers"] = net.shortgpt_dropped
    elif method == "ours-fluc":  # our subnet, units by fluctuation on selfgen text, compensated
        from benchmarks.peers.compensate_variants import fluctuation_orders
        from zerolm_prune.driver import search_top_k
        from zerolm_prune.materialize import materialize
        from zerolm_prune.space import Subnet

        del net
        adapter, orders, table, scoring = lazy.ours()
        best = search_top_k(table, scoring, budget=budget, top_k=1, model=model, adapter=adapter)[0]
        fluc = lazy.get("fluc_orders", lambda: fluctuation_orders(model))
        net = materialize(model, Subnet.from_dict(best["subnet"]), order=fluc, compensate=lazy.means())
        info["subnet"] = best["subnet"]
    elif method == "ours-ctable":  # search table and re-rank measured with the compensated cut
        from zerolm_prune.materialize import materialize
        from zerolm_prune.space import Subnet

        del net
        best, fluc = compensated_search(model, lazy, budget)
        net = materialize(model, Subnet.from_dict(best["subnet"]), order=fluc, compensate=lazy.means())
        info["subnet"] = best["subnet"]
    elif method in ("ours", "ours-comp"):
        from zerolm_prune.driver import search_top_k
        from zerolm_prune.materialize import materialize
        from zerolm_prune.space import Subnet

        del net
        adapter, orders, table, scoring = lazy.ours()
        best = search_top_k(table, scoring, budget=budget, top_k=1, model=model, adapter=adapter)[0]
        comp = lazy.means() if method == "ours-comp" else None
        net = materialize(model, Subnet.from_dict(best["subnet"]), order=orders, compensate=comp)
        info["subnet"] = best["subnet"]
    else:
        raise SystemExit(f"unknown method {method}")
    return net, info


def compensated_search(model, lazy: Lazy, budget: float):
    """Our search with every measurement (selfgen-kl table, fidelity re-rank) taken on the
    compensated cut under the fluctuation order (``compensate_variants.sliced_compensated``)."""
    import functools

    import numpy as np

    from benchmarks.peers import compensate_variants as compensate
    from zerolm_prune.driver import Scoring, make_scoring, search_top_k
    from zerolm_prune.models import get_adapter
    from zerolm_prune.proxy import CapacityTable
    from zerolm_prune.rankers import apply, get_ranker
    from zerolm_prune.space import load_space

    adapter = get_adapter(model)
    space = load_space("smollm2-135m", model="smollm2-135m")
    fluc = lazy.get("fluc_orders", lambda: compensate.fluctuation_orders(model))
    means = lazy.means()
    original = apply.sliced
    apply.sliced = functools.partial(compensate.sliced_compensated, means=means)
    try:
        def build():
            table = CapacityTable.from_model(model, space, order=fluc, adapter=adapter, progress=False)
            if CTABLE_CACHE.is_file():
                values = [np.array(v) for v in json.loads(CTABLE_CACHE.read_text())["values"]]
                return table, Scoring("selfgen", values, get_ranker("selfgen", unit_order=fluc, progress=False), 1.0)
            scoring = make_scoring(None, table, model, adapter, 1.0, progress=False, unit_orders=fluc)
            CTABLE_CACHE.write_text(json.dumps({"values": [v.tolist() for v in scoring.values]}))
            return table, scoring
        table, scoring = lazy.get("ctable", build)
        best = search_top_k(table, scoring, budget=budget, top_k=1, model=model, adapter=adapter)[0]
    finally:
        apply.sliced = original
    return best, fluc


def shape_of(net) -> list:
    out = []
    for layer in net.model.layers:
        if isinstance(layer, C.SkipLayer):
            out.append([0, 0])
            continue
        a, m = layer.self_attn, layer.mlp
        g = 0 if isinstance(a, C.ConstantAttention) else a.k_proj.weight.shape[0] // 64
        f = 0 if isinstance(m, C.ConstantMLP) else m.up_proj.weight.shape[0]
        out.append([g, f])
    return out


SHARED = {"flap": ["calib_ids", "stats"], "flap-nobias": ["calib_ids", "stats"], "wanda-sp": ["calib_ids", "stats"],
          "shortgpt": ["calib_ids", "stats"], "llm-pruner": ["calib_ids"], "flap-selfgen": ["selfgen_stats"],
          "ours": ["ours_table"], "ours-comp": ["ours_table", "selfgen_means"],
          "ours-fluc": ["ours_table", "selfgen_means", "fluc_orders"],
          "ours-ctable": ["ctable", "selfgen_means", "fluc_orders"],
          "flap-selfgen16": ["selfgen_stats16"], "ours-comp16": ["ours_table", "selfgen_stats16", "selfgen_means16"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="0.8")
    ap.add_argument("--methods", default="dense,flap,ours,ours-comp")
    ap.add_argument("--n-wiki", type=int, default=20)
    ap.add_argument("--n-lambada", type=int, default=40)
    ap.add_argument("--calib-seqs", type=int, default=C.CALIB_SEQS)
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.is_file() else []
    settings = {"n_wiki": args.n_wiki, "n_lambada": args.n_lambada, "calib": [args.calib_seqs, C.CALIB_LEN]}
    model, tok = C.load_model()
    full = C.n_params(model)
    texts = C.eval_texts()
    texts = {"wiki": texts["wiki"][: args.n_wiki], "lambada": texts["lambada"][: args.n_lambada]}
    lazy = Lazy(model, tok, args.calib_seqs)
    for budget in [float(b) for b in args.budgets.split(",")]:
        for method in args.methods.split(","):
            b = 1.0 if method == "dense" else budget
            if any(r["method"] == method and r["budget"] == b and r["settings"] == settings for r in rows):
                continue
            t = time.time()
            net, info = prune(method, model, lazy, b, full)
            shared = SHARED.get(method, []) + (["ours_table_cached"] if "ours_table" in SHARED.get(method, []) else [])
            seconds = time.time() - t + sum(lazy.times.get(k, 0.0) for k in shared)
            row = {"method": method, "budget": b, "settings": settings, "params": C.n_params(net),
                   "params_frac": C.n_params(net) / full, "prune_s": seconds, "shape": shape_of(net), **info}
            for name, docs in texts.items():
                nll, cnt = C.doc_nll(net, tok, docs)
                row[name] = {"nll": nll.tolist(), "tokens": cnt.tolist(), "ppl": C.ppl(nll, cnt)}
            print(method, b, f"{row['params_frac']:.4f}", {k: round(row[k]["ppl"], 2) for k in texts},
                  f"{seconds:.0f}s", flush=True)
            rows.append(row)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(rows))
            tmp.replace(out)
            del net


if __name__ == "__main__":
    main()
