# The README's two commands: `make demo` and `make test`. Nothing else is needed after `git clone`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p data
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.demo -e .env.demo start

# The suite mostly waits (on processes, real daemons, thresholds of seconds): six workers side by side.
TEST_WORKERS ?= 6
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_WORKERS)

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py

# The household simulation for long: SOAK_EXAMPLES examples from SOAK_SEED (a new one each time unless
# given; printed, so `make soak SOAK_SEED=...` replays a failure).
SOAK_EXAMPLES ?= 2000
SOAK_SEED ?= $(shell date +%s)
soak: $(STAMP)
	@echo "soak: SOAK_EXAMPLES=$(SOAK_EXAMPLES) SOAK_SEED=$(SOAK_SEED)"
	SOAK_EXAMPLES=$(SOAK_EXAMPLES) SOAK_SEED=$(SOAK_SEED) $(BIN)/python -m pytest tests/test_household.py -s \
		-p no:cacheprovider -p no:xdist

clean:
	rm -rf $(VENV) data .pytest_cache .hypothesis
