# The project's two commands: `make demo` (the whole pipeline on the local stack) and
# `make test` (every check and test). Both set up what they need on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV  := dev/.venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum dev/requirements.txt | cut -c1-12)

.PHONY: help venv infra-venv docs-typecheck construct-check build test lint lint-infra demo chaos bench local-up local-down clean
.PHONY: deny fuzz amplify-sim

help:
	@echo "make demo   run the whole pipeline locally and print a report (USERS=300)"
	@echo "make test   format check, clippy, Python and Rust tests (unit + local-stack integration)"
	@echo "make chaos  5,000 sign-ups under faults, kills and an EventBridge outage; exact-once or exit 1 (CHAOS_USERS, SEED)"
	@echo "make local-up / local-down   keep the local stack running (.local/stack.env)"
	@echo "             UC_LAB_GRAPHQL=amplify (demo, local-up): Amplify's AppSync simulator + transformer serve GraphQL"
	@echo "make bench  benchmarks vs the synchronous design; writes docs/benchmarks.{json,md} + plots (25-45 min)"
	@echo "make deny   supply chain: licenses, banned crates, sources, RustSec advisories (offline snapshot)"
	@echo "make fuzz   libFuzzer on the emitter, the envelope parser and AppSync classification (FUZZ_SECONDS=60 each)"

# A Python venv with the pinned local-stack tools (moto server, botocore, graphql-core, pytest).
venv: $(STAMP)
$(STAMP): dev/requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r dev/requirements.txt
	@rm -f $(VENV)/.installed-* && touch $@

# Amplify's AppSync simulator and GraphQL transformer (dev/amplify-sim), pinned by its
# package-lock.json, for the local stack's second GraphQL backend (UC_LAB_GRAPHQL=amplify) and
# its lab test. npm ci runs no install scripts.
AMPLIFY_SIM_NODE := dev/amplify-sim/node_modules/.package-lock.json

amplify-sim: $(AMPLIFY_SIM_NODE)
$(AMPLIFY_SIM_NODE): dev/amplify-sim/package-lock.json
	cd dev/amplify-sim && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

# What serves GraphQL on the local stack for demo and local-up: standin or amplify (chaos
# injects the stand-in's faults, so it always runs on the stand-in).
UC_LAB_GRAPHQL ?= standin
GRAPHQL_SETUP  := $(if $(filter amplify,$(UC_LAB_GRAPHQL)),amplify-sim)

# checkov pins boto3 and networkx versions that conflict with moto's: it gets its own venv.
INFRA_VENV  := dev/.venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed-$(shell sha256sum dev/requirements-infra.txt | cut -c1-12)

infra-venv: $(INFRA_STAMP)
$(INFRA_STAMP): dev/requirements-infra.txt
	@test -x $(INFRA_VENV)/bin/python || python3 -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --disable-pip-version-check -r dev/requirements-infra.txt
	@rm -f $(INFRA_VENV)/.installed-* && touch $@

# The template: rendered from its source and the contract's JSON Schema, cfn-lint clean
# (errors and warnings), and checkov with every skip justified in the template.
lint-infra: venv infra-venv
	$(PY) infra/render.py --check
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(INFRA_VENV)/bin/checkov --file infra/template.yaml --framework cloudformation --skip-download --compact --quiet

# The TypeScript shown in docs/amplify-gen2.md, type-checked against pinned Amplify/CDK versions;
# then amplify/backend.ts (with the construct) synthesized by the real @aws-amplify/backend,
# offline, and checked for a cycle-free stack layout (synth-check.cjs).
docs-typecheck:
	cd docs/amplify-gen2 && npm install --ignore-scripts --no-audit --no-fund --loglevel=error && ./node_modules/.bin/tsc -p tsconfig.json
	cd docs/amplify-gen2 && ./node_modules/.bin/tsc -p tsconfig.synth.json && node synth-check.cjs

# The CDK construct (infra/cdk): npm ci, tsc, synth of the example app diffed against the
# committed templates, cfn-lint and checkov on them (infra/cdk/check.sh; --update to rewrite).
construct-check: venv infra-venv
	infra/cdk/check.sh

