"""CLI subcommands: each module defines ``ORDER`` and ``register(subparsers)``.

Modules here import only argparse-level things at top level; heavy imports go inside the
handler so that ``--help`` stays fast.
"""
