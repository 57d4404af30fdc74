//! Reconciliation: one pass publishes `UserConfirmed` (origin `reconciliation`) for every user
//! of a counted status changed since the watermark less an overlap, so users no trigger reported
//! (admin-created, migrated, imported, a fail-open publish failure) get their profile without
//! an operator. The same pass runs as `uc-ops reconcile` and as the scheduled `uc-reconciler`.
//!
//! Cognito cannot filter `ListUsers` by modification date, so a pass reads the whole pool,
//! paced, and saves its page after every page: a pass longer than one invocation resumes in the
//! next. The watermark moves only when a pass ends with every selected user published; events
//! carry the derived `eventId`, so a user published twice is still one profile.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use uc_runtime::env::{ConfigError, EnvReader};
use uc_runtime::metrics::MetricsRecord;
use uc_schemas::{DEFAULT_SOURCE, Origin, UserConfirmed};

use crate::audit::{DEFAULT_STATUS_LIST, parse_statuses};
use crate::backfill::{self, BackfillError, Clients, Target};
use crate::pace::Pacer;
use crate::reconcile_state::{PassProgress, StateError, StateStore};
use crate::user_pages::{PageError, USERS_PER_PAGE, UserPages};

/// Time kept free after the last page of an invocation, for the state's save and the answer.
const SAVE_MARGIN: Duration = Duration::from_secs(15);

/// What a pass needs, from the same variables in the function and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileConfig {
    pub user_pool_id: String,
    pub bus: String,
    pub source: String,
    /// The SSM parameter holding the [`ReconcileState`].
    pub state_parameter: String,
    /// How far before the watermark a pass looks again: clock skew and `ListUsers`' eventual
    /// consistency. It can be short: confirming an account (any status change) moves its
    /// `UserLastModifiedDate`, so a user confirmed days after signing up is caught anyway.
    /// Longer costs duplicates: each user is published by about overlap ÷ interval passes.
    pub overlap: Duration,
    /// Events published per second, at most: kept below the worker's spare capacity so live
    /// sign-ups never queue behind a pass (docs/benchmarks.md, "Live sign-ups first").
    pub publish_rate: f64,
    /// `ListUsers` calls per second, at most (the account's quota is shared with the app).
    pub list_rate: f64,
    pub statuses: Vec<String>,
}

impl ReconcileConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &EnvReader<F>,
    ) -> Result<Self, ConfigError> {
        let statuses = env
            .optional("RECONCILE_STATUSES")
            .unwrap_or_else(|| DEFAULT_STATUS_LIST.to_owned());
        Ok(Self {
            user_pool_id: env.required("USER_POOL_ID")?,
            bus: env.required("EVENT_BUS_NAME")?,
            source: env
                .optional("EVENT_SOURCE")
                .unwrap_or_else(|| DEFAULT_SOURCE.to_owned()),
            state_parameter: env.required("RECONCILE_WATERMARK_PARAMETER")?,
            overlap: env.seconds("RECONCILE_OVERLAP_SECONDS", 3_600, 0, 90 * 86_400)?,
            publish_rate: env.number(
                "RECONCILE_PUBLISH_RATE",
                DEFAULT_PUBLISH_RATE,
                0.01,
                10_000.0,
            )?,
            list_rate: env.number("LIST_USERS_RPS", 5.0, 0.01, 100.0)?,
            statuses: parse_statuses(&statuses).map_err(|why| ConfigError::Invalid {
                name: "RECONCILE_STATUSES",
                value: statuses.clone(),
                why,
            })?,
        })
    }
}

/// A pass's pace when `RECONCILE_PUBLISH_RATE` is unset: events per second.
pub const DEFAULT_PUBLISH_RATE: f64 = 50.0;

/// Whether a listed user is published: a counted status, changed at or after `changed_since`
/// (every user when there is no cut-off; a user without a date too, since publishing twice is
/// harmless and missing one is not).
pub fn selects(
    statuses: &[String],
    changed_since: Option<DateTime<Utc>>,
    status: &str,
    last_modified: Option<DateTime<Utc>>,
) -> bool {
    statuses.iter().any(|s| s == status)
        && match (changed_since, last_modified) {
            (Some(since), Some(modified)) => modified >= since,
            _ => true,
        }
}

