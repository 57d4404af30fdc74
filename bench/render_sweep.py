"""Section 11 of the benchmarks page: a sweep at pool scale (the reconciler's pass over a million
users on a paced clock), the pool size -> pass time -> schedule table derived from it, and what
the sweeps cost per million sign-ups before and after they published only users without a
profile (the rows section 6 adds)."""

from __future__ import annotations

import math

from render_common import *  # noqa: F403

# The scheduled function's invocation: 900 s, less the time kept for the answer and the save.
INVOCATION_SECONDS = 885
# docs/benchmarks.md section 6's assumption for the pass's share: a pool with this many sign-ups a
# month (the fixed monthly cost of passes, divided by it).
SIGN_UPS_PER_MONTH = 1_000_000
POOL_FOR_COST = 10_000_000
RECONCILER_MB = 256
HOURS_PER_MONTH = 730
# How often a user who changed is looked at again by the passes: the pass that follows the
# change, and one more for the overlap (1 h) at an hourly schedule.
LOOKS_PER_CHANGE = 2


def per_user_seconds(run: dict) -> float:
    return run["passSeconds"] / run["users"]


# Cognito's default UserList quota (ListUsers' category): no pace above it.
MAX_LIST_RATE = 30


def schedule_for(seconds: float, list_rate: float) -> tuple[int, str]:
    """Invocations a pass needs, and the schedule that lets one pass complete per interval."""
    invocations = max(1, math.ceil(seconds / INVOCATION_SECONDS))
    if invocations == 1:
        return invocations, "`rate(1 hour)` (the default): one invocation per tick"
    if invocations <= 4:
        return invocations, (f"`rate(15 minutes)`: {invocations} invocations back to back, one pass "
                             f"about every {invocations * 15} min; hourly would take {invocations} h")
    faster = " and a higher `LIST_USERS_RPS`" if list_rate < MAX_LIST_RATE else " (no faster pace: the quota)"
    return invocations, (f"`rate(15 minutes)`{faster}: {invocations} invocations back to back "
                         f"(~{invocations * 15 / 60:.0f} h a pass)")


def sweep_cost_rows(doc: dict, per_event: float) -> list[dict]:
    """Per million sign-ups in a pool of POOL_FOR_COST users at the default pace, before (each
    sign-up published again by 1 or 2 passes) and after (looked up by LOOKS_PER_CHANGE passes)."""
    sw = doc.get("sweep")
    if not sw:
        return []
    default = min(sw["runs"], key=lambda r: r["listRate"])
    seconds = per_user_seconds(default) * POOL_FOR_COST
    # Hourly ticks of 15-minute invocations: a pass takes `invocations` hours.
    invocations = max(1, math.ceil(seconds / INVOCATION_SECONDS))
    passes = HOURS_PER_MONTH / invocations
    lambda_usd = passes * seconds * RECONCILER_MB / 1024 * PRICES["lambda_gbs_arm"]  # noqa: F405
    lambda_per_million = lambda_usd / (SIGN_UPS_PER_MONTH / 1e6)
    reads = LOOKS_PER_CHANGE / 60 * PRICES["appsync_operation"] * 1e6  # noqa: F405
    return [
        {"case": "before: every changed user published again, 2 passes", "lambda": lambda_per_million,
         "events": 2 * per_event, "reads": 0.0},
        {"case": "before: every changed user published again, 1 pass", "lambda": lambda_per_million,
         "events": 1 * per_event, "reads": 0.0},
        {"case": "after: only users without a profile", "lambda": lambda_per_million, "events": 0.0,
         "reads": reads},
    ]


