"""``DistillTrainer``: transformers' Trainer with a knowledge-distillation loss.

Why the stock Trainer and not a loop of our own: checkpoints with optimizer, scheduler and RNG
state, ``resume_from_checkpoint`` that skips the batches already seen (a killed run ends at the
same weights), and ``accelerate launch`` / DDP across GPUs come with it.

The loss is the forward KL(teacher || student) per next-token position, averaged over positions:
- cached targets (``topk_idx``/``topk_logp`` in the batch): exact KL between the two
  distributions coarsened to the teacher's top-k tokens plus one bucket for all the others;
- online (no cached targets): the teacher runs in the step, exact KL on the whole vocabulary.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from tqdm import tqdm
from transformers import Trainer, TrainerCallback


def topk_kl(student_logits: torch.Tensor, topk_idx: torch.Tensor, topk_logp: torch.Tensor) -> torch.Tensor:
    """Mean KL(teacher || student) over positions on the top-k tokens + one "rest" bucket.

    ``student_logits`` [B, T, V]; ``topk_idx``/``topk_logp`` [B, T, k] (teacher log-probs of its
    top-k tokens, unnormalised over k: their sum is the mass the teacher puts there).
    """
    logits = student_logits.float()
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    q_top = logits.gather(-1, topk_idx) - lse
    q_rest = torch.logsumexp(logits.scatter(-1, topk_idx, float("-inf")), dim=-1) - lse.squeeze(-1)
    p_top = topk_logp.float()
    p_rest_mass = (1.0 - p_top.exp().sum(-1)).clamp_min(1e-8)
    kl = (p_top.exp() * (p_top - q_top)).sum(-1) + p_rest_mass * (p_rest_mass.log() - q_rest)
    return kl.mean()


def full_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean KL(teacher || student) over positions on the whole vocabulary."""
    t = torch.log_softmax(teacher_logits.float(), dim=-1)
    s = torch.log_softmax(student_logits.float(), dim=-1)
    return (t.exp() * (t - s)).sum(-1).mean()


class DistillTrainer(Trainer):
    """Trainer whose loss is the KL to a teacher (cached top-k targets or the teacher online)."""

    def __init__(self, *args: Any, teacher: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        if teacher is not None:
            teacher.eval().requires_grad_(False)
            self.teacher = teacher.to(self.args.device)

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None):
        ids = inputs["input_ids"]
        outputs = model(input_ids=ids, use_cache=False)
        logits = outputs.logits[:, :-1]
        if "topk_idx" in inputs:
            loss = topk_kl(logits, inputs["topk_idx"], inputs["topk_logp"])
        else:
            if self.teacher is None:
                raise ValueError("no cached teacher targets in the batch and no teacher to run online")
            with torch.no_grad():
                teacher_logits = self.teacher(input_ids=ids, use_cache=False).logits[:, :-1]
            loss = full_kl(logits, teacher_logits)
        return (loss, outputs) if return_outputs else loss


class TokensProgress(TrainerCallback):
    """One progress bar in tokens with tokens/s and the latest loss (replaces the stock bar)."""

    def __init__(self, tokens_per_step: int, progress: bool = True):
        self.tokens_per_step = tokens_per_step
        self.progress = progress
        self.bar = None
        self.start = 0.0
        self.first_step = 0
        self.loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.progress:
            total = state.max_steps * self.tokens_per_step
            self.bar = tqdm(total=total, initial=state.global_step * self.tokens_per_step, desc="distilling",
                            unit="tok", unit_scale=True, dynamic_ncols=True)
        self.start, self.first_step = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(self.tokens_per_step)
            rate = (state.global_step - self.first_step) * self.tokens_per_step / max(1e-9, time.perf_counter() - self.start)
            post = {"tok/s": f"{rate:.0f}"}
            if self.loss is not None:
                post["kl"] = f"{self.loss:.4f}"
            self.bar.set_postfix(post, refresh=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def tokens_per_second(self, state: Any) -> float:
        return (state.global_step - self.first_step) * self.tokens_per_step / max(1e-9, time.perf_counter() - self.start)
