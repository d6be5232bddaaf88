"""``recover``: distil the dense teacher into a pruned student through a peft LoRA adapter.

Flow: load both models -> corpus (self-generated and/or user text, teacher targets cached) ->
LoRA on the student's projections -> ``DistillTrainer`` (KL to the teacher) -> the adapter
(stock peft, ``base_model_name_or_path`` = the pruned folder) or, with ``merge``, a merged
checkpoint written by ``checkpoint.save_pretrained`` (so it loads back the ways ``prune``'s do).

Nothing half-written reaches ``out``: training checkpoints live in a hidden work folder beside it
(``.<out>.recover-work``), the result is staged and renamed. A rerun of the same command after a
crash or ``kill -9`` resumes from the last checkpoint and ends at the same weights.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import TrainingArguments
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import get_last_checkpoint

from .. import loading
from ..atomic import check_writable, write_json
from ..checkpoint import check_target, load_pruned, save_pretrained, staged_dir
from ..errors import UserError
from .config import RecoverConfig
from .corpus import DistillDataset, build_corpus
from .trainer import DistillTrainer, TokensProgress

WORK_SUFFIX = ".recover-work"
CONFIG_FILE = "recover_config.json"
RESULT_FILE = "recover.json"


def work_dir(out: Path) -> Path:
    return out.parent / f".{out.name}{WORK_SUFFIX}"


def _check_paths(student: str | Path, out: str | Path, overwrite: bool) -> tuple[Path, Path]:
    src = Path(student).expanduser()
    if not src.is_dir() or not (src / "config.json").is_file():
        raise UserError(f"{student}: not a model folder (no config.json); pass a folder written by `zerolm-prune prune`")
    dst = Path(out).expanduser().resolve()
    check_target(dst, src.resolve(), overwrite)
    check_writable(dst.parent / ".probe")
    return src.resolve(), dst


def _prepare_work(work: Path, config: RecoverConfig, log) -> None:
    """A work folder from an earlier run must have been made with the same training settings."""
    saved = work / CONFIG_FILE
    if saved.is_file():
        old = RecoverConfig.from_json(saved)
        if old.training_key() != config.training_key():
            diff = sorted(k for k, v in config.training_key().items() if old.training_key().get(k) != v)
            raise UserError(f"{work} holds a half-finished recovery with other settings ({', '.join(diff)}); "
                            "rerun with the same settings to resume, or delete that folder to start over")
        log(f"      resuming the unfinished run in {work}")
    work.mkdir(parents=True, exist_ok=True)
    config.to_json(saved)


def pick_device(config: RecoverConfig) -> tuple[str, bool]:
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is visible")
    bf16_ok = device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if config.bf16 and not bf16_ok:
        raise UserError(f"--bf16 needs a device with bf16 support; {device} has none")
    return device, bool(bf16_ok if config.bf16 is None else config.bf16)


def lora_targets(model: Any, wanted: Sequence[str]) -> list[str]:
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    found = [t for t in wanted if t in names]
    if not found:
        raise UserError(f"none of the LoRA targets {', '.join(wanted)} is a Linear layer of the student")
    return found


def attach_lora(student: Any, config: RecoverConfig) -> Any:
    """The student wrapped in a fresh peft LoRA (seeded, so a run is reproducible)."""
    from peft import LoraConfig, get_peft_model  # lazy: peft only when a LoRA adapter is involved

    torch.manual_seed(config.seed)
    if config.lora_rank == 0:  # full fine-tuning: every weight trains, the result is saved merged
        student.requires_grad_(True)
        return student
    cfg = LoraConfig(r=config.lora_rank, lora_alpha=config.alpha, lora_dropout=config.lora_dropout, bias="none",
                     target_modules=lora_targets(student, config.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(student, cfg)


def training_args(config: RecoverConfig, work: Path, rows: int, device: str, bf16: bool) -> Any:
    steps = max(1, math.ceil(math.ceil(rows / config.batch_size) * config.epochs))
    return TrainingArguments(
        output_dir=str(work / "checkpoints"), per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs, learning_rate=config.lr, lr_scheduler_type="cosine",
        warmup_steps=int(round(config.warmup_ratio * steps)), weight_decay=config.weight_decay,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, logging_steps=1,
        report_to=[], seed=config.seed, data_seed=config.seed, disable_tqdm=True, remove_unused_columns=False,
        use_cpu=device == "cpu", bf16=bf16, dataloader_num_workers=0, dataloader_pin_memory=False,
        label_names=[], logging_strategy="steps",
    )


def last_checkpoint(work: Path) -> str | None:
    folder = work / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def _student_meta(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / "config.json").read_text()).get("zerolm_prune") or {})
    except (OSError, ValueError):
        return {}


def recover(student: str | Path, teacher: str | Any, out: str | Path, config: RecoverConfig | None = None, *,
            overwrite: bool = False, progress: bool = True, cache_root: Path | None = None,
            callbacks: Sequence[Any] = (), trust_remote_code: bool = False, log=print,
            loaded_teacher: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Recover the pruned folder ``student`` by distilling ``teacher`` (a model spec, or pass the
    loaded ``(model, tokenizer)`` as ``loaded_teacher``); writes ``out``, returns run statistics."""
    config = config or RecoverConfig()
    config.validate()
    src, dst = _check_paths(student, out, overwrite)
    device, bf16 = pick_device(config)
    work = work_dir(dst)
    _prepare_work(work, config, log)
    log(f"[1/4] loading student {src} and teacher {teacher if isinstance(teacher, str) else type(teacher).__name__}")
    model, tokenizer = load_pruned(src)
    t_model, t_tok = loaded_teacher or loading.load_model(str(teacher), trust_remote_code=trust_remote_code)
    tokenizer = tokenizer or t_tok
    if t_model.config.vocab_size != model.config.vocab_size:
        raise UserError(f"teacher vocabulary ({t_model.config.vocab_size}) differs from the student's "
                        f"({model.config.vocab_size}); distillation needs the same tokenizer")
    args_probe = training_args(config, work, 1, device, bf16)
    t_model.to(args_probe.device)  # under `accelerate launch`, this process's own GPU
    t0 = time.perf_counter()
    with args_probe.main_process_first(desc="recovery corpus"):
        log(f"[2/4] corpus: {config.tokens} tokens ({'cached top-%d teacher log-probs' % config.teacher_top_k if config.teacher_top_k else 'teacher online'})")
        corpus = build_corpus(t_model, t_tok or tokenizer, config, cache_root=cache_root, progress=progress, log=log)
    corpus_s = time.perf_counter() - t0
    peft_model = attach_lora(model, config)
    args = training_args(config, work, len(corpus), device, bf16)
    tokens_per_step = config.batch_size * config.seq_len * args.world_size * args.gradient_accumulation_steps
    meter = TokensProgress(tokens_per_step, progress=progress)
    trainer = DistillTrainer(model=peft_model, args=args, train_dataset=DistillDataset(corpus),
                             teacher=None if config.teacher_top_k else t_model, callbacks=[meter, *callbacks])
    trainer.remove_callback(PrinterCallback)  # our bar shows the loss; no log dict per step on stdout
    if config.teacher_top_k:
        del t_model  # the cached targets replace it: free its memory for training
    resume = last_checkpoint(work)
    what = (f"LoRA r={config.lora_rank} on {', '.join(peft_model.peft_config['default'].target_modules)}"
            if config.lora_rank else "full fine-tuning")
    log(f"[3/4] distilling: {what}"
        f", {args.max_steps if args.max_steps > 0 else ''} {len(corpus)} rows x {config.epochs:g} epochs on {device}"
        + (f" (resuming {Path(resume).name})" if resume else ""))
    t1 = time.perf_counter()
    train_out = trainer.train(resume_from_checkpoint=resume)
    stats = {
        "corpus_tokens": corpus.tokens, "corpus_rows": len(corpus), "dropped_sequences": corpus.dropped,
        "corpus_seconds": round(corpus_s, 1), "train_seconds": round(time.perf_counter() - t1, 1),
        "train_tokens_per_second": round(meter.tokens_per_second(trainer.state), 1),
        "steps": trainer.state.global_step, "final_loss": _last_loss(trainer.state.log_history),
        "first_loss": _first_loss(trainer.state.log_history), "train_loss": float(train_out.training_loss),
        "device": device, "bf16": bf16, "resumed_from": Path(resume).name if resume else None,
    }
    if trainer.is_world_process_zero():
        log(f"[4/4] writing {'merged checkpoint' if config.merge else 'adapter'} to {dst}")
        _write_output(trainer.model, tokenizer, src, dst, config, stats, overwrite)
        shutil.rmtree(work, ignore_errors=True)
    return {"out": str(dst), "config": config.to_dict(), **stats}


