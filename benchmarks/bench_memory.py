"""Peak memory of pruning: materialize + save must not hold two copies of the model.

Two measurements, each step in its own fresh subprocess (peak RSS = ``ru_maxrss`` of that
process, so import overhead is included on both sides of every ratio):

1. SmolLM2-135M at a 0.5 parameter budget: the full model's load peak vs the peak of
   load + ``materialize(inplace=True)`` + ``save_pretrained`` (in memory), and vs the streaming
   folder path (``materialize_folder``, what ``zerolm-prune prune`` uses for safetensors folders).
   Target: in-memory prune peak <= 1.3x the load peak.
2. Synthetic multi-shard LLaMA checkpoints (random fp32 tensors written shard by shard) of two
   sizes: peak RSS of streaming each to a smaller subnet vs its size on disk. Streaming holds about
   one tensor at a time, so the peak should stay flat as the checkpoint grows.

Usage: python benchmarks/bench_memory.py [--synthetic-mb 400 1200] [--keep DIR] [--skip-smollm2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PRELUDE = textwrap.dedent("""
    import os, resource, sys, json
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    torch.set_num_threads(1)
    import transformers  # imported up front so every step pays the same import cost
    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    BASE = rss_mb()
    def report(**extra):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps({"peak_mb": peak, "base_mb": BASE, **extra}))
""")


def run_step(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def half_subnet_smollm2() -> dict:
    """~0.5 of SmolLM2-135M's parameters: KV groups 1/2 alternating, FFN 512/480 alternating."""
    return {"heads": [3, 6] * 15, "ffn": [512, 480] * 15}


def bench_smollm2(work: Path) -> None:
    subnet = json.dumps(half_subnet_smollm2())
    lazy = run_step("""
        from zerolm_prune.assets import smollm2_135m
        model, tok = smollm2_135m()
        report(params=sum(p.numel() for p in model.parameters()))
    """)
    # transformers 5 memory-maps safetensors: a model nobody has run is only partly resident.
    # The fair "load peak" is the model after one forward pass (every weight touched).
    load = run_step("""
        from zerolm_prune.assets import smollm2_135m
        model, tok = smollm2_135m()
        with torch.no_grad():
            model(input_ids=tok("Hello there", return_tensors="pt").input_ids)
        report(params=sum(p.numel() for p in model.parameters()))
    """)
    in_memory = run_step(f"""
        from zerolm_prune.assets import smollm2_135m
        from zerolm_prune.checkpoint import save_pretrained
        from zerolm_prune.materialize import materialize
        from zerolm_prune.space import Subnet
        model, tok = smollm2_135m()
        subnet = Subnet.from_dict(json.loads({subnet!r}))
        model = materialize(model, subnet, inplace=True)
        save_pretrained(model, {str(work / "smol-mem")!r}, tokenizer=tok, subnet=subnet)
        report(params=sum(p.numel() for p in model.parameters()))
    """)
    streamed = run_step(f"""
        from zerolm_prune.assets import smollm2_135m_dir
        from zerolm_prune.materialize import materialize_folder
        from zerolm_prune.space import Subnet
        materialize_folder(smollm2_135m_dir(), Subnet.from_dict(json.loads({subnet!r})), {str(work / "smol-stream")!r})
        report()
    """)
    ratio_params = in_memory["params"] / load["params"]
    print(f"SmolLM2-135M, subnet at {ratio_params:.3f} of the parameters ({in_memory['params'] / 1e6:.1f}M of "
          f"{load['params'] / 1e6:.1f}M)")
    print(f"  {'step':<38}{'peak RSS':>10}{'above imports':>15}{'vs load':>9}")
    for name, r in (("load full model (lazy, untouched)", lazy), ("load full model + one forward", load),
                    ("load + materialize + save (in memory)", in_memory),
                    ("stream folder -> folder", streamed)):
        print(f"  {name:<38}{r['peak_mb']:>8.0f}MB{r['peak_mb'] - r['base_mb']:>13.0f}MB"
              f"{r['peak_mb'] / load['peak_mb']:>8.2f}x")
    verdict = "OK" if in_memory["peak_mb"] <= 1.3 * load["peak_mb"] else "OVER TARGET"
    print(f"  target: in-memory prune peak <= 1.3x load peak -> {in_memory['peak_mb'] / load['peak_mb']:.2f}x {verdict}")


