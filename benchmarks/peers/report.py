"""benchmarks/peers/results*.json -> the tables of benchmarks/PEERS.md (printed; the page's prose
is written by hand around them).

    PYTHONPATH=. python -m benchmarks.peers.report
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import common as C

HERE = Path(__file__).resolve().parent

DATA = {"dense": "-", "flap": "calib", "flap-nobias": "calib", "wanda-sp": "calib", "llm-pruner": "calib (grads)",
        "shortgpt": "calib", "l2": "no", "ours": "no", "ours-comp": "no", "ours-fluc": "no", "flap-selfgen": "no"}
LABEL = {"dense": "dense", "flap": "FLAP (WIFV, AL-AM, bias)", "flap-nobias": "FLAP units, no bias",
         "wanda-sp": "Wanda-sp, uniform", "llm-pruner": "LLM-Pruner element-wise Taylor, uniform",
         "shortgpt": "ShortGPT (block influence)", "l2": "L2 magnitude, uniform",
         "ours": "zerolm-prune default (selfgen ranker + order)",
         "ours-comp": "default + selfgen bias compensation",
         "ours-fluc": "default subnet + selfgen fluctuation order + compensation",
         "flap-selfgen": "FLAP metric/structure/bias on selfgen text (no data)"}
TEXTS = ("wiki", "lambada")


def load_rows() -> list[dict]:
    rows = []
    for path in sorted(HERE.glob("results*.json")):
        rows += json.loads(path.read_text())
    return rows


def _arr(row: dict, text: str) -> tuple[np.ndarray, np.ndarray]:
    return np.array(row[text]["nll"]), np.array(row[text]["tokens"])


def table(rows: list[dict], budget: float, ref: str = "flap") -> str:
    here = [r for r in rows if r["budget"] == budget or r["method"] == "dense"]
    refrow = next((r for r in here if r["method"] == ref and r["budget"] == budget), None)
    head = ("| method | data | params (of full) | prune s | ppl wiki [95% CI] | ppl lambada [95% CI] | "
            f"wiki ratio to {ref} | lambada ratio to {ref} |")
    lines = [head, "|" + "---|" * 8]
    for r in sorted(here, key=lambda r: list(LABEL).index(r["method"])):
        cells = [LABEL[r["method"]], DATA[r["method"]], f"{r['params'] / 1e6:.2f}M ({r['params_frac']:.4f})",
                 f"{r['prune_s']:.0f}"]
        for t in TEXTS:
            lo, hi = C.ppl_interval(_arr(r, t))
            cells.append(f"{r[t]['ppl']:.1f} [{lo:.1f}, {hi:.1f}]")
        for t in TEXTS:
            if refrow is None or r is refrow:
                cells.append("-")
            else:
                p, lo, hi = C.paired_ratio(_arr(r, t), _arr(refrow, t))
                cells.append(f"{p:.2f} [{lo:.2f}, {hi:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    rows = load_rows()
    for budget in sorted({r["budget"] for r in rows if r["method"] != "dense"}, reverse=True):
        print(f"\n### {budget:.1f} of the whole model\n")
        print(table(rows, budget))
        shapes = {r["method"]: r["shape"] for r in rows if r["budget"] == budget and r["method"] != "dense"}
        for m, s in shapes.items():
            print(f"\n- {m}: KV groups per layer {''.join(str(g) for g, _ in s)}; FFN {[f for _, f in s]}")


if __name__ == "__main__":
    main()