def _last_loss(history: list[dict]) -> float | None:
    losses = [h["loss"] for h in history if "loss" in h]
    return float(losses[-1]) if losses else None


def _first_loss(history: list[dict]) -> float | None:
    losses = [h["loss"] for h in history if "loss" in h]
    return float(losses[0]) if losses else None


def _write_output(peft_model: Any, tokenizer: Any, src: Path, dst: Path, config: RecoverConfig,
                  stats: dict[str, Any], overwrite: bool) -> None:
    record = {"student": str(src), "config": config.to_dict(), **stats}
    if config.merge:
        meta = _student_meta(src)
        merged = peft_model.merge_and_unload() if hasattr(peft_model, "merge_and_unload") else peft_model
        merged.eval()
        keep = {k: v for k, v in meta.items() if k not in ("version", "package_version", "format", "subnet", "source")}
        save_pretrained(merged, dst, tokenizer=tokenizer, subnet=meta.get("subnet"), source=meta.get("source"),
                        metadata={**keep, "recovered": record}, overwrite=True)
        return
    peft_model.peft_config["default"].base_model_name_or_path = str(src)
    with staged_dir(dst) as tmp:
        peft_model.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        write_json(tmp / RESULT_FILE, record)


def load_recovered(folder: str | Path, *, merge: bool = False) -> tuple[Any, Any]:
    """Load an adapter folder written by ``recover`` onto its pruned base (``(model, tokenizer)``);
    ``merge`` folds the adapter into the weights. A merged folder loads with ``load_pruned``."""
    from peft import PeftConfig, PeftModel  # lazy: peft only when a LoRA adapter is involved

    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        return load_pruned(folder)
    base_dir = PeftConfig.from_pretrained(str(folder)).base_model_name_or_path
    base, tokenizer = load_pruned(base_dir)
    model = PeftModel.from_pretrained(base, str(folder))
    model.eval()
    return (model.merge_and_unload() if merge else model), tokenizer
