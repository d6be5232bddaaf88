"""``zerolm-prune``: one entry point, one subcommand per step of the flow.

Subcommands live in ``zerolm_prune/commands/`` (one module each, discovered at start-up) and stay
thin over the Python API. A ``UserError`` becomes one ``zerolm-prune: error: ...`` line and exit
code 2; an interrupted run says how to resume.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading

from . import __version__, commands
from .errors import Terminated, UserError
from .inputs import env_threads

DESCRIPTION = """\
Data-free structured pruning of Hugging Face language models.

Typical flow:
  zerolm-prune info smollm2-135m                       # geometry of a model
  zerolm-prune space recipes/smollm2-135m.yaml          # the elastic search space
  zerolm-prune rank smollm2-135m --space recipes/smollm2-135m.yaml --budget 0.8 --out ranked.json
  zerolm-prune prune smollm2-135m --subnet ranked.json#0 --out pruned/
  zerolm-prune eval smollm2-135m --subnets ranked.json --suite commonsense --limit 100 --out runs/x
  zerolm-prune run smollm2-135m --space recipes/smollm2-135m.yaml --budget 0.8 --top-k 3 --out runs/y

MODEL is a built-in asset (smollm2-135m, minilm-l6), a local folder, or a hub id.
Run `zerolm-prune COMMAND --help` for the options of each command.
"""


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage + error; users asked for one clear line and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"zerolm-prune: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="zerolm-prune", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"zerolm-prune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    modules = [importlib.import_module(f"{commands.__name__}.{m.name}") for m in pkgutil.iter_modules(commands.__path__)]
    for module in sorted(modules, key=lambda m: getattr(m, "ORDER", 100)):
        module.register(sub)
    return parser


def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM cleans up as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args)
    except UserError as err:
        print(f"zerolm-prune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zerolm-prune: interrupted; rerun the same command to resume where it stopped", file=sys.stderr)
        return 130
    except Terminated:
        print("zerolm-prune: terminated; rerun the same command to resume where it stopped", file=sys.stderr)
        return 143
    except OSError as err:
        if not err.filename:  # not about a path the user gave: a bug or the machine, keep the traceback
            raise
        # a path that cannot be read or written (missing folder, permissions, a read-only disk)
        print(f"zerolm-prune: error: {err.filename}: {err.strerror or err}; check the path and its permissions",
              file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """Validate everything (``validate.before``), then run the command holding its --out lock."""
    # lazy: validate reaches torch and transformers, locking the socket module; --help needs neither
    from .locking import out_lock
    from .validate import before, output_folder

    threads = os.environ.get("ZEROLM_PRUNE_THREADS")
    if threads:
        count = env_threads(threads)
        import torch  # lazy: keeps --help fast

        torch.set_num_threads(count)
    before(args)  # every argument and input file, before any model loads or anything is written
    out = output_folder(args)
    if out is None:
        return int(args.func(args) or 0)
    with out_lock(out, command=args.command):
        return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
