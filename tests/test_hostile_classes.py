"""One test per class of hostile or careless input found in issue 17; each fails without its fix."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hostile_support import (GOOD_SUBNET, assert_refused, listing, make_tiny_folder, private_device, run_cli,
                             write_ranked)
from zerolm_prune import loading
from zerolm_prune.cli import main
from zerolm_prune.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_folder(tmp_path_factory.mktemp("classes") / "tiny")


@pytest.fixture
def no_loading(monkeypatch):
    """Any model load fails the test: the refusal under test must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(loading, "load_model", refuse)
    from zerolm_prune import driver

    monkeypatch.setattr(driver, "load_model", refuse, raising=False)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- names read from files never become paths outside --out ------------------------------------
def test_confine_keeps_names_from_files_inside_the_folder(tmp_path):
    from zerolm_prune.paths import confine

    assert confine(tmp_path, "top1") == tmp_path / "top1"
    for bad in ("../../x", "/etc", "..", ".", "", "a/b", "a\\b", ".hidden", 3, None, "x" * 300):
        with pytest.raises(UserError, match="not a plain name"):
            confine(tmp_path, bad)
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(UserError, match="outside"):
        confine(tmp_path, "link")


def test_run_refuses_a_ranked_file_whose_names_leave_the_run_folder(tiny_dir, tmp_path, capsys, no_loading):
    out = tmp_path / "runs" / "r"
    out.mkdir(parents=True)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "README.md").write_text("mine")
    for name in ("../../victim", str(tmp_path / "victim")):
        write_ranked(out / "ranked.json", [GOOD_SUBNET], name=name)
        assert_refused(["run", str(tiny_dir), "--out", str(out)], capsys, tmp_path, needle="not a plain name")
    assert (tmp_path / "victim" / "README.md").read_text() == "mine"


def test_saving_candidates_confines_every_name(tmp_path):
    from zerolm_prune.driver import _save_candidates

    with pytest.raises(UserError, match="not a plain name"):
        _save_candidates(None, None, [{"name": "../../escape", "subnet": GOOD_SUBNET}], {"order": "prefix"},
                         tmp_path / "models", progress=False)
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()


