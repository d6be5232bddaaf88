"""Run every speed/memory benchmark in turn (what `make bench` does); each prints its own ratios.

The numbers that BENCHMARKS.md quotes come from these scripts; run them on an otherwise idle
machine, since the ratios are measured side by side but absolute seconds depend on load.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = ["bench_capacity.py", "bench_search.py", "bench_memory.py", "bench_eval.py", "bench_llamacpp.py"]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name in SCRIPTS:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(here / name)]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
