"""``rank`` saves the exact unit orders it scored with; ``prune --subnet ranked.json`` cuts those.

Why: selfgen orders are recomputed from a fixed seed, but another torch thread count can flip
near-tied units, so a prune that recomputes the order could save a checkpoint other than the
subnet that was scored. Real SmolLM2-135M weights throughout (the built-in asset).
"""

from __future__ import annotations

import json

import pytest
import torch
from orders_support import (
    SMOL,
    assert_cut_by,
    copy_ranked,
    cut_layers,
    forbid_recompute,
    rank_selfgen,
)
from safetensors.torch import load_file

import zerolm_prune.rankers.orders as orders_mod
from zerolm_prune.assets import smollm2_135m_dir
from zerolm_prune.cli import main
from zerolm_prune.loading import load_config
from zerolm_prune.models import get_adapter
from zerolm_prune.rankers.orders import load_orders, ranked_orders_file, validate_orders
from zerolm_prune.search import read_ranked


@pytest.fixture(scope="module")
def adapter():
    return get_adapter(load_config("smollm2-135m"))


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    return rank_selfgen(tmp_path_factory.mktemp("ranked"), top_k=2)


@pytest.fixture
def ranked_copy(ranked, tmp_path):
    return copy_ranked(ranked[0], tmp_path)


def test_rank_writes_the_scored_orders_as_a_sidecar(ranked, adapter):
    out, computed = ranked
    doc = json.loads(out.read_text())
    assert doc["order"] == "selfgen" and doc["orders_file"] == "ranked.orders.json"
    assert sorted(p.name for p in out.parent.iterdir()) == ["ranked.json", "ranked.orders.json"]  # no temp files
    assert read_ranked(f"{out}#1")[0]["source"]["orders_file"] == "ranked.orders.json"
    sidecar = out.parent / "ranked.orders.json"
    text = sidecar.read_text()
    assert text.count("\n") == 1  # compact: one line of lists of ints
    data = json.loads(text)
    assert data["order"] == "selfgen" and data["model"] == "smollm2-135m"
    assert data["fingerprint"]["layers"] == 30 and data["fingerprint"]["hidden_size"] == 576
    assert validate_orders(data["orders"], adapter) == computed  # the exact dict rank scored with
    assert load_orders(sidecar, adapter, name="selfgen") == computed
    # meaningful only if selfgen keeps other units than prefix somewhere
    assert any(computed[l]["ffn"][:768] != list(range(768)) for l in computed)


def test_prune_cuts_the_saved_units_not_a_recomputation(ranked_copy, adapter, tmp_path, monkeypatch, capsys):
    sidecar = ranked_copy.parent / "ranked.orders.json"
    data = json.loads(sidecar.read_text())
    subnet = read_ranked(f"{ranked_copy}#0")[0]["subnet"]
    layers = cut_layers(subnet, adapter)
    assert len(layers) >= 2
    tampered, untouched = layers[0], layers[1]
    original = dict(data["orders"][str(tampered)])
    data["orders"][str(tampered)] = {"heads": original["heads"][::-1], "ffn": original["ffn"][::-1]}
    sidecar.write_text(json.dumps(data))
    saved = {int(k): v for k, v in data["orders"].items()}
    keep_ffn = subnet["ffn"][tampered]
    assert set(saved[tampered]["ffn"][:keep_ffn]) != set(original["ffn"][:keep_ffn])  # the tamper changes the cut

    forbid_recompute(monkeypatch)
    out = tmp_path / "pruned"
    assert main(["prune", "smollm2-135m", "--subnet", f"{ranked_copy}#0", "--out", str(out)]) == 0
    assert "missing" not in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["zerolm_prune"]["order"] == "selfgen"  # the name, not "custom"

    base = load_file(str(smollm2_135m_dir() / "model.safetensors"))
    pruned = load_file(str(out / "model.safetensors"))
    assert_cut_by(pruned, base, saved, subnet, adapter, (tampered, untouched))


def _wrong_length(data):
    data["orders"]["3"]["ffn"] = data["orders"]["3"]["ffn"][:-1]


def _other_order(data):
    data["order"] = "energy"


def _other_model(data):
    data["fingerprint"]["hidden_size"] = 1024


