"""Property-style: generated garbage into every subcommand, every argument and every file it reads.

Each case must end in exit code 2, exactly one ``zerolm-prune: error:`` line on stderr, no
traceback, and nothing created or changed in the working folder. The generator is seeded, so a
failure names a case that reproduces.
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest
import torch

from hostile_support import GOOD_SUBNET, Refusals, garbage_blobs, make_tiny_folder, private_device, write_ranked


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_folder(tmp_path_factory.mktemp("hostile") / "tiny")


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    """The working folder: inputs live here, outputs are asked for here, and nothing may change."""
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)  # default outputs (eval's runs/eval/...) land here too
    return root


def _file_slots(tiny: str, f: str, o: str) -> list[list[str]]:
    """Every command reading the file ``f`` (the extension decides how it is read)."""
    yaml_or_json = [["space", f], ["rank", tiny, "--space", f, "--budget", "0.8", "--out", o],
                    ["rank", "--space", f, "--budget", "0.8"], ["run", tiny, "--space", f, "--out", o]]
    if f.endswith(".json"):
        return yaml_or_json + [
            ["score", tiny, "--subnets", f, "--json", o], ["score", "--subnets", f, "--json", o],
            ["prune", tiny, "--subnet", f, "--out", o], ["prune", tiny, "--subnet", f + "#0", "--out", o],
            ["eval", tiny, "--subnets", f, "--out", o], ["bench", "nasbench-bert", "--data", f],
            ["bench", "lts", "--data", f, "--json", o]]
    return yaml_or_json + [["eval", tiny, "--suite", f, "--out", o]]


def test_garbage_files_into_every_command(tiny_dir, ws, capsys):
    blobs = garbage_blobs()
    sweep = Refusals(capsys, ws)
    for i, blob in enumerate(blobs):
        for ext in (".json", ".yaml"):
            f = ws / f"in{i}{ext}"
            f.write_bytes(blob)
            for argv in _file_slots(str(tiny_dir), str(f), str(ws / "out" / "o.json")):
                sweep.check(argv)
    sweep.assert_all()
    assert sweep.count > 500


def _model_folders(root: Path, tiny: Path, rng: random.Random) -> list[Path]:
    """Checkpoint folders broken in one way each: config.json, weights, index, remote code."""
    import shutil

    folders = []
    for i, blob in enumerate(garbage_blobs()[:: 3] + [b'{"model_type": "llama", "num_hidden_layers": "3"}',
                                                      b'{"model_type": 7}', b'{"model_type": "llama", "hidden_size": 1e400}',
                                                      b'{"model_type": "nope_custom", "auto_map": {"AutoConfig": "x.Y"}}']):
        d = root / f"cfg{i}"
        d.mkdir()
        (d / "config.json").write_bytes(blob)
        folders.append(d)
    weights = (tiny / "model.safetensors").read_bytes()
    for j, broken in enumerate([weights[:100], weights[: len(weights) // 2], b"\xff" * 8 + weights[8:],
                                (10**12).to_bytes(8, "little") + weights[8:],
                                bytes(rng.getrandbits(8) for _ in range(64))]):
        d = root / f"w{j}"
        shutil.copytree(tiny, d)
        (d / "model.safetensors").write_bytes(broken)
        folders.append(d)
    return folders


def test_broken_checkpoints_are_refused_before_loading(tiny_dir, ws, capsys):
    rng = random.Random(5)
    sweep = Refusals(capsys, ws)
    ranked = write_ranked(ws / "ranked.json", [GOOD_SUBNET])
    for d in _model_folders(ws, tiny_dir, rng):
        for argv in (["info", str(d)], ["space", str(d)], ["prune", str(d), "--subnet", str(ranked), "--out", str(ws / "o")],
                     ["score", str(d), "--subnets", str(ranked), "--json", str(ws / "s.json")],
                     ["eval", str(d), "--subnets", str(ranked), "--out", str(ws / "e")],
                     ["rank", str(d), "--space", str(d), "--budget", "0.8"]):
            sweep.check(argv)
    sweep.assert_all()


NUMBERS = ["nan", "inf", "-inf", "0", "-1", "1e400", "abc", "", "1.5", "767.5", "0x10", "99999999999999999999999999",
           "1e30", " "]


def _numeric_slots(tiny: str, ranked: str, out: str) -> dict[str, list[str]]:
    """argv prefixes, each completed by a flag and a garbage value."""
    return {
        "rank-budget": ["rank", tiny, "--space", tiny, "--budget"],
        "rank-topk": ["rank", tiny, "--space", tiny, "--budget", "0.8", "--top-k"],
        "rank-seqlen": ["rank", tiny, "--space", tiny, "--budget", "0.8", "--seq-len"],
        "rank-alpha": ["rank", tiny, "--space", tiny, "--budget", "0.8", "--ranker", "zerolm", "--alpha"],
        "rank-seed": ["rank", tiny, "--space", tiny, "--budget", "0.8", "--seed"],
        "space-seqlen": ["space", tiny, "--seq-len"],
        "space-ffn": ["space", tiny, "--ffn"],
        "space-heads": ["space", tiny, "--heads"],
        "space-rank": ["space", tiny, "--rank"],
        "score-alpha": ["score", tiny, "--subnets", ranked, "--ranker", "zerolm", "--json", out, "--alpha"],
        "run-budget": ["run", tiny, "--out", out, "--budget"],
        "run-topk": ["run", tiny, "--out", out, "--top-k"],
        "run-seed": ["run", tiny, "--out", out, "--seed"],
        "run-limit": ["run", tiny, "--out", out, "--limit"],
        "run-batch": ["run", tiny, "--out", out, "--batch-size"],
        "run-alpha": ["run", tiny, "--out", out, "--alpha"],
        "demo-budget": ["demo", "--out", out, "--budget"],
        "demo-limit": ["demo", "--out", out, "--limit"],
        "demo-batch": ["demo", "--out", out, "--batch-size"],
        "eval-fewshot": ["eval", tiny, "--out", out, "--num-fewshot"],
        "eval-batch": ["eval", tiny, "--out", out, "--batch-size"],
        "eval-plimit": ["eval", tiny, "--out", out, "--perplexity-limit"],
        "bench-alpha": ["bench", "lts", "--data", ranked, "--alpha"],
        "bench-fit": ["bench", "lts", "--data", ranked, "--fit-fraction"],
        "bench-boot": ["bench", "lts", "--data", ranked, "--bootstrap"],
        "rank-device": ["rank", tiny, "--space", tiny, "--budget", "0.8", "--device"],
    }


#: values a flag may legitimately take among NUMBERS (their refusal would be wrong)
ALLOWED = {"rank-alpha": {"0", "-1", "1.5", "767.5"}, "score-alpha": {"0", "-1", "1.5", "767.5"},
           "run-alpha": {"0", "-1", "1.5", "767.5"}, "bench-alpha": set(), "rank-seed": {"0"}, "run-seed": {"0"},
           "eval-fewshot": {"0"}, "bench-boot": {"0"}}


def test_garbage_numbers_into_every_numeric_flag(tiny_dir, ws, capsys):
    ranked = write_ranked(ws / "ranked.json", [GOOD_SUBNET])
    slots = _numeric_slots(str(tiny_dir), str(ranked), str(ws / "out"))
    sweep = Refusals(capsys, ws)
    for name, prefix in slots.items():
        values = NUMBERS + (["cuda:7", "gpu", "meta"] if name.endswith("device") else [])
        if name.endswith("device") and not torch.cuda.is_available():
            values.append("cuda")
        for value in values:
            if value in ALLOWED.get(name, set()):
                continue
            sweep.check(prefix + [value])
    sweep.assert_all()


def test_odd_paths_for_every_path_argument(tiny_dir, ws, capsys):
    """Non-UTF-8 names, NUL bytes, missing files, folders where files belong, devices and fifos as outputs."""
    ranked = write_ranked(ws / "ranked.json", [GOOD_SUBNET])
    sweep = Refusals(capsys, ws)
    fifo = ws / "fifo"
    os.mkfifo(fifo)
    folder = ws / "adir"
    folder.mkdir()
    (folder / "f").write_text("x")
    device = private_device(ws.parent)  # outside ws: it is a file the listing would compare
    specials = [str(fifo)] + ([str(device)] if device else [])
    odd_inputs = [str(ws / "caf\udce9.json"), "with\0nul", str(ws / "missing.json"), str(folder), *specials]
    tiny = str(tiny_dir)
    for bad in odd_inputs:
        for argv in (["space", bad], ["rank", tiny, "--space", bad, "--budget", "0.8"], ["info", bad],
                     ["score", tiny, "--subnets", bad, "--json", str(ws / "s.json")],
                     ["prune", tiny, "--subnet", bad, "--out", str(ws / "p")],
                     ["eval", tiny, "--subnets", bad, "--out", str(ws / "e")],
                     ["eval", tiny, "--suite", bad + ".yaml", "--out", str(ws / "e")],
                     ["bench", "lts", "--data", bad], ["publish", bad, "--repo-id", "me/x", "--dry-run"],
                     ["prune", tiny, "--subnet", str(ranked), "--adapter", bad, "--merge", "--out", str(ws / "p")]):
            sweep.check(argv)
    odd_outputs = [*specials, str(folder), str(ws / "caf\udce9"), str(folder / "f" / "below")]
    for bad in odd_outputs:
        for argv in (["rank", tiny, "--space", tiny, "--budget", "0.8", "--out", bad],
                     ["rank", tiny, "--space", tiny, "--budget", "0.8", "--plot", bad],
                     ["score", tiny, "--subnets", str(ranked), "--json", bad], ["space", tiny, "--out", bad],
                     ["bench", "lts", "--data", str(ranked), "--json", bad]):
            sweep.check(argv)
        if bad != str(folder):  # an existing folder is a valid --out folder
            for argv in (["prune", tiny, "--subnet", str(ranked), "--out", bad],
                         ["eval", tiny, "--subnets", str(ranked), "--out", bad], ["run", tiny, "--out", bad],
                         ["demo", "--out", bad]):
                sweep.check(argv)
    sweep.assert_all()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and (device is None or stat.S_ISCHR(os.stat(device).st_mode))


BAD_REPO_IDS = ["me/has space", "../x", "me/x\ninjected", "me/..", "noslash", "a/b/c", "me/" + "x" * 200, "me/x--y",
                "-me/x", "me/x.", "", "me/", "/x", "me/x?y"]


def test_publish_refuses_repo_ids_the_hub_refuses(tiny_dir, ws, capsys, tmp_path):
    from zerolm_prune.cli import main

    out = tmp_path / "pruned"
    ranked = write_ranked(tmp_path / "ranked.json", [GOOD_SUBNET])
    assert main(["prune", str(tiny_dir), "--subnet", str(ranked), "--out", str(out)]) == 0
    capsys.readouterr()
    sweep = Refusals(capsys, ws)
    for repo in BAD_REPO_IDS:
        sweep.check(["publish", str(out), "--repo-id", repo, "--dry-run"])
    sweep.assert_all()


def test_garbage_sidecars_and_task_data(tiny_dir, ws, capsys):
    """The unit orders file a ranked.json names, and --data-dir task files, fed every blob."""
    sweep = Refusals(capsys, ws)
    tiny = str(tiny_dir)
    data = ws / "data"
    data.mkdir()
    for i, blob in enumerate(garbage_blobs()):
        side = ws / f"side{i}.json"
        side.write_bytes(blob)
        ranked = write_ranked(ws / f"ranked{i}.json", [GOOD_SUBNET])
        doc = __import__("json").loads(ranked.read_text())
        ranked.write_text(__import__("json").dumps({**doc, "orders_file": side.name, "order": "selfgen"}))
        sweep.check(["prune", tiny, "--subnet", str(ranked), "--out", str(ws / "o")])
        sweep.check(["eval", tiny, "--subnets", str(ranked), "--out", str(ws / "e")])
        (data / "piqa.jsonl").write_bytes(blob if blob.strip() else b"\n")
        sweep.check(["eval", tiny, "--suite", "piqa", "--data-dir", str(data), "--out", str(ws / "e")])
    for name in ("../../etc/passwd", "/etc/passwd", ".hidden"):
        ranked = ws / "escape.json"
        ranked.write_text(__import__("json").dumps({"order": "selfgen", "orders_file": name,
                                                    "subnets": [{"subnet": GOOD_SUBNET}]}))
        sweep.check(["prune", tiny, "--subnet", str(ranked), "--out", str(ws / "o")])
    sweep.check(["eval", tiny, "--suite", "piqa,arc_easy", "--data-dir", str(data), "--out", str(ws / "e")])
    sweep.assert_all()
