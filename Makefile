# Every developer command lives here; CI calls `make test` too.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint format typecheck unit bench bench-fullscale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install distillwatch with its dev tools

demo: $(STAMP)  ## simulate a log from real prompts, scan it, then replay it live through the gateway
	$(BIN)/distillwatch demo --out demo-out --live

test: lint typecheck unit  ## everything CI checks

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest --doctest-modules src/distillwatch tests

bench: $(STAMP)  ## throughput and memory of `scan` on a 1M-exchange log (see docs/benchmarks.md)
	$(BIN)/python bench/scan_throughput.py --exchanges 1000000 --record

bench-fullscale: $(STAMP)  ## ~17M exchanges as Parquet; scan vs a bare DuckDB pass (about an hour)
	$(BIN)/python bench/fullscale.py --record

clean:
	rm -rf $(VENV) demo-out .mypy_cache .ruff_cache .pytest_cache
