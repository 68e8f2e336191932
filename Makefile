# seqrec: two commands on a fresh machine — `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RECBOLE_VENV := .venv-recbole
RECBOLE_STAMP := $(RECBOLE_VENV)/.installed

.PHONY: demo test test-fast lint bench bench-deps bench-recbole clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on disk; a bare "torch" would pull a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,bench,purchase,index,serve,spark]"
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

# the peers: DeepCTR-Torch (CTR, benchmarks/_deepctr_peer.py) and torch-rechub (retrieval,
# benchmarks/_rechub_peer.py) next to torch 2.13.0; --no-deps so pip never touches torch (their
# runtime deps are in the bench extra); RecBole in its own environment (bench-recbole)
bench-deps: $(STAMP) $(RECBOLE_STAMP)
	$(BIN)/pip install -q --no-deps deepctr-torch==0.3.0 torch-rechub==0.9.0

# RecBole 1.2.1 (the retrieval peer, benchmarks/_recbole_peer.py) cannot share seqrec's environment:
# it fails on numpy 2 (np.bool8), and `import recbole` imports ray.tune, which needs setuptools<81.
# Its own venv: torch 2.13.0 (the CPU wheel on disk), then numpy 1.26.4 / pandas 2.2.3 / scipy<1.15,
# RecBole --no-deps, then the runtime deps it imports (plotly: only its hyper-tuning plots, left out).
$(RECBOLE_STAMP):
	$(PY) -m venv $(RECBOLE_VENV)
	$(RECBOLE_VENV)/bin/pip install -q torch==2.13.0
	$(RECBOLE_VENV)/bin/pip install -q numpy==1.26.4 pandas==2.2.3 "scipy<1.15" "setuptools<81" \
	    "scikit-learn<1.6" "tqdm>=4.48.2" colorlog==4.7.2 colorama==0.4.4 pyyaml tensorboard \
	    "thop>=0.1.1.post2207130030" tabulate texttable psutil ray==2.6.3
	$(RECBOLE_VENV)/bin/pip install -q --no-deps recbole==1.2.1
	$(RECBOLE_VENV)/bin/python -c "import recbole, numpy; assert numpy.__version__ == '1.26.4'"
	touch $(RECBOLE_STAMP)

bench-recbole: $(RECBOLE_STAMP)

clean:
	rm -rf $(VENV) $(RECBOLE_VENV) runs .pytest_cache .ruff_cache
