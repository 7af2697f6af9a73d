# Two commands for a new user: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
VENV = $(shell bash tools/setup_env.sh)
PY = $(VENV)/bin/python
# this clone's code, whatever else is installed (setup_env.sh installs dependencies only)
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
DEMO_OUT ?= demo-out

.PHONY: env demo demo-quick lint test test-fast bench clean-demo

env:
	@echo "environment: $(VENV)"

demo:
	$(PY) -m bah.cli demo --out $(DEMO_OUT)

demo-quick:
	$(PY) -m bah.cli demo --quick --out $(DEMO_OUT)-quick

lint:
	$(VENV)/bin/ruff check bah tests bench

test: lint
	$(PY) -m pytest tests

test-fast:
	$(PY) -m pytest tests -m "not slow"

bench:
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean-demo:
	rm -rf $(DEMO_OUT) $(DEMO_OUT)-quick
