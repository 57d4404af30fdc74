"""Section 10 of the benchmarks page: log volume per sign-up and per profile, and what it costs
at CloudWatch Logs' ingestion price."""

from __future__ import annotations

from render_common import *  # noqa: F403

ROWS = (
    ("emitter", "emitter (function), per sign-up"),
    ("workerLambda", "worker (function, batches of 10), per profile"),
    ("workerPoll", "worker (`uc-worker poll`), per profile"),
)


def render_logs(doc: dict, w) -> None:
    lg = doc.get("logs")
    if not lg:
        return
    st = lg["settings"]
    w("## 10. Log volume per sign-up and per profile")
    w("")
    w("What each function writes to stdout, which Lambda ships to CloudWatch Logs (billed per GB")
    w(f"ingested: ${lg['ingestionUsdPerGb']:.2f} per GB, standard class, us-east-1; GB = 10<sup>9</sup> bytes here), with")
    w("`RUST_LOG` unset as deployed: one JSON INFO line and one EMF record per sign-up, per profile")
    w("and per batch. The emitter ran "
      f"{st['emitterInvocations']:,} invocations against moto's PutEvents; the worker "
      f"{st['workerMessages']:,} messages at C = {st['concurrency']} against the {st['latencyMs']} ms GraphQL endpoint.")
    if lg.get("buildNote"):
        w(f"Measured with a {lg['buildNote']}.")
    w("")
    w("| Function | bytes per unit | of which log lines | of which EMF | lines by level | other crates below INFO | CPU per unit |")
    w("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for key, name in ROWS:
        v = lg[key]
        levels = ", ".join(f"{k} {n:,}" for k, n in sorted(v["linesByLevel"].items()))
        cpu = f"{v['cpuUsPerUnit']:.0f} µs" if v.get("cpuUsPerUnit") is not None else "–"
        w(f"| {name} | {v['bytesPerUnit']:,.0f} | {v['logBytesPerUnit']:,.0f} | {v['emfBytesPerUnit']:,.0f} "
          f"| {levels} | {v['thirdPartyDebugLines']:,} | {cpu} |")
    w("")
    per = lg["emitter"]["bytesPerUnit"] + lg["workerLambda"]["bytesPerUnit"]
    w(f"Per sign-up, emitter and worker function together: {per:,.0f} bytes, "
      f"**${lg['ingestionUsdPerMillionSignUps']:.2f} per million sign-ups** of log ingestion "
      "(Lambda's own START/END/REPORT lines per invocation come on top; not measured here).")
    w("Before issue 25 the SDK, HTTP and Lambda runtime crates logged at DEBUG by default; the")
    w("before/after figures, measured back to back, are in [profiling.md](profiling.md#log-volume-before-and-after).")
    w("")
