"""Options shared by several subcommands, so they read the same everywhere."""

from __future__ import annotations

import argparse

ORDER = 1000  # not a command; pkgutil discovers it, register() is a no-op


def register(subparsers) -> None:  # noqa: D401 - discovery hook
    """No subcommand: this module holds shared helpers."""


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code", action="store_true",
        help="allow a checkpoint's own modelling code to run (off by default; only for code you trust)",
    )
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda or cpu (default: cpu)")
