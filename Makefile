# traindoc — every set-up step lives here (and in .ci/run for system packages).
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
MERMAID_VERSION := 11.12.0
MERMAID_DIR     := .cache/mermaid/$(MERMAID_VERSION)
STAMP     := $(VENV)/.installed

.PHONY: venv mermaid browser check lint typecheck test test-all test-fast docs site-check serve bench readme readme-check clean golden \
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

# Pinned export fonts (DejaVu Sans, Noto Sans SC) from the npm registry into an ignored cache.
fonts: | $(STAMP)
	$(BIN)/traindoc fonts-fetch

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

# Browser tests fail (never skip) under make test: a green run always includes them. CI runs `make test`;
# tests marked `extended` (second real runs of behaviour another test covers) run only in `make test-all`.
test: check mermaid fonts browser
	TRAINDOC_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q --durations=25 -m "not extended"

test-all: check mermaid fonts browser
	TRAINDOC_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q --durations=25

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

docs: venv mermaid
	$(BIN)/mkdocs build --strict

site-check: venv
	$(BIN)/python tests/sitecheck.py site
	$(BIN)/python tests/sitecheck.py site --dark

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
	$(BIN)/python -m pytest -q tests/test_diagrams.py -k golden --update-golden

bench: venv mermaid
	$(BIN)/python bench/run_all.py --out docs/benchmarks.md

# --- GPU check (issue 14; docs/benchmarks.md "GPU check") -------------------------------------------
# The GPU machine reaches no package index: `make gpu-wheels` here (once) puts the wheels its image
# lacks, a wheel of traindoc (for its entry points; the code runs from src/) and the pinned Mermaid
# into the ignored folder .whl/, which the device call carries. There: `make gpu-check`
# (or `sh bench/gpu-check.sh` where make is missing).
GPU_PY    ?= python3
GPU_SITE  ?= /tmp/traindoc-site
PIP_PY    ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
MERMAID_SRC ?= $(or $(TRAINDOC_MERMAID_DIR),$(MERMAID_DIR))
GPU_PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
	--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64
RESULTS   ?= out/gpu-check/gpu-check.json

.PHONY: gpu-wheels gpu-check gpu-check-dry gpu-docs

gpu-wheels:
	test -f $(MERMAID_SRC)/mermaid.min.js || $(MAKE) mermaid
	rm -rf .whl && mkdir -p .whl/mermaid/$(MERMAID_VERSION)
	$(PIP_PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		$(GPU_PLATFORMS) -d .whl -r bench/gpu-wheels.txt
	tmp=$$(mktemp -d) && cp -r src pyproject.toml README.md $$tmp/ && \
		$(PIP_PY) -m pip wheel -q --no-deps --no-build-isolation -w .whl $$tmp; rc=$$?; rm -rf $$tmp; exit $$rc
	cp $(MERMAID_SRC)/mermaid.min.js .whl/mermaid/$(MERMAID_VERSION)/
	@du -sh .whl

gpu-check:
	GPU_PY=$(GPU_PY) GPU_SITE=$(GPU_SITE) sh bench/gpu-check.sh

gpu-check-dry: venv mermaid
	$(BIN)/python bench/gpu_check.py --dry-run --out out/gpu-check-dry

gpu-docs:
	$(PIP_PY) bench/gpu_section.py $(RESULTS)

clean:
	rm -rf site .cache/traindoc .pytest_cache .mypy_cache .ruff_cache
