"""``zerolm-prune export DIR --format gguf --out FILE``: a pruned folder as a file a serving engine runs."""

from __future__ import annotations

import argparse
import os

from ..atomic import check_writable
from .common import add_model_options

ORDER = 45
OUTTYPES = ("f32", "f16", "q8_0")  # zerolm_prune.export.OUTTYPES; repeated so that --help imports nothing heavy


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a pruned folder (or any LLaMA-family model) as GGUF for llama.cpp",
        description="Write MODEL as one GGUF file that llama.cpp (llama-cli, llama-server, llama-cpp-python) runs. "
        "Subnets with the same shape in every layer become llama.cpp's `llama` architecture; non-uniform ones its "
        "`deci` architecture, which builds each layer from its own head and FFN counts. The tokenizer is the "
        "model's own.\n\nExamples:\n"
        "  zerolm-prune export pruned/ --format gguf --out pruned.gguf\n"
        "  zerolm-prune export pruned/ --format gguf --outtype q8_0 --out pruned-q8.gguf\n"
        "  llama-cli -m pruned.gguf -p 'The capital of France is' -n 20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="DIR", help="a folder written by `zerolm-prune prune`, another LLaMA-family "
                   "model folder, or a built-in asset (smollm2-135m)")
    p.add_argument("--format", choices=("gguf",), default="gguf", help="output format (gguf: llama.cpp)")
    p.add_argument("--outtype", choices=OUTTYPES, default="f16",
                   help="weight type: f32 (exact), f16 (default), q8_0 (llama.cpp's 8-bit blocks); norms and "
                   "biases stay f32")
    p.add_argument("--out", required=True, metavar="FILE", help="the .gguf file to write (replaced atomically)")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import export_gguf  # lazy: keeps `zerolm-prune --help` fast

    check_writable(args.out)  # fail before loading the model
    out = export_gguf(args.model, args.out, outtype=args.outtype, trust_remote_code=args.trust_remote_code)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB, {args.outtype}); run it with: llama-cli -m {out}")
    return 0
