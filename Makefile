# Two commands for a fresh clone: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo data check bench clean browser

install: $(STAMP)

# Re-installs only when pyproject.toml changes, so repeated runs take a second.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/forcecov score data/raw --out reports/

# Rebuild the sample submissions in data/raw from their sources (deterministic).
data: install
	$(BIN)/python -m pipeline.render data/raw/source data/raw

check: install
	$(BIN)/ruff check pipeline tests
	$(BIN)/mypy pipeline
	$(BIN)/python -m pytest -q --cov=pipeline --cov-fail-under=85

bench: install
	$(BIN)/python -m pipeline.bench

clean:
	rm -rf reports data/interim .pytest_cache
