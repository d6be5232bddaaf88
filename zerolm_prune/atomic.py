"""Atomic file writes: a reader (or a crash) never sees a half-written output.

Every file this tool writes for a user (ranked.json, results, reports, pictures, generated task
files) goes through here: written to a temp file in the same folder, then ``os.replace``d, which
is atomic on POSIX and Windows. Folders (checkpoints) use the same idea in ``checkpoint.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _write_via(path: str | Path, writer: Callable[[str], None], suffix: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | Path, text: str) -> Path:
    def writer(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write(text)

    return _write_via(path, writer)


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(data, indent=indent) + "\n")


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        return _write_via(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
    finally:
        plt.close(fig)
