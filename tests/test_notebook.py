"""The walkthrough notebook executes top to bottom (with a small limit) and says what it promises."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("ZEROLM_NOTEBOOK_LIMIT", "2")
    monkeypatch.setenv("ZEROLM_NOTEBOOK_SUITE", "piqa")
    monkeypatch.setenv("ZEROLM_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(
        output.get("text", "") + str(output.get("data", {}).get("text/markdown", ""))
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert "reloaded logits identical: True" in text
    assert "| 1 | top1 |" in text  # the SmolLM2 report table
    assert "sst2" in text.lower()  # the MiniLM probe report
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "minilm" / "report.md").is_file()
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2
