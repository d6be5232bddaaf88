"""Data-free proxies: ZeroLM capacity (table over a search space) and alpha selection.

Modules: ``capacity`` (C(W) and ``CapacityTable``), ``importance`` (per-unit weight scores: which
heads/channels the capacity order keeps), ``alpha`` (choosing alpha). The exact-SVD variants and
the gradient baselines the proxy benchmarks compare against live in ``zerolm_prune.bench``.
"""

from .capacity import CapacityTable, capacity

__all__ = ["CapacityTable", "capacity"]