@pytest.mark.parametrize("corrupt,needle", [
    (_wrong_length, "layer 3 'ffn' must be a permutation of its 1536 FFN channels"),
    (_other_order, "holds the 'energy' order"),
    (_other_model, "hidden_size differ"),
    ("not json", "is not valid JSON"),
])
def test_corrupt_sidecar_is_one_line_exit_2(ranked_copy, tmp_path, monkeypatch, capsys, corrupt, needle):
    sidecar = ranked_copy.parent / "ranked.orders.json"
    if isinstance(corrupt, str):
        sidecar.write_text(corrupt)
    else:
        data = json.loads(sidecar.read_text())
        corrupt(data)
        sidecar.write_text(json.dumps(data))
    forbid_recompute(monkeypatch)
    out = tmp_path / "pruned"
    assert main(["prune", "smollm2-135m", "--subnet", str(ranked_copy), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in err, err
    assert not out.exists()


def test_missing_sidecar_recomputes_with_a_note(ranked_copy, tmp_path, monkeypatch, capsys):
    (ranked_copy.parent / "ranked.orders.json").unlink()
    calls = []
    real = orders_mod.compute_orders
    monkeypatch.setattr(orders_mod, "compute_orders", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    assert main(["prune", "smollm2-135m", "--subnet", str(ranked_copy), "--out", str(tmp_path / "pruned")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "ranked.orders.json" in line]
    assert len(notes) == 1 and notes[0].startswith("note:") and "missing" in notes[0]
    assert calls == ["selfgen"]


def test_another_order_ignores_the_sidecar(ranked_copy, tmp_path, monkeypatch, capsys):
    calls = []
    real = orders_mod.compute_orders
    monkeypatch.setattr(orders_mod, "compute_orders", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    out = tmp_path / "pruned"
    assert main(["prune", "smollm2-135m", "--subnet", str(ranked_copy), "--out", str(out), "--order", "energy"]) == 0
    assert "materializing with 'energy'" in capsys.readouterr().err
    assert calls == ["energy"]
    assert json.loads((out / "config.json").read_text())["zerolm_prune"]["order"] == "energy"


def test_no_sidecar_without_a_computed_order(tmp_path):
    out = tmp_path / "ranked.json"
    assert main(["rank", "--space", SMOL, "--shapes-only", "--budget", "0.8", "--top-k", "1", "--out", str(out)]) == 0
    assert "orders_file" not in json.loads(out.read_text())
    assert [p.name for p in tmp_path.iterdir()] == ["ranked.json"]


def test_saved_orders_stream_and_match_the_in_memory_cut(ranked, tmp_path, monkeypatch, capsys):
    """With rank's dict on disk nothing needs the loaded model: prune streams tensor by tensor,
    and the checkpoint is the one the in-memory path writes."""
    out, _ = ranked
    forbid_recompute(monkeypatch)
    streamed, in_memory = tmp_path / "streamed", tmp_path / "in-memory"
    assert main(["prune", "smollm2-135m", "--subnet", f"{out}#1", "--out", str(streamed)]) == 0
    assert "streamed from safetensors" in capsys.readouterr().out
    assert main(["prune", "smollm2-135m", "--subnet", f"{out}#1", "--out", str(in_memory), "--in-memory"]) == 0
    assert "streamed" not in capsys.readouterr().out
    a, b = load_file(str(streamed / "model.safetensors")), load_file(str(in_memory / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for folder in (streamed, in_memory):
        assert json.loads((folder / "config.json").read_text())["zerolm_prune"]["order"] == "selfgen"


def _as_custom(ranked_copy):
    """A ranked file scored on an orders dict given from Python: its order name is "custom" and,
    here, nobody saved the dict."""
    doc = json.loads(ranked_copy.read_text())
    doc["order"] = "custom"
    doc.pop("orders_file")
    ranked_copy.write_text(json.dumps(doc))
    (ranked_copy.parent / "ranked.orders.json").unlink()


@pytest.mark.parametrize("command", ["prune", "eval"])
def test_an_order_nobody_can_recompute_is_one_line_before_loading(ranked_copy, tmp_path, monkeypatch, capsys, command):
    _as_custom(ranked_copy)
    import zerolm_prune.loading as loading

    def no_load(*args, **kwargs):
        raise AssertionError("weights were loaded before the order was checked")

    monkeypatch.setattr(loading, "load_model", no_load)
    out = tmp_path / "out"
    flag = "--subnet" if command == "prune" else "--subnets"
    assert main([command, "smollm2-135m", flag, str(ranked_copy), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "unit order 'custom', which cannot be computed again" in errors[0], err
    assert "--order (prefix, capacity, energy, selfgen)" in errors[0] and "Traceback" not in err
    assert not out.exists()


def test_the_same_model_by_another_spelling_is_not_called_another_model(ranked, tmp_path, capsys):
    """rank's sidecar names the model as typed (a built-in name); prune/eval on the same folder by
    its path, or through a symlink, is the same model, so no "other model" note; a copy elsewhere is
    another folder and gets the note (its weights may differ)."""
    out, _ = ranked
    source = read_ranked(str(out))[0]["source"]
    assert source["model"] == "smollm2-135m"
    folder = smollm2_135m_dir()
    link = tmp_path / "link"
    link.symlink_to(folder, target_is_directory=True)
    other = tmp_path / "other"
    other.mkdir()
    for f in folder.iterdir():
        (other / f.name).symlink_to(f)
    for model, noted in [("smollm2-135m", False), (str(folder), False), (str(link), False), (str(other), True)]:
        assert ranked_orders_file(str(out), source, model=model) == out.parent / "ranked.orders.json"
        notes = [line for line in capsys.readouterr().err.splitlines() if "unit orders saved by rank" in line]
        assert len(notes) == int(noted), (model, notes)
