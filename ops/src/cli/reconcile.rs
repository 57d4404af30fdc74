//! `uc-ops reconcile`: one reconciliation pass from the operator's shell, with the same
//! configuration variables, state and core as the scheduled function (`uc-reconciler`).

use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use clap::Args;
use uc_ops::backfill::Clients;
use uc_ops::reconcile::{self, PassOptions, PassReport, ReconcileConfig};
use uc_ops::reconcile_state::SsmStateStore;
use uc_runtime::env::EnvReader;

use super::{Outcome, Ui, positive_rate, terminal_safe_lines, to_json};

/// Configuration comes from the variables the scheduled function reads (USER_POOL_ID,
/// EVENT_BUS_NAME, EVENT_SOURCE, RECONCILE_WATERMARK_PARAMETER, RECONCILE_OVERLAP_SECONDS,
/// RECONCILE_PUBLISH_RATE, LIST_USERS_RPS, RECONCILE_STATUSES), e.g. from --env-file.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 the pass ended and moved the watermark; 1 it stopped early (--max-pages, --max-seconds: run again to resume) or some users could not be published (the watermark stays; the next pass retries them); 2 it could not run."
)]
pub struct ReconcileArgs {
    /// Count what would be published; publish nothing and leave the state as it is.
    #[arg(long)]
    dry_run: bool,
    /// Ignore the watermark: publish for every user of a counted status once more.
    #[arg(long)]
    full: bool,
    /// Stop after this many ListUsers pages, saving the place (the next run resumes).
    #[arg(long, value_name = "PAGES")]
    max_pages: Option<u64>,
    /// Stop before this many seconds have passed, saving the place.
    #[arg(long, value_name = "SECONDS")]
    max_seconds: Option<u64>,
    /// Events per second, at most (overrides RECONCILE_PUBLISH_RATE) [default: 50].
    #[arg(long, value_name = "PER_SECOND", value_parser = positive_rate)]
    rate: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

impl Outcome for PassReport {
    fn succeeded(&self) -> bool {
        PassReport::succeeded(self)
    }
}

pub async fn run(args: &ReconcileArgs, sdk: &SdkConfig) -> anyhow::Result<PassReport> {
    let mut config =
        ReconcileConfig::from_env(&EnvReader::process()).context("reconcile's configuration")?;
    if let Some(rate) = args.rate {
        config.publish_rate = rate;
    }
    let ui = Ui::new(args.json);
    ui.announce(&terminal_safe_lines(&format!(
        "{} users of {} with status {} changed since the watermark (less {} s) to bus {}; state in {}",
        if args.dry_run {
            "Counting (dry run)"
        } else {
            "Publishing UserConfirmed for"
        },
        config.user_pool_id,
        config.statuses.join(","),
        config.overlap.as_secs(),
        config.bus,
        config.state_parameter,
    )));
    let clients = Clients {
        cognito: aws_sdk_cognitoidentityprovider::Client::new(sdk),
        events: aws_sdk_eventbridge::Client::new(sdk),
        sqs: aws_sdk_sqs::Client::new(sdk),
    };
    let store = SsmStateStore::new(aws_sdk_ssm::Client::new(sdk), &config.state_parameter);
    let options = PassOptions {
        dry_run: args.dry_run,
        full: args.full,
        deadline: args
            .max_seconds
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s)),
        max_pages: args.max_pages,
    };
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let bar = ui.progress("users scanned");
    let report = reconcile::run_pass(&clients, &store, &config, &region, &options, |r| {
        bar.set_position(r.scanned)
    })
    .await?;
    bar.finish_and_clear();
    Ok(report)
}

pub fn render(report: &PassReport, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let mut text = format!(
        "scanned {}, selected {}, published {}, failed {}, pages {}{}\n",
        report.scanned,
        report.selected,
        report.published,
        report.failed,
        report.pages,
        if report.resumed {
            ", resumed a pass in progress"
        } else {
            ""
        },
    );
    let since = report
        .changed_since
        .map(|t| format!("users changed since {}", t.to_rfc3339()))
        .unwrap_or_else(|| "every user (no watermark yet, or --full)".into());
    text.push_str(&format!("looked at: {since}\n"));
    text.push_str(&if report.dry_run {
        "dry run: nothing published, the state is unchanged\n".to_owned()
    } else if !report.complete {
        "NOT complete: the pass stopped early and saved its place; run again to resume\n"
            .to_owned()
    } else if report.watermark_advanced {
        format!(
            "complete: watermark now {}\n",
            report
                .watermark
                .map(|w| w.to_rfc3339())
                .unwrap_or_default()
        )
    } else {
        format!(
            "complete, but {} user(s) of this pass could not be published: the watermark stays, the next pass retries them\n",
            report.pass_failed
        )
    });
    if !report.failed_subs.is_empty() {
        let listed = report.failed_subs.len() as u64;
        let which = if listed < report.failed {
            format!("sub, the first {listed} of {}", report.failed)
        } else {
            "sub".to_owned()
        };
        text.push_str(&format!(
            "not published ({which}): {}\n",
            report.failed_subs.join(", ")
        ));
    }
    Ok(terminal_safe_lines(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_is_left() {
        let mut report = PassReport {
            scanned: 120,
            selected: 2,
            published: 1,
            failed: 1,
            pass_failed: 1,
            pages: 2,
            complete: true,
            failed_subs: vec!["0b7c4f9e-0000-4000-8000-000000000001".into()],
            ..Default::default()
        };
        let text = render(&report, false).unwrap();
        assert!(text.contains("the watermark stays"), "{text}");
        assert!(
            text.contains("0b7c4f9e-0000-4000-8000-000000000001"),
            "{text}"
        );
        assert!(!Outcome::succeeded(&report));
        report.complete = false;
        assert!(render(&report, false).unwrap().contains("NOT complete"));
    }

    /// A pass with more failures than the report names says how many it left out.
    #[test]
    fn a_long_failure_list_is_capped_and_says_so() {
        let mut listed = Vec::new();
        let sub = |i: usize| format!("0b7c4f9e-0000-4000-8000-{i:012}");
        uc_ops::backfill::list_failed(&mut listed, (0..600).map(sub).collect());
        uc_ops::backfill::list_failed(&mut listed, (600..1_500).map(sub).collect());
        assert_eq!(listed.len(), uc_ops::backfill::LISTED_FAILED_SUBS);
        assert_eq!(listed.last(), Some(&sub(999)));
        let report = PassReport {
            failed: 1_500,
            pass_failed: 1_500,
            complete: true,
            failed_subs: listed,
            ..Default::default()
        };
        let text = render(&report, false).unwrap();
        assert!(
            text.contains("not published (sub, the first 1000 of 1500)"),
            "{text}"
        );
    }
}
