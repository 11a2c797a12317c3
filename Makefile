# The two commands: `make demo` and `make test`. Each creates .venv on first use.
# GPU users: `make TORCH="torch==2.13.0 --index-url <your CUDA wheel index>" demo`, or install torch
# into .venv yourself first; the default pins the CPU-sized build.
PYTHON ?= python3.11
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) infer.py output.dir=demo_out

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check locres tests data_prep train.py infer.py bench.py

bench: $(STAMP)
	$(PY) bench.py experiment=quick

clean:
	rm -rf $(VENV) demo_out .pytest_cache
