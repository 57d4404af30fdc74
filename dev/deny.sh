#!/usr/bin/env bash
# `make deny`: cargo-deny (deny.toml) for licenses, bans, sources and RustSec advisories,
# without network access for the advisory database.
#
# The database is the offline snapshot beside the repository (ADVISORY_SNAPSHOT, by default
# ../shared/advisory-db: a plain copy of the RustSec files, not a git repository). cargo-deny
# 0.20 with --offline opens <db-path>/advisory-db-3157b0e258782691 (the name it derives from the
# default database URL) as a git repository, so the snapshot is copied there, `git init`ed and
# committed (with the date of its newest advisory). No snapshot: licenses, bans and sources are
# still checked and the script says loudly that advisories were NOT.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
SNAPSHOT=${ADVISORY_SNAPSHOT:-../shared/advisory-db}
DB_ROOT=target/advisory-db # deny.toml's [advisories] db-path
DB_REPO=$DB_ROOT/advisory-db-3157b0e258782691
STALE_DAYS=90 # cargo-deny's own default for maximum-db-staleness

if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
    echo "deny: installing cargo-deny $CARGO_DENY_VERSION (a few minutes, once)"
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked
fi
# cargo-deny runs offline; make sure every crate's manifest is in the local registry cache.
cargo fetch --locked --quiet

checks=(licenses bans sources)
if [[ -d $SNAPSHOT/crates ]]; then
    snapshot=$(cd "$SNAPSHOT" && pwd)
    fingerprint=$(cd "$snapshot" && find . -type f -printf '%P %s %T@\n' | sort | sha256sum | cut -c1-16)
    if [[ ! -f $DB_REPO/.git/uc-fingerprint || $(cat "$DB_REPO/.git/uc-fingerprint") != "$fingerprint" ]]; then
        rm -rf "$DB_REPO"
        mkdir -p "$DB_REPO"
        cp -R "$snapshot/." "$DB_REPO/"
        newest=$(grep -rhoE '^date = "[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$DB_REPO/crates" | sort | tail -1 | cut -d'"' -f2)
        (
            cd "$DB_REPO"
            git init --quiet --initial-branch=main
            git add --all
            GIT_AUTHOR_DATE="${newest}T00:00:00Z" GIT_COMMITTER_DATE="${newest}T00:00:00Z" \
                git -c user.name=uc-deny -c user.email=uc-deny@localhost -c commit.gpgsign=false \
                commit --quiet --no-verify -m "RustSec advisory-db snapshot from $snapshot"
        )
        echo "$fingerprint" >"$DB_REPO/.git/uc-fingerprint"
    fi
    newest=$(git -C "$DB_REPO" show -s --format=%cs HEAD)
    age=$((($(date +%s) - $(date -d "$newest" +%s)) / 86400))
    echo "deny: advisories from the RustSec snapshot at $snapshot (newest advisory $newest, $age days old)"
    if ((age > STALE_DAYS)); then
        # cargo-deny's own staleness check sees the copy's creation time, not the snapshot's.
        echo "deny: WARNING: the advisory snapshot is more than $STALE_DAYS days old; refresh $SNAPSHOT" >&2
    fi
    checks+=(advisories)
else
    echo "deny: advisory DB snapshot not found at $SNAPSHOT: advisories NOT checked" >&2
fi

cargo deny --offline --locked check "${checks[@]}"
