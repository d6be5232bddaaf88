"""Atomic file writes: a reader (or a crash) never sees a half-written output.

Every file this tool writes for a user (ranked.json, results, reports, pictures, generated task
files) goes through here: written to a temp file in the same folder, then ``os.replace``d, which
is atomic on POSIX and Windows. Folders (checkpoints) use the same idea in ``checkpoint.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import UserError


def default_mode(base: int = 0o666) -> int:
    """The mode ``open()`` (base 0o666) or ``mkdir()`` (0o777) would give under the user's umask.

    Why: mkstemp/mkdtemp create 0600/0700 on purpose, for secrets; a ranked file or a checkpoint
    folder renamed from them would stay unreadable to the user's group, unlike any other output.
    """
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _unwritable(path: Path, err: OSError):
    return UserError(f"cannot write {path} ({err.strerror or err}); pick a folder you can write to")


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this machine (signal 0 only asks)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def staging_prefix(out: Path, kind: str) -> str:
    """``.<name>.<kind>-<pid>-``: the hidden temp name of an output being written by this process,
    so that a later run can tell its own staging from debris left by a killed one."""
    return f".{out.name}.{kind}-{os.getpid()}-"


def clean_stale_staging(out: str | Path) -> list[Path]:
    """Remove staging debris of ``out`` (``.<name>.partial-*``, ``.old-*``, ``.tmp-*`` next to it)
    whose writer is dead: kill -9 or a power cut leave them, up to a whole checkpoint each.

    Names written before the pid was recorded count as stale. Returns what was removed.
    """
    out = Path(out)
    try:
        entries = list(out.parent.iterdir())
    except OSError:
        return []
    pattern = re.compile(re.escape(f".{out.name}.") + r"(?:(?:partial|old|tmp)-(?:(\d+)-)?|[a-z0-9_]{8}\.(?:tmp|png|probe)$)")
    removed = []
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or (match.group(1) and pid_alive(int(match.group(1)))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def _refuse_special(path: Path) -> None:
    """Outputs replace regular files only: ``os.replace`` onto /dev/null or a fifo would swap the
    device node for a regular file (as root), or a folder for a file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} exists and is not a regular file; outputs never replace devices, pipes or folders")


def _temp_beside(path: Path, suffix: str) -> str:
    """An empty hidden temp file in ``path``'s folder (made if missing); UserError if it cannot be."""
    _refuse_special(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_staging(path)
        fd, tmp = tempfile.mkstemp(prefix=staging_prefix(path, "tmp"), suffix=suffix, dir=path.parent)
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
        _refuse_special(path)  # appeared while writing
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


def finite_json(data: Any) -> Any:
    """``data`` with every NaN/infinite float replaced by None: ``NaN`` is not JSON, and a strict
    reader (jq, JavaScript, ``json.loads(..., parse_constant=...)``) rejects the whole file."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """Strict JSON (NaN/inf written as null, see ``finite_json``), atomically."""
    return write_text(path, json.dumps(finite_json(data), indent=indent, allow_nan=False) + "\n")


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt  # lazy: matplotlib only when a figure is drawn

    try:
        return _write_via(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
    finally:
        plt.close(fig)
