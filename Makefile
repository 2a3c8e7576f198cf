# traindoc — every set-up step lives here (and in .ci/run for system packages).
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
MERMAID_VERSION := 11.12.0
MERMAID_DIR     := .cache/mermaid/$(MERMAID_VERSION)
STAMP     := $(VENV)/.installed

.PHONY: venv mermaid browser check lint typecheck test test-fast docs site-check serve bench readme readme-check clean golden

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

# Browser tests need Debian's chromium: installed here when we are root, else one clear line and stop.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make: installing Debian's chromium for the browser tests (apt)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "make test: chromium is missing and we are not root; run 'sudo apt-get install chromium' first"; exit 1; \
	  fi; }

# Browser tests fail (never skip) under make test: a green run always includes them.
test: check mermaid browser
	TRAINDOC_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q

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

golden: venv
	$(BIN)/python -m pytest -q tests/test_golden.py --update-golden

bench: venv mermaid
	$(BIN)/python bench/run_all.py --out docs/benchmarks.md

clean:
	rm -rf site .cache/traindoc .pytest_cache .mypy_cache .ruff_cache
