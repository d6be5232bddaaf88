"""Data-free proxies: ZeroLM capacity (table over a search space), alpha selection, baselines.

Modules: ``capacity`` (C(W) and ``CapacityTable``), ``importance`` (which heads/channels a slice
keeps), ``spectral`` (exact-SVD variants, on demand), ``alpha`` (choosing alpha), ``baselines``
(size counts, magnitude, random, SynFlow/SNIP).
"""

from .capacity import CapacityTable, capacity

__all__ = ["CapacityTable", "capacity"]
