"""Exports of pruned models to serving formats (GGUF for llama.cpp)."""

from .gguf import OUTTYPES, export_gguf

__all__ = ["OUTTYPES", "export_gguf"]
