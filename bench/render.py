#!/usr/bin/env python3
"""Renders docs/benchmarks.json (written by `uc-bench run`) into docs/benchmarks.md and the
plots next to it. Derived figures (ratios, target checks, the cost model) are computed here
from the measured ones; nothing is measured here.

Usage: python bench/render.py docs/benchmarks.json [--docs docs]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from render_common import *  # noqa: E402,F403
from render_isolation import isolation_phase, plot_isolation, render_isolation  # noqa: E402
from render_sweep import render_sweep, render_sweep_cost, sweep_cost_rows  # noqa: E402
from render_logs import render_logs  # noqa: E402
from render_strict import render_strict  # noqa: E402
from render_limits import emitter_split, render_long_poll, render_managed, render_reconciliation, target_rows  # noqa: E402


# ----------------------------------------------------------------------------------------------
# Plots


def plot_signup(doc: dict, out: Path) -> None:
    conditions = [c for c in doc["signup"]["conditions"] if c["errorFraction"] == 0]
    conditions.sort(key=lambda c: c["appsyncLatencyMs"])
    xs = [c["appsyncLatencyMs"] for c in conditions]
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=120)

    def series(design: str, stat: str, label: str, style: str, color: str, offset=(6, 4)) -> None:
        rows = [c[design] for c in conditions if c.get(design)]
        if len(rows) != len(conditions):
            return
        med = [r["summary"][stat]["median"] for r in rows]
        lo = [m - r["summary"][stat]["min"] for m, r in zip(med, rows)]
        hi = [r["summary"][stat]["max"] - m for m, r in zip(med, rows)]
        ax.errorbar(xs, med, yerr=[lo, hi], fmt=style, color=color, label=label, capsize=3, lw=1.6, ms=6)
        for x, m in zip(xs, med):
            ax.annotate(f"{m:,.1f}" if m < 100 else f"{m:,.0f}", (x, m), textcoords="offset points",
                        xytext=offset, fontsize=8, color=color)

    series("baseline", "p99", "Amplify docs' handler (sync), p99", "s-", "#c0392b", (-14, 8))
    series("baseline", "p50", "Amplify docs' handler (sync), p50", "s--", "#e59866", (8, -12))
    series("emitter", "p99", "uc-emitter, p99", "o-", "#1f618d", (-14, 9))
    series("emitter", "p50", "uc-emitter, p50", "o--", "#5dade2", (8, -12))
    series("floor", "p99", "bare PutEvents (floor), p99", "^:", "#7f8c8d", (10, 1))
    ax.plot(xs, xs, color="#bbbbbb", lw=0.8, ls="-.", label="AppSync latency itself")
    ax.axhline(5000, color="#922b21", lw=0.8, ls=":")
    ax.annotate("Cognito gives up at 5 s", (xs[0], 5000), xytext=(0, -12), textcoords="offset points",
                fontsize=8, color="#922b21")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs, [f"{x:g} ms" if x < 1000 else f"{x / 1000:g} s" for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("AppSync latency (injected at the local stand-in)")
    ax.set_ylabel("sign-up path latency, ms (what Cognito waits; log scale)")
    runs = doc["settings"]["signup"]["runs"]
    ax.set_title(f"Sign-up path vs AppSync latency (warm; median of {runs} runs, bars = min–max)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_throughput(doc: dict, out: Path) -> None:
    levels = doc["worker"]["levels"]
    latency = doc["worker"]["latencyMs"]
    cs = [lv["concurrency"] for lv in levels]
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=120)
    limit = [lv["littlesLawLimit"] for lv in levels]
    ax.plot(cs, limit, "k--", lw=1.2, label=f"Little's law limit C ÷ L (L = {latency} ms)")
    ax.plot(cs, [0.9 * x for x in limit], color="#999999", lw=0.8, ls=":", label="90 % of the limit")
    med = [lv["profilesPerSecond"]["median"] for lv in levels]
    lo = [m - lv["profilesPerSecond"]["min"] for m, lv in zip(med, levels)]
    hi = [lv["profilesPerSecond"]["max"] - m for m, lv in zip(med, levels)]
    ax.errorbar(cs, med, yerr=[lo, hi], fmt="o-", color="#1f618d", capsize=3, lw=1.6,
                label="uc-worker (release), profiles/s")
    for c, m, lv in zip(cs, med, levels):
        rss = lv.get("peakRssMib")
        ax.annotate(f"{m:,.0f}/s ({lv['fractionOfLimit'] * 100:.1f} %)\nRSS {rss:.0f} MiB" if rss else f"{m:,.0f}/s",
                    (c, m), textcoords="offset points", xytext=(8, -24), fontsize=8,
                    color="#1f618d")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylim(bottom=min(med) * 0.5, top=max(limit) * 1.5)
    ax.set_xlim(min(cs) / 1.4, max(cs) * 2.2)
    ax.set_xticks(cs, [str(c) for c in cs])
    ax.minorticks_off()
    ax.set_xlabel("worker concurrency C (CONCURRENCY)")
    ax.set_ylabel("profiles per second (log scale)")
    runs = doc["settings"]["worker"]["runs"]
    ax.set_title(f"Worker throughput vs concurrency (median of {runs} runs, bars = min–max)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def plot_cold(doc: dict, out: Path) -> None:
    cold = doc["coldStart"]
    names, meds, los, his = [], [], [], []
    for key, label in (("emitter", "uc-emitter\n(Rust, provided.al2023 style)"),
                       ("baseline", "Amplify docs' handler\n(Node.js, aws-amplify v6)")):
        s = cold.get(f"{key}Summary")
        if not s:
            continue
        names.append(label)
        meds.append(s["p50"])
        los.append(s["p50"] - s["min"])
        his.append(s["max"] - s["p50"])
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=120)
    bars = ax.barh(names, meds, xerr=[los, his], color=["#1f618d", "#c0392b"][: len(names)], capsize=4,
                   height=0.5)
    for bar, m, hi in zip(bars, meds, his):
        ax.annotate(f"{m:,.1f} ms", (m + hi, bar.get_y() + bar.get_height() / 2), xytext=(8, 0),
                    textcoords="offset points", fontsize=9, va="center")
    ax.set_xlim(0, max(m + h for m, h in zip(meds, his)) * 1.2)
    ax.set_xlabel("process spawn → first response returned, ms (median; bars = min–max)")
    ax.set_title(f"Cold start ({cold['emitterSummary']['n']} starts each)", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def cost_rows(doc: dict) -> list[dict]:
    """Per million sign-ups, warm invocations, for each AppSync latency measured."""
    p = PRICES
    levels = {lv["concurrency"]: lv for lv in doc.get("worker", {}).get("levels", [])}
    # One worker message's own overhead beyond the AppSync call, from the C = 1 run.
    lv1 = levels.get(1)
    overhead_ms = None
    if lv1:
        overhead_ms = max(0.0, 1000.0 / lv1["profilesPerSecond"]["median"] - lv1["endpointMeanLatencyMs"])
    rows = []
    for c in sorted(doc["signup"]["conditions"], key=lambda c: (c["errorFraction"], c["appsyncLatencyMs"])):
        if c["errorFraction"] or not c.get("baseline"):
            continue
        latency = c["appsyncLatencyMs"]
        emitter_ms = math.ceil(c["emitter"]["summary"]["p50"]["median"])
        baseline_ms = math.ceil(c["baseline"]["summary"]["p50"]["median"])
        # A batch of WORKER_BATCH messages runs concurrently: about one AppSync latency plus the
        # per-message overheads, shared by the batch.
        batch_ms = math.ceil(latency + (overhead_ms or 0.0) * WORKER_BATCH)
        ours = {
            "emitter_requests": p["lambda_request"],
            "emitter_gbs": EMITTER_MB / 1024 * emitter_ms / 1000 * p["lambda_gbs_arm"],
            "eventbridge": p["eventbridge_event"],
            "sqs": (1 + 2 / WORKER_BATCH) * p["sqs_request"],
            "worker_requests": p["lambda_request"] / WORKER_BATCH,
            "worker_gbs": WORKER_MB / 1024 * batch_ms / 1000 * p["lambda_gbs_arm"] / WORKER_BATCH,
            "appsync": p["appsync_operation"],
        }
        base = {
            "lambda_requests": p["lambda_request"],
            "lambda_gbs": BASELINE_MB / 1024 * baseline_ms / 1000 * p["lambda_gbs_x86"],
            "appsync": p["appsync_operation"],
        }
        rows.append({
            "latency": latency,
            "emitter_ms": emitter_ms,
            "baseline_ms": baseline_ms,
            "batch_ms": batch_ms,
            "ours": {k: v * 1e6 for k, v in ours.items()},
            "base": {k: v * 1e6 for k, v in base.items()},
        })
    return rows


# ----------------------------------------------------------------------------------------------
# The page


def render(doc: dict, docs: Path) -> str:
    m = doc["machine"]
    v = doc["versions"]
    s = doc["settings"]
    lines: list[str] = []
    w = lines.append

    c20 = condition_by(doc, 20)
    c2s = condition_by(doc, 2000)
    cerr = condition_by(doc, 20, 0.1)
    cold = doc.get("coldStart", {})
    levels = {lv["concurrency"]: lv for lv in doc.get("worker", {}).get("levels", [])}
    micro = doc.get("micro", {})
    arts = doc.get("artifacts", [])

    w("# Benchmarks")
    w("")
    w("The sign-up path of this pipeline against the synchronous design it replaces (the Amplify docs'")
    w("post-confirmation handler), cold starts, worker throughput, CPU per event, artifact sizes and")
    w("cost, measured by `make bench` on the machine described. The latency, cold-start and throughput")
    w("figures come from one run of its measuring step (`uc-bench run`), with both designs against the same")
    w("local endpoints; the micro-benchmarks from its criterion step (timestamps in the JSON).")
    w("[`benchmarks.json`](benchmarks.json) holds every figure, including each run's raw samples. This page")
    w("and the plots are generated from it by [`bench/render.py`](../bench/render.py); do not edit them by hand.")
    w("")
    git = doc.get("git", {})
    w(f"Run: {doc['generatedAt']}, commit `{git.get('commit')}`{' (with uncommitted changes)' if git.get('dirty') else ''},"
      f" {doc.get('durationSeconds', 0) // 60} min {doc.get('durationSeconds', 0) % 60} s of measuring"
      f" (scale: {doc['scale']}).")
    # Sections re-measured on their own (`uc-bench run --only ... --merge`) say so here, unless
    # they print their own run record (strict mode and isolation do).
    for merge in doc.get("merges", []):
        others = [s for s in merge.get("sections", []) if s not in ("strict", "isolation")]
        if others:
            mg = merge.get("git", {})
            w(f"Re-measured later and merged: {', '.join(others)} on {merge.get('generatedAt')}, commit `{mg.get('commit')}`"
              f"{' (with uncommitted changes)' if mg.get('dirty') else ''}.")
    w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("make bench   # installs what it needs (pinned), builds release binaries, measures, renders this page")
    w("```")
    w("")
    w("On a clean checkout it took 47 minutes on this 2-core machine (a fresh clone, 2026-12-01): three full release")
    w("builds with fat LTO (x86_64, criterion's with dev-dependency features, and aarch64 for the zips) and about 22")
    w("minutes of measuring, 14 of them the isolation section (section 8, which `uc-bench run --only isolation --merge`")
    w("re-measures on its own).")
    w("Where the CPU goes and what each change bought: [profiling.md](profiling.md) (`cargo build --profile profiling`, `perf`).")
    w("It needs Rust, Python 3.11+, Node.js 20 and npm, and reaches only package registries (for the pinned")
    w("installs) and 127.0.0.1. Numbers move with the machine: compare designs within one run, not runs")
    w("across machines.")
    w("")

    # Headline + targets -----------------------------------------------------------------------
    w("## Headline and targets")
    w("")
    w("| Target | Measured | |")
    w("| --- | --- | --- |")
    if c20:
        ratios = [condition["emitterOverFloorP99"] for condition in doc["signup"]["conditions"]]
        worst = max(r["median"] for r in ratios)
        w(f"| emitter p99 ≤ {TARGETS['emitter_over_floor_p99']:g} × bare PutEvents p99 (median across runs, every setting) | {c20['emitterOverFloorP99']['median']:.3f} × at 20 ms "
          f"(worst setting {worst:.3f} ×; single runs {min(r['min'] for r in ratios):.2f}–{max(r['max'] for r in ratios):.2f}){emitter_split(c20)} "
          f"| {ok(worst <= TARGETS['emitter_over_floor_p99'])} |")
    if c20 and c2s:
        e20 = c20["emitter"]["summary"]["p99"]
        e2s = c2s["emitter"]["summary"]["p99"]
        f20 = c20["floor"]["summary"]["p99"]
        f2s = c2s["floor"]["summary"]["p99"]
        # "Within noise": the change is no larger than the run-to-run spread at either setting, or
        # than what the floor (which has no AppSync anywhere near it) moved in the same runs.
        noise = max(e20["max"] - e20["min"], e2s["max"] - e2s["min"], abs(f2s["median"] - f20["median"]))
        unchanged = abs(e2s["median"] - e20["median"]) <= noise
        w(f"| emitter p99 unchanged (within noise) as AppSync goes 20 ms → 2 s | {e20['median']:.2f} ms → {e2s['median']:.2f} ms "
          f"(noise {noise:.2f} ms: run-to-run spread, and the floor moved {f20['median']:.2f} → {f2s['median']:.2f} ms) "
          f"| {ok(unchanged)} |")
    if cold.get("baselineSummary"):
        speedup = cold["baselineSummary"]["p50"] / cold["emitterSummary"]["p50"]
        w(f"| cold start ≥ 10 × faster than the baseline's | {cold['emitterSummary']['p50']:.1f} ms vs "
          f"{cold['baselineSummary']['p50']:.1f} ms: **{speedup:.0f} ×** | {ok(speedup >= TARGETS['cold_start_speedup'])} |")
    if 64 in levels:
        lv = levels[64]
        w(f"| worker ≥ 90 % of C ÷ L at C = 64, L = {doc['worker']['latencyMs']} ms | "
          f"{lv['profilesPerSecond']['median']:,.0f}/s of {lv['littlesLawLimit']:,.0f}/s = {lv['fractionOfLimit'] * 100:.1f} % "
          f"| {ok(lv['fractionOfLimit'] >= TARGETS['worker_fraction_at_64'])} |")
        w(f"| worker peak RSS ≤ 40 MB at C = 64 | {lv['peakRssMib']:.1f} MiB | {ok(lv['peakRssMib'] <= TARGETS['worker_rss_mib'])} |")
    mapping = micro.get("emitter/parse+decide+serialize")
    if mapping:
        w(f"| emitter mapping ≤ 50 µs per event | {mapping['medianUs']:.2f} µs (parse + map + serialize) "
          f"| {ok(mapping['medianUs'] <= TARGETS['mapping_us'])} |")
    for a in arts:
        if a.get("mib") is not None:
            w(f"| {a['name']} zip ≤ 8 MB | {a['mib']:.2f} MiB | {ok(a['mib'] <= TARGETS['zip_mib'])} |")
    paced, idle, unpaced = (isolation_phase(doc, n) for n in ("paced", "idle", "unpaced"))
    if paced and idle and paced.get("p99OverIdle") is not None:
        users = doc["isolation"]["report"]["usersCreated"]
        r = paced["p99OverIdle"]
        unpaced_text = (f"; pacing lifted: {unpaced['p99OverIdle']:.1f} ×" if unpaced and unpaced.get("p99OverIdle") else "")
        w(f"| live sign-up p99 lag ≤ {ISOLATION_P99_RATIO:g} × idle with a {users:,}-user back-fill running (default pace), local stack "
          f"| {r:.2f} × ({idle['live']['lag']['p99']:,.0f} → {paced['live']['lag']['p99']:,.0f} ms{unpaced_text}; "
          f"[section 8](#8-live-sign-ups-first-a-back-fill-beside-live-sign-ups)) | {ok(r <= ISOLATION_P99_RATIO)} |")
    target_rows(doc, w)
    w("")
    if c20 and c2s and c20.get("baseline") and c2s.get("baseline"):
        b20 = c20["baseline"]["summary"]["p99"]["median"]
        b2s = c2s["baseline"]["summary"]["p99"]["median"]
        e20 = c20["emitter"]["summary"]["p99"]["median"]
        e2s = c2s["emitter"]["summary"]["p99"]["median"]
        w(f"**What Cognito waits for, p99:** at 20 ms of AppSync latency the docs' handler takes {b20:,.1f} ms and the")
        w(f"emitter {e20:.2f} ms ({b20 / e20:.0f} × less); at 2 s of AppSync latency the handler takes {b2s:,.0f} ms")
        w(f"and the emitter {e2s:.2f} ms ({b2s / e2s:,.0f} × less).")
        if cerr and cerr.get("baseline"):
            be = cerr["baseline"]["summary"]
            ee = cerr["emitter"]["summary"]
            w(f"With 10 % of AppSync calls failing (503), the handler's p99 is {be['p99']['median']:,.1f} ms and"
              f" {be['errors']} of {be['samples']} sign-ups failed;")
            w(f"the emitter's p99 is {ee['p99']['median']:.2f} ms with {ee['errors']} failures (it never calls AppSync).")
        w("")

    # Machine ----------------------------------------------------------------------------------
    w("## Machine and versions")
    w("")
    w("| | |")
    w("| --- | --- |")
    w(f"| CPU | {m['cpuModel']}, **{m['cores']} cores** ({m['arch']}{', virtual machine' if m.get('virtualised') else ''}) |")
    w(f"| Memory | {m['memoryGiB']} GiB |")
    w(f"| Kernel | Linux {m['kernel']} |")
    w(f"| Build | {doc['build']['profile']} profile: {doc['build']['settings']} |")
    for key in ("rustc", "node", "aws-amplify", "@aws-amplify/api-graphql", "esbuild", "python", "moto", "botocore",
                "aws-sdk-eventbridge", "aws-sigv4", "lambda_runtime", "reqwest", "tokio", "criterion", "cargo-lambda"):
        if v.get(key):
            w(f"| {key} | {v[key]} |")
    w("")
    w("Everything ran on this one machine at once: the functions, the Runtime API harness, moto and the")
    w("AppSync stand-in share its cores, so absolute numbers include some contention; both designs")
    w("share it equally.")
    w("")
    load = doc.get("loadAverage")
    if load:
        order = ["start", "afterSignup", "afterColdStart", "afterWorker", "afterManaged", "afterStrict"]
        parts = ", ".join(f"{k} {load[k][0]:.2f}" for k in order if load.get(k))
        w(f"Load average (1 min) during the run: {parts}. Above about 1, other work on the machine (for")
        w("example builds) competed with the measurement; it shows mostly in the tails (p99, max).")
        peak = max((v[0] for v in load.values() if v), default=0.0)
        if peak > 1.5:
            w(f"**This run was disturbed** (load up to {peak:.2f} on {m['cores']} cores): treat its tails and")
            w("throughput as pessimistic and rerun on a quiet machine.")
        w("")

    # Method -----------------------------------------------------------------------------------
    w("## How it is measured")
    w("")
    w("- **Harness.** [`bench/`](../bench) (`uc-bench`, a release build) starts moto and the AppSync stand-in")
    w("  (which verifies every SigV4 signature with botocore) on loopback, and runs each function the way")
    w("  Lambda does, as a process polling a local Runtime API (`uc_devkit::LambdaHarness`). A latency is")
    w("  from handing the event to the Runtime API to receiving the function's answer: what Cognito waits for.")
    w(f"- **Sign-up path, warm.** After {s['signup']['warmupInvocations']} warm-up invocations per instance, each AppSync setting")
    w(f"  is measured in {s['signup']['runs']} runs; each run visits every setting in turn, so drift over time does not pose as")
    w(f"  an effect of one setting. A run of a setting is {s['signup']['emitterInvocations']} emitter invocations, each followed by one")
    w("  bare PutEvents (the floor), then the baseline's invocations (the order flips every other run). Each")
    w("  invocation is a new user. The emitter publishes to a bus on moto; the stand-in's latency setting")
    w("  applies to the baseline only, because the emitter never calls AppSync — that is the design.")
    w("- **Floor.** One PutEvents through the emitter's own adapter (`EventBridgePublisher`: the same SDK client,")
    w("  settings and endpoint), from the harness process, without Lambda or the handler.")
    w("- **Baseline instances.** Lambda runs one invocation per instance at a time. At 500 ms and 2 s of")
    w("  AppSync latency, the baseline's invocations are spread over several warm instances (as Lambda")
    w("  would scale out) so that the run fits the time budget; each instance still serves one at a time.")
    w("- **Percentiles.** Nearest rank within a run; the tables show the median across runs and, small,")
    w("  [min–max] across runs: the noise.")
    w("- **Cold start.** A new process per sample, alternating designs, after one discarded start each:")
    w("  spawn → init (SDK / Amplify configuration) → first poll → first handler run including its first")
    w("  network call (a new connection) → answer returned. The stand-in adds no latency here, so the")
    w("  baseline's figure is a lower bound.")
    w(f"- **Worker throughput.** The real `uc-worker` binary under the same harness, fed SQS batches of up to")
    w(f"  {s['worker']['maxBatch']:,} messages (EventBridge envelopes), `CONCURRENCY` = C, against a minimal fixed-latency GraphQL")
    w(f"  endpoint in the harness (L = {s['worker']['latencyMs']} ms, HTTP/1.1 keep-alive, no signature check); the stand-in is")
    w("  not built for thousands of requests per second. Messages per run aim at")
    w(f"  {s['worker']['targetSeconds']} s of work at the limit; {s['worker']['runs']} runs per C in a fresh process after a warm-up batch; peak RSS")
    w("  is the process's VmHWM. Logging stays at the production default (one JSON line per message).")
    w("- **CPU per event.** criterion 0.8 micro-benchmarks in [`emitter/benches`](../emitter/benches) and")
    w("  [`worker/benches`](../worker/benches), release profile.")
    w("- **Artifacts.** `cargo lambda build --release --arm64 --output-format zip`.")
    w("")
    w("### The baseline, and how it deviates from the docs")
    w("")
    w("[`bench/baseline/`](../bench/baseline) is the docs' `handler.ts` verbatim (aws-amplify v6, `Amplify.configure`")
    w("with IAM, `generateClient`, a synchronous `createUserProfile` in the trigger), installed with `npm ci` from a")
    w("pinned lock file and bundled the way Amplify Gen 2's `defineFunction` bundles (esbuild: ESM, minified, source")
    w("maps with `--enable-source-maps`, the CJS shim injected). It points at the same stand-in with the same")
    w("credentials as our worker; the stand-in verified its signatures (service `appsync`). Deviations:")
    w("")
    w("- It runs under a ~80-line Node.js Runtime API loop ([`runtime.mjs`](../bench/baseline/runtime.mjs)), not AWS's")
    w("  runtime interface client (a native addon that cannot be built offline). That loop does less than")
    w("  the managed runtime, so the baseline's cold start here is, if anything, flattering.")
    w("- Node.js is the machine's (see versions), not Lambda's image; x86_64 here, like Amplify's default.")
    w("- `$amplify/env/post-confirmation` is a one-line module exporting `process.env` (what Amplify generates),")
    w("  and `graphql/mutations.ts` is what `ampx generate graphql-client-code` writes for the model, without")
    w("  the generated type file (types are erased at build time).")
    w("- Amplify's banner that resolves SSM secrets is left out: the function has no secrets, so it would do nothing.")
    w("- The AppSync URL is plain `http://127.0.0.1:<port>/graphql`; Amplify accepted it, signed it for")
    w("  `appsync` in the configured region, and the stand-in verified each signature.")
    w("- The stand-in sets `TCP_NODELAY`. Without it, its responses (headers and body written separately)")
    w("  waited for the client's delayed ACK on kept-alive connections, adding ~40 ms to every warm")
    w("  baseline call — an artefact of the local server that real AppSync does not have.")
    w("")

    # Sign-up ----------------------------------------------------------------------------------
    if doc.get("signup"):
        w("## 1. Sign-up path latency (warm)")
        w("")
        w("![Sign-up latency vs AppSync latency](benchmarks-signup.png)")
        w("")
        w("Milliseconds; median across runs <sub>[min–max across runs]</sub>. \"Failed\" counts invocations that")
        w("returned an error to Cognito (a failed confirmation).")
        w("")
        w("| AppSync | Design | n | p50 | p99 | max | failed |")
        w("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for c in doc["signup"]["conditions"]:
            for key, label in (("emitter", "**uc-emitter**"), ("floor", "bare PutEvents (floor)"),
                               ("baseline", "Amplify docs' handler")):
                d = c.get(key)
                if not d:
                    continue
                sm = d["summary"]
                digits = 2 if key != "baseline" else 1
                extra = ""
                if key == "baseline" and c["baselineInstances"] > 1:
                    extra = f" ({c['baselineInstances']} instances)"
                w(f"| {c['name']} | {label}{extra} | {sm['samples']} | {spread(sm['p50'], digits)} | {spread(sm['p99'], digits)} "
                  f"| {spread(sm['max'], digits)} | {sm['errors']} |")
        w("")
        w("| AppSync | emitter p99 ÷ floor p99 | emitter p99 | baseline p99 | baseline ÷ emitter (p99) |")
        w("| --- | ---: | ---: | ---: | ---: |")
        for c in doc["signup"]["conditions"]:
            e = c["emitter"]["summary"]["p99"]["median"]
            b = c["baseline"]["summary"]["p99"]["median"] if c.get("baseline") else None
            w(f"| {c['name']} | {spread(c['emitterOverFloorP99'], 2)} | {e:.2f} | {fmt(b)} | {fmt(b / e if b else None, 0)} × |")
        w("")
        gaps50 = [c["emitter"]["summary"]["p50"]["median"] - c["floor"]["summary"]["p50"]["median"]
                  for c in doc["signup"]["conditions"]]
        gaps99 = [c["emitter"]["summary"]["p99"]["median"] - c["floor"]["summary"]["p99"]["median"]
                  for c in doc["signup"]["conditions"]]
        w(f"What the emitter adds to the floor: {min(gaps50):.2f}–{max(gaps50):.2f} ms at p50 and {min(gaps99):.2f}–{max(gaps99):.2f} ms")
        w("at p99 (medians across runs, per setting): the Runtime API hop (two loopback HTTP exchanges), the")
        w("handler, and its log line and metrics record. Against a moto PutEvents of about 2 ms that is the")
        w("ratio above; against a real PutEvents in AWS the same absolute overhead is a smaller fraction.")
        w("")
        w("How p99 moves with AppSync latency: the baseline's p99 follows it one-for-one (plus its own")
        w("overhead, plus Amplify's retries when AppSync fails); the emitter's does not move, because")
        w("AppSync is not on its path. In AWS the emitter's floor is a real PutEvents (typically a few to a few")
        w("tens of ms in-region) instead of moto on loopback; the baseline pays real AppSync latency instead.")
        if doc["signup"].get("memory"):
            mem = doc["signup"]["memory"]
            w("")
            w(f"Peak RSS after the sign-up runs: emitter {fmt(mem.get('emitterPeakRssMiB'))} MiB, baseline (one instance) "
              f"{fmt(mem.get('baselinePeakRssMiB'))} MiB.")
        w("")
        w("What the stand-in counted per setting (baseline calls only: requests, faults injected, profiles created):")
        w("")
        w("| AppSync | requests | 503s injected | profiles created |")
        w("| --- | ---: | ---: | ---: |")
        for c in doc["signup"]["conditions"]:
            runs = c.get("standinStats", [])
            if isinstance(runs, dict):
                runs = [runs]
            total = lambda f: sum(f(r) for r in runs)  # noqa: E731
            w(f"| {c['name']} | {total(lambda r: r.get('requests', 0))} "
              f"| {total(lambda r: r.get('faultsInjected', {}).get('status:503', 0))} "
              f"| {total(lambda r: r.get('created', 0))} |")
        w("")

    # Cold -------------------------------------------------------------------------------------
    if cold:
        w("## 2. Cold start")
        w("")
        w("![Cold start](benchmarks-cold.png)")
        w("")
        w("Process spawn → first response returned, through the same harness, including SDK / Amplify")
        w("initialisation and the first network call (new connection): PutEvents to moto for the emitter,")
        w("`createUserProfile` to the stand-in (no injected latency) for the baseline.")
        w("")
        w("| Design | n | median | mean | min | max |")
        w("| --- | ---: | ---: | ---: | ---: | ---: |")
        for key, label in (("emitter", "**uc-emitter**"), ("baseline", "Amplify docs' handler")):
            sm = cold.get(f"{key}Summary")
            if sm:
                w(f"| {label} | {sm['n']} | {sm['p50']:.1f} | {sm['mean']:.1f} | {sm['min']:.1f} | {sm['max']:.1f} |")
        w("")
        if cold.get("baselineSummary"):
            w(f"The emitter starts **{cold['baselineSummary']['p50'] / cold['emitterSummary']['p50']:.0f} ×** faster (medians). In Lambda both also pay")
            w("for the sandbox and the code download (a larger package for the Node.js bundle), which this")
            w("harness does not model.")
            w("")
        w("Samples (ms): emitter " + ", ".join(f"{x:.1f}" for x in cold["emitter"]) + ".")
        if cold.get("baseline"):
            w("Baseline " + ", ".join(f"{x:.1f}" for x in cold["baseline"]) + ".")
        w("")

    # Worker -----------------------------------------------------------------------------------
    if levels:
        lat = doc["worker"]["latencyMs"]
        w("## 3. Worker throughput")
        w("")
        w("![Worker throughput vs concurrency](benchmarks-throughput.png)")
        w("")
        w(f"L = {lat} ms at the endpoint. Profiles/s is median <sub>[min–max]</sub> across runs. The endpoint's timer")
        w("rounds sleeps up to whole milliseconds, so it actually served the latency shown; the last column")
        w("compares with the limit at that served latency.")
        w("")
        w("| C | messages/run | profiles/s | C ÷ L | % of C ÷ L | served L (ms) | % of C ÷ served L | peak RSS (MiB) | CPU µs/profile | failures |")
        w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for c, lv in sorted(levels.items()):
            runs = lv["runs"]
            fails = sum(r["failures"] for r in runs)
            w(f"| {c} | {runs[0]['messages']:,} | {spread(lv['profilesPerSecond'], 0)} | {lv['littlesLawLimit']:,.0f} "
              f"| {lv['fractionOfLimit'] * 100:.1f} | {lv['endpointMeanLatencyMs']:.2f} "
              f"| {lv['profilesPerSecond']['median'] / lv['limitAtServedLatency'] * 100:.1f} "
              f"| {fmt(lv['peakRssMib'])} | {fmt(lv.get('cpuUsPerProfile'), 0)} | {fails} |")
        w("")
        w("CPU per profile is the worker process's user + system time over the measured runs, divided by")
        w("the profiles written: parsing, building, signing, HTTP, and one JSON log line per message.")
        w("")
        render_long_poll(doc, w)

    # Micro ------------------------------------------------------------------------------------
    if micro:
        w("## 4. CPU per event (criterion)")
        w("")
        w("| Benchmark | median (µs) | 95 % CI of the median (µs) | mean (µs) |")
        w("| --- | ---: | --- | ---: |")
        for name in sorted(micro):
            r = micro[name]
            lo, hi = r["medianCi95Us"]
            w(f"| `{name}` | {r['medianUs']:.3f} | {lo:.3f}–{hi:.3f} | {r['meanUs']:.3f} |")
        w("")
        w("`emitter/parse+decide+serialize` is the emitter's whole mapping (Lambda's JSON payload in, the")
        w("PutEvents detail out); `worker/parse+build+sign` is everything the worker does to a message before")
        w("the network.")
        w("")

    # Artifacts --------------------------------------------------------------------------------
    if arts:
        w("## 5. Artifact size")
        w("")
        w("| Function | zip (bytes) | zip (MiB) | unzipped (bytes) |")
        w("| --- | ---: | ---: | ---: |")
        for a in arts:
            w(f"| {a['name']} | {a['bytes']:,} | {a['mib']:.2f} | {a['uncompressedBytes']:,} |")
        w("")
        w("From `cargo lambda build --release --arm64 --output-format zip` (the `bootstrap` binary for")
        w("`provided.al2023`). For comparison, the baseline's bundle is the minified `handler.mjs` plus its")
        w("source map.")
        bundle = Path("bench/baseline/dist")
        if (bundle / "handler.mjs").exists():
            size = (bundle / "handler.mjs").stat().st_size
            smap = (bundle / "handler.mjs.map").stat().st_size if (bundle / "handler.mjs.map").exists() else 0
            w(f"Here: {size:,} bytes of JavaScript and {smap:,} bytes of source map (uncompressed).")
        w("")

    # Cost -------------------------------------------------------------------------------------
    if doc.get("signup") and levels:
        rows = cost_rows(doc)
        p = PRICES
        w("## 6. Cost on paper, per million sign-ups")
        w("")
        w("AWS list prices, us-east-1, on-demand, free tiers ignored: Lambda $0.20 per million requests,")
        w(f"${p['lambda_gbs_x86']:.10f} per GB-s (x86_64) and ${p['lambda_gbs_arm']:.10f} per GB-s (arm64);")
        w("EventBridge $1.00 per million custom events; SQS $0.40 per million requests; AppSync $4.00 per")
        w("million operations. Durations are the warm p50s measured above, rounded up to the millisecond as")
        w("Lambda bills. Settings: emitter 128 MB arm64, worker 256 MB arm64 with batches of 10")
        w("(`infra/template.yaml`); baseline 512 MB x86_64 (Amplify `defineFunction` defaults).")
        w("")
        w("Formulas, per sign-up:")
        w("")
        w("- ours = Lambda request + 0.125 GB × t<sub>emitter</sub> × arm64 price + 1 EventBridge event")
        w("  + (1 + 2 ⁄ b) SQS requests (EventBridge's SendMessage; ReceiveMessage and DeleteMessageBatch per batch")
        w("  of b = 10) + (1 ⁄ b) worker request + 0.25 GB × t<sub>batch</sub> ⁄ b × arm64 price + 1 AppSync mutation,")
        w("  with t<sub>batch</sub> ≈ L + b × (the worker's per-message overhead measured at C = 1);")
        w("- baseline = Lambda request + 0.5 GB × t<sub>handler</sub> × x86_64 price + 1 AppSync mutation.")
        w("")
        w("| AppSync L | t<sub>emitter</sub> | t<sub>batch</sub> | t<sub>handler</sub> | ours: Lambda | ours: EventBridge + SQS | baseline: Lambda | AppSync (both) | **ours total** | **baseline total** |")
        w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in rows:
            o, b = r["ours"], r["base"]
            ours_lambda = o["emitter_requests"] + o["emitter_gbs"] + o["worker_requests"] + o["worker_gbs"]
            ours_msg = o["eventbridge"] + o["sqs"]
            base_lambda = b["lambda_requests"] + b["lambda_gbs"]
            w(f"| {r['latency']:,} ms | {r['emitter_ms']} ms | {r['batch_ms']} ms | {r['baseline_ms']:,} ms | ${ours_lambda:.2f} "
              f"| ${ours_msg:.2f} | ${base_lambda:.2f} | ${o['appsync']:.2f} | **${sum(o.values()):.2f}** | **${sum(b.values()):.2f}** |")
        w("")
        w("At low AppSync latency the decoupled design costs more per sign-up (EventBridge and SQS are")
        w("per-message charges the synchronous design does not have); the baseline's cost grows with AppSync")
        w("latency because its 512 MB function waits for it. Either way it is a few dollars per million")
        w("sign-ups. Not included: DynamoDB writes (the same in both), CloudWatch Logs ingestion (section 10), the SQS")
        w("event source mapping's idle long polls (about $0.26 a month for its pollers, independent of")
        w("traffic), and INIT billing of cold starts (sign-ups are sparse, so many invocations are cold:")
        w("each costs its init time at the function's GB-s price — see the cold-start figures).")
        w("")
        first = rows[0]["ours"] if rows else None
        if first:
            per_event = sum(first[k] for k in ("eventbridge", "sqs", "worker_requests", "worker_gbs", "appsync"))
            render_sweep_cost(doc, sweep_cost_rows(doc, per_event), w)

    if doc.get("strict"):
        render_strict(doc, w)
    if doc.get("isolation"):
        render_isolation(doc, w)
        render_reconciliation(doc, w)
    render_managed(doc, w)
    render_logs(doc, w)
    render_sweep(doc, w)

    # Raw runs ---------------------------------------------------------------------------------
    if doc.get("signup"):
        w("## Raw figures per run")
        w("")
        w("<details><summary>Sign-up path, every run (ms)</summary>")
        w("")
        w("| AppSync | Design | run | n | p50 | p90 | p99 | max | mean | failed |")
        w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for c in doc["signup"]["conditions"]:
            for key in ("emitter", "floor", "baseline"):
                d = c.get(key)
                if not d:
                    continue
                for i, r in enumerate(d["runs"], 1):
                    w(f"| {c['name']} | {key} | {i} | {r['n']} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} "
                      f"| {r['max']:.2f} | {r['mean']:.2f} | {r['errors']} |")
        w("")
        w("</details>")
        w("")
    if levels:
        w("<details><summary>Worker throughput, every run</summary>")
        w("")
        w("| C | run | messages | batches | seconds | profiles/s | failures |")
        w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for c, lv in sorted(levels.items()):
            for i, r in enumerate(lv["runs"], 1):
                w(f"| {c} | {i} | {r['messages']:,} | {r['batches']} | {r['seconds']:.3f} | {r['profilesPerSecond']:,.1f} | {r['failures']} |")
        w("")
        w("</details>")
        w("")
    if doc.get("strict"):
        st = doc["strict"]
        w("<details><summary>Strict mode, every run</summary>")
        w("")
        w("| C | case | run | messages | batches | seconds | profiles/s | CPU s | Cognito calls | AppSync requests | Cognito served (ms) | AppSync served (ms) | failures |")
        w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for lv in st["levels"]:
            for case in lv["cases"]:
                for i, r in enumerate(case["runs"], 1):
                    w(f"| {lv['concurrency']} | {case['case']} | {i} | {r['messages']:,} | {r['batches']} | {r['seconds']:.3f} "
                      f"| {r['profilesPerSecond']:,.1f} | {fmt(r.get('cpuSeconds'), 2)} | {r['cognitoCalls']:,} | {r['appsyncRequests']:,} "
                      f"| {fmt(r.get('cognitoServedMs'), 2)} | {fmt(r.get('appsyncServedMs'), 2)} | {r['failures']} |")
        w("")
        w("</details>")
        w("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--docs", type=Path, default=None, help="output directory (default: next to the JSON)")
    args = parser.parse_args()
    doc = json.loads(args.results.read_text())
    docs = args.docs or args.results.parent
    docs.mkdir(parents=True, exist_ok=True)
    if doc.get("signup"):
        plot_signup(doc, docs / "benchmarks-signup.png")
    if doc.get("worker"):
        plot_throughput(doc, docs / "benchmarks-throughput.png")
    if doc.get("coldStart"):
        plot_cold(doc, docs / "benchmarks-cold.png")
    if doc.get("isolation"):
        plot_isolation(doc, docs / "benchmarks-isolation.png")
    (docs / "benchmarks.md").write_text(render(doc, docs) + "\n")
    print(f"wrote {docs / 'benchmarks.md'} and its plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
