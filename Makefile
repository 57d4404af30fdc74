# The project's two commands: `make demo` (the whole pipeline on the local stack) and
# `make test` (every check and test). Both set up what they need on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV  := dev/.venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum dev/requirements.txt | cut -c1-12)

.PHONY: help venv build test lint demo chaos local-up local-down clean

help:
	@echo "make demo   run the whole pipeline locally and print a report (USERS=300)"
	@echo "make test   format check, clippy, Python and Rust tests (unit + local-stack integration)"

# A Python venv with the pinned local-stack tools (moto server, botocore, graphql-core, pytest).
venv: $(STAMP)
$(STAMP): dev/requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r dev/requirements.txt
	@rm -f $(VENV)/.installed-* && touch $@

build:
	cargo build --workspace --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: venv lint
	$(PY) -m pytest dev/tests -q -p no:cacheprovider
	cargo test --workspace

USERS ?= 300
OPS   := ./target/debug/uc-ops

# The whole pipeline on the local stack: up, demo (exit 1 if any profile is missing or
# duplicated), and down again whatever happened.
demo: venv
	cargo build --workspace --bins
	@trap '$(OPS) local down' EXIT; $(OPS) local up && $(OPS) demo --users $(USERS)

CHAOS_USERS ?= 5000
SEED ?= 42

# Thousands of sign-ups under faults, then a DLQ replay: exactly one profile per user, or exit 1.
chaos: venv
	cargo build --workspace --bins
	@trap '$(OPS) local down' EXIT; $(OPS) local up >/dev/null && $(OPS) chaos --users $(CHAOS_USERS) --seed $(SEED)

local-up: venv
	cargo build --workspace --bins
	$(OPS) local up

local-down:
	$(OPS) local down

clean:
	cargo clean
	rm -rf $(VENV)
