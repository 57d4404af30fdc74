"""Closer to the limits (issue 16): the worker in long-poll mode up to C = 256, CPU per profile,
Lambda Managed Instances, reconciliation throughput, and their rows in the targets table."""

from __future__ import annotations

from render_common import *  # noqa: F403


def _long_poll(doc: dict) -> dict:
    return {lv["concurrency"]: lv for lv in doc.get("worker", {}).get("longPoll", {}).get("levels", [])}


def _lambda_levels(doc: dict) -> dict:
    return {lv["concurrency"]: lv for lv in doc.get("worker", {}).get("levels", [])}


def _reconciliation(doc: dict) -> list[dict]:
    return doc.get("isolation", {}).get("report", {}).get("reconciliation", [])


def emitter_split(condition: dict) -> str:
    """The emitter target's measured reason: where its p50 beyond the bare call went, by the
    emitter's own EMF timings (handler, PutEvents within it) and the harness's clock. Medians
    of per-run p50s, so the parts add up only roughly."""
    inside = condition.get("insideEmitter")
    if not inside:
        return ""
    floor = condition["floor"]["summary"]["p50"]["median"]
    over = condition["emitter"]["summary"]["p50"]["median"] - floor
    handler, publish, hop = (inside[k]["median"] for k in ("handlerP50", "publishP50", "hopP50"))
    return (f". At p50 it answers {over:.2f} ms after the bare call: {hop:.2f} ms outside the handler's own timing "
            f"(the Runtime API's two HTTP exchanges with the harness, the runtime, the log flush), {handler - publish:.2f} ms "
            f"in the handler besides PutEvents, and its PutEvents {publish - floor:+.2f} ms against the bare call's "
            f"{floor:.2f} ms (medians of per-run p50s)")


def target_rows(doc: dict, w) -> None:
    """The targets table's rows for issue 16's figures."""
    lat = doc.get("worker", {}).get("latencyMs")
    lp = _long_poll(doc)
    lam = _lambda_levels(doc)
    if 256 in lp:
        lv = lp[256]
        w(f"| worker ≥ 90 % of C ÷ L at C = 256, L = {lat} ms, long-poll mode | "
          f"{lv['profilesPerSecond']['median']:,.0f}/s of {lv['littlesLawLimit']:,.0f}/s = {lv['fractionOfLimit'] * 100:.1f} %{cores_used(lv, doc.get('machine', {}).get('cores', 0))} "
          f"([section 3](#3-worker-throughput)) | {ok(lv['fractionOfLimit'] >= TARGETS['worker_fraction_at_256'])} |")
        w(f"| worker peak RSS ≤ 64 MiB at C = 256, long-poll mode | {lv['peakRssMib']:.1f} MiB "
          f"| {ok(lv['peakRssMib'] <= TARGETS['worker_rss_mib_at_256'])} |")
    cpu = [(mode, levels[64]["cpuUsPerProfile"]) for mode, levels in (("Lambda mode", lam), ("long-poll mode", lp))
           if 64 in levels and levels[64].get("cpuUsPerProfile") is not None]
    if cpu:
        worst = max(v for _, v in cpu)
        text = ", ".join(f"{mode} {v:.0f} µs" for mode, v in cpu)
        why = ("" if worst <= TARGETS['worker_cpu_us'] else
               "; where it goes, by `perf`: the kernel's loopback TCP, `epoll` and thread hand-offs (~40 %), the HTTP "
               "client, `malloc`, and in long-poll mode the SDK's SQS calls ([profiling.md](profiling.md))")
        w(f"| worker CPU per profile ≤ {TARGETS['worker_cpu_us']:.0f} µs at C = 64 (user + system, everything included) "
          f"| {text}{why} | {ok(worst <= TARGETS['worker_cpu_us'])} |")
    runs = _reconciliation(doc)
    default = next((r for r in runs if r.get("rateArg") is None), None)
    if default:
        others = "; ".join(f"at {r['pace']:g}/s: {r['fractionOfPace'] * 100:.1f} %" for r in runs if r is not default)
        goal = TARGETS['reconcile_fraction_of_pace']
        verdicts = [f"{ok(r['fractionOfPace'] >= goal)}" + ("" if len(runs) == 1 else
                    (" at the default" if r is default else f" at {r['pace']:g}/s")) for r in runs]
        w(f"| reconciliation throughput ≥ 90 % of its pace | {default['publishedPerSecond']:.1f}/s at the default "
          f"{default['pace']:g}/s = {default['fractionOfPace'] * 100:.1f} %{'; ' + others if others else ''} "
          f"([section 8](#reconciliation-throughput)) "
          f"| {'; '.join(verdicts)} |")
    managed = doc.get("managedInstances", {}).get("levels", [])
    if managed:
        top = max(lv["maxConcurrency"] for lv in managed)
        parts = [f"{lv['function']} {lv['unitsPerSecond']:,.0f}/s ({lv['fractionOfLimit'] * 100:.0f} % of its limit)"
                 for lv in managed if lv["maxConcurrency"] == top]
        w(f"| Lambda Managed Instances: several invocations per process | at `AWS_LAMBDA_MAX_CONCURRENCY` = {top}: "
          f"{'; '.join(parts)} ([section 9](#9-lambda-managed-instances-several-invocations-per-process)) | measured |")


