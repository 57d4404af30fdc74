//! The scheduled reconciler: each invocation (EventBridge Scheduler, hourly by default) runs or
//! resumes one reconciliation pass until its deadline nears, writes the pass's EMF record and
//! fails the invocation when the pass could not run or could not publish everyone, so the
//! function's error alarm fires. The pass itself is `uc_ops::sweep`'s.
//!
//! An invocation whose payload asks for it — `{"orphans": true}`, or `{"orphans": {"dryRun":
//! true, "maxOrphans": N}}` — runs the orphan sweep instead (`uc_ops::orphans`: the same as
//! `uc-ops reconcile --orphans`), with the reconciler's role: the bus admits `UserDeleted`
//! from the worker's and the reconciler's roles only. With the lifecycle on, a second schedule
//! of the stack sends `{"orphans": true}` weekly (`OrphanSweepSchedule`); an operator may
//! invoke it too. A sweep lists the whole pool and must finish within one invocation: a pool
//! too large for that sweeps from a host (docs/runbook.md, "Orphaned profiles").
//! Its answer is the sweep's report; a real sweep that was refused, or left orphans failed or
//! not attempted, fails the invocation (the alarm), a dry run never does.
// The SDK and lambda_runtime futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use uc_ops::orphans::{OrphanSweep, SweepRequest};
use uc_ops::profile_lookup::ConfiguredLookup;
use uc_ops::publish::Clients;
use uc_ops::reconcile::ReconcileConfig;
use uc_ops::sweep::{PassOptions, Sweep};
use uc_ops::sweep_state::SsmStateStore;
use uc_runtime::env::EnvReader;
use uc_runtime::retry::deadline_before;

/// Time kept back from the invocation's deadline for the answer itself.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

fn main() -> std::process::ExitCode {
    let result = tokio::runtime::Runtime::new()
        .map_err(lambda_runtime::Error::from)
        .and_then(|runtime| runtime.block_on(serve()));
    uc_runtime::process::exit_code(result)
}

/// What an invocation's payload asks of the orphan sweep (`{"orphans": {...}}`).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrphanAsk {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    max_orphans: Option<u64>,
}

/// The orphan sweep the payload asks for, if any: `orphans` absent, `null` or `false` is a
/// pass (a schedule's own payload, `{}` or none at all); `true` a sweep with the defaults.
fn orphan_ask(payload: &Value) -> Result<Option<OrphanAsk>, String> {
    match payload.get("orphans") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(OrphanAsk::default())),
        Some(ask) => serde_json::from_value(ask.clone()).map(Some).map_err(|e| {
            format!("the payload's \"orphans\" is not {{\"dryRun\": bool, \"maxOrphans\": N}}: {e}")
        }),
    }
}

