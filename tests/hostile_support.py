"""Helpers for the hostile-input tests: a tiny model folder, a valid ranked file, garbage, and the
check every refusal must pass (exit 2, one ``zerolm-prune: error:`` line, nothing written)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import torch

from zerolm_prune.cli import main

#: a valid subnet of ``tiny_llama_config()`` (3 layers, 8 heads in 2 KV groups, FFN 96)
GOOD_SUBNET = {"heads": [8, 4, 8], "ffn": [96, 48, 64]}


def make_tiny_folder(folder: Path) -> Path:
    from transformers import LlamaForCausalLM

    from conftest import tiny_llama_config

    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config()).save_pretrained(folder)
    return folder


def write_ranked(path: Path, subnets: list[dict], **extra) -> Path:
    doc = {"model": extra.pop("model", None), "order": "prefix",
           "subnets": [{"rank": i, "score": 1.0 - i, "params": 1, "macs": 1, "subnet": s, **extra}
                       for i, s in enumerate(subnets)]}
    path.write_text(json.dumps(doc))
    return path


def private_device(folder: Path) -> Path | None:
    """A character device like /dev/null made inside ``folder`` (needs root), or None.

    Why not /dev/null itself: a regression run as root would replace the machine's /dev/null with
    a regular file (the very bug under test), breaking every other process on the machine.
    """
    import stat

    path = folder / "null-device"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, AttributeError, OSError):
        return None
    return path


def listing(root: Path) -> list[tuple[str, int]]:
    """Every entry under ``root`` (hidden ones too) with its size: what a refusal must not change."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            out.append((str(p.relative_to(root)), p.lstat().st_size if not p.is_dir() else -1))
    return sorted(out)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)`` in-process: (exit code, stderr); argparse's own exit counts as a return."""
    import traceback

    escaped = ""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 2
    except Exception:  # what a real process would print before exiting 1
        code, escaped = 1, traceback.format_exc()
    return code, capsys.readouterr().err + escaped


def refusal_problem(argv: list[str], capsys, root: Path, needle: str | None = None) -> str | None:
    """None when ``argv`` is refused properly: exit 2, exactly one stderr line starting
    ``zerolm-prune: error:``, no traceback, nothing under ``root`` created, removed or resized;
    else what went wrong."""
    before = listing(root)
    code, err = run_cli(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    shown = " ".join(repr(a) for a in argv)
    if "Traceback" in err:
        return f"{shown}: traceback {err[-1500:]}"
    if code != 2:
        return f"{shown}: exit {code}, stderr {err[-500:]!r}"
    if len(lines) != 1 or not lines[0].startswith("zerolm-prune: error:"):
        return f"{shown}: stderr {err[-800:]!r}"
    after = listing(root)
    if after != before:
        return f"{shown}: wrote {sorted(set(after) ^ set(before))}"
    if needle is not None and needle not in lines[0]:
        return f"{shown}: {lines[0]!r} lacks {needle!r}"
    return None


def assert_refused(argv: list[str], capsys, root: Path, needle: str | None = None) -> str:
    problem = refusal_problem(argv, capsys, root, needle)
    assert problem is None, problem
    return ""


class Refusals:
    """Collects every failing case of a sweep, so one run reports them all."""

    def __init__(self, capsys, root: Path):
        self.capsys, self.root, self.problems, self.count = capsys, root, [], 0

    def check(self, argv: list[str], needle: str | None = None) -> None:
        self.count += 1
        problem = refusal_problem(argv, self.capsys, self.root, needle)
        if problem:
            self.problems.append(problem)

    def assert_all(self) -> None:
        assert not self.problems, f"{len(self.problems)} of {self.count} cases:\n" + "\n".join(self.problems[:60])


def garbage_blobs(seed: int = 17) -> list[bytes]:
    """Random bytes, empty files, JSON of every wrong type, NaN/inf, huge numbers, deep nesting,
    broken YAML: none of them a valid input of any command."""
    rng = random.Random(seed)
    blobs = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))) for _ in range(4)]
    blobs += [b"", b"\xff\xfe\x00garbage", b"[" * 50_000, b'{"a": ' * 20_000]
    wrong = [[], "x", 3, None, True, 1.5, {"subnets": "x"}, {"subnets": [1]}, {"subnets": []},
             {"subnets": [{"subnet": {**GOOD_SUBNET, "heads": [767.5, 8, 8]}}]},
             {"subnets": [{"subnet": {**GOOD_SUBNET, "ffn": ["96", 48, 64]}}]},
             {"subnets": [{"subnet": {**GOOD_SUBNET, "ffn": [96, 48, True]}}]},
             {"subnets": [{"subnet": {**GOOD_SUBNET, "ffn": [10**30, 48, 64]}}]},
             {"subnets": [{"subnet": {**GOOD_SUBNET, "heads": [-8, 4, 8]}}]},
             {"subnets": [{"subnet": {"heads": [8, 8], "ffn": [96, 96]}}]},  # wrong depth
             {"subnets": [{"subnet": GOOD_SUBNET, "name": "../../escape"}]},
             {"subnets": [{"subnet": {**GOOD_SUBNET, "ranks": {"qkv": [1, 2]}}}]},
             {"heads": [8, 4], "ffn": [96]}, {"heads": "8", "ffn": 96},
             {"layers": "x"}, {"layers": [{"heads": "x"}]}, {"architectures": [{"ppl": 3}]},
             {"architectures": [{"ppl": {"valid_ppl": 3}, "model_config": {"d_model": 0, "n_layer": 2, "n_head": 1,
                                                                            "d_inner": 4}}]},
             [{"hparams": 1, "scores": {"glue": 1}}], [{"hparams": {"model_hparam_overrides": []},
                                                         "scores": {"glue": 0.5}}],
             {"bootstrapNAS": {"training": {"elasticity": {"width": {"overwrite_groups": "x"}}}}},
             {"tasks": 3}, {"tasks": [1, 2]}, {"config": [1, 2]}, {"model": 5, "config": {"a": 1}}]
    blobs += [json.dumps(w).encode() for w in wrong]
    blobs += [b'{"subnets": NaN}', b"[1e400]", b'{"heads": [Infinity], "ffn": [1]}',
              b"- a\n- b\n", b"tasks: [\n", b"a: b: c\n", b"!!python/object/apply:os.getcwd []\n",
              b"config:\n  num_hidden_layers: many\n"]
    return blobs