/// How one invocation runs its pass.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Count what would be published; publish and save nothing.
    pub dry_run: bool,
    /// Ignore the watermark (and any pass in progress): look at every user once more.
    pub full: bool,
    /// Stop, saving the page, when the next page might not finish before this.
    pub deadline: Option<Instant>,
    /// Stop after this many pages (then resume, like a deadline).
    pub max_pages: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "the reconciliation state belongs to pool {stored}, not {configured}; reset it to {{}} to start over"
    )]
    AnotherPool { stored: String, configured: String },
    #[error("Cognito ListUsers: {0}")]
    ListUsers(PageError),
    #[error(transparent)]
    Publish(#[from] BackfillError),
}

/// What one invocation did (counts of this invocation; the state keeps the pass's totals).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PassReport {
    pub dry_run: bool,
    /// This invocation continued a pass an earlier one began.
    pub resumed: bool,
    /// The pass read the pool to its end in this invocation.
    pub complete: bool,
    pub changed_since: Option<DateTime<Utc>>,
    pub pages: u64,
    pub scanned: u64,
    pub selected: u64,
    pub published: u64,
    pub failed: u64,
    /// The `sub`s that could not be published (never an email): the first
    /// [`backfill::LISTED_FAILED_SUBS`] of the `failed`.
    pub failed_subs: Vec<String>,
    /// The pass as a whole had a failure: its end left the watermark where it was.
    pub pass_failed: u64,
    /// The watermark after this invocation.
    pub watermark: Option<DateTime<Utc>>,
    pub watermark_advanced: bool,
    /// Seconds since the watermark: no change older than this is left unreconciled.
    pub oldest_unreconciled_seconds: Option<i64>,
}

impl PassReport {
    /// The pass ended and moved the watermark: nothing is left to do until users change again.
    pub fn succeeded(&self) -> bool {
        self.complete && (self.dry_run || self.watermark_advanced)
    }

    /// The invocation's EMF record (the scheduled function writes it; the alarms read it).
    pub fn metrics(&self) -> MetricsRecord {
        let mut metrics = MetricsRecord::new("reconciler");
        metrics
            .count("UsersScanned", self.scanned)
            .count("Published", self.published)
            .count("PublishFailed", self.failed)
            .count("PassesCompleted", u64::from(self.complete))
            .property("PassComplete", self.complete);
        if let Some(seconds) = self.oldest_unreconciled_seconds {
            metrics.gauge_seconds("OldestUnreconciledChange", seconds.max(0) as f64);
        }
        metrics
    }
}

