"""The CLI prints correct tables and turns user mistakes into one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zerolm_prune.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zerolm_prune.cli", *args], capture_output=True, text=True)


def test_info_smollm2(capsys):
    assert main(["info", "smollm2-135m"]) == 0
    out = capsys.readouterr().out
    assert "30" in out and "9 heads, 3 KV heads, head_dim 64  (GQA)" in out and "1536 gated" in out
    import re

    rows = re.findall(r"^\s*(\d+)\s+9\s+3\s+3\s+64\s+1536$", out, flags=re.M)
    assert [int(r) for r in rows] == list(range(30))  # one row per layer


def test_info_minilm_json(capsys):
    import json

    assert main(["info", "minilm-l6", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["layers"] == 6 and data["summary"]["num_heads"] == 12
    assert [r["ffn"] for r in data["layers"]] == [1536] * 6


def test_bad_model_is_one_line_exit_2(tmp_path):
    for bad in ("not-a-model", str(tmp_path), "a/b/c"):
        proc = run_cli("info", bad)
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("zerolm-prune: error:"), proc.stderr
        assert "Traceback" not in proc.stderr


def test_unsupported_config_folder(tmp_path):
    from transformers import T5Config

    T5Config().save_pretrained(tmp_path)
    proc = run_cli("info", str(tmp_path))
    assert proc.returncode == 2 and "supported model types" in proc.stderr


#: every step of the flow has a subcommand; a module of commands/ that fails to register drops out
FLOW = ("info", "space", "rank", "prune", "score", "eval", "publish", "bench", "run", "demo")


def test_help_lists_commands():
    """--help lists each subcommand (name and its help line) in the COMMAND section, in flow order;
    the words of the description printed above it do not count."""
    proc = run_cli("--help")
    assert proc.returncode == 0
    section = proc.stdout.split("\n  COMMAND\n", 1)[1]
    listed = [line.split()[0] for line in section.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert [c for c in listed if c in FLOW] == list(FLOW)
    for name in listed:  # each listed one is a working subcommand with its own help
        with pytest.raises(SystemExit) as stop:
            main([name, "--help"])
        assert stop.value.code == 0
