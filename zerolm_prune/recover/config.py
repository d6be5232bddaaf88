"""``RecoverConfig``: every setting of a recovery run, one dataclass that round-trips to JSON.

Why a dataclass (as peft's ``LoraConfig``): the same object drives the CLI, the Python API, the
corpus cache key and the resume check, so a rerun with other settings cannot silently continue a
run it does not match.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..errors import UserError

#: every linear projection of a LLaMA-family block
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class RecoverConfig:
    """Settings of ``recover``; the defaults are the measured default of benchmarks/RECOVERY.md."""

    #: distinct training tokens (self-generated + user text); the corpus is read ``epochs`` times
    tokens: int = 100_000
    epochs: float = 1.0
    seq_len: int = 128
    batch_size: int = 8
    lr: float = 1e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lora_rank: int = 64  # 0: full fine-tuning of every student weight (no adapter; needs merge)
    lora_alpha: float | None = None  # None: = rank (scale 1)
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_PROJECTIONS
    #: teacher targets: top-k log-probs cached at generation (k > 0; KL on the top k + the rest
    #: as one bucket) or 0 for the teacher run online (exact KL on the whole vocabulary)
    teacher_top_k: int = 64
    #: generation: top-k sampling from a uniformly random first token (LLM-QAT), batched, KV cache
    sample_top_k: int = 50
    gen_batch: int = 32
    #: a sequence is dropped when fewer than this share of its 4-grams are distinct (loops)
    min_distinct_4grams: float = 0.5
    #: user text (a local .txt/.jsonl file or a hub dataset id) and its share of ``tokens``
    data: str | None = None
    data_fraction: float | None = None  # None: 1.0 with --data, else 0
    seed: int = 0
    device: str | None = None
    bf16: bool | None = None  # None: where the device supports it (CUDA with bf16)
    save_steps: int = 50
    merge: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target_modules = tuple(self.target_modules)
        self.validate()

    def validate(self) -> None:
        """One clear line per mistake, before any model loads."""
        checks = [
            (isinstance(self.tokens, int) and self.tokens >= 1, f"--tokens must be a positive whole number, got {self.tokens!r}"),
            (self.seq_len >= 8, f"--seq-len must be at least 8, got {self.seq_len}"),
            (self.batch_size >= 1, f"--batch-size must be positive, got {self.batch_size}"),
            (self.lora_rank >= 0, f"--lora-rank must be positive (0: full fine-tuning), got {self.lora_rank}"),
            (self.lora_rank > 0 or self.merge, "--lora-rank 0 (full fine-tuning) has no adapter to save: pass --merge"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (self.teacher_top_k >= 0, f"--teacher-top-k must be >= 0, got {self.teacher_top_k}"),
            (self.sample_top_k >= 0, f"sample_top_k must be >= 0, got {self.sample_top_k}"),
            (self.gen_batch >= 1, f"gen_batch must be positive, got {self.gen_batch}"),
            (self.save_steps >= 1, f"--save-steps must be positive, got {self.save_steps}"),
            (self.data_fraction is None or 0 <= self.data_fraction <= 1,
             f"--data-fraction must be in [0, 1], got {self.data_fraction}"),
            (self.data_fraction in (None, 0) or self.data is not None, "--data-fraction needs --data"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha) if self.lora_alpha is not None else float(self.lora_rank)

    @property
    def user_fraction(self) -> float:
        if self.data is None:
            return 0.0
        return 1.0 if self.data_fraction is None else float(self.data_fraction)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RecoverConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | Path) -> "RecoverConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def training_key(self) -> dict[str, Any]:
        """What must match for a rerun to resume a half-finished run (not device, merge, save)."""
        skip = {"device", "merge", "save_steps", "extra"}
        return {k: v for k, v in self.to_dict().items() if k not in skip}
