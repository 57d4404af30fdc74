//! `uc-ops reconcile --orphans`: the orphan sweep (`uc_ops::orphans`) from the operator's
//! shell. Reconciliation's other direction: a pass publishes the users who have no profile,
//! the sweep erases the profiles that have no user. The audit's comparison with every orphan
//! kept, the guard against mass deletion, and each orphan erased through the worker's own
//! lifecycle (built from the worker's variables, as `dlq replay` builds the worker's core).

use std::time::Instant;

use anyhow::Context;
use aws_config::SdkConfig;
use uc_ops::orphans::{self, GuardVerdict, OrphanReport, SurveyOptions};
use uc_ops::profile_scan::ConfiguredScan;
use uc_ops::reconcile::{DEFAULT_LIST_RATE, MAX_LIST_RATE};
use uc_ops::text::terminal_safe;
use uc_runtime::env::EnvReader;

use super::{Outcome, Ui, terminal_safe_lines, to_json};

/// Orphan subs a refusal lists (a dry run with `--max-orphans` at the count lists them all).
const LISTED_WHEN_REFUSED: usize = 20;

/// Profiles read per page and pages per second: the audit's defaults (each page is a
/// DynamoDB Scan of up to 1,000 items).
const SCAN_PAGE_SIZE: u32 = 1_000;
const SCAN_RATE: f64 = 5.0;

/// What `reconcile --orphans` was asked.
pub struct OrphanOptions {
    pub dry_run: bool,
    pub max_orphans: Option<u64>,
    pub json: bool,
}

impl Outcome for OrphanReport {
    fn succeeded(&self) -> bool {
        self.exit_code() == 0
    }

    fn exit_code(&self) -> u8 {
        OrphanReport::exit_code(self)
    }
}