# ---- outputs only to regular files or folders --------------------------------------------------------
def test_atomic_writes_never_replace_a_device_or_a_fifo(tmp_path):
    import stat

    from zerolm_prune.atomic import write_text

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    device = private_device(tmp_path)
    for target in [fifo, tmp_path] + ([device] if device else []):
        with pytest.raises(UserError, match="not a regular file"):
            write_text(target, "x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and (device is None or stat.S_ISCHR(os.stat(device).st_mode))


def test_an_output_under_a_file_fails_before_the_model_loads(tiny_dir, tmp_path, capsys, no_loading):
    blocker = tmp_path / "file"
    blocker.write_text("")
    ranked = write_ranked(tmp_path / "ranked.json", [GOOD_SUBNET])
    assert_refused(["score", str(tiny_dir), "--subnets", str(ranked), "--json", str(blocker / "s.json")], capsys,
                   tmp_path, needle="cannot write")
    assert_refused(["eval", str(tiny_dir), "--out", str(blocker / "e")], capsys, tmp_path, needle="cannot write")


# ---- publish ---------------------------------------------------------------------------------------
@pytest.fixture
def pruned(tiny_dir, tmp_path, capsys) -> Path:
    out = tmp_path / "pruned"
    ranked = write_ranked(tmp_path / "ranked.json", [GOOD_SUBNET])
    assert main(["prune", str(tiny_dir), "--subnet", str(ranked), "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def test_publish_refuses_links_that_leave_the_folder(pruned, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("private key")
    (pruned / "inside.json").symlink_to(pruned / "config.json")  # a link inside the folder is fine
    assert main(["publish", str(pruned), "--repo-id", "me/x", "--dry-run"]) == 0
    assert "inside.json" in capsys.readouterr().out
    (pruned / "notes.txt").symlink_to(secret)
    assert_refused(["publish", str(pruned), "--repo-id", "me/x", "--dry-run"], capsys, tmp_path, needle="outside")
    (pruned / "notes.txt").unlink()
    (pruned / "sub").symlink_to(tmp_path, target_is_directory=True)
    assert_refused(["publish", str(pruned), "--repo-id", "me/x", "--dry-run"], capsys, tmp_path, needle="outside")


@pytest.mark.parametrize("repo", ["me/has space", "../x", "me/x\nx", "me/x--y", "noslash", "a/b/c"])
def test_publish_dry_run_validates_repo_ids_as_the_hub_does(pruned, tmp_path, capsys, repo):
    assert_refused(["publish", str(pruned), "--repo-id", repo, "--dry-run"], capsys, tmp_path, needle="--repo-id")


@pytest.mark.parametrize("failure", ["requests", "socket", "wrapped"])
def test_publish_without_network_is_one_line(pruned, tmp_path, capsys, monkeypatch, failure):
    import huggingface_hub
    import requests

    def no_network(*args, **kwargs):
        if failure == "requests":
            raise requests.exceptions.ConnectionError("Max retries exceeded")
        if failure == "socket":
            raise socket.gaierror(-3, "Temporary failure in name resolution")
        try:
            raise socket.timeout("timed out")
        except OSError as err:
            raise RuntimeError("the client gave up") from err

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", "hf_" + "T" * 34)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    assert_refused(["publish", str(pruned), "--repo-id", "me/x"], capsys, tmp_path, needle="unreachable")


# ---- staging debris and SIGTERM ----------------------------------------------------------------------
def test_stale_staging_of_the_same_output_is_cleaned_by_the_next_prune(tiny_dir, tmp_path, capsys):
    out = tmp_path / "o"
    dead = _dead_pid()
    stale = [tmp_path / f".o.partial-{dead}-abc", tmp_path / ".o.partial-k3j2h1", tmp_path / f".o.old-{dead}-x"]
    for d in stale:
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"0" * 1000)
    alive = tmp_path / f".o.partial-{os.getpid()}-mine"  # a live writer's staging stays
    alive.mkdir()
    other = tmp_path / f".other.partial-{dead}-abc"  # another output's staging is not ours to judge
    other.mkdir()
    ranked = write_ranked(tmp_path / "ranked.json", [GOOD_SUBNET])
    assert main(["prune", str(tiny_dir), "--subnet", str(ranked), "--out", str(out)]) == 0
    assert not any(d.exists() for d in stale) and alive.exists() and other.exists()
    assert (out / "config.json").is_file()


def test_sigterm_during_prune_leaves_no_staging(tiny_dir, tmp_path):
    ranked = write_ranked(tmp_path / "ranked.json", [GOOD_SUBNET])
    out = tmp_path / "o"
    script = textwrap.dedent(f"""
        import os, signal, sys
        from zerolm_prune import checkpoint
        from zerolm_prune.materialize import streaming
        from zerolm_prune.cli import main

        original = checkpoint.write_safetensors
        def killed_midway(folder, *a, **kw):
            (folder / "half.bin").write_bytes(b"x" * 100)
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would, while the staging folder is half full
            return original(folder, *a, **kw)
        checkpoint.write_safetensors = killed_midway
        streaming.write_safetensors = killed_midway  # bound at its import, as prune streams this folder
        sys.exit(main(["prune", {str(tiny_dir)!r}, "--subnet", {str(ranked)!r}, "--out", {str(out)!r}]))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "terminated" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ranked.json"]  # no out, no .partial-*, no lock


# ---- one process per --out -------------------------------------------------------------------------
def test_a_second_process_on_the_same_out_is_told_who_holds_it(tiny_dir, tmp_path, capsys, no_loading):
    from zerolm_prune.locking import out_lock

    out = tmp_path / "e"
    with out_lock(out):
        for argv in (["eval", str(tiny_dir), "--out", str(out)], ["run", str(tiny_dir), "--out", str(out)],
                     ["prune", str(tiny_dir), "--subnet", str(write_ranked(tmp_path / "r.json", [GOOD_SUBNET])),
                      "--out", str(out)]):
            code, err = run_cli(argv, capsys)
            assert code == 2 and err.count("\n") == 1, err
            assert f"pid {os.getpid()} on {socket.gethostname()} since" in err and "in use" in err
    assert not (tmp_path / ".e.lock").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tiny_dir, tmp_path, capsys):
    out = tmp_path / "o"
    (tmp_path / ".o.lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "since": 0}))
    ranked = write_ranked(tmp_path / "ranked.json", [GOOD_SUBNET])
    assert main(["prune", str(tiny_dir), "--subnet", str(ranked), "--out", str(out)]) == 0
    assert (out / "config.json").is_file() and not (tmp_path / ".o.lock").exists()


def test_the_lock_is_held_across_processes(tmp_path):
    from zerolm_prune.locking import out_lock

    script = f"from zerolm_prune.locking import out_lock\nwith out_lock({str(tmp_path / 'x')!r}): print('got it')"
    with out_lock(tmp_path / "x"):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert "in use by pid" in proc.stderr and "got it" not in proc.stdout
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert "got it" in proc.stdout


# ---- tokens -------------------------------------------------------------------------------------------
def test_a_source_folder_named_hf_is_not_a_token(tiny_dir, tmp_path, capsys, monkeypatch):
    source = tmp_path / ("hf_" + "smollm2copy" * 3 + "x")  # hf_ + 34 letters: the shape of a token
    shutil.copytree(tiny_dir, source)
    ranked = write_ranked(tmp_path / "ranked.json", [GOOD_SUBNET])
    assert main(["prune", str(source), "--subnet", str(ranked), "--out", str(tmp_path / "o1")]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["prune", source.name, "--subnet", str(ranked), "--out", "o2"]) == 0
    assert source.name in (tmp_path / "o2" / "README.md").read_text()


def test_the_real_token_is_still_refused(monkeypatch):
    from zerolm_prune.modelcard import render

    token = "hf_" + "Q" * 34
    with pytest.raises(ValueError, match="access token"):
        render({"base_model": "me/x", "notes": token})
    monkeypatch.setenv("HF_TOKEN", "hf_shortbutreal123")
    with pytest.raises(UserError, match="access token"):
        render({"base_model": "me/x", "notes": "copied from hf_shortbutreal123 by mistake"})
    render({"base_model": "me/x", "notes": "/data/hf_" + "Q" * 34 + "/weights"})  # a path, not a token


# ---- pickles and remote code: one line --------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_a_refused_pickle_is_one_line(tiny_dir, tmp_path, capsys):
    import pickle

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_dir / "config.json", folder / "config.json")
    torch.save({"model.embed_tokens.weight": torch.zeros(2, 2), "x": _Evil()}, folder / "pytorch_model.bin",
               pickle_module=pickle)
    ranked = write_ranked(tmp_path / "ranked.json", [GOOD_SUBNET])
    assert_refused(["prune", str(folder), "--subnet", str(ranked), "--out", str(tmp_path / "o")], capsys, tmp_path,
                   needle="refused to unpickle")
    from zerolm_prune.validate import check_pickle

    torch.save({"w": torch.ones(3)}, tmp_path / "ok.bin")
    check_pickle(tmp_path / "ok.bin")  # plain tensors pass


def test_a_remote_code_folder_is_one_line(tiny_dir, tmp_path, capsys):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="evil_custom", auto_map={"AutoConfig": "modeling_evil.EvilConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    for argv in (["info", str(folder)], ["rank", str(folder), "--space", str(folder), "--budget", "0.8"]):
        assert_refused(argv, capsys, tmp_path, needle="--trust-remote-code")


# ---- checks before expensive work ------------------------------------------------------------------------
def test_eval_refuses_subnets_of_another_depth_before_evaluating(tiny_dir, tmp_path, capsys, no_loading):
    ranked = write_ranked(tmp_path / "ranked.json", [{"heads": [8] * 5, "ffn": [96] * 5}])
    assert_refused(["eval", str(tiny_dir), "--subnets", str(ranked), "--out", str(tmp_path / "e")], capsys, tmp_path,
                   needle="5 layers")


@pytest.mark.parametrize("budget", ["nan", "inf", "0", "1.5", "-0.2"])
def test_run_refuses_a_bad_budget_before_loading_and_writes_no_run_json(tiny_dir, tmp_path, capsys, no_loading,
                                                                         budget):
    out = tmp_path / "r"
    assert_refused(["run", str(tiny_dir), "--budget", budget, "--out", str(out)], capsys, tmp_path, needle="budget")
    assert_refused(["demo", "--budget", budget, "--out", str(out)], capsys, tmp_path, needle="budget")
    assert not out.exists()


def test_run_refuses_a_recipe_of_another_model_and_an_infeasible_budget_before_loading(tiny_dir, tmp_path, capsys,
                                                                                       no_loading):
    out = tmp_path / "r"
    assert_refused(["run", str(tiny_dir), "--space", str(ROOT / "recipes" / "smollm2-135m.yaml"), "--out", str(out)],
                   capsys, tmp_path, needle="layers")
    assert_refused(["run", str(tiny_dir), "--budget", "0.01", "--out", str(out)], capsys, tmp_path,
                   needle="below the smallest subnet")
    assert not out.exists()  # no run.json that would block the corrected command


def test_a_malformed_results_json_is_refused_when_resuming(tiny_dir, tmp_path, capsys, no_loading):
    out = tmp_path / "e"
    out.mkdir()
    for bad in ('{"candidates": "x"}', "[1, 2]", '{"candidates": [{"name": 3}]}', "\x00\xff"):
        (out / "results.json").write_text(bad)
        assert_refused(["eval", str(tiny_dir), "--out", str(out)], capsys, tmp_path, needle="results")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_one_line_before_loading(tiny_dir, tmp_path, capsys, no_loading):
    assert_refused(["eval", str(tiny_dir), "--device", "cuda", "--out", str(tmp_path / "e")], capsys, tmp_path,
                   needle="no CUDA")


@pytest.mark.parametrize("width", [767.5, "768", True, -1])
def test_a_subnet_width_must_be_a_whole_number(tiny_dir, tmp_path, capsys, width):
    ranked = write_ranked(tmp_path / "ranked.json", [{**GOOD_SUBNET, "ffn": [width, 48, 64]}])
    assert_refused(["prune", str(tiny_dir), "--subnet", str(ranked), "--out", str(tmp_path / "o")], capsys, tmp_path,
                   needle="ffn[0]")


def test_json_outputs_are_strict(tmp_path, capsys):
    from zerolm_prune.atomic import write_json

    write_json(tmp_path / "x.json", {"score": float("nan"), "list": [float("inf"), 1.0]})
    strict = json.loads((tmp_path / "x.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert strict == {"score": None, "list": [None, 1.0]}
    code, err = run_cli(["score", "--subnets", "x.json", "--alpha", "nan", "--json", str(tmp_path / "s.json")], capsys)
    assert code == 2 and "--alpha" in err and "nan" in err and not (tmp_path / "s.json").exists()
    assert math.isnan(float("nan"))


# ---- a few real processes: exit codes and bytes argv -----------------------------------------------------
def test_subprocess_exit_codes_and_a_non_utf8_path(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "zerolm_prune.cli"]
    for argv in (["rank", "smollm2-135m", "--space", "smollm2-135m", "--budget", "nan"],
                 ["info", os.fsencode(str(tmp_path)) + b"/caf\xe9"],
                 ["space", "smollm2-135m", "--out", str(tmp_path)]):
        proc = subprocess.run(cli + argv, capture_output=True, env=env, timeout=300)
        err = proc.stderr.decode("utf-8", "replace")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("zerolm-prune: error:"), err
    assert listing(tmp_path) == []


@pytest.mark.parametrize("change, needle", [({"model_type": "bert"}, "another model"),
                                            ({"vocab_size": 1}, "shapes config.json describes"),
                                            ({"hidden_size": 128}, "shapes config.json describes"),
                                            ({"tie_word_embeddings": "yes"}, "malformed"),
                                            ({"num_hidden_layers": "3"}, "whole number"),
                                            ({"num_hidden_layers": 10**6}, "out of range")])
def test_a_config_that_does_not_describe_the_weights_is_refused_before_loading(tiny_dir, tmp_path, capsys, no_loading,
                                                                              change, needle):
    folder = tmp_path / "m"
    shutil.copytree(tiny_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    for argv in (["info", str(folder)], ["rank", str(folder), "--space", str(folder), "--budget", "0.8"],
                 ["eval", str(folder), "--out", str(tmp_path / "e")]):
        assert_refused(argv, capsys, tmp_path, needle=needle)


def test_a_temp_file_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    from zerolm_prune.atomic import write_text

    dead = _dead_pid()
    debris = [tmp_path / f".r.json.tmp-{dead}-abc.tmp", tmp_path / ".r.json.k2j3x9q_.tmp"]  # new and pre-pid names
    for d in debris:
        d.write_text("half")
    mine = tmp_path / f".r.json.tmp-{os.getpid()}-live.tmp"  # a live writer's temp file stays
    mine.write_text("in progress")
    write_text(tmp_path / "r.json", "{}")
    assert not any(d.exists() for d in debris) and mine.exists()


def test_task_cache_build_cleans_debris_of_a_killed_build(tmp_path):
    """kill -9 during the lm-eval task cache build skips its cleanup; the next build of the same
    folder removes what the dead writer left (a live writer's staging is left alone)."""
    from zerolm_prune.tasks.build import write_task_dir

    target = write_task_dir(["piqa"], root=tmp_path)
    shutil.rmtree(target)
    dead = tmp_path / f".{target.name}.partial-999999999-abcd"
    live = tmp_path / f".{target.name}.partial-{os.getpid()}-abcd"
    dead.mkdir()
    live.mkdir()
    assert write_task_dir(["piqa"], root=tmp_path) == target and (target / "piqa.yaml").is_file()
    assert not dead.exists() and live.exists()