def cores_used(level: dict, machine_cores: int) -> str:
    """The C = 256 target's measured reason when it is missed: the worker's own CPU at that rate."""
    cpu = level.get("cpuUsPerProfile")
    if cpu is None or level["fractionOfLimit"] >= TARGETS["worker_fraction_at_256"]:
        return ""
    cores = cpu * level["profilesPerSecond"]["median"] / 1e6
    busy = level.get("machineBusyFraction")
    machine = f"; the machine's CPU was {busy * 100:.0f} % busy (/proc/stat, steal included)" if busy is not None else ""
    return (f"; short of CPU: the worker alone used {cores:.2f} cores ({cpu:.0f} µs per profile) of the machine's "
            f"{machine_cores}, beside the fake queue, the GraphQL endpoint and the harness{machine}")


def busy_text(level: dict) -> str:
    busy = level.get("machineBusyFraction")
    return "—" if busy is None else f"{busy * 100:.0f} %"


def render_long_poll(doc: dict, w) -> None:
    """Section 3's second table: `uc-worker poll` against the fake queue."""
    lpd = doc.get("worker", {}).get("longPoll")
    if not lpd:
        return
    lat = doc["worker"]["latencyMs"]
    w("### Long-poll mode (`uc-worker poll`)")
    w("")
    w("The container consumer: the real binary long-polls a fake SQS queue in the harness")
    w("([`bench/src/fake_sqs.rs`](../bench/src/fake_sqs.rs): AWS JSON 1.0 on loopback, keep-alive, every call answered after "
      f"**{lpd['sqsRoundTripMs']} ms, an assumption** for an in-region SQS call) and writes to the same endpoint "
      f"(L = {lat} ms). A run puts all its messages on the queue at once and ends when the last is deleted; CPU is counted "
      "over the runs only. The worker receives 10 at a time with `ceil(C ÷ 10)` receive loops, takes a slot per "
      "message (C slots), and hands each batch to its own task, so a loop receives again while its batch is processed.")
    w("")
    w("| C | messages/run | profiles/s | C ÷ L | % of C ÷ L | served L (ms) | % of C ÷ served L | peak RSS (MiB) | CPU µs/profile | machine busy | receives (empty) | deletes | failures |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c, lv in sorted(_long_poll(doc).items()):
        runs = lv["runs"]
        fails = sum(r["failures"] for r in runs)
        w(f"| C = {c} | {runs[0]['messages']:,} | {spread(lv['profilesPerSecond'], 0)} | {lv['littlesLawLimit']:,.0f} "
          f"| {lv['fractionOfLimit'] * 100:.1f} | {lv['endpointMeanLatencyMs']:.2f} "
          f"| {lv['profilesPerSecond']['median'] / lv['limitAtServedLatency'] * 100:.1f} "
          f"| {fmt(lv['peakRssMib'])} | {fmt(lv.get('cpuUsPerProfile'), 0)} | {busy_text(lv)} | {lv['receives']:,} ({lv['emptyReceives']:,}) "
          f"| {lv['deleteBatches']:,} | {fails} |")
    w("")
    w("Machine busy: the machine's busy CPU over the measured runs (/proc/stat: every process, and steal), as a share of all its cores.")
    w("An empty receive is answered at once here (no 20 s long-poll wait): that happens only at a run's tail,")
    w("when the queue is drained and the last messages are still in flight, and its CPU is included.")
    w("")


def render_managed(doc: dict, w) -> None:
    md = doc.get("managedInstances")
    if not md:
        return
    st = md["settings"]
    w("## 9. Lambda Managed Instances: several invocations per process")
    w("")
    w("Both functions serve invocations through `lambda_runtime::run_concurrent`: with `AWS_LAMBDA_MAX_CONCURRENCY`")
    w("= K (set by Lambda Managed Instances) one process takes K invocations at once, on a multi-thread runtime;")
    w("unset or 1, it is classic Lambda, one at a time on a current-thread runtime (the emitter).")
    w(f"Here each level starts the real binary under the Runtime API harness with K set and keeps K invocations in")
    w(f"flight (closed loop). The emitter publishes to a fake PutEvents answering after **{st['putEventsLatencyMs']} ms**")
    w(f"(an assumption); the worker gets SQS batches of {st['workerBatch']} (the template's batch size, `CONCURRENCY` = "
      f"{st['workerBatch']}) and writes to the fixed-latency endpoint (L = {st['graphqlLatencyMs']} ms). The limit is")
    w("K ÷ latency invocations per second (× the batch for the worker's profiles).")
    w("")
    w("| function | K | invocations | per second | limit | % of limit | CPU µs each | peak RSS (MiB) | failed |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for lv in md["levels"]:
        unit = "profiles" if lv["unitsPerInvocation"] > 1 else "events"
        w(f"| {lv['function']} | {lv['maxConcurrency']} | {lv['invocations']:,} | {lv['unitsPerSecond']:,.0f} {unit} "
          f"| {lv['limitPerSecond']:,.0f} | {lv['fractionOfLimit'] * 100:.1f} | {fmt(lv.get('cpuUsPerUnit'), 0)} "
          f"| {fmt(lv.get('peakRssMib'))} | {lv['failedInvocations']} |")
    w("")
    w("CPU each is per event published (emitter) or per profile (worker), the Runtime API exchanges included.")
    w("")


def render_reconciliation(doc: dict, w) -> None:
    runs = _reconciliation(doc)
    if not runs:
        return
    w("### Reconciliation throughput")
    w("")
    w("After the phases, on the same stack and users, the real `uc-ops reconcile --full --all --max-pages N` (the scheduled")
    w("function's pass, as the CLI; `--all` since a pass publishes only users without a profile and these all have one;")
    w("`RECONCILE_STATUSES` set to the back-filled users' status) at its default pace and")
    w("at a higher one. Published per second is over the whole process: start-up, its state in SSM, every `ListUsers`")
    w("page (paced at `LIST_USERS_RPS`, default 5/s) and every PutEvents batch. A pass stopped by `--max-pages` saves")
    w("its place and exits 1 (\"run again to resume\"), as documented.")
    w("")
    w("| pace | pages | published | failed | seconds | published/s | % of pace | exit |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in runs:
        pace = f"default ({r['pace']:g}/s)" if r.get("rateArg") is None else f"`--rate {r['rateArg']}`"
        w(f"| {pace} | {r['pages']} | {r['published']:,} | {r['failed']} | {r['seconds']:.1f} | {r['publishedPerSecond']:.1f} "
          f"| {r['fractionOfPace'] * 100:.1f} | {r['exitCode']} |")
    w("")
    for r in runs:
        if r["fractionOfPace"] < TARGETS["reconcile_fraction_of_pace"] and r["pages"]:
            per_page = r["seconds"] / r["pages"]
            w(f"At {r['pace']:g}/s the pass kept {r['fractionOfPace'] * 100:.0f} % of its pace: a page took {per_page:.2f} s where "
              f"publishing it at that pace needs {60 / r['pace']:.2f} s. A pass reads the next page while it publishes this one, "
              "so the rest is the emulator's: `ListUsers` and PutEvents are served by the same moto process, which lists the "
              "whole 20,000-user pool again for every page. How the time splits between the two calls was not measured. "
              "At the default pace a page's publishing outlasts its listing.")
            w("")
