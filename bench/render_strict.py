"""Section 7 of the benchmarks page: strict mode's cost (VERIFY_USER=cognito)."""

from __future__ import annotations

from render_common import *  # noqa: F403

STRICT_CASES = {
    "off": ("(a) off", "strict mode off: `VERIFY_USER` unset, the throughput runs' settings"),
    "cold": ("(b) on, cold cache", "every message a new user (the real sign-up case): one `AdminGetUser` each, "
                                  "`VERIFY_USER_RPS` at the worker's maximum so the pacing does not bind"),
    "duplicates": ("(d) on, duplicates", "the same users as (b) again, right after, in the same process: every answer "
                                         "cached (`VERIFY_USER_CACHE_SECONDS`), no call. The GraphQL endpoint answers "
                                         "them as new profiles (real AppSync would refuse a duplicate, and the worker "
                                         "count it as already existing): what this case shows is the check's part"),
    "paced": ("(c) on, default pacing", "new users, `VERIFY_USER_RPS` unset: the default pacing in force"),
}


def render_strict(doc: dict, w) -> None:
    st = doc["strict"]
    cfg = st["settings"]
    run = st.get("run", {})
    levels = st["levels"]
    la, lc = cfg["appsyncLatencyMs"], cfg["cognitoLatencyMs"]
    w("## 7. Strict mode (`VERIFY_USER=cognito`)")
    w("")
    w("With strict mode on, the worker looks each user up with Cognito's `AdminGetUser` before it creates")
    w("the profile ([`worker/src/user_check.rs`](../worker/src/user_check.rs)): the call is paced per process")
    w(f"(`VERIFY_USER_RPS`, default {cfg['defaultRps']}/s) and positive answers are cached")
    w(f"(`VERIFY_USER_CACHE_SECONDS`, default {cfg['cacheSeconds']} s). This measures what that costs per message.")
    w("")
    git = run.get("git", {})
    dirty = " (with uncommitted changes)" if git.get("dirty") else ""
    merged_alone = any("strict" in m.get("sections", []) for m in doc.get("merges", []))
    w(f"Measured {run.get('generatedAt')}, commit `{git.get('commit')}`{dirty}, {run.get('durationSeconds', 0)} s"
      f" (scale: {run.get('scale')}){', on its own (`uc-bench run --only strict --merge`)' if merged_alone else ''}.")
    loads = [f"C = {lv['concurrency']}: {lv['loadBefore'][0]:.2f} → {lv['loadAfter'][0]:.2f}" for lv in levels]
    w(f"Load average (1 min) before → after each concurrency: {'; '.join(loads)}"
      f" ({doc['machine']['cores']} cores).")
    peak = max([lv["loadBefore"][0] for lv in levels] + [lv["loadAfter"][0] for lv in levels] + [0.0])
    if peak > 1.5:
        w(f"**Disturbed** (load up to {peak:.2f}): other work competed with these runs; read the figures as pessimistic.")
    w("")
    build = "release" if "release" in str(run.get("worker", "release")) else "debug build"
    w(f"**How.** The real `uc-worker` ({build}) under the Runtime API harness, as in the throughput runs,")
    w(f"against the same fixed-latency GraphQL endpoint (L = {la} ms) and a fixed-latency fake Cognito in the")
    w("harness ([`bench/src/fake_cognito.rs`](../bench/src/fake_cognito.rs): loopback, HTTP/1.1 keep-alive,")
    w("`TCP_NODELAY`). It answers the AWS JSON call `AWSCognitoIdentityProviderService.AdminGetUser` with a")
    w("confirmed, enabled user whose `sub` is the requested username (the bench's events have username = sub),")
    w(f"after **{lc} ms: an assumption** (AdminGetUser's p50 in AWS is typically tens of ms; nothing here measured")
    w("AWS). The worker finds it through `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER` and signs with dummy")
    w("credentials (the fake counts requests not signed for `cognito-idp`; it verifies no signature). Per C, three")
    w(f"worker processes (off; on with `VERIFY_USER_RPS={cfg['unboundRps']:,}`, the most the worker accepts; on with it unset) each take a")
    w(f"warm-up batch, then {cfg['runs']} rounds in which each case runs once in turn, so drift in the machine's load")
    w(f"spreads over every case. Runs (c) hold {cfg['pacedSeconds']:g} s of messages at the default rate, at least 2 C;"
      " the others as many as the throughput runs.")
    w("")
    w("| case | what it is |")
    w("| --- | --- |")
    for key in ("off", "cold", "paced", "duplicates"):
        label, what = STRICT_CASES[key]
        w(f"| {label} | {what} |")
    w("")
    w(f"Profiles/s is median <sub>[min–max]</sub> across runs. C ÷ L is the throughput runs' limit (L = {la} ms);")
    w(f"a lookup per message makes the limit C ÷ ({la} + {lc}) ms, and at most the pacing rate (\"own limit\").")
    w("Time per message is Little's law, C ÷ profiles/s: the mean time a message spends in the worker while C")
    w("are in flight; \"added\" is against (a) at the same C.")
    w("")
    w("| C | case | messages/run | profiles/s | % of C ÷ L | own limit (/s) | % of own limit | ms per message | added ms | CPU µs/profile | added CPU µs | Cognito calls / messages | failures |")
    w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for lv in levels:
        cases = {c["case"]: c for c in lv["cases"]}
        off = cases.get("off")
        for key in ("off", "cold", "paced", "duplicates"):
            c = cases.get(key)
            if not c:
                continue
            added_ms = c["msPerMessage"] - off["msPerMessage"] if off and key != "off" else None
            added_cpu = (c["cpuUsPerProfile"] - off["cpuUsPerProfile"]
                         if off and key != "off" and c.get("cpuUsPerProfile") is not None
                         and off.get("cpuUsPerProfile") is not None else None)
            mark = " ¹" if key == "paced" else ""
            w(f"| {lv['concurrency']} | {STRICT_CASES[key][0]} | {c['runs'][0]['messages']:,} | {spread(c['profilesPerSecond'], 0)} "
              f"| {c['fractionOfLimit'] * 100:.1f} | {c['caseLimit']:,.0f} | {c['fractionOfCaseLimit'] * 100:.1f} "
              f"| {fmt(c['msPerMessage'], 1)}{mark} | {'—' if added_ms is None else f'{added_ms:+,.1f}'}{mark if added_ms is not None else ''} "
              f"| {fmt(c.get('cpuUsPerProfile'), 0)} | {'—' if added_cpu is None else f'{added_cpu:+.0f}'} "
              f"| {c['cognitoCalls']:,} / {c['messages']:,} | {c['failures']} |")
    w("")
    w("¹ Not a cost of the check but queueing: with C messages waiting on a pacer that releases one every")
    w(f"1 ÷ {cfg['defaultRps']} s, each waits about C ÷ {cfg['defaultRps']} s (the runs are a few batches long, so the figure is approximate).")
    w(f"Its CPU per profile is not the check's either: at {cfg['defaultRps']} messages/s nothing is amortised over other messages")
    w("(each wakes the process on its own), as in the C = 1 row of the throughput table.")
    w("")
    w("Compare within this table: (a) repeats the throughput runs' settings, but on another day and under other load,")
    w("and its CPU per profile moves with the load of the shared cores more than its throughput does.")
    w("")
    cg = st["cognito"]
    w(f"What the fake Cognito saw over the whole section (warm-ups included): {cg['adminGetUserCalls']:,} `AdminGetUser` calls"
      f" for {cg['distinctUsers']:,} distinct users; {cg['usersLookedUpMoreThanOnce']} user(s) looked up more than once"
      f" (most lookups of one user: {cg['mostLookupsOfOneUser']}); {cg['otherRequests']} other request(s);"
      f" {cg['unsignedRequests']} not signed for `cognito-idp`; {cg['connectionsOpened']} connection(s) opened.")
    all_cases = [case for lv in levels for case in lv["cases"]]
    one_each = all(case["appsyncRequests"] == case["messages"] for case in all_cases)
    w("The GraphQL endpoint counted " + ("one request per message in every case." if one_each else
      "other than one request per message in some case: see the raw runs below."))
    w("")

    # Conclusion ---------------------------------------------------------------------------
    def pick(c: int, key: str) -> dict | None:
        for lv in levels:
            if lv["concurrency"] == c:
                for case in lv["cases"]:
                    if case["case"] == key:
                        return case
        return None

    w("**Conclusion.**")
    w("")
    costs = []
    for lv in levels:
        off, cold = pick(lv["concurrency"], "off"), pick(lv["concurrency"], "cold")
        if off and cold and off.get("cpuUsPerProfile") is not None and cold.get("cpuUsPerProfile") is not None:
            costs.append((cold["cpuUsPerProfile"] - off["cpuUsPerProfile"], cold["msPerMessage"] - off["msPerMessage"],
                          cold["msPerMessage"] - off["msPerMessage"] - (cold.get("cognitoServedMs") or 0.0)))
    dups = []
    for lv in levels:
        off, dup = pick(lv["concurrency"], "off"), pick(lv["concurrency"], "duplicates")
        if off and dup and off.get("cpuUsPerProfile") is not None and dup.get("cpuUsPerProfile") is not None:
            dups.append((dup["cpuUsPerProfile"] - off["cpuUsPerProfile"], dup["msPerMessage"] - off["msPerMessage"]))
    if costs:
        cpu = [c[0] for c in costs]
        ms = [c[1] for c in costs]
        own = [c[2] for c in costs]
        w(f"Per new user, strict mode costs **{min(cpu):.0f}–{max(cpu):.0f} µs of worker CPU** and **{min(ms):.1f}–{max(ms):.1f} ms of"
          f" latency per message**: one AdminGetUser round trip ({lc} ms assumed here) plus {min(own):.1f}–{max(own):.1f} ms on the worker's side"
          f" (C = {', '.join(str(lv['concurrency']) for lv in levels)}).")
        if dups:
            spans = []
            for lv in levels:
                off = pick(lv["concurrency"], "off")
                per_run = [r["cpuSeconds"] / r["messages"] * 1e6 for r in (off or {}).get("runs", [])
                           if r.get("cpuSeconds") is not None]
                if per_run:
                    spans.append(max(per_run) - min(per_run))
            span = f" (the per-run CPU of (a) itself spans up to {max(spans):.0f} µs)" if spans else ""
            w(f"A cached user (a duplicate) makes no call and costs {min(d[0] for d in dups):+.0f} to {max(d[0] for d in dups):+.0f} µs"
              f"{span} and {min(d[1] for d in dups):+.1f} to {max(d[1] for d in dups):+.1f} ms against strict mode off.")
        w(f"The default pacing caps a process at {cfg['defaultRps']} new users per second.")
        w("")
    for lv in levels:
        c = lv["concurrency"]
        off, cold, dup, paced = (pick(c, k) for k in ("off", "cold", "duplicates", "paced"))
        if not (off and cold):
            continue
        added_ms = cold["msPerMessage"] - off["msPerMessage"]
        added_cpu = None
        if cold.get("cpuUsPerProfile") is not None and off.get("cpuUsPerProfile") is not None:
            added_cpu = cold["cpuUsPerProfile"] - off["cpuUsPerProfile"]
        served = cold.get("cognitoServedMs")
        extra = (f" (the fake served {served:.2f} ms; the rest, {added_ms - served:+.2f} ms, is the worker's side of the call:"
                 " SDK, signing, HTTP, pacing at 10,000/s, and contention)") if served else ""
        text = (f"- C = {c}: a new user costs **{'—' if added_cpu is None else f'{added_cpu:+.0f}'} µs of worker CPU** "
                f"({fmt(off.get('cpuUsPerProfile'), 0)} → {fmt(cold.get('cpuUsPerProfile'), 0)} µs per profile) and **{added_ms:+.1f} ms per message**{extra}; "
                f"throughput {off['profilesPerSecond']['median']:,.0f}/s → {cold['profilesPerSecond']['median']:,.0f}/s "
                f"({cold['fractionOfCaseLimit'] * 100:.1f} % of C ÷ ({la} + {lc}) ms).")
        if dup and dup.get("cpuUsPerProfile") is not None and off.get("cpuUsPerProfile") is not None:
            text += (f" A duplicate (cache hit) costs {dup['cpuUsPerProfile'] - off['cpuUsPerProfile']:+.0f} µs and "
                     f"{dup['msPerMessage'] - off['msPerMessage']:+.1f} ms, with {dup['cognitoCalls']} calls.")
        if paced:
            text += (f" At the default pacing the process makes {paced['profilesPerSecond']['median']:,.1f} profiles/s"
                     f" whatever C is ({paced['fractionOfCaseLimit'] * 100:.1f} % of {paced['effectiveRps']}/s).")
        w(text)
    w("")
    w("The check runs before the write and inside the message's concurrency slot (the worker bounds whole messages")
    w("by `CONCURRENCY`), so at a fixed C the throughput falls towards C ÷ (L<sub>AppSync</sub> + L<sub>Cognito</sub>);")
    w("to keep the rate, raise `CONCURRENCY`. A cached user (a duplicate within the cache's lifetime) makes no call.")
    w("")
    per_process = cfg["defaultRps"]
    share = COGNITO_USER_READ_RPS // 2
    w(f"**The pacing is the operational limit.** `VERIFY_USER_RPS` (default {per_process}/s) is per process, and in Lambda")
    w(f"every concurrent worker invocation is a process: strict mode confirms at most `VERIFY_USER_RPS` new users per")
    w("second per process, whatever `CONCURRENCY` is, and the queue holds the rest (its oldest message's age grows).")
    w(f"Cognito's `AdminGetUser` counts against the **UserRead** category quota: {COGNITO_USER_READ_RPS} requests per second by")
    w("default, per account and Region, shared by every user pool there and by every other UserRead caller (your apps'")
    w("`GetUser`, for instance); adjustable in Service Quotas. Set")
    w("")
    w("`VERIFY_USER_RPS` ≤ (the share of the UserRead quota you give the worker) ÷ (worker processes at most, i.e. the")
    w("event source's `WorkerMaximumConcurrency`).")
    w("")
    fleet = WORKER_MAX_CONCURRENCY * per_process
    if fleet > COGNITO_USER_READ_RPS:
        w(f"With the template's defaults ({WORKER_MAX_CONCURRENCY} processes × {per_process}/s = {fleet}/s) the worker alone can already")
        w(f"ask for more than the default quota of {COGNITO_USER_READ_RPS}/s; leaving half of it to the apps, {share}/s ÷ {WORKER_MAX_CONCURRENCY} = **{share // WORKER_MAX_CONCURRENCY}/s per")
        w("process**.")
    else:
        w(f"With the template's defaults ({WORKER_MAX_CONCURRENCY} processes × {per_process}/s = **{fleet}/s**) the worker asks for at most")
        w(f"{fleet / COGNITO_USER_READ_RPS * 100:.0f} % of the default quota of {COGNITO_USER_READ_RPS}/s, leaving the rest to the apps' own calls.")
    w("A high-volume pool whose sign-up peaks exceed that share should first raise its UserRead quota,")
    w("then set `VERIFY_USER_RPS` to its new share ÷ `WorkerMaximumConcurrency`. A throttled lookup is retried (the")
    w("SDK's and the worker's attempts, then SQS redelivery), so a setting above the quota first costs retries and")
    w("latency; sustained throttling moves messages to the DLQ once they reach the queue's maxReceiveCount.")
    w("")