/// One orphan sweep within the invocation; the report is the answer.
async fn sweep_orphans(
    sweep: &OrphanSweep,
    ask: OrphanAsk,
    deadline: Instant,
) -> Result<Value, lambda_runtime::Error> {
    let request = SweepRequest {
        dry_run: ask.dry_run,
        max_orphans: ask.max_orphans,
        deadline: Some(deadline),
        show_refused: 20,
    };
    let report = sweep
        .run(&request, None, |_| {}, |_| {}, |_, _| {})
        .await
        .inspect_err(|e| tracing::error!(error = %e, "the orphan sweep could not run"))?;
    report.metrics().emit();
    let erasures = report.erasures.clone().unwrap_or_default();
    tracing::info!(
        dry_run = report.dry_run,
        users_listed = report.users_listed,
        profiles = report.profiles,
        tombstones = report.tombstones,
        orphans = report.orphans,
        allowed = report.guard.allowed,
        erased = erasures.erased,
        already_gone = erasures.already_gone,
        user_exists = erasures.user_exists,
        failed = erasures.failed,
        not_attempted = erasures.not_attempted,
        seconds = report.seconds,
        "orphan sweep done"
    );
    uc_runtime::logs::flush();
    if !report.dry_run && report.exit_code() != 0 {
        return Err(match (&report.guard.reason, erasures.stopped) {
            (Some(reason), _) => format!("orphan sweep refused, nothing erased: {reason}"),
            (None, stopped) => format!(
                "orphan sweep: {} erasure(s) failed, {} not attempted{}; the failed subs are in the log",
                erasures.failed,
                erasures.not_attempted,
                stopped.map(|s| format!(" (stopped: {s})")).unwrap_or_default()
            ),
        }
        .into());
    }
    Ok(serde_json::to_value(&report)?)
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    uc_runtime::logs::init_json_logs();
    let config = ReconcileConfig::from_env(&EnvReader::process())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = aws_config::load_from_env().await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let clients = &Clients::new(&sdk);
    let lookup = &ConfiguredLookup::build(&config.store, &sdk)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "the profile store cannot be reached"))?;
    let store = &SsmStateStore::new(aws_sdk_ssm::Client::new(&sdk), &config.state_parameter);
    let sweep = &config.sweep(&region);
    // Built by the first invocation that asks for an orphan sweep: a pass needs none of the
    // worker's configuration.
    let orphans = &OnceCell::<OrphanSweep>::new();
    let (sdk, list_rate) = (&sdk, config.list_rate);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deadline_before(event.context.deadline(), DEADLINE_MARGIN);
        if let Some(ask) = orphan_ask(&event.payload)? {
            let orphans = orphans
                .get_or_try_init(|| OrphanSweep::from_env(sdk, list_rate))
                .await
                .inspect_err(|e| tracing::error!(error = %e, "the orphan sweep cannot be built"))?;
            return sweep_orphans(orphans, ask, deadline).await;
        }
        let options = PassOptions {
            deadline: Some(deadline),
            ..Default::default()
        };
        let pass = Sweep {
            clients,
            state: store,
            lookup,
            config: sweep,
        };
        let report = pass
            .run(&options, |_| {})
            .await
            .inspect_err(|e| tracing::error!(error = %e, "the reconciliation pass could not run"))?;
        report.metrics().emit();
        tracing::info!(
            scanned = report.scanned,
            selected = report.selected,
            had_profile = report.had_profile,
            store_reads = report.store_reads,
            published = report.published,
            failed = report.failed,
            complete = report.complete,
            resumed = report.resumed,
            "reconciliation invocation done"
        );
        // Before Lambda may freeze the process (an error line is written at once anyway).
        uc_runtime::logs::flush();
        // Refused entries fail the invocation at once (the alarm), though its place is saved:
        // the pass goes on next time and, ending with failures, keeps the watermark.
        if report.failed > 0 || (report.complete && !report.watermark_advanced) {
            return Err(format!(
                "{} user(s) could not be published in this invocation ({} in the pass so far); the watermark stays and the next pass retries them",
                report.failed, report.pass_failed
            )
            .into());
        }
        Ok::<Value, lambda_runtime::Error>(serde_json::to_value(&report)?)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_payload_naming_the_orphans_asks_for_the_sweep() {
        for pass in [
            json!({}),
            json!(null),
            json!("tick"),
            json!({"orphans": false}),
        ] {
            assert_eq!(orphan_ask(&pass), Ok(None), "{pass}");
        }
        assert_eq!(
            orphan_ask(&json!({"orphans": true})),
            Ok(Some(OrphanAsk::default()))
        );
        assert_eq!(
            orphan_ask(&json!({"orphans": {"dryRun": true, "maxOrphans": 40}})),
            Ok(Some(OrphanAsk {
                dry_run: true,
                max_orphans: Some(40)
            }))
        );
        // A misspelt ask is refused, not taken for a real sweep with the defaults.
        let refused = orphan_ask(&json!({"orphans": {"dryrun": true}})).unwrap_err();
        assert!(refused.contains("dryRun"), "{refused}");
        assert!(orphan_ask(&json!({"orphans": "yes"})).is_err());
    }
}
