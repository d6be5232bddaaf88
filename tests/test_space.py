"""Search spaces: recipes, ratio spaces, LoNAS NNCF import, validation errors and the `space` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_bert_config, tiny_llama_config
from zerolm_prune import cost
from zerolm_prune.cli import main
from zerolm_prune.errors import UserError
from zerolm_prune.models import get_adapter
from zerolm_prune.space import (
    RECIPES_DIR, LayerChoice, LayerSpace, SearchSpace, Subnet, apply_ratios, full_space, load_space,
    loads_lenient_json, validate_space, validate_subnet,
)

FIXTURES = Path(__file__).parent / "fixtures"
LLAMA_NNCF = FIXTURES / "lonas_nncf_llama_7b_commonsense.json"
BERT_NNCF = FIXTURES / "lonas_nncf_bert_base_rte.json"
TINY_LLAMA = {"model_type": "llama", "vocab_size": 128, "hidden_size": 64, "intermediate_size": 96,
              "num_hidden_layers": 3, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 8}


def write_recipe(tmp_path: Path, body: str, config: dict | None = TINY_LLAMA) -> Path:
    import yaml

    text = body
    if config is not None:
        text = yaml.safe_dump({"config": config}) + body
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI, require exit code 2 and exactly one error line; return that line."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


# ---- data model -------------------------------------------------------------------------------
def test_json_round_trip_keeps_per_layer_choices():
    space = SearchSpace(
        [LayerSpace([8, 4], [96, 48], {"qkv": [6, 4]}), LayerSpace([4], [96, 64, 32], {"qkv": [6]})],
        model="m", config=TINY_LLAMA, lora={"groups": {"qkv": ["q_proj"]}, "r_max": 6, "alpha": 12.0}, name="x",
    )
    again = SearchSpace.from_json(space.to_json())
    assert again == space
    assert space.size == (2 * 2 * 2) * (1 * 3 * 1)
    subnet = Subnet([LayerChoice(4, 48, (("qkv", 4),)), LayerChoice(4, 32, (("qkv", 6),))])
    assert Subnet.from_json(subnet.to_json()) == subnet
    assert json.loads(subnet.to_json()) == {"heads": [4, 4], "ffn": [48, 32], "ranks": {"qkv": [4, 6]}}
    assert space.contains(subnet)
    assert space.config_object().num_key_value_heads == 2


@pytest.mark.parametrize("values, middle", [([32, 28], 32), ([8, 4, 2], 4), ([4, 3, 2, 1], 3),
                                            ([11008, 9632, 8256, 6880, 5504], 8256), ([28, 32], 32)])
def test_heuristic_is_lonas_upper_middle(values, middle):
    """LoNAS run_commonsense.py: v[(len(v) - 1) // 2] of the largest-first list."""
    assert LayerSpace([8], values).pick("middle").ffn == middle


# ---- recipes ----------------------------------------------------------------------------------
PUBLISHED = {  # parameter counts everyone quotes for the unpruned models
    "llama-7b-lonas": 6_738_415_616, "llama3-8b": 8_030_261_248, "bert-base-lonas": 109_482_240,
    "minilm-l6": 22_713_216, "smollm2-135m": 134_515_008,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_recipes_load_and_count_like_the_real_models(name):
    space = load_space(str(RECIPES_DIR / f"{name}.yaml"))
    adapter = space.adapter()
    validate_space(space, adapter)
    assert cost.subnet_params(adapter, space.maximal()) == PUBLISHED[name]
    for subnet in (space.maximal(), space.heuristic(), space.minimal()):
        validate_subnet(subnet, adapter, space)


def test_llama7b_lonas_space_matches_the_release():
    space = load_space("llama-7b-lonas")
    assert space.num_layers == 32
    assert all(layer.size == 2 * 5 * 2 for layer in space.layers)
    assert space.size == 20 ** 32 and f"{space.size:.2g}" == "4.3e+41"
    heuristic = space.heuristic()
    assert {c.ffn for c in heuristic.layers} == {8256} and {c.heads for c in heuristic.layers} == {32}
    assert {c.rank("qkv") for c in heuristic.layers} == {32} == {c.rank("gateup") for c in heuristic.layers}
    # the heuristic is a stock-shaped LLaMA with FFN 8256: count it on the meta device
    from transformers import LlamaForCausalLM

    config = space.config_object()
    config.intermediate_size = 8256
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    params = cost.subnet_params(space.adapter(), heuristic)
    assert params == sum(p.numel() for p in model.parameters())
    assert 5.6e9 < params < 5.7e9
    # LoRA at the heuristic ranks: q/k/v and gate/up at 32, down_proj fixed at 32
    lora = cost.subnet_params(space.adapter(), heuristic, lora=space.lora, include_lora=True) - params
    assert lora == 32 * 32 * (3 * (4096 + 4096) + 2 * (4096 + 8256) + (8256 + 4096))


def test_embedded_configs_match_the_real_assets():
    """The default recipes must describe the built-in checkpoints exactly (config files only)."""
    from zerolm_prune.loading import load_config

    for name in ("smollm2-135m", "minilm-l6"):
        recipe = get_adapter(load_space(name).config_object())
        real = get_adapter(load_config(name))
        assert recipe.geometries() == real.geometries()
        assert cost.fixed_params(recipe) == cost.fixed_params(real)
        assert recipe.vocab_size == real.vocab_size


def test_recipe_per_layer_lists_and_overrides(tmp_path):
    path = write_recipe(tmp_path, """
name: t
lora: {groups: {qkv: [q_proj, k_proj, v_proj]}, r_max: 8, alpha: 16}
kv_groups: [2, 1]
ffn: [[96, 48], [96], [96, 72, 48]]
ranks: {qkv: [8, 4]}
layers:
  "1-2": {heads: [8]}
  "2": {ranks: {qkv: [8]}}
""")
    space = load_space(str(path))
    assert [layer.heads for layer in space.layers] == [[8, 4], [8], [8]]
    assert [layer.ffn for layer in space.layers] == [[96, 48], [96], [96, 72, 48]]
    assert [layer.ranks for layer in space.layers] == [{"qkv": [8, 4]}, {"qkv": [8, 4]}, {"qkv": [8]}]
    assert space.size == (2 * 2 * 2) * (1 * 1 * 2) * (1 * 3 * 1)


# ---- ratios -----------------------------------------------------------------------------------
def test_ratio_space_keeps_whole_kv_groups_and_rounds_ffn():
    base = full_space(tiny_llama_config(num_key_value_heads=4), model="tiny")  # 8 heads, 2 per group
    space = apply_ratios(base, ffn=[1, 0.875, 0.75, 0.625, 0.5], heads=[1, 0.67, 0.5, 0.1], rank=[16, 8])
    layer = space.layers[0]
    assert layer.heads == [8, 6, 4, 2]  # 4 groups: 4, round(2.68)=3, 2, max(1, 0)=1 groups of 2 heads
    assert layer.ffn == [96, 88, 72, 64, 48]  # 84 -> 88, 60 -> 64 (half up, multiples of 8)
    assert layer.ranks == {"qkv": [16, 8], "gateup": [16, 8]}
    assert space.lora["targets"] == ["down_proj"] and space.lora["r_max"] == 16
    validate_space(space)


def test_ratios_on_a_recipe_replace_only_the_given_dimension():
    space = load_space("llama-7b-lonas", heads="1,0.5")
    assert space.layers[0].heads == [32, 16]
    assert space.layers[0].ffn == [11008, 9632, 8256, 6880, 5504]
    assert space.layers[0].ranks == {"qkv": [32, 28], "gateup": [32, 28]}


def test_ratio_space_of_a_model_folder_reads_config_only(monkeypatch):
    """A MODEL (here the real SmolLM2 folder) gives its geometry through config.json alone."""
    import zerolm_prune.assets as assets
    import zerolm_prune.loading as loading

    folder = str(assets.smollm2_135m_dir())
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("weights must not be loaded"))
    space = load_space(folder, ffn="1,0.875,0.75,0.625,0.5", heads="1,0.67", rank="32,28")
    assert space.model == folder and space.name == f"{folder} ratios"
    recipe = load_space("smollm2-135m")
    assert space.layers == recipe.layers  # the shipped recipe is exactly these ratios
    assert space.lora == {**recipe.lora, "alpha": 64.0}
    # the ratios applied to the recipe name keep the recipe's LoRA settings and config
    assert load_space("smollm2-135m", ffn="1,0.5").layers[0] == LayerSpace([9, 6], [1536, 768], recipe.layers[0].ranks)
    # without ratios a MODEL gets the default ratios (and no LoRA ranks)
    default = load_space(folder)
    assert default.layers[0].heads == [9, 6] and default.layers[0].ranks == {}


# ---- LoNAS NNCF import ------------------------------------------------------------------------
def test_lenient_json_accepts_trailing_commas_outside_strings():
    assert loads_lenient_json('{"a": [1, 2,], "s": "x,]", "b": {"c": 1,},}') == {"a": [1, 2], "s": "x,]", "b": {"c": 1}}


def test_nncf_llama7b_import_equals_recipe():
    assert ",\n                }" in LLAMA_NNCF.read_text()  # the released file's trailing comma is kept
    imported = load_space(str(LLAMA_NNCF), model=str(RECIPES_DIR / "llama-7b-lonas.yaml"))
    recipe = load_space("llama-7b-lonas")
    assert imported.layers == recipe.layers
    assert (imported.model, imported.config, imported.lora) == (recipe.model, recipe.config, recipe.lora)
    assert imported.heuristic() == recipe.heuristic()


def test_nncf_bert_import_equals_recipe_with_heads_from_widths():
    imported = load_space(str(BERT_NNCF), model="bert-base-lonas")
    recipe = load_space("bert-base-lonas")
    assert imported.layers == recipe.layers
    assert imported.layers[10].heads == [12, 11, 3]  # [768, 704, 192] / 64


def test_nncf_import_with_a_model_config_names_groups_by_family(tmp_path):
    """Without a recipe, rank groups take the adapter's LoNAS names and alpha = 2 r_max."""
    folder = tmp_path / "llama7b"
    folder.mkdir()
    config = load_space("llama-7b-lonas").config_object()
    config.save_pretrained(folder)
    space = load_space(str(LLAMA_NNCF), model=str(folder))
    assert space.lora == {"groups": {"qkv": ["q_proj", "k_proj", "v_proj"], "gateup": ["gate_proj", "up_proj"]},
                          "r_max": 32, "alpha": 64.0}
    assert space.layers == load_space("llama-7b-lonas").layers


# ---- bad input: one line, exit 2 --------------------------------------------------------------
@pytest.mark.parametrize("body, needles", [
    ("ffn: [96]\nfnn: [48]\n", ["fnn", "unknown key", "allowed keys"]),
    ("ffn: [128, 96]\n", ["ffn", "128", "up to 96"]),
    ("heads: [8, 5]\n", ["heads", "splits a KV group", "multiple of 4"]),
    ("ffn: []\n", ["ffn", "empty list"]),
    ("ffn: [[96], [48]]\n", ["ffn", "2 per-layer lists for a 3-layer model", "exactly 3"]),
    ("ffn: [96\nheads: [8]\n", ["not valid YAML at line", "recipe.yaml"]),
    ("ranks: {qkv: [8]}\n", ["ranks.qkv", "unknown LoRA group"]),
    ("lora: {groups: {qkv: [qproj]}, r_max: 8}\n", ["lora.groups.qkv", "'qproj'", "q_proj"]),
    ('layers: {"7": {ffn: [48]}}\n', ["layers.7", "0..2"]),
])
def test_bad_recipes_give_one_line_naming_file_and_key(tmp_path, capsys, body, needles):
    path = write_recipe(tmp_path, body)
    err = cli_error(capsys, ["space", str(path)])
    assert str(path) in err
    for needle in needles:
        assert needle in err, err


def test_bad_json_and_ratios_and_missing_model(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"bootstrapNAS": {"training": [}}')
    assert "not valid JSON at line 1" in cli_error(capsys, ["space", str(bad)])
    assert "--model" in cli_error(capsys, ["space", str(LLAMA_NNCF)])
    err = cli_error(capsys, ["space", str(LLAMA_NNCF), "--model", str(RECIPES_DIR / "bert-base-lonas.yaml")])
    assert "overwrite_groups[0]" in err and "not a block projection" in err
    assert "(0, 1]" in cli_error(capsys, ["space", "llama-7b-lonas", "--ffn", "1,1.5"])
    assert "--rank" in cli_error(capsys, ["space", "llama-7b-lonas", "--rank", "32,x"])
    assert "no such file" in cli_error(capsys, ["space", str(tmp_path / "missing.yaml")])


def test_validate_subnet_errors_name_the_layer():
    adapter = get_adapter(tiny_llama_config())
    ok = Subnet([LayerChoice(8, 96), LayerChoice(4, 10), LayerChoice(4, 1)])
    validate_subnet(ok, adapter)
    with pytest.raises(UserError, match=r"subnet: heads: 6 query heads at layer 1 splits a KV group"):
        validate_subnet(Subnet([LayerChoice(8, 96), LayerChoice(6, 96), LayerChoice(4, 96)]), adapter)
    with pytest.raises(UserError, match=r"ffn: width 97 at layer 0 is outside 1..96"):
        validate_subnet(Subnet([LayerChoice(8, 97)] * 3), adapter)
    with pytest.raises(UserError, match="2 layers but the model has 3"):
        validate_subnet(Subnet([LayerChoice(8, 96)] * 2), adapter)
    space = apply_ratios(full_space(tiny_llama_config()), ffn=[1, 0.5])
    with pytest.raises(UserError, match=r"10 at layer 1 is not a choice of the space \(\[96, 48\]\)"):
        validate_subnet(Subnet([LayerChoice(8, 96), LayerChoice(8, 10), LayerChoice(8, 48)]), adapter, space)
    validate_subnet(Subnet([LayerChoice(8, 96), LayerChoice(8, 48), LayerChoice(8, 48)]), adapter, space)


def test_bert_heads_need_no_groups():
    """Multi-head attention: every head count 1..num_heads is a whole unit; under GQA the same
    odd counts would split a KV group. Out-of-range counts stay errors on both."""
    bert = get_adapter(tiny_bert_config())  # 6 heads, MHA
    for heads in range(1, 7):
        validate_subnet(Subnet([LayerChoice(heads, 80), LayerChoice(1, 3)]), bert)
    for heads in (0, 7):
        with pytest.raises(UserError, match="outside 1..6"):
            validate_subnet(Subnet([LayerChoice(heads, 80), LayerChoice(1, 3)]), bert)
    llama = get_adapter(tiny_llama_config())  # 8 heads, 2 KV heads: groups of 4
    with pytest.raises(UserError, match="splits a KV group"):
        validate_subnet(Subnet([LayerChoice(5, 96)] * 3), llama)


# ---- CLI --------------------------------------------------------------------------------------
def test_space_cli_llama7b_offline_without_weights(capsys, monkeypatch):
    import zerolm_prune.loading as loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("space must not load weights"))
    monkeypatch.setattr(loading, "load_config", lambda *a, **k: pytest.fail("a recipe carries its config"))
    assert main(["space", str(RECIPES_DIR / "llama-7b-lonas.yaml")]) == 0
    out = capsys.readouterr().out
    assert "0-31" in out and "11008,9632,8256,6880,5504" in out
    assert "4.3e41 subnets: 32 layers x (5 x 2 x 2) = 32 x 20 choices" in out
    heuristic = next(line for line in out.splitlines() if line.startswith("heuristic"))
    assert "5.66B" in heuristic


def test_space_cli_json_and_out_round_trip(tmp_path, capsys):
    out_file = tmp_path / "space.json"
    assert main(["space", "bert-base-lonas", "--json", "--seq-len", "128", "--out", str(out_file)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["size"] == 18 ** 11 * 27 and data["size_text"] == "1.7e15"
    assert data["subnets"]["maximal"]["params"] == PUBLISHED["bert-base-lonas"]
    rows = data["subnets"]
    assert rows["minimal"]["params"] < rows["heuristic"]["params"] < rows["maximal"]["params"]
    heads = rows["heuristic"]["subnet"]["heads"]
    assert heads[10] == 11 and sum(heads) == 11 * 12 + 11  # [12, 11, 3] -> upper middle
    assert rows["heuristic"]["macs_per_token_seq128"] - rows["heuristic"]["macs_per_token"] == 2 * 64 * sum(heads) * 127
    again = load_space(str(out_file))
    assert again.layers == load_space("bert-base-lonas").layers and again.lora == data["space"]["lora"]


def test_space_without_config_reads_the_named_models_config(tmp_path):
    folder = tmp_path / "tiny"
    tiny_llama_config().save_pretrained(folder)
    space = SearchSpace([LayerSpace([8, 4], [96, 48])] * 3, model=str(folder))
    path = tmp_path / "space.json"
    path.write_text(space.to_json())
    loaded = load_space(str(path))
    assert loaded.config_object().num_key_value_heads == 2
    validate_space(loaded)
    with pytest.raises(UserError, match="config: missing"):
        SearchSpace([LayerSpace([8], [96])]).config_object()


def test_gpt2_ratio_space_heads_and_ffn():
    from conftest import tiny_gpt2_config

    space = apply_ratios(full_space(tiny_gpt2_config()), heads=[1, 0.5], ffn=[1, 0.5], rank=[4])
    assert space.layers[0] == LayerSpace([4, 2], [80, 40], {"qkv": [4]})
    assert space.lora == {"groups": {"qkv": ["c_attn"]}, "r_max": 4, "alpha": 8.0}
    validate_space(space)
