# The two commands of the README: `make build` (the main job on the example site) and
# `make test` (lint, types, import layers, tests). Both create .venv and install digest into
# it first, from requirements.lock: the exact versions, checked against their hashes, that CI ran.
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: build test test-latest lock bench clean

# Plain pip installs from the lock; setuptools (the build backend) is in it too, so the
# editable install builds without fetching anything unpinned.
$(BIN)/digest: pyproject.toml $(LOCK)
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The example's posts are from January 2024, so the digest runs as of the Monday after them.
# Its links are signed with DIGEST_SECRET; a throwaway one is used here if none is set.
EXAMPLE_AS_OF ?= 2024-01-22T09:00:00-05:00

build: $(BIN)/digest
	$(BIN)/digest --config config.yaml build
	DIGEST_SECRET="$${DIGEST_SECRET:-example-only-secret-do-not-use}" \
	  $(BIN)/digest --config config.yaml send --as-of $(EXAMPLE_AS_OF)

define checks
	$(1)/ruff check digest tests bench scripts
	$(1)/mypy
	$(1)/lint-imports --no-cache
	$(1)/pytest -q
endef

test: $(BIN)/digest
	$(call checks,$(BIN))

# The same checks on the newest releases pyproject.toml allows, in a venv made afresh
# (CI's second pass): a release that breaks digest shows here before it reaches the lock.
LATEST ?= .venv-latest
test-latest:
	rm -rf $(LATEST)
	python3 -m venv $(LATEST)
	$(LATEST)/bin/pip install -q --upgrade pip setuptools
	$(LATEST)/bin/pip install -q --upgrade -e '.[test]'
	$(LATEST)/bin/python scripts/lock_drift.py $(LOCK)
	$(call checks,$(LATEST)/bin)

# Refresh the lock to the newest versions pyproject.toml allows (needs uv; installing from
# the lock needs only pip). One lock for every platform (--universal), resolved for
# Python 3.11, every file's hash. setuptools: the [build-system] requirement.
# One package only: make lock LOCK_UPGRADE='--upgrade-package jinja2'
LOCK_UPGRADE ?= --upgrade
lock:
	printf 'setuptools>=77\npip\n' | uv pip compile -q pyproject.toml - --extra test \
	  --universal --python-version 3.11 --generate-hashes $(LOCK_UPGRADE) \
	  --custom-compile-command 'make lock' -o $(LOCK)

bench: $(BIN)/digest
	$(BIN)/python bench/build_bench.py

clean:
	rm -rf public state bench/out
