"""The pruning driver: checkpoint -> ranked subnets -> saved checkpoints -> evaluated report.

``prune_to_budget`` is what ``zerolm-prune run`` (and ``make demo``) calls. Every step writes its
output into the run folder before the next starts, and a rerun with the same arguments reuses
what is already there (ranked candidates, saved checkpoints, finished evaluations), so a crash or
Ctrl-C loses at most the task in flight. Baseline candidates at the same budget (the LoNAS
heuristic subnet, the best uniform subnet, a random subnet) sit in the same report so a user
sees whether the data-free ranking helped.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import loading
from .atomic import write_json, write_text
from .checkpoint import save_pretrained
from .errors import UserError
from .eval_runs import run_candidates
from .evaluate import is_causal_lm
from .materialize import materialize
from .modelcard import render
from .models import get_adapter
from .paths import confine
from .plots import plot_front
from .proxy import CapacityTable
from .proxy.alpha import param_correlation_alpha_for_table
from .ranked import write_ranked
from .rankers import DEFAULT_RANKER, RANKERS, get_ranker, ranker_class
from .rankers import orders as rank_orders
from .recover.run_step import recover_candidates
from .report import (EVAL_DIR, FRONT_FILE, MODELS_DIR, RANKED_FILE, REPORT_JSON, REPORT_MD, RUN_FILE,  # noqa: F401
                     build_report, render_report)
from .search import DEFAULT_ALPHA, check_search, front_for_plot, layer_costs, rank_subnets
from .space import Subnet, load_space, validate_space
from .units import WEIGHT_ONLY_ORDERS, check_order_name, load_orders


@dataclass
class RunSettings:
    """Everything that decides a run's results; a rerun must match it to reuse finished work."""

    model: str = "smollm2-135m"
    space: str = "smollm2-135m"  # the shipped recipe, found from any working directory
    budget: float = 0.8
    by: str = "params"
    top_k: int = 3
    alpha: float | str | None = None
    order: str | None = None
    ranker: str | None = None
    suite: str = "commonsense"
    limit: int | None = None
    source: str = "local"
    data_dir: str | None = None
    baselines: bool = True
    save: bool = True
    seed: int = 0
    perplexity: bool = True
    perplexity_limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _check_settings(out: Path, settings: RunSettings) -> None:
    """Refuse to mix two different runs in one folder: results would silently disagree."""
    path = out / RUN_FILE
    wanted = asdict(settings)
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = None
        if previous is not None and previous != wanted:
            diff = sorted(k for k in set(previous) | set(wanted) if previous.get(k) != wanted.get(k))
            raise UserError(
                f"{out} holds a run with other settings ({', '.join(diff)}); rerun with the same arguments "
                "to resume, or pick another --out"
            )
    write_json(path, wanted)


# ---- candidates -------------------------------------------------------------------------------
def uniform_subnet_indices(table, costs: list[np.ndarray], fixed: float, budget: float, alpha: float) -> np.ndarray | None:
    """The uniform subnet (same choice in every layer) with the most cost under the budget.

    Uniform pruning is the baseline every structured-pruning paper reports; it needs every layer
    to offer the same choices, otherwise there is no uniform subnet and None comes back.
    """
    options = table.options
    if any(opts != options[0] for opts in options):
        return None
    best = None
    for o in range(len(options[0])):
        idx = np.full(len(options), o, dtype=np.int64)
        cost = fixed + sum(float(c[o]) for c in costs)
        if cost > budget:
            continue
        key = (cost, float(table.score_indices(idx[None, :], alpha)[0]))
        if best is None or key > best[0]:
            best = (key, idx)
    return None if best is None else best[1]


