#!/usr/bin/env bash
# `make fuzz`: installs what libFuzzer needs (a nightly toolchain, cargo-fuzz) if missing, then
# runs each fuzz target for FUZZ_SECONDS (default 60) with bounded input size and memory.
# A crash stops the run with the reproducer in fuzz/artifacts/<target>/; replay it with
#   cd fuzz && cargo +nightly fuzz run <target> artifacts/<target>/<file>
# The corpus grows in fuzz/corpus/<target>/ (not committed); fuzz/seeds/<target>/ holds the
# committed starting points.
set -euo pipefail
cd "$(dirname "$0")"

TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-emitter_event parse_message classify verify_message}

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

for target in $TARGETS; do
    mkdir -p "corpus/$target"
    echo "fuzz: $target for ${SECONDS_EACH}s ($(rustup run "$TOOLCHAIN" rustc --version))"
    # -max_len: far above any genuine event, far below the 256 KiB limit's cost per run.
    # -rss_limit_mb / -malloc_limit_mb: unbounded allocation is a failure, not a slow run.
    # -close_fd_mask=1: the emitter writes an EMF metrics line to stdout on every call.
    cargo "+$TOOLCHAIN" fuzz run --debug-assertions "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -dict=json.dict -close_fd_mask=1 -print_final_stats=1
done