/// Runs (or resumes) a pass until the pool ends, the deadline nears or `max_pages` is reached.
/// `progress` hears the report after each page.
pub async fn run_pass(
    clients: &Clients,
    store: &impl StateStore,
    config: &ReconcileConfig,
    region: &str,
    options: &PassOptions,
    mut progress: impl FnMut(&PassReport),
) -> Result<PassReport, ReconcileError> {
    let mut state = store.load().await?;
    if let Some(stored) = state.user_pool_id.as_deref()
        && stored != config.user_pool_id
    {
        return Err(ReconcileError::AnotherPool {
            stored: stored.to_owned(),
            configured: config.user_pool_id.clone(),
        });
    }
    state.user_pool_id = Some(config.user_pool_id.clone());
    let mut report = PassReport {
        dry_run: options.dry_run,
        watermark: state.watermark,
        ..Default::default()
    };
    let mut pass = match state.pass.take() {
        Some(pass) if !options.full => {
            report.resumed = true;
            pass
        }
        _ => PassProgress {
            started_at: Utc::now(),
            changed_since: if options.full {
                None
            } else {
                state
                    .watermark
                    .map(|w| w - chrono::Duration::from_std(config.overlap).unwrap_or_default())
            },
            next_token: None,
            pages: 0,
            scanned: 0,
            published: 0,
            failed: 0,
        },
    };
    report.changed_since = pass.changed_since;
    let target = Target::EventBridge {
        bus: config.bus.clone(),
        source: config.source.clone(),
    };
    let mut pages = UserPages::new(
        &clients.cognito,
        &config.user_pool_id,
        &[],
        config.list_rate,
    );
    let mut publish_pacer = Pacer::new(config.publish_rate);
    let page_budget =
        Duration::from_secs_f64(f64::from(USERS_PER_PAGE) / config.publish_rate) + SAVE_MARGIN;
    let mut may_restart = report.resumed;
    let mut prefetched = None;
    loop {
        let out_of_time = options
            .deadline
            .is_some_and(|deadline| Instant::now() + page_budget >= deadline);
        if out_of_time || options.max_pages.is_some_and(|max| report.pages >= max) {
            break;
        }
        let fetched = match prefetched.take() {
            Some(fetched) => fetched,
            None => pages.page(pass.next_token.clone()).await,
        };
        let page = match fetched {
            Ok(page) => page,
            // A saved token Cognito no longer takes: read the pool again from its start (the
            // pass keeps its start time, so nothing it should select is lost).
            Err(error)
                if may_restart && pass.next_token.is_some() && !error.failure.is_retryable() =>
            {
                tracing::warn!(error = %error, "the saved page token was refused; the pass starts again from the first page");
                pass.next_token = None;
                may_restart = false;
                continue;
            }
            Err(error) => return Err(ReconcileError::ListUsers(error)),
        };
        may_restart = false;
        report.pages += 1;
        report.scanned += page.users().len() as u64;
        let events: Vec<UserConfirmed> = page
            .users()
            .iter()
            .filter(|user| {
                let status = user.user_status().map(|s| s.as_str()).unwrap_or("UNKNOWN");
                let modified = user
                    .user_last_modified_date()
                    .and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos()));
                selects(&config.statuses, pass.changed_since, status, modified)
            })
            .filter_map(|user| {
                backfill::event_for(user, &config.user_pool_id, region, Origin::Reconciliation)
            })
            .collect();
        report.selected += events.len() as u64;
        if !options.dry_run {
            // Not past --max-pages, nor a page the deadline would stop us from publishing.
            let more = options.max_pages.is_none_or(|max| report.pages < max)
                && options
                    .deadline
                    .is_none_or(|deadline| Instant::now() + page_budget * 2 < deadline);
            let publishing = publish_page(
                clients,
                &target,
                &events,
                &mut publish_pacer,
                &mut report,
                &mut pass,
            );
            // The next page is read while this one is published: a pass is paced by its
            // publishing, not by publishing plus listing.
            match page.pagination_token.clone().filter(|_| more) {
                Some(token) => {
                    let (published, next) = tokio::join!(publishing, pages.page(Some(token)));
                    published?;
                    prefetched = Some(next);
                }
                None => publishing.await?,
            }
        }
        pass.next_token = page.pagination_token.clone();
        pass.pages += 1;
        pass.scanned += page.users().len() as u64;
        if page.pagination_token.is_none() {
            report.complete = true;
            break;
        }
        if !options.dry_run {
            state.pass = Some(pass.clone());
            store.save(&state).await?;
        }
        progress(&report);
    }
    report.pass_failed = pass.failed;
    if report.complete {
        if pass.failed == 0 {
            state.watermark = Some(pass.started_at);
            report.watermark_advanced = !options.dry_run;
        }
        state.pass = None;
    } else {
        state.pass = Some(pass);
    }
    if !options.dry_run {
        store.save(&state).await?;
        report.watermark = state.watermark;
    }
    report.oldest_unreconciled_seconds = report.watermark.map(|w| (Utc::now() - w).num_seconds());
    progress(&report);
    Ok(report)
}