def random_subnet_indices(costs: list[np.ndarray], fixed: float, budget: float, *, seed: int,
                          window: float = 0.05, tries: int = 200_000) -> np.ndarray | None:
    """A uniformly random subnet whose cost lies in [budget*(1-window), budget]: "as big as allowed".

    Rejection sampling in vectorised batches; a random subnet far below the budget would make the
    baseline look worse than it is.
    """
    rng = np.random.default_rng(seed)
    sizes = [len(c) for c in costs]
    batch = 4096
    for _ in range(max(1, tries // batch)):
        idx = np.stack([rng.integers(0, n, size=batch) for n in sizes], axis=1)
        total = fixed + sum(c[idx[:, layer]] for layer, c in enumerate(costs))
        ok = np.nonzero((total <= budget) & (total >= budget * (1 - window)))[0]
        if ok.size:
            return idx[ok[0]]
    return None


@dataclass
class Scoring:
    """How candidates are scored: an additive stage-1 table that the exact search maximises and,
    for two-stage rankers (the default ``selfgen``), a subnet-level score that re-ranks a shortlist.
    ZeroLM is the stage-1 table ``S_FFN + alpha * S_Attn`` with no second stage."""

    name: str
    values: list[np.ndarray]
    ranker: Any = None
    alpha: float = 1.0

    @property
    def two_stage(self) -> bool:
        return self.ranker is not None and callable(getattr(self.ranker, "rerank", None))

    def stage1(self, idx) -> float:
        return float(sum(v[i] for v, i in zip(self.values, idx)))

    def subnet_scores(self, model, subnets: list, adapter) -> list[float] | None:
        if not self.two_stage:
            return None
        return [float(x) for x in self.ranker.score(model, subnets, adapter=adapter)]


def make_scoring(name: str | None, table, model, adapter, alpha: float, *, progress: bool = True,
                 unit_orders: dict | None = None) -> Scoring:
    """The named ranker's stage-1 table over ``table``'s options (``None``: the default ranker),
    computed under the same unit order (``unit_orders``, None = the table's own) that ``materialize``
    will keep, so the score describes the model that gets saved."""
    name = name or DEFAULT_RANKER
    if name == "zerolm":
        return Scoring(name, table.layer_values(alpha), None, alpha)
    options = {"progress": progress} if "progress" in _fields(name) else {}
    if "unit_order" in _fields(name):
        options["unit_order"] = unit_orders if unit_orders is not None else (
            table.order if table.order in WEIGHT_ONLY_ORDERS else "prefix")
    ranker = get_ranker(name, **options)
    if not getattr(ranker, "additive", True):
        raise UserError(f"ranker {name!r} only scores given subnets (zerolm-prune score); pick an additive one "
                        "for search: zerolm, params, energy, selfgen-kl, selfgen")
    return Scoring(name, ranker.layer_values(model, table.space, adapter=adapter), ranker, alpha)


def _fields(name: str) -> set[str]:
    cls = ranker_class(name)
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


def _entry(table, scoring: Scoring, idx: np.ndarray, *, name: str, kind: str, rank: int | None, note: str = "",
           include_lora: bool = False) -> dict:
    return {
        "name": name, "kind": kind, "rank": rank, "score": scoring.stage1(idx), "stage1": scoring.stage1(idx),
        "zerolm": float(table.score_indices(np.asarray(idx)[None, :], scoring.alpha)[0]),
        "params": int(table.total_params(idx, include_lora=include_lora)),
        "macs": int(table.total_macs(idx, include_lora=include_lora)),
        "subnet": table.subnet_at(idx).to_dict(), "indices": [int(i) for i in idx], "note": note,
    }


def default_order(model, adapter) -> str:
    """``selfgen`` where it applies (causal LMs of the LLaMA family), else LoNAS's ``prefix``.

    benchmarks/RANKING.md: keeping the units that write most on self-generated text gave lower
    perplexity than prefix slicing on 13 of 13 SmolLM2 subnets (about 40x, geometric mean)."""
    return "selfgen" if adapter.family == "llama" and is_causal_lm(model) else "prefix"


def _compute_orders(model, name: str, adapter, log) -> dict:
    log(f"      unit order {name}: ranking heads and channels on self-generated text" if name == "selfgen"
        else f"      unit order {name}")
    return rank_orders.compute_orders(model, name, adapter=adapter)


def _saved_orders(ranked_path: Path, document: dict, order: str, adapter, log) -> dict | None:
    """On resume, the unit orders the reused ranked.json was scored with (its sidecar, written by
    ``write_ranked``), so checkpoints and evaluations cut the same units; None, with a note, means
    they must be computed again (a sidecar missing, of another order or model, or unreadable)."""
    name = document.get("orders_file")
    why = None
    if document.get("order") != order:
        why = f"it was scored with order {document.get('order')!r}, not {order!r}"
    elif not isinstance(name, str) or not name:
        why = "it names no saved unit orders file"
    elif not (ranked_path.parent / name).is_file():
        why = f"its unit orders file {name} is missing"
    else:
        try:
            return load_orders(ranked_path.parent / name, adapter, name=order)
        except UserError as err:
            why = str(err)
    log(f"note: reusing {ranked_path}, but {why}; recomputing the {order!r} order "
        "(near-tied units may differ from what was scored)")
    return None


#: how many of the exact search's best subnets a two-stage ranker re-ranks
SHORTLIST = 10


def search_top_k(table, scoring: Scoring, *, budget: float, by: str = "params", top_k: int = 10,
                 include_lora: bool = False, distinct: bool = True, model=None, adapter=None,
                 shortlist: int = SHORTLIST, info=None) -> list[dict]:
    """The exact top-k of ``scoring``'s stage-1 table under the budget; a two-stage ranker first
    takes the exact top ``max(top_k, shortlist)`` and re-orders it by its subnet-level score.
    Entries are ranked.json's, plus ``stage1`` and ``zerolm`` (ZeroLM's S for reference).
    ``info``: the budget as ``search.check_search`` resolved it (None: resolved here)."""
    wanted = max(top_k, shortlist) if scoring.two_stage else top_k
    found = rank_subnets(table, budget=budget, by=by, top_k=wanted, alpha=scoring.alpha, values=scoring.values,
                         include_lora=include_lora, distinct=distinct, info=info)
    entries = [_entry(table, scoring, np.asarray(e["indices"]), name="", kind="proxy", rank=None,
                      include_lora=include_lora) for e in found]
    how = f"{scoring.name} search"
    if scoring.two_stage:
        subnets = [Subnet.from_dict(e["subnet"]) for e in entries]
        scores = scoring.subnet_scores(model, subnets, adapter)
        order = sorted(range(len(entries)), key=lambda i: (-scores[i], i))
        for e, s in zip(entries, scores):
            e["score"] = s
        entries = [entries[i] for i in order]
        how += f", re-ranked among the exact top {len(found)}"
    entries = entries[:top_k]
    for rank, e in enumerate(entries):
        e.update(name=f"top{rank + 1}", rank=rank, note=f"best {rank + 1} by the {how}")
    return entries


def choose_candidates(table, space, settings: RunSettings, scoring: Scoring, model=None, adapter=None, *,
                      info=None) -> tuple[list[dict], dict]:
    """Top-k subnets by the ranker plus the baselines at the same budget, all scored alike.
    ``info``: the budget as ``search.check_search`` resolved it (None: resolved here)."""
    if info is None:
        info = check_search(table, settings.budget, by=settings.by, top_k=settings.top_k)
    candidates = search_top_k(table, scoring, budget=settings.budget, by=settings.by, top_k=settings.top_k,
                              model=model, adapter=adapter, info=info)
    if settings.baselines:
        costs, fixed = layer_costs(table, settings.by, False)
        heuristic = table.indices_of(space.heuristic())
        h_cost = fixed + sum(float(c[i]) for c, i in zip(costs, heuristic))
        candidates.append(_entry(
            table, scoring, heuristic, name="lonas-heuristic", kind="baseline", rank=None,
            note="LoNAS heuristic subnet (middle entry of every list)"
            + ("" if h_cost <= info.absolute else f"; over the budget ({h_cost / info.full:.3f} of the full model)"),
        ))
        uniform = uniform_subnet_indices(table, costs, fixed, info.absolute, scoring.alpha)
        if uniform is not None:
            candidates.append(_entry(table, scoring, uniform, name="uniform", kind="baseline", rank=None,
                                     note="largest uniform subnet (same choice in every layer) within the budget"))
        rand = random_subnet_indices(costs, fixed, info.absolute, seed=settings.seed)
        if rand is not None:
            candidates.append(_entry(table, scoring, rand, name="random", kind="baseline", rank=None,
                                     note=f"random subnet within 5% under the budget (seed {settings.seed})"))
    # one scale for every candidate: the ranked ones already carry the second stage's subnet score
    baselines = [c for c in candidates if c["kind"] == "baseline"]
    final = scoring.subnet_scores(model, [Subnet.from_dict(c["subnet"]) for c in baselines], adapter)
    if final is not None:
        for c, value in zip(baselines, final):
            c["score"] = value
    budget_info = {"absolute": info.absolute, "fraction": info.fraction, "full": info.full, "minimal": info.minimal,
                   "by": settings.by}
    return candidates, budget_info


def _plot_front(path: Path, table, space, candidates: list[dict], budget_info: dict, scoring: Scoring,
                title: str) -> None:
    by = budget_info["by"]
    costs, fixed = layer_costs(table, by, False)
    front, exact = front_for_plot(scoring.values, costs)
    chosen = [(float(c[by]), c["stage1"]) for c in candidates if c["kind"] == "proxy"]
    refs = {c["name"]: (float(c[by]), c["stage1"]) for c in candidates if c["kind"] == "baseline"}
    maximal = table.indices_of(space.maximal())
    total = table.total_params if by == "params" else table.total_macs
    refs["full model"] = (float(total(maximal)), scoring.stage1(maximal))
    ylabel = ("ZeroLM score  S = S_FFN + alpha * S_Attn" if scoring.name == "zerolm"
              else f"{scoring.name} stage-1 score (higher = closer to the full model)")
    plot_front(str(path), [(float(c + fixed), s) for c, s, _ in front], chosen, budget=float(budget_info["absolute"]),
               by=by, references=refs, title=title, exact=exact, ylabel=ylabel)


# ---- the steps of a run (also what ``commands/rank`` calls) -------------------------------------

def resolve_alpha(alpha: float | str | None, table) -> tuple[float, str]:
    """ZeroLM's balance for this table and how it was chosen: None -> ``search.DEFAULT_ALPHA``
    ("default"), ``"auto"`` -> the label-free parameter-correlation heuristic, a number -> itself."""
    if alpha is None:
        return float(DEFAULT_ALPHA), "default"
    if isinstance(alpha, str) and alpha.strip().lower() == "auto":
        choice = param_correlation_alpha_for_table(table)
        return float(choice.alpha), f"auto: {choice.method}"
    try:
        return float(alpha), "given"
    except ValueError:
        raise UserError(f"--alpha must be a number or 'auto', got {alpha!r}") from None


def unit_orders_for(model, adapter, order: str, *, log=None) -> dict | None:
    """The run's unit order resolved once, at the top: None for a weight-only order (computed
    layer by layer from the weights), else the exact dict every later step scores and cuts with."""
    if order in WEIGHT_ONLY_ORDERS:
        return None
    return _compute_orders(model, order, adapter, log or (lambda *_: None))


def capacity_table(model, space, order: str, unit_orders: dict | None, adapter, *, seq_len: int = 1,
                   progress: bool = True):
    """The capacity table of ``model``'s real weights under the resolved unit order."""
    return CapacityTable.from_model(model, space, order=unit_orders or order, adapter=adapter, seq_len=seq_len,
                                    progress=progress)


def _run_settings(model, space, budget, *, by, top_k, alpha, ranker, order, suite, limit, source, data_dir,
                  baselines, save, seed, perplexity, perplexity_limit) -> RunSettings:
    """The run's settings, each checked once (one-line UserErrors before anything loads)."""
    if by not in ("params", "macs"):
        raise UserError(f"--by must be params or macs, got {by!r}")
    if order is not None:
        check_order_name(order)
    if alpha is not None and alpha != "auto":
        try:
            alpha = float(alpha)
        except ValueError:
            raise UserError(f"--alpha must be a number or 'auto', got {alpha!r}") from None

    ranker = ranker or DEFAULT_RANKER
    if ranker not in RANKERS:
        raise UserError(f"unknown ranker {ranker!r}; choose one of: {', '.join(RANKERS)}")
    return RunSettings(model=str(model), space=str(space), budget=float(budget), by=by, top_k=int(top_k),
                       alpha=alpha, ranker=ranker, order=order, suite=suite, limit=limit, source=source,
                       data_dir=str(data_dir) if data_dir else None, baselines=baselines, save=save, seed=seed,
                       perplexity=perplexity, perplexity_limit=perplexity_limit)


def _run_unit_orders(ranked_path: Path, document: dict | None, order: str, model, adapter, log) -> dict | None:
    """The exact dict the candidates were (or will be) scored with: a reused ranking's saved
    sidecar, else computed once (and written beside a reused ranking of the same order)."""
    if order in WEIGHT_ONLY_ORDERS:
        return None
    unit_orders = _saved_orders(ranked_path, document, order, adapter, log) if document else None
    if unit_orders is None:
        unit_orders = unit_orders_for(model, adapter, order, log=log)
        if document is not None and document.get("order") == order:
            # the reused ranking gets the dict this run cuts with, so a later `prune` of
            # ranked.json writes the same checkpoints as this run (not a third recomputation)
            write_ranked(str(ranked_path), document, orders=unit_orders, adapter=adapter)
    return unit_orders


def _rank_step(out: Path, settings: RunSettings, full_model, adapter, search_space, order: str,
               unit_orders: dict | None, *, progress: bool, log) -> dict:
    """Step 2: capacity table, budget (resolved once), ranker, exact top-k + baselines; writes
    ranked.json (+ its unit orders sidecar) and front.png; returns the ranked.json document."""
    log(f"[2/5] capacity table of {search_space.num_layers} layers ({order} order), exact search")
    table = capacity_table(full_model, search_space, order, unit_orders, adapter, progress=progress)
    alpha, alpha_method = resolve_alpha(settings.alpha, table)
    info = check_search(table, settings.budget, by=settings.by, top_k=settings.top_k)  # fails before scoring runs
    ranker = settings.ranker
    log(f"      ranker {ranker}" + ("" if ranker == "zerolm" else " (use --ranker zerolm for ZeroLM as published)"))
    scoring = make_scoring(ranker, table, full_model, adapter, alpha, progress=progress, unit_orders=unit_orders)
    candidates, budget_info = choose_candidates(table, search_space, settings, scoring, full_model, adapter, info=info)
    maximal = table.indices_of(search_space.maximal())
    document = {
        "ranker": ranker,
        "model": settings.model, "space": settings.space, "space_name": search_space.name,
        "budget": budget_info["absolute"], "budget_fraction": budget_info["fraction"], "by": settings.by,
        "alpha": alpha, "alpha_method": alpha_method, "order": order, "table": table.source,
        "full_params": int(table.total_params(maximal)), "full_macs": int(table.total_macs(maximal)),
        "subnets": candidates,
    }
    _plot_front(out / FRONT_FILE, table, search_space, candidates, budget_info, scoring,
                title=f"{settings.model}: exact front under {settings.by}, ranker {ranker}"
                + (f", alpha {alpha:g}" if ranker == "zerolm" else ""))

    write_ranked(str(out / RANKED_FILE), document, orders=unit_orders, adapter=adapter)  # + ranked.orders.json
    return document


def _evaluate_step(settings: RunSettings, candidates: list[dict], order: str, unit_orders: dict | None, out: Path,
                   loaded: tuple[Any, Any], *, batch_size, device, progress: bool, log) -> dict:
    """Step 4: lm-eval (encoders: GLUE probe + fidelity) of the full model and every candidate."""
    causal = _is_causal(loaded[0])
    what = f"suite {settings.suite}" if causal else "GLUE linear probe + fidelity"
    log(f"[4/5] evaluating full model + {len(candidates)} candidates ({what}, limit {settings.limit})")
    return run_candidates(
        settings.model, subnets=candidates, order=order, unit_orders=unit_orders,
        suite=settings.suite if causal else None, limit=settings.limit, source=settings.source,
        data_dir=settings.data_dir, out_dir=out / EVAL_DIR, batch_size=batch_size, device=device,
        with_perplexity=settings.perplexity, perplexity_limit=settings.perplexity_limit, loaded=loaded,
        progress=progress,
    )


# ---- the run ----------------------------------------------------------------------------------
def prune_to_budget(
    model: str = "smollm2-135m",
    space: str = "smollm2-135m",  # the shipped recipe, found from any working directory
    budget: float = 0.8,
    *,
    out: str | Path = "runs/run",
    by: str = "params",
    top_k: int = 3,
    alpha: float | str | None = None,
    ranker: str | None = None,
    order: str | None = None,
    suite: str = "commonsense",
    limit: int | None = None,
    source: str = "local",
    data_dir: str | None = None,
    baselines: bool = True,
    save: bool = True,
    evaluate: bool = True,
    perplexity: bool = True,
    perplexity_limit: int | None = None,
    seed: int = 0,
    batch_size: int | str = 1,
    device: str | None = None,
    trust_remote_code: bool = False,
    progress: bool = True,
    loaded: tuple[Any, Any] | None = None,
    log=print,
    recover_tokens: int | None = None,
) -> dict[str, Any]:
    """Prune MODEL to ``budget`` and evaluate the result; returns the report (also in ``out``).

    Steps: load -> capacity table -> exact top-k under the budget (+ baselines) -> save each
    candidate as a checkpoint that loads back exactly, with a model card -> evaluate the full
    model and every candidate with lm-eval (encoders: GLUE probe + fidelity) -> report.md,
    report.json, front.png, proxy_vs_accuracy.png. Rerunning with the same arguments resumes.
    ``ranker`` picks what the search maximises (``None``: ``rankers.DEFAULT_RANKER``, the
    two-stage ``selfgen`` measured in benchmarks/RANKING.md; ``"zerolm"``: ZeroLM as published).
    ``alpha`` (ZeroLM's balance, also recorded for every candidate) None uses
    ``search.DEFAULT_ALPHA`` as ``rank`` does; ``"auto"`` the label-free parameter-correlation
    heuristic. ``loaded`` passes an already loaded ``(model, tokenizer)`` for MODEL.
    The signature is long because it is the Python face of ``zerolm-prune run``; each step is a
    helper above (``_run_settings``, ``_run_unit_orders``, ``_rank_step``, ``_evaluate_step``).
    """
    settings = _run_settings(model, space, budget, by=by, top_k=top_k, alpha=alpha, ranker=ranker, order=order,
                             suite=suite, limit=limit, source=source, data_dir=data_dir, baselines=baselines,
                             save=save, seed=seed, perplexity=perplexity, perplexity_limit=perplexity_limit)
    out = Path(out)
    search_space = load_space(str(space), model=str(model))
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)

    log(f"[1/5] loading {model}")
    full_model, tokenizer = loaded or loading.load_model(str(model), trust_remote_code=trust_remote_code, device=device)
    adapter = get_adapter(full_model)
    validate_space(search_space, adapter)
    order = settings.order or default_order(full_model, adapter)
    ranked_path = out / RANKED_FILE
    document = json.loads(ranked_path.read_text()) if ranked_path.is_file() else None
    unit_orders = _run_unit_orders(ranked_path, document, order, full_model, adapter, log)
    if document is not None:
        log(f"[2/5] reusing {ranked_path} ({len(document['subnets'])} candidates)")
    else:
        document = _rank_step(out, settings, full_model, adapter, search_space, order, unit_orders,
                              progress=progress, log=log)
    candidates = document["subnets"]

    if save:
        log(f"[3/5] saving {len(candidates)} pruned checkpoints under {out / MODELS_DIR}")
        _save_candidates(full_model, tokenizer, candidates, document, out / MODELS_DIR, progress=progress,
                         unit_orders=unit_orders)
    results = None
    if evaluate:
        results = _evaluate_step(settings, candidates, order, unit_orders, out, (full_model, tokenizer),
                                 batch_size=batch_size, device=device, progress=progress, log=log)
        if save:
            _refresh_cards(out / MODELS_DIR, candidates, results, document)

    log("[5/5] writing report")
    report = build_report(document, results, out)
    write_json(out / REPORT_JSON, report)
    write_text(out / REPORT_MD, render_report(report))
    if recover_tokens and save and results is not None:  # before/after self-distillation of every candidate
        report = recover_candidates(out, report, model=str(model), tokens=recover_tokens, settings=settings,
                                    loaded=(full_model, tokenizer), batch_size=batch_size, device=device,
                                    progress=progress, log=log)
    log(f"done: {out / REPORT_MD}")
    return report


def _is_causal(model) -> bool:
    return is_causal_lm(model)


def _card_fields(entry: dict, document: dict, results: dict | None = None) -> dict:
    fields = {
        "base_model": document["model"], "model_name": f"{Path(str(document['model'])).name}-{entry['name']}",
        "params_before": document.get("full_params"), "params_after": entry["params"], "subnet": entry["subnet"],
        "score": entry["score"], "alpha": document["alpha"], "order": document["order"],
        "ranker": document.get("ranker", "zerolm"),
        "budget": f"{document['budget_fraction']:.3f} of the full model's {document['by']}",
    }
    if results:
        fields["results"] = results
    return fields


def _save_candidates(full_model, tokenizer, candidates: list[dict], document: dict, folder: Path, *, progress: bool,
                     unit_orders: dict | None = None) -> None:
    """Materialize and save each candidate once; a folder that exists is complete (saves are atomic)."""
    todo = [c for c in candidates if not (confine(folder, c["name"], "candidate") / "config.json").is_file()]
    for entry in tqdm(todo, desc="saving", disable=not progress or not todo):
        pruned = materialize(full_model, Subnet.from_dict(entry["subnet"]), order=unit_orders or document["order"],
                             inplace=False)
        save_pretrained(pruned, confine(folder, entry["name"], "candidate"), tokenizer=tokenizer, subnet=entry["subnet"],
                        card=_card_fields(entry, document), source=str(document["model"]),
                        metadata={"order": document["order"]})
        del pruned


def _refresh_cards(folder: Path, candidates: list[dict], results: dict, document: dict) -> None:
    """Once evaluated, each saved model's card carries its own eval table and model-index."""
    by_name = {c["name"]: c for c in results.get("candidates", [])}
    for entry in candidates:
        card_path = confine(folder, entry["name"], "candidate") / "README.md"
        evaluated = by_name.get(entry["name"])
        if card_path.parent.is_dir() and evaluated and evaluated.get("done"):
            fields = _card_fields(entry, document, {"tasks": evaluated.get("tasks", {})})
            fields["format"] = json.loads((card_path.parent / "config.json").read_text()).get(
                "zerolm_prune", {}).get("format")
            write_text(card_path, render(fields))
