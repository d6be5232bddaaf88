"""Where outputs may go: names read from files stay inside --out; outputs are regular files/folders.

Why: a ranked.json is data a user may have been sent. Its candidate names (``../../x``, ``/etc``)
once became checkpoint folders outside the run folder, and an ``--out /dev/null`` was replaced by
a regular file. ``confine`` is the one way a name from a file becomes a path; ``check_output_file``
and ``check_output_dir`` are the one check of an output path before any work starts.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .errors import UserError

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def check_name(name: object, where: str, *, any_characters: bool = False) -> str:
    """A single safe path component (``top1``, ``lonas-heuristic``): no separators, no ``..``, not
    hidden, not absolute, at most 128 characters. ``any_characters``: also spaces and other
    characters a user's own file name may hold (still one component, not hidden)."""
    loose = (isinstance(name, str) and 0 < len(name) <= 255 and not name.startswith(".")
             and not any(c in name for c in "/\\\0"))
    if any_characters and loose:
        return name  # type: ignore[return-value]
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise UserError(f"{where}: {name!r} is not a plain name (letters, digits, _ . + -, no '/' or '..'); "
                        "it would name a path outside the output folder")
    return name


def confine(folder: str | Path, name: object, where: str = "name") -> Path:
    """``folder / name`` for a name read from a file, refused unless it stays inside ``folder``."""
    folder = Path(folder)
    path = folder / check_name(name, where)
    real_folder = os.path.realpath(folder)
    if os.path.commonpath([real_folder, os.path.realpath(path)]) != real_folder:  # a symlink leading out
        raise UserError(f"{where}: {path} leads outside {folder} (a symbolic link?); remove it")
    return path


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _nearest_existing(path: Path) -> Path:
    for parent in path.absolute().parents:
        if os.path.lexists(parent):
            return parent
    return Path("/")


def _creatable(path: Path, flag: str) -> None:
    """``path`` could be created (its nearest existing ancestor is a writable folder), checked
    without creating anything: a refused command leaves no empty folders behind."""
    base = _nearest_existing(path)
    if not base.is_dir():
        raise UserError(f"cannot write {path} ({base} is not a folder); pick a folder you can write to")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path} (permission denied in {base}); pick a folder you can write to")


def check_output_file(path: str | Path, flag: str) -> None:
    """An output file may be new or a regular file; a device, pipe, socket or folder is refused
    (it would be replaced by a regular file, or written to forever)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise UserError(f"{flag} {path} is {_kind(mode)}; outputs go to regular files only, pick another path")
    if mode is not None and not os.access(path, os.W_OK):
        raise UserError(f"cannot write {path} (permission denied); pick a folder you can write to")
    _creatable(path, flag)


def check_output_dir(path: str | Path, flag: str) -> None:
    """An output folder may be new or a folder; anything else is refused, never replaced."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISDIR(mode):
        raise UserError(f"{flag} {path} exists and is {_kind(mode)}; pick a folder")
    if mode is not None and not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path} (permission denied); pick a folder you can write to")
    _creatable(path, flag)


def inside(folder: str | Path, path: str | Path) -> bool:
    """True when ``path`` (symlinks resolved) lies inside ``folder``."""
    real_folder = os.path.realpath(folder)
    return os.path.commonpath([real_folder, os.path.realpath(path)]) == real_folder
