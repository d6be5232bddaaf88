"""README.md model cards for pruned folders, in Hugging Face conventions.

Why: a pruned checkpoint without a card is a mystery file. The hub reads the YAML front matter
(``base_model`` links the parent, ``tags`` make it findable, ``model-index`` fills the
evaluation widget), people read the body: what was kept, how big it is, how it scores.
Nothing secret goes in: values that look like access tokens are refused.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import SecretInOutput
from .tokens import contains_token

TAGS = ["pruned", "zerolm-prune"]
#: hub ids of the built-in assets, so that ``base_model`` links a real repository
HUB_IDS = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct", "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_base_model(name: Any) -> str | None:
    """A hub id for ``base_model`` (the hub rejects local paths there), or None."""
    if not name:
        return None
    name = HUB_IDS.get(str(name), str(name))
    return name if _REPO_ID.match(name) else None
#: metric reported per task, as the literature does (see DESIGN.md)
PRIMARY_METRIC = {"hellaswag": "acc_norm", "arc_challenge": "acc_norm", "openbookqa": "acc_norm"}


def _check_no_tokens(value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_no_tokens(k)
            _check_no_tokens(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_no_tokens(v)
    elif isinstance(value, str) and contains_token(value):
        raise SecretInOutput("model card fields contain an access token; refusing to write it")


def _metric_rows(results: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(task, metric, value) rows from ``evaluate_model`` output or ``{task: {metric: value}}``."""
    rows = []
    tasks = results.get("tasks", results) if isinstance(results, dict) else {}
    for task, metrics in tasks.items():
        if not isinstance(metrics, dict):
            continue
        preferred = PRIMARY_METRIC.get(task, "acc")
        names = [preferred] if preferred in metrics else [m for m in metrics if isinstance(metrics[m], (int, float))]
        for name in names[:2]:
            value = metrics[name]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((task, name, float(value)))
    return rows


def _fmt_params(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    return f"{n / 1e6:.1f}M" if n < 1e9 else f"{n / 1e9:.2f}B"


def _subnet_lines(subnet: dict[str, Any]) -> list[str]:
    heads, ffn = subnet.get("heads", []), subnet.get("ffn", [])
    lines = ["| layer | heads | FFN |" + "".join(f" rank {g} |" for g in sorted(subnet.get("ranks") or {})),
             "|---:|---:|---:|" + "---:|" * len(subnet.get("ranks") or {})]
    ranks = subnet.get("ranks") or {}
    for i, (h, f) in enumerate(zip(heads, ffn)):
        lines.append(f"| {i} | {h} | {f} |" + "".join(f" {ranks[g][i]} |" for g in sorted(ranks)))
    return lines


def front_matter(fields: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    base = hub_base_model(fields.get("base_model"))
    if base:
        meta["base_model"] = base
    meta["tags"] = TAGS + [t for t in fields.get("tags", []) if t not in TAGS]
    meta["library_name"] = "transformers"
    if fields.get("license"):
        meta["license"] = fields["license"]
    rows = _metric_rows(fields.get("results") or {})
    if rows:
        name = fields.get("model_name") or "pruned-model"
        meta["model-index"] = [{
            "name": str(name),
            "results": [{
                "task": {"type": "text-generation" if fields.get("causal", True) else "feature-extraction"},
                "dataset": {"name": task, "type": task},
                "metrics": [{"type": metric, "value": round(value, 4)}],
            } for task, metric, value in rows],
        }]
    return meta


def render(fields: dict[str, Any]) -> str:
    """The README.md text. Known fields: base_model, model_name, params_before, params_after,
    subnet (Subnet JSON), score (proxy score), alpha, order, budget, format, results, tags, license."""
    _check_no_tokens(fields)
    meta = front_matter(fields)
    title = fields.get("model_name") or (f"{fields['base_model']} (pruned)" if fields.get("base_model") else "Pruned model")
    ranked = isinstance(fields.get("score"), (int, float))
    body = [f"# {title}", "",
            "Structured-pruned with [zerolm-prune](https://pypi.org/project/zerolm-prune/): whole attention heads "
            "(KV groups with their query heads) and FFN channels were removed"
            + (", keeping the LoNAS-style subnet that ZeroLM capacity ranked best, data-free." if ranked else "."), ""]
    before, after = fields.get("params_before"), fields.get("params_after")
    facts = [("base model", fields.get("base_model")),
             ("parameters", f"{_fmt_params(before)} -> {_fmt_params(after)}"
              + (f" ({after / before:.1%})" if isinstance(before, (int, float)) and isinstance(after, (int, float)) and before else "")
              if before or after else None),
             ("proxy score", f"{fields['score']:.6g}" if isinstance(fields.get("score"), (int, float)) else None),
             ("alpha", fields.get("alpha")), ("budget", fields.get("budget")),
             ("channel order", fields.get("order")), ("format", fields.get("format"))]
    body += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts if v is not None] + [""]
    if fields.get("format") == "layer_shapes":
        body += ["Layers have different widths, so this folder ships its own modelling code:", "", "```python",
                 "from transformers import AutoModelForCausalLM",
                 "model = AutoModelForCausalLM.from_pretrained(PATH, trust_remote_code=True)", "```", ""]
    rows = _metric_rows(fields.get("results") or {})
    if rows:
        body += ["## Evaluation", "", "| task | metric | value |", "|---|---|---:|"]
        body += [f"| {t} | {m} | {v:.4f} |" for t, m, v in rows] + [""]
    if fields.get("subnet"):
        body += ["## Subnet", ""] + _subnet_lines(fields["subnet"]) + [""]
    text = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n" + "\n".join(body)
    _check_no_tokens(text)
    return text


def parse_front_matter(text: str) -> dict[str, Any]:
    """The YAML block of a README.md (for tests and ``publish --dry-run``)."""
    if not text.startswith("---\n"):
        return {}
    end = text.index("\n---", 4)
    return yaml.safe_load(text[4:end]) or {}
