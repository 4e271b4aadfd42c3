# Two commands do all the set-up on a fresh machine:
#   make demo   -> installs into .venv, then runs the whole pipeline on the example project (offline)
#   make test   -> installs into .venv, then runs the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
export HF_HUB_OFFLINE = 1
export HF_HUB_DISABLE_TELEMETRY = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: setup demo test bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/adapterci run --config adapterci.yaml

test: setup
	$(BIN)/pytest -n 2 --dist loadgroup -q

clean:
	rm -rf .adapterci
