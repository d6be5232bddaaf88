"""Resolve a MODEL argument: a built-in asset name, a local folder, or a hub id.

Security: remote code runs only when the caller passes ``trust_remote_code=True`` (the CLI's
``--trust-remote-code``); pruned folders written by this tool load through our own code path, so
they never need it here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import assets
from .errors import UserError


def _is_causal(config: Any) -> bool:
    names = getattr(config, "architectures", None) or []
    return any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names) or (
        not names and getattr(config, "model_type", "") in ("llama", "mistral", "qwen2", "qwen3", "gpt2")
    )


def resolve(spec: str) -> str:
    """A folder path for built-ins and local folders, the spec unchanged for hub ids."""
    if spec in assets.BUILTIN_MODELS:
        return str(assets.builtin_model_dir(spec))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise UserError(f"{spec}: not a model folder (no config.json); pass a checkpoint folder, a hub id or one of {', '.join(assets.BUILTIN_MODELS)}")
        return str(path)
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        raise UserError(
            f"{spec!r} is not a built-in model ({', '.join(assets.BUILTIN_MODELS)}), "
            "an existing folder, or a hub id of the form owner/name"
        )
    return spec


def is_pruned_folder(path: str | Path) -> bool:
    """True for a folder written by ``zerolm_prune.checkpoint.save_pretrained``."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return "zerolm_prune" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def load_config(spec: str, *, trust_remote_code: bool = False) -> Any:
    """The transformers config of MODEL, without weights (shapes-only work)."""
    from transformers import AutoConfig  # lazy: loading is on the CLI's start-up path (--help)

    where = resolve(spec)
    try:
        return AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
    except ValueError as err:  # unknown model_type, or remote code refused
        raise UserError(f"{spec}: {str(err).splitlines()[0]} (pass --trust-remote-code only if you trust its code)") from None
    except OSError as err:
        raise UserError(
            f"{spec}: could not load its config ({str(err).splitlines()[0]}); offline machines need a local "
            f"folder or a built-in model ({', '.join(assets.BUILTIN_MODELS)})"
        ) from None


def load_model(spec: str, *, trust_remote_code: bool = False, dtype: Any = None, device: str | None = None):
    """Load MODEL for pruning or evaluation; returns ``(model, tokenizer)`` in eval mode.

    Causal LMs load with their LM head (``AutoModelForCausalLM``); encoders as the bare base model.
    """
    import torch  # lazy: loading is on the CLI's start-up path (--help)
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from .models import get_adapter

    if spec == "smollm2-135m":
        model, tokenizer = assets.smollm2_135m()
    elif spec == "minilm-l6":
        model, tokenizer = assets.minilm_l6()
    else:
        where = resolve(spec)
        if is_pruned_folder(where):
            from .checkpoint import load_pruned

            return load_pruned(where, device=device)
        config = load_config(spec, trust_remote_code=trust_remote_code)
        get_adapter(config)  # refuse unsupported families before downloading weights
        cls = AutoModelForCausalLM if _is_causal(config) else AutoModel
        try:
            model = cls.from_pretrained(where, dtype=dtype or torch.float32, trust_remote_code=trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:  # missing files, or a folder without a usable tokenizer
            raise UserError(f"{spec}: could not load weights or tokenizer ({str(err).splitlines()[0]})") from None
        model.eval()
    if dtype is not None:
        model = model.to(dtype)
    if device:
        model = model.to(device)
    return model, tokenizer


def config_from_dict(data: dict[str, Any]) -> Any:
    """A transformers config from an embedded config dict (``model_type`` selects the class).

    Why: recipes carry the architecture so that shapes-only work never downloads the model.
    """
    from transformers import AutoConfig  # lazy: loading is on the CLI's start-up path (--help)

    body = {k: v for k, v in data.items() if k not in ("model_type", "transformers_version")}
    model_type = data.get("model_type")
    if not model_type:
        raise UserError("the embedded config has no 'model_type'; add e.g. model_type: llama to the recipe's config")
    try:
        return AutoConfig.for_model(str(model_type), **body)
    except (ValueError, TypeError) as err:
        raise UserError(f"the embedded config is not a valid {model_type} config ({str(err).splitlines()[0]}); fix the recipe's config") from None
