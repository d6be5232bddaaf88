"""``zerolm-prune recover``: data-free recovery of a pruned folder by self-distillation (LoRA)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import loading
from ..errors import UserError
from .common import positive_int

ORDER = 55

EXAMPLES = """\
Examples:
  zerolm-prune recover runs/demo/models/top1 --teacher smollm2-135m --out runs/demo/top1-recovered
  zerolm-prune recover pruned/ --teacher smollm2-135m --out merged/ --merge --tokens 400000
  zerolm-prune recover pruned/ --teacher smollm2-135m --out rec/ --data my_text.jsonl   # your own text
  accelerate launch -m zerolm_prune.cli recover pruned/ --teacher MODEL --out rec/   # several GPUs

The teacher writes the training text itself (random first token, top-k sampling; cached under
$ZEROLM_PRUNE_CACHE and reused), and its top-k next-token log-probs are kept at generation, so
training needs no teacher pass. Rerunning an interrupted command resumes from its last checkpoint.
"""


def _tokens(text: str) -> int:
    """argparse type of --tokens: a positive whole number (underscores allowed: 100_000)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tokens") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number of tokens, got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "recover", help="recover a pruned model without data: distil the full model into it through LoRA",
        description="Train a LoRA adapter on the pruned model PRUNED_DIR so that its next-token distributions "
        "match the full model's (--teacher) on text the full model generates itself. Writes a stock peft adapter "
        "(base_model_name_or_path = PRUNED_DIR) or, with --merge, a merged checkpoint in prune's format.\n\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pruned", metavar="PRUNED_DIR", help="a folder written by `zerolm-prune prune` (or run)")
    p.add_argument("--teacher", required=True, help="the full model: built-in asset, local folder or hub id")
    p.add_argument("--out", required=True, help="output folder (adapter, or merged checkpoint with --merge)")
    p.add_argument("--merge", action="store_true", help="fold the adapter into the weights and save a checkpoint")
    p.add_argument("--tokens", type=_tokens, default=None, help="training tokens (default 100000)")
    p.add_argument("--epochs", type=float, default=None, help="passes over the corpus (default 1)")
    p.add_argument("--lora-rank", type=int, default=None, help="LoRA rank (default 64); 0 fine-tunes every weight (needs --merge)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate, cosine schedule (default 1e-3)")
    p.add_argument("--seq-len", type=positive_int, default=None, help="tokens per sequence (default 128)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="sequences per step per device (default 8)")
    p.add_argument("--teacher-top-k", type=int, default=None, help="teacher log-probs kept per position at "
                   "generation (default 64); 0 runs the teacher online (exact KL, slower)")
    p.add_argument("--data", default=None, help="your own text: a .txt or .jsonl file (offline) or a hub dataset id")
    p.add_argument("--data-fraction", type=float, default=None, help="share of --tokens taken from --data "
                   "(default 1: only your text; 0.5: half yours, half self-generated)")
    p.add_argument("--save-steps", type=positive_int, default=None, help="checkpoint every N steps (default 50)")
    p.add_argument("--seed", type=int, default=None, help="seed of generation, LoRA init and data order (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when visible)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 mixed precision (default: on where the device supports it)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the teacher's own modelling code to run")
    p.set_defaults(func=run)


_FIELDS = {"tokens": "tokens", "epochs": "epochs", "lora_rank": "lora_rank", "lr": "lr", "seq_len": "seq_len",
           "batch_size": "batch_size", "teacher_top_k": "teacher_top_k", "data": "data",
           "data_fraction": "data_fraction", "save_steps": "save_steps", "seed": "seed", "device": "device",
           "bf16": "bf16", "merge": "merge"}


def config_from_args(args: argparse.Namespace):
    from ..recover import RecoverConfig  # lazy: keeps `zerolm-prune --help` fast

    given = {field: getattr(args, arg) for arg, field in _FIELDS.items() if getattr(args, arg) not in (None, False)}
    return RecoverConfig(**given)


def _check_early(args: argparse.Namespace) -> None:
    """Mistakes found before any model loads."""
    if not (Path(args.pruned) / "config.json").is_file():
        raise UserError(f"{args.pruned}: not a model folder (no config.json); pass a folder written by `zerolm-prune prune`")
    loading.resolve(args.teacher)
    if args.data is not None:
        path = Path(args.data).expanduser()
        if not path.is_file() and (path.exists() or args.data.startswith((".", "/", "~")) or path.suffix in (".txt", ".jsonl", ".json")):
            raise UserError(f"--data {args.data}: no such file (pass a .txt/.jsonl file or a hub dataset id)")


def run(args: argparse.Namespace) -> int:
    from ..recover import recover  # lazy: keeps `zerolm-prune --help` fast

    config = config_from_args(args)
    _check_early(args)
    result = recover(args.pruned, args.teacher, args.out, config, overwrite=args.overwrite,
                     trust_remote_code=args.trust_remote_code)
    summary = {k: result[k] for k in ("out", "corpus_tokens", "steps", "first_loss", "final_loss", "corpus_seconds",
                                      "train_seconds", "train_tokens_per_second")}
    print(json.dumps(summary))
    return 0
