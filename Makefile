# seqrec: two commands on a fresh machine — `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench bench-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on disk; a bare "torch" would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,bench,purchase,index]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m seqrec.demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/session.py

# the CTR peer (benchmarks/_deepctr_peer.py); --no-deps so pip never touches torch
bench-deps: $(STAMP)
	$(BIN)/pip install -q --no-deps deepctr-torch==0.3.0

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
