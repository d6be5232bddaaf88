"""CLI subcommands: each module defines ``ORDER`` and ``register(subparsers)``.

Modules here import at top level what ``--help`` loads anyway (argparse, the light modules
``inputs``, ``units``, ``loading``, ...); anything else goes inside the handler with a ``# lazy:``
comment, so that ``--help`` stays fast (``tests/test_imports.py`` checks both).
"""
