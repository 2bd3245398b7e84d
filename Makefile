# Everything a fresh machine needs: `make demo` and `make test` set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench starter lint system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

demo: $(STAMP)
	$(PY) -m autograder.demo

test: $(STAMP) system-deps
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/bench_ops.py
	$(PY) bench/bench_mlp.py
	$(PY) bench/bench_grade.py
	$(PY) bench/bench_batch.py
	$(PY) bench/bench_false_failures.py --seeds 100

starter: $(STAMP)
	$(VENV)/bin/kit starter

lint: $(STAMP)
	$(VENV)/bin/ruff check solution autograder tests bench
	$(VENV)/bin/mypy solution/tapegrad autograder

clean:
	rm -rf $(VENV) .pytest_cache out
