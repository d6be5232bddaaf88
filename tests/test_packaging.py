"""A wheel must carry what a checkout reads from the repository: recipes, eval suites, modeling code.

Why: ``recipes/`` and ``eval/`` sit at the top of the repository; the package reaches them through
the symlinks ``zerolm_prune/recipes`` and ``zerolm_prune/eval``. A pip-installed wheel has no
repository around it, so without package data ``--space smollm2-135m`` would fail there.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_paths_reach_the_repository_folders():
    from zerolm_prune.evaluate import eval_dir
    from zerolm_prune.space import RECIPES_DIR, recipe_path

    package = Path(__import__("zerolm_prune").__file__).resolve().parent
    assert RECIPES_DIR.parent == package
    assert sorted(p.name for p in RECIPES_DIR.glob("*.yaml")) == sorted(p.name for p in (ROOT / "recipes").glob("*.yaml"))
    assert recipe_path("smollm2-135m") is not None
    assert sorted(p.name for p in (eval_dir() / "suites").glob("*.yaml")) == \
        sorted(p.name for p in (ROOT / "eval" / "suites").glob("*.yaml"))


def test_a_checkout_without_symlinks_still_finds_recipes_and_suites(tmp_path):
    """git with core.symlinks=false (Windows' default) writes each link as a text file holding its
    target; an editable install of such a checkout must fall back to the top-level folders."""
    import shutil

    package = tmp_path / "zerolm_prune"
    shutil.copytree(ROOT / "zerolm_prune", package, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("recipes", "eval"):
        link = package / name
        assert link.is_symlink()
        target = str(link.readlink())
        link.unlink()
        link.write_text(target)  # what git checks out with symlinks off
        shutil.copytree(ROOT / name, tmp_path / name)
    probe = ("from zerolm_prune.space import RECIPES_DIR, recipe_path; from zerolm_prune.evaluate import eval_dir; "
             "print(RECIPES_DIR); print(recipe_path('smollm2-135m')); print(eval_dir() / 'suites' / 'commonsense.yaml')")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    env.pop("ZEROLM_PRUNE_EVAL_DIR", None)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    recipes, recipe, suite = (Path(line) for line in done.stdout.split())
    assert recipes == tmp_path / "recipes"
    assert recipe.is_file() and recipe.parent == tmp_path / "recipes"
    assert suite.is_file() and suite.parents[1] == tmp_path / "eval"


@pytest.mark.slow
def test_wheel_carries_recipes_suites_and_modeling_code(tmp_path):
    try:
        import setuptools  # noqa: F401  (torch depends on it; needed to build offline)
    except ImportError:  # pragma: no cover
        pytest.skip("setuptools is not installed")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("zerolm_prune-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for recipe in (ROOT / "recipes").glob("*.yaml"):
        assert f"zerolm_prune/recipes/{recipe.name}" in names
    for suite in (ROOT / "eval" / "suites").glob("*.yaml"):
        assert f"zerolm_prune/eval/suites/{suite.name}" in names
    assert "zerolm_prune/modeling/modeling_zerolm.py" in names
