# The two commands of the README: `make build` (the main job on the example site) and
# `make test` (lint, types, tests). Both create .venv and install digest into it first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: build test bench clean

$(BIN)/digest: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

build: $(BIN)/digest
	$(BIN)/digest --config config.yaml build

test: $(BIN)/digest
	$(BIN)/ruff check digest tests bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(BIN)/digest
	$(BIN)/python bench/build_bench.py

clean:
	rm -rf public state bench/out
