//! `uc-ops reconcile`: one reconciliation pass from the operator's shell, with the same
//! configuration variables, state and sweep as the scheduled function (`uc-reconciler`).

use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use clap::Args;
use uc_ops::profile_lookup::ProfileLookup;
use uc_ops::publish::Clients;
use uc_ops::reconcile::ReconcileConfig;
use uc_ops::sweep::{PassOptions, Sweep, SweepReport};
use uc_ops::sweep_state::SsmStateStore;
use uc_runtime::env::EnvReader;

use super::sweep::{Place, lookup};
use super::{Ui, positive_rate, terminal_safe_lines};

/// Configuration comes from the variables the scheduled function reads (USER_POOL_ID,
/// EVENT_BUS_NAME, EVENT_SOURCE, RECONCILE_WATERMARK_PARAMETER, RECONCILE_OVERLAP_SECONDS,
/// RECONCILE_GRACE_SECONDS, RECONCILE_PUBLISH_RATE, LIST_USERS_RPS, RECONCILE_STATUSES, and the
/// worker's PROFILE_STORE, PROFILE_TABLE, APPSYNC_GRAPHQL_URL / APPSYNC_API_ID: where a pass
/// checks for profiles), e.g. from --env-file. Only users without a profile are published.
///
/// With --orphans, the other direction: the orphan sweep erases the profiles whose user is in
/// none of the pools (any status), through the worker's lifecycle (its variables: USER_POOL_ID,
/// the store's, EVENT_BUS_NAME and EVENT_SOURCE for UserDeleted, RECONCILE_STATUSES,
/// USER_LOOKUP_RPS for the re-check, PROFILE_CREATED_EVENTS=true for ProfileDeleted), the
/// listing at LIST_USERS_RPS; no watermark or state.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 the pass ended and moved the watermark (a dry run: counted to the end); 1 it stopped early (--max-pages, --max-seconds: run again to resume) or some users could not be published (the watermark stays; the next pass retries them); 2 it could not run (the store could not say which users have a profile, Cognito or the state failed).\n\nThe orphan sweep's guard (--orphans): nothing is erased when no user of a counted status was listed while the store holds profiles, when fewer users were listed than half the profiles, when more than half of the profiles are orphans, or when the orphans exceed the limit (default max(10, 1% of the live profiles); --max-orphans sets it). Each orphan is checked in Cognito once more (ListUsers on its sub) before its profile goes; a user who exists keeps it. Exit status with --orphans: 0 every orphan handled (erased, already gone, or its user exists after all), or a dry run the guard allows; 1 some erasures failed or were not attempted, or some orphans' ids are not subs (left for a person); 2 the guard refused (nothing erased) or the sweep could not run."
)]
pub struct ReconcileArgs {
    /// Count what a real pass would publish (the store is asked); publish nothing and leave
    /// the state as it is. With --orphans: list the orphans and the guard's verdict, erase
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// The orphan sweep instead of a pass: erase the profiles whose user is gone (the audit's
    /// orphans), each checked in Cognito again first, publishing UserDeleted (detectedBy
    /// sweep); refused (exit 2, nothing erased) when it looks like a mass deletion.
    #[arg(long, conflicts_with_all = ["full", "all", "max_pages", "max_seconds", "rate"])]
    pub orphans: bool,
    /// With --orphans: erase at most this many; more and the sweep refuses [default: max(10,
    /// 1% of the live profiles)]. The rules on the listing still apply.
    #[arg(long, value_name = "N", requires = "orphans")]
    max_orphans: Option<u64>,
    /// Ignore the watermark: look at every user of a counted status once more (still only
    /// those without a profile are published).
    #[arg(long)]
    full: bool,
    /// Stop after this many ListUsers pages, saving the place (the next run resumes).
    #[arg(long, value_name = "PAGES")]
    max_pages: Option<u64>,
    /// Stop before this many seconds have passed, saving the place.
    #[arg(long, value_name = "SECONDS")]
    max_seconds: Option<u64>,
    /// Events per second, at most (overrides RECONCILE_PUBLISH_RATE) [default: 50].
    #[arg(long, value_name = "PER_SECOND", value_parser = positive_rate, allow_negative_numbers = true)]
    rate: Option<f64>,
    /// Publish every selected user, with a profile or not (a forced republish: every
    /// consumer of UserConfirmed receives them again).
    #[arg(long)]
    all: bool,
    #[arg(long)]
    pub json: bool,
}

impl ReconcileArgs {
    /// What the orphan sweep (`--orphans`) was asked.
    pub fn orphan_options(&self) -> super::orphans::OrphanOptions {
        super::orphans::OrphanOptions {
            dry_run: self.dry_run,
            max_orphans: self.max_orphans,
            json: self.json,
        }
    }
}

pub async fn run(args: &ReconcileArgs, sdk: &SdkConfig) -> anyhow::Result<SweepReport> {
    let mut config =
        ReconcileConfig::from_env(&EnvReader::process()).context("reconcile's configuration")?;
    if let Some(rate) = args.rate {
        config.publish_rate = rate;
    }
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let mut sweep = config.sweep(&region);
    sweep.republish = args.all;
    let lookup = lookup(sdk).await?;
    let ui = Ui::new(args.json);
    ui.announce(&terminal_safe_lines(&format!(
        "{} users of {} with status {} changed since the watermark (less {} s){}, to bus {}; state in {}",
        if args.dry_run {
            "Counting (dry run)"
        } else {
            "Publishing UserConfirmed for"
        },
        config.user_pool_id,
        config.statuses.join(","),
        config.overlap.as_secs(),
        if args.all {
            ", every one (--all)".to_owned()
        } else {
            format!(" without a profile in {}", lookup.describe())
        },
        config.bus,
        config.state_parameter,
    )));
    let clients = Clients::new(sdk);
    let store = SsmStateStore::new(aws_sdk_ssm::Client::new(sdk), &config.state_parameter);
    let options = PassOptions {
        dry_run: args.dry_run,
        full: args.full,
        deadline: args
            .max_seconds
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s)),
        max_pages: args.max_pages,
    };
    let bar = ui.progress("users scanned");
    let report = Sweep {
        clients: &clients,
        state: &store,
        lookup: &lookup,
        config: &sweep,
    }
    .run(&options, |r| bar.set_position(r.scanned))
    .await?;
    bar.finish_and_clear();
    Ok(report)
}

pub fn render(report: &SweepReport, json: bool) -> anyhow::Result<String> {
    let parameter = std::env::var("RECONCILE_WATERMARK_PARAMETER").unwrap_or_default();
    super::sweep::render(
        report,
        json,
        &Place {
            name: &format!("state {parameter}"),
            watermarked: true,
        },
    )
}
