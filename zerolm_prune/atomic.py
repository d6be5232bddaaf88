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


def default_mode(base: int = 0o666) -> int:
    """The mode ``open()`` (base 0o666) or ``mkdir()`` (0o777) would give under the user's umask.

    Why: mkstemp/mkdtemp create 0600/0700 on purpose, for secrets; a ranked file or a checkpoint
    folder renamed from them would stay unreadable to the user's group, unlike any other output.
    """
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _unwritable(path: Path, err: OSError):
    from .errors import UserError

    return UserError(f"cannot write {path} ({err.strerror or err}); pick a folder you can write to")


def _temp_beside(path: Path, suffix: str) -> str:
    """An empty hidden temp file in ``path``'s folder (made if missing); UserError if it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as err:
        raise _unwritable(path, err) from None
    os.close(fd)
    return tmp


def check_writable(path: str | Path) -> None:
    """Fail now, in one line, if ``path`` could not be written later (its folder cannot be made or
    written to), so that a long computation does not end on a write error."""
    os.unlink(_temp_beside(Path(path), ".probe"))


def _write_via(path: str | Path, writer: Callable[[str], None], suffix: str = "") -> Path:
    path = Path(path)
    tmp = _temp_beside(path, suffix or ".tmp")
    os.chmod(tmp, default_mode(0o666))
    try:
        writer(tmp)
        os.replace(tmp, path)
    except OSError as err:  # e.g. a full disk: the target is untouched, the temp file goes below
        raise _unwritable(path, err) from None
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
