"""One process per output: a lock beside each --out folder.

Why: two ``eval`` (or ``run``/``prune``) processes on one --out both did all the work and
overwrote each other's results. The lock is ``.<name>.lock`` next to the folder (inside it would
make a fresh ``prune --out`` folder non-empty), holds ``{"pid", "host", "since"}`` for the message
the second process prints, and is an ``fcntl.flock``: the kernel drops it when its holder dies,
so a lock left by a killed process (kill -9) is taken over without asking.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from .errors import UserError

try:  # POSIX; elsewhere the lock is advisory only (an O_EXCL file would outlive kill -9)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(out: str | Path) -> Path:
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} on {info['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return "another process"


@contextlib.contextmanager
def out_lock(out: str | Path, command: str = "zerolm-prune") -> Iterator[Path]:
    """Hold the lock of ``out`` for the block; UserError (one line: who holds it) if taken."""
    path = lock_path(out)
    if fcntl is None:  # pragma: no cover
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{out} is in use by {_holder(path)} (lock {path}); wait for it to finish or pick "
                            "another --out") from None
        try:  # the file may have been unlinked by its previous holder between our open and flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                                 "command": command}).encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
