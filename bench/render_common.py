"""What every section of the benchmarks page shares: prices and settings the page computes with,
the targets, and number formatting. Imported by render.py and its section modules."""

from __future__ import annotations

# ----------------------------------------------------------------------------------------------
# AWS list prices, us-east-1, on-demand, first pricing tier, free tiers ignored. Update here
# when they change; the page prints them next to the formulas.
PRICES = {
    "lambda_request": 0.20 / 1e6,  # $ per request
    "lambda_gbs_x86": 0.0000166667,  # $ per GB-second, x86_64
    "lambda_gbs_arm": 0.0000133334,  # $ per GB-second, arm64
    "eventbridge_event": 1.00 / 1e6,  # $ per custom event published (64 KB chunk)
    "sqs_request": 0.40 / 1e6,  # $ per standard-queue request (64 KB chunk)
    "appsync_operation": 4.00 / 1e6,  # $ per query/mutation
}
# Function settings: infra/template.yaml (ours), Amplify defineFunction defaults (baseline).
EMITTER_MB = 128
WORKER_MB = 256
WORKER_BATCH = 10
BASELINE_MB = 512

# Strict mode's guidance: Cognito's default request-rate quota of the UserRead category
# (AdminGetUser, GetUser, ...), per account and Region, shared by every user pool and caller
# there; adjustable (Amazon Cognito developer guide, "Quotas in Amazon Cognito"). And the
# deployable template's default WorkerMaximumConcurrency: worker processes at most.
COGNITO_USER_READ_RPS = 120
WORKER_MAX_CONCURRENCY = 5

# Issue 12, acceptance 5: with a large back-fill running, live sign-ups' p99 lag stays within
# this multiple of the idle figure.
ISOLATION_P99_RATIO = 2.0

TARGETS = {
    "emitter_over_floor_p99": 1.1,
    "cold_start_speedup": 10.0,
    "worker_fraction_at_64": 0.90,
    "worker_rss_mib": 40.0,
    "mapping_us": 50.0,
    "zip_mib": 8.0,
    # Issue 16.
    "worker_fraction_at_256": 0.90,
    "worker_rss_mib_at_256": 64.0,
    "worker_cpu_us": 30.0,
    "reconcile_fraction_of_pace": 0.90,
}


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def spread(s: dict, digits: int = 1) -> str:
    """median [min–max] across runs."""
    return f"{fmt(s['median'], digits)} <sub>[{fmt(s['min'], digits)}–{fmt(s['max'], digits)}]</sub>"


def ok(met: bool) -> str:
    return "✅ met" if met else "❌ missed"


def condition_by(doc: dict, latency: int, errors: float = 0.0) -> dict | None:
    for c in doc.get("signup", {}).get("conditions", []):
        if c["appsyncLatencyMs"] == latency and abs(c["errorFraction"] - errors) < 1e-9:
            return c
    return None
