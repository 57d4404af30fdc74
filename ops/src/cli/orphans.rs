//! `uc-ops reconcile --orphans`: the orphan sweep (`uc_ops::orphans`) from the operator's
//! shell. Reconciliation's other direction: a pass publishes the users who have no profile,
//! the sweep erases the profiles that have no user. The audit's comparison with every orphan
//! kept, the guard against mass deletion, and each orphan erased through the worker's own
//! lifecycle (built from the worker's variables, as `dlq replay` builds the worker's core).

use anyhow::Context;
use aws_config::SdkConfig;
use uc_ops::orphans::{self, OrphanReport, OrphanSweep, SweepRequest};
use uc_ops::reconcile::{DEFAULT_LIST_RATE, MAX_LIST_RATE};
use uc_ops::text::terminal_safe;
use uc_runtime::env::EnvReader;

use super::{Outcome, Ui, terminal_safe_lines, to_json};

/// Orphan subs a refusal lists (a dry run with `--max-orphans` at the count lists them all).
const LISTED_WHEN_REFUSED: usize = 20;

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
    let ui = Ui::new(args.json);
    // The listing goes at the reconciler's pace, LIST_USERS_RPS (the UserList quota is shared).
    let list_rate = EnvReader::process()
        .number("LIST_USERS_RPS", DEFAULT_LIST_RATE, 0.01, MAX_LIST_RATE)
        .context("reconcile's configuration")?;
    // With the caller's own credentials, for the scan as for the erasures (the worker's store
    // and bus, built here, sign with them).
    let sweep = OrphanSweep::from_env(sdk, list_rate).await?;
    let estimate = sweep.estimate().await;
    ui.announce(&terminal_safe_lines(&format!(
        "{} profiles in {} whose user is in none of {} (any status): users at {}/s ListUsers pages (LIST_USERS_RPS), then profiles at {}/s pages{}",
        if args.dry_run {
            "Listing (dry run)"
        } else {
            "Erasing"
        },
        sweep.describe_store(),
        sweep.pools().join(", "),
        sweep.list_rate(),
        orphans::SCAN_RATE,
        if args.dry_run {
            String::new()
        } else {
            format!(
                "; each checked in Cognito again, UserDeleted to bus {}",
                sweep.bus()
            )
        },
    )));
    let users_bar = ui.bar("users", estimate);
    let profiles_bar = ui.progress("profiles");
    let mut erasing_bar: Option<indicatif::ProgressBar> = None;
    let request = SweepRequest {
        dry_run: args.dry_run,
        max_orphans: args.max_orphans,
        deadline: None,
        show_refused: LISTED_WHEN_REFUSED,
    };
    let report = sweep
        .run(
            &request,
            estimate,
            |n| users_bar.set_position(n),
            |n| {
                if !users_bar.is_finished() {
                    users_bar.finish_and_clear();
                }
                profiles_bar.set_position(n)
            },
            |n, total| {
                if !profiles_bar.is_finished() {
                    profiles_bar.finish_and_clear();
                }
                erasing_bar
                    .get_or_insert_with(|| ui.bar("orphans", Some(total)))
                    .set_position(n)
            },
        )
        .await
        .context("orphan sweep unknown")?;
    users_bar.finish_and_clear();
    profiles_bar.finish_and_clear();
    if let Some(bar) = erasing_bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

pub fn render(report: &OrphanReport, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let statuses = super::status_counts(&report.users_by_status);
    let mut out = format!(
        "pools {}: {} users listed ({}), {} of a counted status\n\
         {}: {} profiles{}, {} orphaned (no user in any status){}\n",
        report.user_pool_ids.join(", "),
        report.users_listed,
        statuses,
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
            let with_sub = report.orphans - report.orphans_not_subs;
            let listed = report.orphan_subs.len() as u64;
            out.push_str(&format!(
                "orphans (sub{}): {}\n",
                if listed < with_sub {
                    format!(", the first {listed} of {with_sub}")
                } else {
                    String::new()
                },
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
        match e.stopped {
            Some("UserDeletedNotPublished") => out.push_str(&format!(
                "STOPPED: the bus refused UserDeleted for a user whose profile was already removed (the PutEvents failure above): tell UserDeleted's consumers of that sub by hand; {} orphans not attempted. The bus admits UserDeleted from the worker's and the reconciler's roles only: run the sweep as the reconciler (docs/runbook.md, Orphaned profiles)\n",
                e.not_attempted
            )),
            Some("Deadline") => out.push_str(&format!(
                "STOPPED at the deadline: {} orphans not attempted; the next sweep finds them again\n",
                e.not_attempted
            )),
            Some(_) => out.push_str(&format!(
                "STOPPED after {} failures in a row: {} orphans not attempted; fix the cause and run again\n",
                orphans::STOP_AFTER_FAILURES_IN_A_ROW,
                e.not_attempted
            )),
            None if e.failed == 0 && report.orphans_not_subs == 0 => {
                out.push_str("OK: every orphan handled\n")
            }
            None => {}
        }
    }
    Ok(terminal_safe_lines(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_ops::orphans::{ErasureFailure, Erasures, GuardVerdict};

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
        assert!(text.contains("orphans (sub): s-1 s-2 s-3"), "{text}");
        refused.orphans = 40;
        let text = render(&refused, false).unwrap();
        assert!(
            text.contains("orphans (sub, the first 3 of 40): s-1"),
            "{text}"
        );
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
        // The bus refused UserDeleted: the sweep stopped at once and says what to do.
        let mut refused_event = report();
        refused_event.erasures = Some(Erasures {
            failed: 1,
            not_attempted: 2,
            stopped: Some("UserDeletedNotPublished"),
            failures: vec![ErasureFailure {
                sub: "s-1".into(),
                stage: "PutEvents".into(),
                code: "AccessDeniedException".into(),
                retryable: false,
            }],
            ..Default::default()
        });
        let text = render(&refused_event, false).unwrap();
        assert!(
            text.contains("STOPPED: the bus refused UserDeleted"),
            "{text}"
        );
        assert!(text.contains("run the sweep as the reconciler"), "{text}");
        assert_eq!(Outcome::exit_code(&refused_event), 1);
    }
}
