# traindoc — every set-up step lives here (and in .ci/run for system packages).
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
MERMAID_VERSION := 11.12.0
MERMAID_DIR     := .cache/mermaid/$(MERMAID_VERSION)
STAMP     := $(VENV)/.installed

.PHONY: venv mermaid check lint typecheck test test-fast docs site-check serve bench readme readme-check clean golden \
        reference reference-check screenshots

venv: $(STAMP)

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# Pinned Mermaid from the npm registry into an ignored cache (never committed).
mermaid: $(MERMAID_DIR)/mermaid.min.js

$(MERMAID_DIR)/mermaid.min.js: | $(STAMP)
	$(BIN)/traindoc mermaid-fetch --version $(MERMAID_VERSION)

lint: venv
	$(BIN)/ruff check src tests pipeline bench
	$(BIN)/ruff format --check src tests pipeline bench

typecheck: venv
	$(BIN)/mypy

check: lint typecheck

test: check mermaid
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

docs: venv mermaid
	$(BIN)/mkdocs build --strict

site-check: venv
	$(BIN)/python tests/sitecheck.py site

serve: venv mermaid
	$(BIN)/mkdocs serve

readme: venv
	$(BIN)/traindoc readme README.md

readme-check: venv
	$(BIN)/traindoc readme README.md --check

# docs/reference/{spec,cli}.md are generated Markdown (readable on GitHub); CI fails when they drift.
reference: venv
	$(BIN)/traindoc reference spec -o docs/reference/spec.md
	$(BIN)/traindoc reference cli -o docs/reference/cli.md

reference-check: venv
	$(BIN)/traindoc reference spec -o docs/reference/spec.md --check
	$(BIN)/traindoc reference cli -o docs/reference/cli.md --check

# Full-page screenshots of every page of the built site (light and dark) into site-screenshots/, each
# checked for label size (>= 9 px) and overlapping labels; then the themed tiny sites (slow tests).
screenshots: venv mermaid
	$(BIN)/mkdocs build --strict
	status=0; \
	$(BIN)/python tests/sitecheck.py site --screenshots site-screenshots || status=1; \
	$(BIN)/python tests/sitecheck.py site --dark --screenshots site-screenshots || status=1; \
	TRAINDOC_SCREENSHOTS=$(CURDIR)/site-screenshots $(BIN)/python -m pytest -q tests/test_pages.py || status=1; \
	exit $$status

golden: venv
	$(BIN)/python -m pytest -q tests/test_golden.py --update-golden

bench: venv mermaid
	$(BIN)/python bench/run_all.py --out docs/benchmarks.md

clean:
	rm -rf site .cache/traindoc .pytest_cache .mypy_cache .ruff_cache