pub async fn run(args: &OrphanOptions, sdk: &SdkConfig) -> anyhow::Result<OrphanReport> {
    let started = Instant::now();
    let ui = Ui::new(args.json);
    let config = uc_worker::WorkerConfig::from_env()
        .context("the worker's configuration (the sweep erases through the worker's lifecycle)")?;
    anyhow::ensure!(
        config.lifecycle.is_some(),
        "EVENT_BUS_NAME is not set: the orphan sweep erases through the worker's lifecycle, which publishes UserDeleted on the pipeline's bus"
    );
    let worker = uc_worker::build_worker(&config, sdk)
        .await
        .context("the profile store")?;
    let lifecycle = worker
        .lifecycle()
        .context("the worker's lifecycle is off (EVENT_BUS_NAME)")?;
    let settings = lifecycle.settings();
    // With the caller's own credentials, like the audit (and the erasures: the worker's store
    // and bus, built here, sign with them too).
    let profiles = ConfiguredScan::build(&config.store, sdk)
        .await
        .context("the profile store")?;
    // The listing goes at the reconciler's pace, LIST_USERS_RPS (the UserList quota is shared).
    let list_rate = EnvReader::process()
        .number("LIST_USERS_RPS", DEFAULT_LIST_RATE, 0.01, MAX_LIST_RATE)
        .context("reconcile's configuration")?;
    let options = SurveyOptions {
        pools: settings.pools.clone(),
        statuses: settings.statuses.clone(),
        list_rate,
        scan_rate: SCAN_RATE,
        page_size: SCAN_PAGE_SIZE,
        show: LISTED_WHEN_REFUSED,
    };
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(sdk);
    let mut estimate = None;
    for pool in &options.pools {
        if let Some(n) = uc_ops::audit::estimated_users(&cognito, pool).await {
            estimate = Some(estimate.unwrap_or(0) + n);
        }
    }
    ui.announce(&terminal_safe_lines(&format!(
        "{} profiles in {} whose user is in none of {} (any status): users at {}/s ListUsers pages (LIST_USERS_RPS), then profiles at {}/s pages{}",
        if args.dry_run {
            "Listing (dry run)"
        } else {
            "Erasing"
        },
        profiles.describe(),
        options.pools.join(", "),
        options.list_rate,
        options.scan_rate,
        if args.dry_run {
            String::new()
        } else {
            format!(
                "; each checked in Cognito again, UserDeleted to bus {}",
                config
                    .lifecycle
                    .as_ref()
                    .map(|l| l.bus.as_str())
                    .unwrap_or_default()
            )
        },
    )));
    let users_bar = ui.bar("users", estimate);
    let profiles_bar = ui.progress("profiles");
    let survey = orphans::survey(
        &cognito,
        &profiles,
        &options,
        estimate,
        |n| users_bar.set_position(n),
        |n| {
            if !users_bar.is_finished() {
                users_bar.finish_and_clear();
            }
            profiles_bar.set_position(n)
        },
    )
    .await
    .context("orphan sweep unknown")?;
    users_bar.finish_and_clear();
    profiles_bar.finish_and_clear();
    let input = survey.guard_input();
    let verdict = orphans::guard(input, args.max_orphans);
    let guard = GuardVerdict::of(&verdict, input, args.max_orphans);
    let listed = if guard.allowed {
        survey.orphans.len()
    } else {
        LISTED_WHEN_REFUSED
    };
    let mut report = OrphanReport {
        dry_run: args.dry_run,
        user_pool_ids: options.pools.clone(),
        store: profiles.describe(),
        users_listed: survey.users_listed,
        users_by_status: survey.users_by_status.clone(),
        users_counted: survey.users_counted,
        profiles: survey.findings.profiles,
        tombstones: survey.findings.tombstones,
        orphans: survey.findings.orphaned,
        orphans_not_subs: survey.orphans.not_subs,
        guard,
        orphan_subs: survey.orphans.subs().take(listed).collect(),
        erasures: None,
        seconds: 0.0,
    };
    if let Err(refusal) = &verdict {
        tracing::warn!(
            refusal = refusal.code(),
            orphans = report.orphans,
            profiles = report.profiles,
            "orphan sweep refused: nothing erased"
        );
    } else if !args.dry_run {
        let bar = ui.bar("orphans", Some(survey.orphans.len() as u64));
        let erasures = orphans::erase_all(lifecycle, worker.store(), survey.orphans.subs(), |n| {
            bar.set_position(n)
        })
        .await;
        bar.finish_and_clear();
        report.erasures = Some(erasures);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

pub fn render(report: &OrphanReport, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let mut statuses: Vec<String> = report
        .users_by_status
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    if statuses.is_empty() {
        statuses.push("none".into());
    }
    let mut out = format!(
        "pools {}: {} users listed ({}), {} of a counted status\n\
         {}: {} profiles{}, {} orphaned (no user in any status){}\n",
        report.user_pool_ids.join(", "),
        report.users_listed,
        statuses.join(", "),
        report.users_counted,
        report.store,
        report.profiles,
        if report.tombstones > 0 {
            format!(
                " (and {} DataStore tombstones, not counted)",
                report.tombstones
            )
        } else {
            String::new()
        },
        report.orphans,
        if report.orphans_not_subs > 0 {
            format!(
                ", {} of them with an id that is not a sub (never erased: look at them)",
                report.orphans_not_subs
            )
        } else {
            String::new()
        },
    );
    let guard = &report.guard;
    if !guard.allowed {
        out.push_str(&format!(
            "REFUSED ({}): {}\n",
            guard.refusal.unwrap_or_default(),
            guard.reason.as_deref().unwrap_or_default()
        ));
        if !report.orphan_subs.is_empty() {
            out.push_str(&format!(
                "orphans (sub, the first {} of {}): {}\n",
                report.orphan_subs.len(),
                report.orphans - report.orphans_not_subs,
                report.orphan_subs.join(" ")
            ));
        }
        out.push_str("nothing was erased\n");
        return Ok(terminal_safe_lines(&out));
    }
    if report.orphan_subs.is_empty() {
        out.push_str(&format!(
            "guard: allowed (limit {}); no orphan to erase\n",
            guard.limit
        ));
    } else {
        out.push_str(&format!(
            "guard: allowed ({} orphans, limit {})\norphans (sub): {}\n",
            report.orphans,
            guard.limit,
            report.orphan_subs.join(" ")
        ));
    }
    if report.dry_run {
        out.push_str(&format!(
            "dry run: a real run checks each of these {} users in Cognito again and erases the profiles of those gone; nothing was erased\n",
            report.orphan_subs.len()
        ));
        return Ok(terminal_safe_lines(&out));
    }
    if let Some(e) = &report.erasures {
        out.push_str(&format!(
            "erased {}, already gone {}, user exists (profile kept) {}, failed {}, not attempted {}\n",
            e.erased, e.already_gone, e.user_exists, e.failed, e.not_attempted
        ));
        if !e.user_exists_subs.is_empty() {
            out.push_str(&format!(
                "users that exist after all (sub): {}\n",
                e.user_exists_subs.join(" ")
            ));
        }
        if !e.failures.is_empty() {
            let failures: Vec<String> = e
                .failures
                .iter()
                .map(|f| {
                    format!(
                        "{} ({}: {}{})",
                        f.sub,
                        f.stage,
                        terminal_safe(&f.code),
                        if f.retryable { ", retryable" } else { "" }
                    )
                })
                .collect();
            out.push_str(&format!(
                "FAILED (sub{}): {}\n",
                if (e.failures.len() as u64) < e.failed {
                    format!(", the first {} of {}", e.failures.len(), e.failed)
                } else {
                    String::new()
                },
                failures.join(", ")
            ));
        }
        if e.not_attempted > 0 {
            out.push_str(&format!(
                "STOPPED after {} failures in a row: {} orphans not attempted; fix the cause and run again\n",
                orphans::STOP_AFTER_FAILURES_IN_A_ROW,
                e.not_attempted
            ));
        } else if e.failed == 0 && report.orphans_not_subs == 0 {
            out.push_str("OK: every orphan handled\n");
        }
    }
    Ok(terminal_safe_lines(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_ops::orphans::{ErasureFailure, Erasures};

    fn report() -> OrphanReport {
        OrphanReport {
            dry_run: false,
            user_pool_ids: vec!["us-east-1_Pool".into()],
            store: "AppSync listUserProfiles".into(),
            users_listed: 23,
            users_by_status: [("CONFIRMED".to_owned(), 23)].into_iter().collect(),
            users_counted: 23,
            profiles: 26,
            tombstones: 0,
            orphans: 3,
            orphans_not_subs: 0,
            guard: GuardVerdict {
                allowed: true,
                limit: 10,
                refusal: None,
                reason: None,
            },
            orphan_subs: vec!["s-1".into(), "s-2".into(), "s-3".into()],
            erasures: None,
            seconds: 1.0,
        }
    }

    #[test]
    fn a_dry_run_lists_every_orphan_and_erases_nothing() {
        let mut dry = report();
        dry.dry_run = true;
        let text = render(&dry, false).unwrap();
        assert!(text.contains("orphans (sub): s-1 s-2 s-3"), "{text}");
        assert!(
            text.contains("guard: allowed (3 orphans, limit 10)"),
            "{text}"
        );
        assert!(text.contains("nothing was erased"), "{text}");
        assert_eq!(Outcome::exit_code(&dry), 0);
    }

    #[test]
    fn a_refusal_says_why_and_exits_2() {
        let mut refused = report();
        refused.guard = GuardVerdict {
            allowed: false,
            limit: 10,
            refusal: Some("EmptyListing"),
            reason: Some("no user of a counted status was listed".into()),
        };
        let text = render(&refused, false).unwrap();
        assert!(
            text.contains("REFUSED (EmptyListing): no user of a counted status"),
            "{text}"
        );
        assert!(text.contains("nothing was erased"), "{text}");
        assert_eq!(Outcome::exit_code(&refused), 2);
        let json: serde_json::Value =
            serde_json::from_str(&render(&refused, true).unwrap()).unwrap();
        assert_eq!(json["guard"]["refusal"], "EmptyListing");
        assert_eq!(json["guard"]["allowed"], false);
    }

    /// Failed erasures are named by sub with their stage and code, on their line; a code is
    /// whatever a service answered, so it is printed terminal-safe.
    #[test]
    fn failures_are_named_and_exit_1() {
        let mut failed = report();
        failed.erasures = Some(Erasures {
            erased: 2,
            failed: 1,
            failures: vec![ErasureFailure {
                sub: "s-3".into(),
                stage: "PutEvents".into(),
                code: "AccessDenied\u{1b}[31m".into(),
                retryable: false,
            }],
            ..Default::default()
        });
        let text = render(&failed, false).unwrap();
        assert!(text.contains("erased 2, already gone 0"), "{text}");
        assert!(
            text.contains("FAILED (sub): s-3 (PutEvents: AccessDenied\\u{1b}[31m)"),
            "{text}"
        );
        assert!(!text.contains("OK:"), "{text}");
        assert_eq!(Outcome::exit_code(&failed), 1);
        let mut clean = report();
        clean.erasures = Some(Erasures {
            erased: 3,
            ..Default::default()
        });
        assert!(
            render(&clean, false)
                .unwrap()
                .contains("OK: every orphan handled")
        );
        assert_eq!(Outcome::exit_code(&clean), 0);
    }
}
