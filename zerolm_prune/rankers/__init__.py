"""Data-free rankers of subnets: ZeroLM as published and the ones this project measured better.

``get_ranker(name, **options)`` builds one; ``DEFAULT_RANKER`` is what ``rank``/``run`` use.
Every ranker scores higher = better and names its provenance. See benchmarks/RANKING.md for the
measured rank correlations with real perplexity that decide the default.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import Ranker, indices_in, space_of
from .selfgen import FidelityRanker, SelfGenKLRanker, SelfGenRanker
from .weights import EnergyRanker, ParamsRanker, ZeroLMRanker

RANKERS: dict[str, type[Ranker]] = {
    "zerolm": ZeroLMRanker,
    "params": ParamsRanker,
    "energy": EnergyRanker,
    "selfgen-kl": SelfGenKLRanker,
    "fidelity": FidelityRanker,
    "selfgen": SelfGenRanker,
}

#: decided by the held-out numbers in benchmarks/RANKING.md (SmolLM2-135M, 30 + 30 equal-budget
#: subnets at 0.75 / 0.9 of block params): Kendall tau with -perplexity of fidelity 0.77 / 0.78 and
#: selfgen-kl 0.69 / 0.72, vs ZeroLM -0.14 / 0.20; the search's pick beats the LoNAS heuristic, the
#: best uniform and the best of 50 random subnets. ZeroLM stays available as "zerolm".
DEFAULT_RANKER = "selfgen"


def available_rankers() -> list[str]:
    return list(RANKERS)


def ranker_class(name: str | None = None) -> type[Ranker]:
    """The registered class of ``name`` (``None`` -> ``DEFAULT_RANKER``); a one-line UserError for a
    name that is not registered, so commands can check ``--ranker`` before loading anything."""
    cls = RANKERS.get(name or DEFAULT_RANKER)
    if cls is None:
        raise UserError(f"unknown ranker {name!r}; choose one of: {', '.join(RANKERS)}")
    return cls


def get_ranker(name: str | None = None, **options: Any) -> Ranker:
    """A ranker by registry name (``None`` -> ``DEFAULT_RANKER``); ``options`` set its fields."""
    name = name or DEFAULT_RANKER
    cls = ranker_class(name)
    try:
        return cls(**options)
    except TypeError as err:
        raise UserError(f"ranker {name!r}: {err}") from None


__all__ = ["DEFAULT_RANKER", "RANKERS", "Ranker", "available_rankers", "get_ranker", "indices_in", "ranker_class", "space_of"]