/// Publishes one page's events at the pass's pace, counting them in the invocation's report
/// and the pass's totals.
async fn publish_page(
    clients: &Clients,
    target: &Target,
    events: &[UserConfirmed],
    pacer: &mut Option<Pacer>,
    report: &mut PassReport,
    pass: &mut PassProgress,
) -> Result<(), ReconcileError> {
    let sent = backfill::publish_paced(clients, target, events, pacer).await?;
    let (published, failed) = (sent.published as u64, sent.failed.len() as u64);
    report.published += published;
    pass.published += published;
    report.failed += failed;
    pass.failed += failed;
    backfill::list_failed(&mut report.failed_subs, sent.failed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_runtime::env::from_pairs;

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_pass_selects_counted_statuses_changed_since_the_cut_off() {
        let counted = parse_statuses(DEFAULT_STATUS_LIST).unwrap();
        let since = at("2026-11-30T10:00:00Z");
        assert!(selects(
            &counted,
            since,
            "CONFIRMED",
            at("2026-11-30T10:00:00Z")
        ));
        assert!(selects(
            &counted,
            since,
            "EXTERNAL_PROVIDER",
            at("2026-11-30T11:00:00Z")
        ));
        assert!(!selects(
            &counted,
            since,
            "CONFIRMED",
            at("2026-11-30T09:59:59Z")
        ));
        assert!(!selects(
            &counted,
            since,
            "FORCE_CHANGE_PASSWORD",
            at("2026-11-30T11:00:00Z")
        ));
        assert!(!selects(&counted, since, "UNCONFIRMED", None));
        // No cut-off (a first or full pass), or no date: publish rather than miss.
        assert!(selects(
            &counted,
            None,
            "CONFIRMED",
            at("2020-01-01T00:00:00Z")
        ));
        assert!(selects(&counted, since, "CONFIRMED", None));
    }

    #[test]
    fn a_user_confirmed_days_after_signing_up_is_caught_by_its_confirmation() {
        // Signed up on the 1st, confirmed on the 3rd, after the last pass began (the 2nd).
        let counted = parse_statuses(DEFAULT_STATUS_LIST).unwrap();
        let watermark: DateTime<Utc> = "2026-11-02T00:00:00Z".parse().unwrap();
        let since = Some(watermark - chrono::Duration::hours(1));
        let confirmed = at("2026-11-03T09:00:00Z");
        assert!(selects(&counted, since, "CONFIRMED", confirmed));
        // While it was still unconfirmed, the pass before did not publish it.
        assert!(!selects(
            &counted,
            None,
            "UNCONFIRMED",
            at("2026-11-01T09:00:00Z")
        ));
    }

    #[test]
    fn statuses_are_checked_and_any_case() {
        assert_eq!(
            parse_statuses("confirmed, Force_Change_Password,CONFIRMED").unwrap(),
            ["CONFIRMED", "FORCE_CHANGE_PASSWORD"]
        );
        assert!(parse_statuses("CONFIRMD").unwrap_err().contains("CONFIRMD"));
        assert!(parse_statuses(" , ").is_err());
    }

    #[test]
    fn configuration_has_defaults_and_refuses_nonsense() {
        let base = [
            ("USER_POOL_ID", "eu-west-1_abc"),
            ("EVENT_BUS_NAME", "bus"),
            ("RECONCILE_WATERMARK_PARAMETER", "/uc/reconciler/state"),
        ];
        let config = ReconcileConfig::from_env(&from_pairs(base)).unwrap();
        assert_eq!(config.overlap, Duration::from_secs(3_600));
        assert_eq!(config.publish_rate, 50.0);
        assert_eq!(config.list_rate, 5.0);
        assert_eq!(config.statuses, ["CONFIRMED", "EXTERNAL_PROVIDER"]);
        assert_eq!(config.source, DEFAULT_SOURCE);
        for (name, value) in [
            ("RECONCILE_PUBLISH_RATE", "0"),
            ("RECONCILE_PUBLISH_RATE", "NaN"),
            ("RECONCILE_PUBLISH_RATE", "inf"),
            ("LIST_USERS_RPS", "-1"),
            ("RECONCILE_OVERLAP_SECONDS", "soon"),
            ("RECONCILE_STATUSES", "ACTIVE"),
        ] {
            let mut pairs: Vec<(&str, &str)> = base.to_vec();
            pairs.push((name, value));
            assert!(
                ReconcileConfig::from_env(&from_pairs(pairs)).is_err(),
                "{name}={value}"
            );
        }
        assert!(ReconcileConfig::from_env(&from_pairs([("USER_POOL_ID", "p")])).is_err());
    }

    #[test]
    fn a_pass_succeeds_only_when_it_ends_and_moves_the_watermark() {
        let mut report = PassReport {
            complete: true,
            watermark_advanced: true,
            ..Default::default()
        };
        assert!(report.succeeded());
        report.watermark_advanced = false;
        assert!(!report.succeeded(), "a failed publish keeps the watermark");
        report = PassReport::default();
        assert!(!report.succeeded(), "a pass cut short is not done");
    }

    #[test]
    fn the_metrics_carry_the_counts_and_the_age() {
        let report = PassReport {
            complete: true,
            scanned: 120,
            published: 3,
            oldest_unreconciled_seconds: Some(61),
            ..Default::default()
        };
        let json = report.metrics().to_json();
        assert_eq!(json["Service"], "reconciler");
        assert_eq!(json["UsersScanned"], 120.0);
        assert_eq!(json["Published"], 3.0);
        assert_eq!(json["PassesCompleted"], 1.0);
        assert_eq!(json["OldestUnreconciledChange"], 61.0);
        let units: Vec<_> = json["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap(), m["Unit"].as_str().unwrap()))
            .collect();
        assert!(
            units.contains(&("OldestUnreconciledChange", "Seconds")),
            "{units:?}"
        );
    }
}
