# Two commands for a fresh clone: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo data lint check bench clean browser ocr-engine repro

install: $(STAMP) ocr-engine

# Re-installs only when pyproject.toml changes, so repeated runs take a second.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The suite with line coverage of pipeline/ (at least 85%). Coverage settings are in
# pyproject.toml: `python -m pipeline ...` subprocesses started by the tests are measured too.
test: install browser
	$(BIN)/python -m pytest -q --cov=pipeline --cov-report=term-missing:skip-covered \
		--cov-fail-under=85

# Debian's Chromium for the browser tests (report and review page); they skip without it.
browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium could not be installed: the browser tests will be skipped"

# Debian's Tesseract with English data, for `score --ocr` (scanned responses); OCR tests
# skip and `--ocr` explains what to install when it is missing.
ocr-engine:
	@command -v tesseract >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null) || \
		echo "tesseract could not be installed: scanned pages cannot be read (--ocr)"

# --ocr: the scanned samples in data/raw/scanned are read with Tesseract (about a minute more).
demo: install
	$(BIN)/forcecov score data/raw --out reports/ --ocr

# Rebuild the sample submissions in data/raw from their sources (deterministic).
data: install
	$(BIN)/python -m scripts.render data/raw/source data/raw
	$(BIN)/python -m scripts.render data/independent/source data/independent
	mv data/independent/gold_coverage.csv data/independent/gold_writer.csv

# Static checks: ruff (style, imports, bugbear) and mypy --strict on the package.
lint: install
	$(BIN)/ruff check pipeline tests scripts
	$(BIN)/mypy pipeline

# Everything CI runs: static checks, then the suite with coverage.
check: lint test

# The DVC pipeline (dvc.yaml): its stages call `forcecov`, so the environment goes on PATH.
repro: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

bench: install
	$(BIN)/python -m scripts.bench

clean:
	rm -rf reports data/interim .pytest_cache
