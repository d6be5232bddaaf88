"""Data-free recovery of a pruned model: self-distillation from the dense model through peft LoRA.

Layout (as peft's tuners): ``config`` (the settings dataclass), ``corpus`` (self-generated and
user text with the teacher's cached targets), ``trainer`` (transformers Trainer with a KL loss),
``api`` (the flow: ``recover`` and ``load_recovered``).
"""

from .api import load_recovered, recover
from .config import RecoverConfig
from .corpus import Corpus, build_corpus
from .trainer import DistillTrainer, topk_kl

__all__ = ["RecoverConfig", "recover", "load_recovered", "build_corpus", "Corpus", "DistillTrainer", "topk_kl"]
