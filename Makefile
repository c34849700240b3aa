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

# The example's posts are from January 2024, so the digest runs as of the Monday after them.
# Its links are signed with DIGEST_SECRET; a throwaway one is used here if none is set.
EXAMPLE_AS_OF ?= 2024-01-22T09:00:00-05:00

build: $(BIN)/digest
	$(BIN)/digest --config config.yaml build
	DIGEST_SECRET="$${DIGEST_SECRET:-example-only-secret-do-not-use}" \
	  $(BIN)/digest --config config.yaml send --as-of $(EXAMPLE_AS_OF)

test: $(BIN)/digest
	$(BIN)/ruff check digest tests bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(BIN)/digest
	$(BIN)/python bench/build_bench.py

clean:
	rm -rf public state bench/out
