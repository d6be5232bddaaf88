"""Outputs are written atomically and read like any other file the user makes (umask, not 0600)."""

from __future__ import annotations

import os
import stat

import pytest

from zerolm_prune.atomic import write_json, write_text
from zerolm_prune.checkpoint import staged_dir


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, umask_022):
    out = write_json(tmp_path / "ranked.json", {"subnets": []})
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["ranked.json"]  # no temp file left


def test_staged_folder_gets_the_umask_mode_and_replaces_atomically(tmp_path, umask_022):
    out = tmp_path / "ckpt"
    with staged_dir(out) as tmp:
        write_text(tmp / "config.json", "{}")
        assert not out.exists()  # nothing visible until the block ends
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "config.json").stat().st_mode) == 0o644
    with pytest.raises(RuntimeError):
        with staged_dir(out) as tmp:
            write_text(tmp / "config.json", '{"half": true}')
            raise RuntimeError("crash mid-write")
    assert (out / "config.json").read_text() == "{}"  # the old folder survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
