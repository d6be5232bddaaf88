"""Options shared by several subcommands, so they read the same everywhere."""

from __future__ import annotations

import argparse

from ..units import ORDER_NAMES

ORDER = 1000  # not a command; pkgutil discovers it, register() is a no-op


def register(subparsers) -> None:  # noqa: D401 - discovery hook
    """No subcommand: this module holds shared helpers."""


def positive_int(text: str) -> int:
    """argparse type for counts such as --limit: a wrong value is argparse's one-line usage error
    before anything loads (lm-eval would otherwise fail minutes later on an empty task)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of documents, got {value}")
    return value


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
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda or cpu (default: cpu)")