def render_sweep_cost(doc: dict, rows: list[dict], w) -> None:
    """The sweeps' rows for section 6 (per event: the 20 ms row's EventBridge, SQS, worker and
    AppSync share)."""
    if not rows:
        return
    w(f"**The sweeps**, per million sign-ups, in a pool of {POOL_FOR_COST:,} users at the default schedule")
    w(f"(hourly, `LIST_USERS_RPS` = 5), assuming {SIGN_UPS_PER_MONTH:,} sign-ups a month for the passes' fixed")
    w("share (a pass lists the whole pool whatever it publishes: section 11). Before, a pass published")
    w("every counted user changed since its watermark less the overlap, so each sign-up went round the")
    w("pipeline once or twice more (measured on the local stack: 40 sign-ups and two passes put 120")
    w("events on the bus); after, a pass looks each changed user up (one AppSync query per 60 users,")
    w(f"{LOOKS_PER_CHANGE} looks per change) and publishes none who has a profile (the same 40 sign-ups and two")
    w("passes: 40 events, `dev/lab/tests/sweep_on_local_stack.rs`).")
    w("")
    w("| sweeps | reconciler Lambda | extra events (EventBridge, SQS, worker, AppSync) | store reads | **total** |")
    w("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        total = r["lambda"] + r["events"] + r["reads"]
        w(f"| {r['case']} | ${r['lambda']:.2f} | ${r['events']:.2f} | ${r['reads']:.2f} | **${total:.2f}** |")
    w("")


def render_sweep(doc: dict, w) -> None:
    sw = doc.get("sweep")
    if not sw:
        return
    st, run = sw["settings"], sw["run"]
    w("## 11. A sweep at pool scale")
    w("")
    w(f"The reconciler's pass (`uc_ops::sweep`, what `uc-reconciler` runs) over a pool of {st['users']:,} confirmed")
    w("users, against an in-process fake of Cognito's `ListUsers` and EventBridge's `PutEvents` (the SDK's")
    w("own clients, signing and parsing included, behind a fake HTTP connector that answers at once) and")
    w(f"a fake profile store where one user in {st['missingOneIn']:,} has no profile. Time is Tokio's paused clock: a")
    w("pass takes exactly what its paces allow (the `ListUsers` calls per second; events at")
    w(f"{st['publishRate']:g}/s), with Cognito answering at once, while CPU time and peak RSS are this process's")
    w(f"own ({run['build']} build; `uc-bench run --only sweep`). Paces: the default `LIST_USERS_RPS` and the")
    w("largest Cognito's default quotas allow: `ListUsers` is in the **UserList** category, 30 requests")
    w("per second per account and Region by default (not adjustable), shared by every `ListUsers` and")
    w("`ListUsersInGroup` caller in the account (the audit, admin tools); check the account's Service Quotas.")
    w("")
    w("| `ListUsers`/s | users | `ListUsers` calls | store reads | events published | had a profile | pass time | 15-min invocations | CPU s | peak RSS |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in sw["runs"]:
        cpu = f"{r['cpuSeconds']:.1f}" if r.get("cpuSeconds") is not None else "–"
        rss = f"{r['peakRssMib']:.0f} MiB" if r.get("peakRssMib") is not None else "–"
        w(f"| {r['listRate']:g} | {r['users']:,} | {r['listUsersCalls']:,} | {r['storeReads']:,} | {r['eventsPublished']:,} "
          f"| {r['hadProfile']:,} | {r['passSeconds'] / 60:,.1f} min | {r['invocations']} | {cpu} | {rss} |")
    w("")
    w("A pass is paced by its listing: one `ListUsers` call and one batched store read per 60 users,")
    w("events only for the users without a profile. Memory does not grow with the pool (a page at a")
    w("time). A pass's first run, or a `--full` one, looks at every user as here; later passes look only")
    w("at users changed since the watermark (less the overlap), so their store reads and events follow")
    w("the sign-ups, while the listing still reads the whole pool.")
    w("")
    w("**Pool size → pass time → schedule to choose** (pass time from the measured seconds per user at")
    w("each pace; the scheduled function runs a pass in invocations of 15 minutes at most, and a pass must")
    w("complete within its schedule's interval for admin-created users to get their profile within it):")
    w("")
    w("| pool | `ListUsers`/s | pass time | invocations | schedule to choose |")
    w("| ---: | ---: | ---: | ---: | --- |")
    for users in (100_000, 250_000, 1_000_000, 10_000_000):
        for r in sorted(sw["runs"], key=lambda r: r["listRate"]):
            seconds = per_user_seconds(r) * users
            invocations, schedule = schedule_for(seconds, r["listRate"])
            shown = (f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.0f} min" if seconds < 7200
                     else f"{seconds / 3600:,.1f} h")
            w(f"| {users:,} | {r['listRate']:g} | {shown} | {invocations} | {schedule} |")
    w("")
    w("The default stays `rate(1 hour)`: at the default pace a pass over up to about 265,000 users fits one")
    w("invocation, so a pass completes every hour. For a larger pool choose `rate(15 minutes)` (invocations")
    w("back to back: one pass per `users ÷ 300` seconds) or raise `ReconcileListUsersRate` (`LIST_USERS_RPS`)")
    w("up to the UserList quota's 30/s, less what the audit and other `ListUsers` callers need; past that (10 million users at 5/s is a")
    w("9-hour pass), the pass cannot fit any interval under an hour: the `reconciler-behind` alarm")
    w("(3 days) holds it to completing at all, and the trigger, not the sweep, is what keeps sign-ups exact.")
    w("")
