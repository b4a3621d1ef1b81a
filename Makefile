# Two entry points, each one command on a fresh machine (they create .venv and install):
#   make demo   run the connector's main job on its embedded default
#   make test   lint, type-check and run the whole test suite (this is what CI runs)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo explain chart-mappings test lint typecheck pytest bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bitrix-sla demo

explain: $(STAMP)
	$(BIN)/bitrix-sla check-config
	$(BIN)/bitrix-sla explain --ticket examples/ticket-commercial-emergency.json --now 2026-11-27T18:00:00+03:00
	$(BIN)/bitrix-sla due --start 2026-12-30T16:00:00+03:00 --hours 6

# The Helm chart ships a copy of mappings/ (Helm cannot read outside the chart); keep it equal.
chart-mappings:
	cp mappings/*.yaml helm/bitrix-sla-connector/files/mappings/

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_calendar.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_retention.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