# The app-side TypeScript in docs/app-clients.md: type-checked against pinned aws-amplify, and the
# page's code blocks byte-identical to the checked files.
.PHONY: docs-app-clients-typecheck
docs-app-clients-typecheck:
	cd docs/app-clients && npm install --ignore-scripts --no-audit --no-fund --loglevel=error && ./node_modules/.bin/tsc -p tsconfig.json
	python3 docs/app-clients/check-sync.py

build:
	cargo build --workspace --all-targets

# Supply chain (deny.toml): cargo-deny pinned, advisories from ../shared/advisory-db, no fetching.
deny:
	./dev/deny.sh

# Fuzzing (fuzz/, nightly + cargo-fuzz, installed if missing): FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= emitter_event parse_message classify verify_message
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" ./fuzz/run.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: venv infra-venv amplify-sim lint lint-infra docs-typecheck docs-app-clients-typecheck construct-check deny
	$(PY) -m pytest dev/tests -q -p no:cacheprovider
	cargo test --workspace
	# The end-to-end suite and reconciliation again, on the CDK construct's resources.
	UC_LAB_TEMPLATE=construct cargo test -p uc-lab --test e2e --test reconcile_on_local_stack --test lifecycle

USERS ?= 300
LAB   := ./target/debug/uc-lab

# The whole pipeline on the local stack: up, demo (exit 1 if any profile is missing or
# duplicated), and down again whatever happened.
demo: venv $(GRAPHQL_SETUP)
	cargo build --workspace --bins
	@trap '$(LAB) local down' EXIT; UC_LAB_GRAPHQL=$(UC_LAB_GRAPHQL) $(LAB) local up && $(LAB) demo --users $(USERS)

CHAOS_USERS ?= 5000
SEED ?= 42

# Thousands of sign-ups under faults, then a DLQ replay: exactly one profile per user, or exit 1.
chaos: venv
	cargo build --workspace --bins
	@trap '$(LAB) local down' EXIT; UC_LAB_GRAPHQL=standin $(LAB) local up >/dev/null && $(LAB) chaos --users $(CHAOS_USERS) --seed $(SEED)

# Benchmarks (docs/benchmarks.md): pinned installs (npm ci for the Amplify baseline, a venv with
# matplotlib and cargo-lambda), release builds, criterion, the arm64 zips, then one measuring run.
BENCH_VENV  := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell sha256sum bench/requirements.txt | cut -c1-12)
BENCH_NODE  := bench/baseline/node_modules/.package-lock.json

$(BENCH_STAMP): bench/requirements.txt
	@test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@rm -f $(BENCH_VENV)/.installed-* && touch $@
$(BENCH_NODE): bench/baseline/package-lock.json
	cd bench/baseline && npm ci --no-audit --no-fund

bench: venv $(BENCH_STAMP) $(BENCH_NODE)
	cd bench/baseline && node build.mjs
	cargo build --release -p uc-emitter -p uc-worker -p uc-ops -p uc-bench
	cargo bench -p uc-emitter -p uc-worker --bench mapping --bench message
	PATH="$(CURDIR)/$(BENCH_VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip --bin uc-emitter --bin uc-worker
	./target/release/uc-bench run --out docs/benchmarks.json \
	  --emitter target/release/uc-emitter --worker target/release/uc-worker --ops target/release/uc-ops --baseline bench/baseline/bootstrap \
	  --criterion-dir target/criterion \
	  --zip uc-emitter=target/lambda/uc-emitter/bootstrap.zip --zip uc-worker=target/lambda/uc-worker/bootstrap.zip \
	  --version-of "cargo-lambda=$$($(BENCH_VENV)/bin/cargo-lambda lambda --version)"
	$(BENCH_VENV)/bin/python bench/render.py docs/benchmarks.json

local-up: venv $(GRAPHQL_SETUP)
	cargo build --workspace --bins
	UC_LAB_GRAPHQL=$(UC_LAB_GRAPHQL) $(LAB) local up

local-down:
	$(LAB) local down

clean:
	cargo clean
	rm -rf $(VENV) $(INFRA_VENV) dev/amplify-sim/node_modules
