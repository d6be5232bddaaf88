"""Options shared by several subcommands, so they read the same everywhere."""

from __future__ import annotations

import argparse

from .. import inputs
from ..units import ORDER_NAMES

ORDER = 1000  # not a command; pkgutil discovers it, register() is a no-op


def register(subparsers) -> None:  # noqa: D401 - discovery hook
    """No subcommand: this module holds shared helpers."""


#: argparse type for counts such as --limit (zerolm_prune.inputs holds every such type)
positive_int = inputs.positive_int


def add_ranking_options(parser: argparse.ArgumentParser) -> None:
    """--alpha, --ranker and --order, worded once for rank and run (which must agree)."""
    parser.add_argument("--alpha", default=None,
                        help="ZeroLM's weight of S_Attn: a number, or 'auto' for the label-free parameter-correlation "
                        "heuristic (default: 1.0, zerolm_prune.search.DEFAULT_ALPHA)")
    parser.add_argument("--ranker", default=None,
                        help="what the exact search maximises: selfgen (default with real weights: per-layer KL on "
                        "self-generated text, then a fidelity re-rank; see benchmarks/RANKING.md), zerolm (ZeroLM as "
                        "published; the only choice for shapes-only tables), energy, selfgen-kl, params")
    parser.add_argument("--order", choices=ORDER_NAMES, default=None,
                        help="which heads/channels a width keeps: selfgen (default for LLaMA-family LMs with weights: "
                        "the units that write most on self-generated text, ~40x lower perplexity than prefix in "
                        "benchmarks/RANKING.md), prefix (LoNAS: the first ones; default otherwise), capacity, energy. "
                        "ranked.json and saved folders record it; prune reuses it")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code", action="store_true",
        help="allow a checkpoint's own modelling code to run (off by default; only for code you trust)",
    )
    parser.add_argument("--device", default=None, type=inputs.device, help="torch device, e.g. cuda or cpu (default: cpu)")