def write_synthetic(folder: Path, target_mb: int) -> tuple[int, int]:
    """A LLaMA checkpoint of about ``target_mb`` MB in ~100 MB shards, written tensor by tensor."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    hidden, ffn, vocab = 1024, 4096, 32000
    per_layer = (2 * hidden * hidden + 2 * hidden * hidden // 4 + 3 * hidden * ffn + 2 * hidden) * 4
    layers = max(2, int((target_mb * 2**20 - 2 * vocab * hidden * 4) // per_layer))
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                         num_attention_heads=16, num_key_value_heads=4, head_dim=64, tie_word_embeddings=False,
                         max_position_embeddings=512)
    config.architectures = ["LlamaForCausalLM"]
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,),
              "lm_head.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (hidden, hidden), p + "self_attn.k_proj.weight": (hidden // 4, hidden),
                       p + "self_attn.v_proj.weight": (hidden // 4, hidden), p + "self_attn.o_proj.weight": (hidden, hidden),
                       p + "mlp.gate_proj.weight": (ffn, hidden), p + "mlp.up_proj.weight": (ffn, hidden),
                       p + "mlp.down_proj.weight": (hidden, ffn), p + "input_layernorm.weight": (hidden,),
                       p + "post_attention_layernorm.weight": (hidden,)})
    gen = torch.Generator().manual_seed(0)
    shard, size, files, weight_map = {}, 0, [], {}

    def flush():
        nonlocal shard, size
        if shard:
            name = f"model-{len(files) + 1:05d}.safetensors"
            save_file(shard, str(folder / name), metadata={"format": "pt"})
            files.append(name)
            weight_map.update({k: name for k in shard})
            shard, size = {}, 0

    for key, shape in shapes.items():
        tensor = torch.randn(shape, generator=gen) * 0.02
        if size + tensor.numel() * 4 > 100 * 2**20:
            flush()
        shard[key] = tensor
        size += tensor.numel() * 4
    flush()
    total = sum((folder / f).stat().st_size for f in files)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                     "weight_map": weight_map}))
    return layers, total


def bench_streaming(work: Path, sizes_mb: list[int]) -> None:
    print("\nStreaming prune of synthetic multi-shard LLaMA checkpoints (100 MB shards, FFN 4096 -> 2048, "
          "every other layer half the KV groups):")
    print(f"  {'checkpoint':>11}{'layers':>8}{'shards':>8}{'pruned':>9}{'peak RSS':>10}{'above imports':>15}"
          f"{'peak/ckpt':>11}")
    for target in sizes_mb:
        src = work / f"synthetic-{target}"
        layers, size = write_synthetic(src, target)
        subnet = json.dumps({"heads": [8, 16] * (layers // 2) + [8] * (layers % 2), "ffn": [2048] * layers})
        out = work / f"synthetic-{target}-pruned"
        r = run_step(f"""
            from zerolm_prune.materialize import materialize_folder
            from zerolm_prune.space import Subnet
            materialize_folder({str(src)!r}, Subnet.from_dict(json.loads({subnet!r})), {str(out)!r},
                               max_shard_bytes=100 * 2**20)
            report()
        """)
        out_size = sum(f.stat().st_size for f in out.glob("*.safetensors"))
        shards = len(list(src.glob("*.safetensors")))
        print(f"  {size / 2**20:>9.0f}MB{layers:>8}{shards:>8}{out_size / 2**20:>7.0f}MB{r['peak_mb']:>8.0f}MB"
              f"{r['peak_mb'] - r['base_mb']:>13.0f}MB{r['peak_mb'] / (size / 2**20):>10.2f}x")
        import shutil

        shutil.rmtree(src)
        shutil.rmtree(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-mb", type=int, nargs="+", default=[400, 1200],
                        help="sizes of the synthetic checkpoints in MB (default: 400 1200)")
    parser.add_argument("--keep", default=None, help="work folder to keep (default: a temp folder, removed)")
    parser.add_argument("--skip-smollm2", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not args.skip_smollm2:
            bench_smollm2(work)
        bench_streaming(work, args.synthetic_mb)


if __name__ == "__main__":
    main()
