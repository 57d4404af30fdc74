//! The scheduled reconciler: each invocation (EventBridge Scheduler, hourly by default) runs or
//! resumes one reconciliation pass until its deadline nears, writes the pass's EMF record and
//! fails the invocation when the pass could not run or could not publish everyone, so the
//! function's error alarm fires. The pass itself is `uc_ops::sweep`'s.
// The SDK and lambda_runtime futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use uc_ops::profile_lookup::ConfiguredLookup;
use uc_ops::publish::Clients;
use uc_ops::reconcile::ReconcileConfig;
use uc_ops::sweep::{PassOptions, Sweep, SweepReport};
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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let options = PassOptions {
            deadline: Some(deadline_before(event.context.deadline(), DEADLINE_MARGIN)),
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
        Ok::<SweepReport, lambda_runtime::Error>(report)
    }))
    .await
}
