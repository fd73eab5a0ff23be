# Every target sets up .venv first (python3 -m venv + pip install -e '.[test,torch]'), then builds (or loads from
# ~/.cache/ebatch/extensions) the compiled backend's C++ recurrence; if it cannot be built, one line says so.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EBATCH := $(VENV)/bin/ebatch
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test bench lint validate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,torch]'
	$(PY) -m ebatch.runtime.compiled
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(EBATCH) compare --model eesen --workload librispeech-test-clean --hardware epur \
		--policies sequential,padding,cellular,ebatch --out results/epur
	$(EBATCH) compare --model eesen --workload librispeech-test-clean --hardware tpu-v1 \
		--policies sequential,padding,cellular,ebatch --out results/tpu-v1

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/bench_simulator.py --out docs/benchmarks.md
	$(EBATCH) bench --quick --out docs/benchmarks.md

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts

validate: setup
	bash validation/run.sh

clean:
	rm -rf $(VENV) results .pytest_cache
