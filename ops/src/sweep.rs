//! The one sweep: back-fill and reconciliation are modes of it, and the audit judges users with
//! its [`Selection`]. A pass lists the pool page by page (paced [`UserPages`]), selects users
//! (counted statuses, cut-offs), asks the profile store which of them have a profile
//! ([`ProfileLookup`]), publishes `UserConfirmed` for the others only ([`publish_paced`]), and
//! saves its place ([`StateStore`]: SSM for reconciliation, a file for the back-fill) after
//! each page, so a pass longer than one invocation resumes in the next.
//!
//! In steady state a user is published once: by the trigger, or by the first pass that finds
//! them without a profile. A reconciliation pass that ends with every selected user handled
//! moves the watermark; the next pass looks only at users changed since (less an overlap).
//!
//! Deleted users (their orphaned profiles) are not this module's: a pass sees only users the
//! pool lists. Finding orphans takes the store's side: the orphan sweep ([`crate::orphans`],
//! `uc-ops reconcile --orphans`) is the audit's comparison with its own guard against mass
//! deletion.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::UserType;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use uc_runtime::metrics::MetricsRecord;
use uc_schemas::{Origin, UserConfirmed};

use crate::profile_lookup::{LookupError, ProfileLookup};
use crate::publish::{self, Clients, PublishError, Target, list_failed, publish_paced};
use crate::sweep_state::{PassProgress, StateError, StateStore};
use crate::user_pages::{PageError, USERS_PER_PAGE, UserPages};
use uc_runtime::Pacer;

/// Time kept free after the last page of an invocation, for the state's save and the answer.
const SAVE_MARGIN: Duration = Duration::from_secs(15);

/// Which listed users a sweep looks at, and which the audit judges: a counted status, changed
/// (or created) since the cut-offs, and not changed too recently to judge (an event may be on
/// its way).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub statuses: Vec<String>,
    /// Only users changed at or after this (reconciliation's watermark less the overlap).
    pub changed_since: Option<DateTime<Utc>>,
    /// Only users created at or after this (`backfill --since`).
    pub created_since: Option<DateTime<Utc>>,
    /// Users changed at or after this are too recent to judge (now less the grace period).
    pub settled_before: Option<DateTime<Utc>>,
}

/// What the selection makes of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a counted status, or outside the cut-offs.
    Passed,
    /// Counted, but changed within the grace period: not judged this time.
    Recent,
    Selected,
}

impl Selection {
    /// A user without a date is selected rather than missed (publishing is idempotent).
    pub fn judge(
        &self,
        status: &str,
        created: Option<DateTime<Utc>>,
        modified: Option<DateTime<Utc>>,
    ) -> Verdict {
        let after = |cut: Option<DateTime<Utc>>, at: Option<DateTime<Utc>>| match (cut, at) {
            (Some(cut), Some(at)) => at >= cut,
            _ => true,
        };
        if !self.statuses.iter().any(|s| s == status)
            || !after(self.changed_since, modified)
            || !after(self.created_since, created)
        {
            return Verdict::Passed;
        }
        match (self.settled_before, modified) {
            (Some(settled), Some(modified)) if modified >= settled => Verdict::Recent,
            _ => Verdict::Selected,
        }
    }

    /// [`Selection::judge`] for a listed user.
    pub fn judge_user(&self, user: &UserType) -> Verdict {
        let date = |d: Option<&aws_sdk_cognitoidentityprovider::primitives::DateTime>| {
            d.and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos()))
        };
        self.judge(
            user.user_status().map(|s| s.as_str()).unwrap_or("UNKNOWN"),
            date(user.user_create_date()),
            date(user.user_last_modified_date()),
        )
    }
}

/// What decides what a sweep publishes.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub user_pool_id: String,
    /// The events' `region`.
    pub region: String,
    pub statuses: Vec<String>,
    /// The events' origin (`backfill`, `reconciliation`).
    pub origin: Origin,
    pub target: Target,
    /// Events per second, at most; `None`: no limit.
    pub publish_rate: Option<f64>,
    /// `ListUsers` calls per second, at most (the account's quota is shared with the app).
    pub list_rate: f64,
    /// Reconciliation: a completed pass sets a watermark, and the next looks only at users
    /// changed since it less this overlap. `None` (a back-fill): every pass looks at everyone.
    pub overlap: Option<Duration>,
    /// Users changed this recently are left to the next pass (their event may be on its way).
    pub grace: Duration,
    /// Only users created at or after this.
    pub created_since: Option<DateTime<Utc>>,
    /// Publish every selected user, profile or not (`--all`): a forced republish.
    pub republish: bool,
}

/// How one invocation runs its pass.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Count what a real run would publish (the store is asked); publish and save nothing.
    pub dry_run: bool,
    /// Ignore the watermark (and any pass in progress): look at every user once more.
    pub full: bool,
    /// Stop, saving the page, when the next page might not finish before this.
    pub deadline: Option<Instant>,
    /// Stop after this many pages (then resume, like a deadline).
    pub max_pages: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "the sweep's state belongs to pool {stored}, not {configured}; reset it to {{}} to start over"
    )]
    AnotherPool { stored: String, configured: String },
    #[error("Cognito ListUsers: {0}")]
    ListUsers(PageError),
    #[error("cannot tell which users have a profile: {0}")]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// What one invocation did (counts of this invocation; the state keeps the pass's totals): the
/// one report of every sweep, as text (`uc-ops`) and JSON (`--json`, the function's log).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub dry_run: bool,
    /// This invocation continued a pass an earlier one began.
    pub resumed: bool,
    /// The pass read the pool to its end in this invocation.
    pub complete: bool,
    pub changed_since: Option<DateTime<Utc>>,
    /// `ListUsers` calls (pages).
    pub pages: u64,
    /// Users listed.
    pub scanned: u64,
    /// Users of a counted status inside the cut-offs, changed too recently to judge.
    pub recent: u64,
    /// Users selected: counted, inside the cut-offs, settled.
    pub selected: u64,
    /// Selected users the store has a profile for: not published.
    pub had_profile: u64,
    /// Read requests the store check made.
    pub store_reads: u64,
    /// Selected users without a profile (every selected user with `--all`): what a real run
    /// publishes. A dry run stops here.
    pub to_publish: u64,
    pub published: u64,
    pub failed: u64,
    /// The `sub`s that could not be published (never an email): the first
    /// [`publish::LISTED_FAILED_SUBS`] of the `failed`.
    pub failed_subs: Vec<String>,
    /// The pass as a whole had a failure: its end left the watermark where it was.
    pub pass_failed: u64,
    /// The watermark after this invocation (reconciliation only).
    pub watermark: Option<DateTime<Utc>>,
    pub watermark_advanced: bool,
    /// Seconds since the watermark: no change older than this is left unreconciled.
    pub oldest_unreconciled_seconds: Option<i64>,
}

impl SweepReport {
    /// The pass ended with every selected user handled (a dry run: counted to the end).
    pub fn succeeded(&self) -> bool {
        self.complete && (self.dry_run || self.pass_failed == 0)
    }

    /// The invocation's EMF record (the scheduled function writes it; the alarms read it).
    pub fn metrics(&self) -> MetricsRecord {
        let mut metrics = MetricsRecord::new("reconciler");
        metrics
            .count("UsersScanned", self.scanned)
            .count("HadProfile", self.had_profile)
            .count("StoreReads", self.store_reads)
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

/// What a sweep works with.
pub struct Sweep<'a, S, L> {
    pub clients: &'a Clients,
    pub state: &'a S,
    pub lookup: &'a L,
    pub config: &'a SweepConfig,
}

impl<S: StateStore, L: ProfileLookup> Sweep<'_, S, L> {
    /// Runs (or resumes) a pass until the pool ends, the deadline nears or `max_pages` is
    /// reached. `progress` hears the report after each page.
    pub async fn run(
        &self,
        options: &PassOptions,
        mut progress: impl FnMut(&SweepReport),
    ) -> Result<SweepReport, SweepError> {
        let config = self.config;
        let mut state = self.state.load().await?;
        if let Some(stored) = state.user_pool_id.as_deref()
            && stored != config.user_pool_id
        {
            return Err(SweepError::AnotherPool {
                stored: stored.to_owned(),
                configured: config.user_pool_id.clone(),
            });
        }
        state.user_pool_id = Some(config.user_pool_id.clone());
        let mut report = SweepReport {
            dry_run: options.dry_run,
            watermark: state.watermark,
            ..Default::default()
        };
        let saved = state.pass.take().filter(|pass| {
            let same = pass
                .statuses
                .as_ref()
                .is_none_or(|statuses| *statuses == config.statuses);
            if !same {
                tracing::warn!("the pass in progress selected other statuses; a new pass starts");
            }
            same && !options.full
        });
        let mut pass = match saved {
            Some(pass) => {
                report.resumed = true;
                pass
            }
            None => PassProgress {
                started_at: Utc::now(),
                changed_since: match (options.full, config.overlap) {
                    (false, Some(overlap)) => state
                        .watermark
                        .map(|w| w - chrono::Duration::from_std(overlap).unwrap_or_default()),
                    _ => None,
                },
                next_token: None,
                pages: 0,
                scanned: 0,
                published: 0,
                failed: 0,
                had_profile: 0,
                statuses: Some(config.statuses.clone()),
            },
        };
        report.changed_since = pass.changed_since;
        let grace = chrono::Duration::from_std(config.grace).unwrap_or_default();
        let selection = Selection {
            statuses: config.statuses.clone(),
            changed_since: pass.changed_since,
            created_since: config.created_since,
            settled_before: (!grace.is_zero()).then(|| Utc::now() - grace),
        };
        let mut pages = UserPages::new(
            &self.clients.cognito,
            &config.user_pool_id,
            &[],
            config.list_rate,
        );
        let publish_pacer = config.publish_rate.and_then(Pacer::new);
        let page_budget = config.publish_rate.map_or(Duration::ZERO, |rate| {
            Duration::from_secs_f64(f64::from(USERS_PER_PAGE) / rate)
        }) + SAVE_MARGIN;
        let mut may_restart = report.resumed;
        let mut prefetched = None;
        let reads_before = self.lookup.reads();
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
                // A saved token Cognito no longer takes: read the pool again from its start
                // (the pass keeps its start time, so nothing it should select is lost).
                Err(error)
                    if may_restart
                        && pass.next_token.is_some()
                        && !error.failure.is_retryable() =>
                {
                    tracing::warn!(error = %error, "the saved page token was refused; the pass starts again from the first page");
                    pass.next_token = None;
                    may_restart = false;
                    continue;
                }
                Err(error) => return Err(SweepError::ListUsers(error)),
            };
            may_restart = false;
            report.pages += 1;
            report.scanned += page.users().len() as u64;
            let mut selected = Vec::new();
            for user in page.users() {
                match selection.judge_user(user) {
                    Verdict::Selected => selected.push(user),
                    Verdict::Recent => report.recent += 1,
                    Verdict::Passed => {}
                }
            }
            let events = self.to_publish(&selected, &mut report, &mut pass).await?;
            report.selected += selected.len() as u64;
            report.to_publish += events.len() as u64;
            // A dry run only counts: its next page is read as the loop comes round.
            if !options.dry_run {
                // Not past --max-pages, nor a page the deadline would stop us from publishing.
                let more = options.max_pages.is_none_or(|max| report.pages < max)
                    && options
                        .deadline
                        .is_none_or(|deadline| Instant::now() + page_budget * 2 < deadline);
                let publishing = publish_page(
                    self.clients,
                    &config.target,
                    &events,
                    &publish_pacer,
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
            report.store_reads = self.lookup.reads() - reads_before;
            if page.pagination_token.is_none() {
                report.complete = true;
                break;
            }
            if !options.dry_run {
                state.pass = Some(pass.clone());
                self.state.save(&state).await?;
            }
            progress(&report);
        }
        report.pass_failed = pass.failed;
        if report.complete {
            // Reconciliation only: every change before the pass began (less the grace, whose
            // users were left for the next pass) has been looked at.
            if pass.failed == 0
                && let Some(_) = config.overlap
            {
                state.watermark = Some(pass.started_at - grace);
                report.watermark_advanced = !options.dry_run;
            }
            state.pass = None;
        } else {
            state.pass = Some(pass);
        }
        if !options.dry_run {
            self.state.save(&state).await?;
            report.watermark = state.watermark;
        }
        report.oldest_unreconciled_seconds =
            report.watermark.map(|w| (Utc::now() - w).num_seconds());
        progress(&report);
        Ok(report)
    }

    /// The events for a page's selected users who have no profile (all of them with
    /// `republish`), counting those who have one.
    async fn to_publish(
        &self,
        selected: &[&UserType],
        report: &mut SweepReport,
        pass: &mut PassProgress,
    ) -> Result<Vec<UserConfirmed>, SweepError> {
        let config = self.config;
        let events: Vec<UserConfirmed> = selected
            .iter()
            .filter_map(|user| {
                publish::event_for(user, &config.user_pool_id, &config.region, config.origin)
            })
            .collect();
        if config.republish || events.is_empty() {
            return Ok(events);
        }
        let ids: Vec<&str> = events.iter().map(|e| e.sub.as_str()).collect();
        let existing = self.lookup.existing(&ids).await?;
        let had = existing.len() as u64;
        report.had_profile += had;
        pass.had_profile += had;
        Ok(events
            .into_iter()
            .filter(|event| !existing.contains(&event.sub))
            .collect())
    }
}

/// Publishes one page's events at the pass's pace, counting them in the invocation's report
/// and the pass's totals.
async fn publish_page(
    clients: &Clients,
    target: &Target,
    events: &[UserConfirmed],
    pacer: &Option<Pacer>,
    report: &mut SweepReport,
    pass: &mut PassProgress,
) -> Result<(), SweepError> {
    // Boxed: the publish loop's future is large (see uc_runtime::put_events::EventBus::put_once).
    let sent = Box::pin(publish_paced(clients, target, events, pacer)).await?;
    let (published, failed) = (sent.published as u64, sent.failed.len() as u64);
    report.published += published;
    pass.published += published;
    report.failed += failed;
    pass.failed += failed;
    list_failed(&mut report.failed_subs, sent.failed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{DEFAULT_STATUS_LIST, parse_statuses};

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(text.parse().unwrap())
    }

    fn selection(changed_since: Option<DateTime<Utc>>) -> Selection {
        Selection {
            statuses: parse_statuses(DEFAULT_STATUS_LIST).unwrap(),
            changed_since,
            ..Default::default()
        }
    }

    #[test]
    fn a_pass_selects_counted_statuses_changed_since_the_cut_off() {
        let since = selection(at("2026-11-30T10:00:00Z"));
        let judge = |s: &Selection, status, modified| s.judge(status, None, modified);
        use Verdict::*;
        assert_eq!(
            judge(&since, "CONFIRMED", at("2026-11-30T10:00:00Z")),
            Selected
        );
        assert_eq!(
            judge(&since, "EXTERNAL_PROVIDER", at("2026-11-30T11:00:00Z")),
            Selected
        );
        assert_eq!(
            judge(&since, "CONFIRMED", at("2026-11-30T09:59:59Z")),
            Passed
        );
        assert_eq!(
            judge(&since, "FORCE_CHANGE_PASSWORD", at("2026-11-30T11:00:00Z")),
            Passed
        );
        assert_eq!(judge(&since, "UNCONFIRMED", None), Passed);
        // No cut-off (a first or full pass), or no date: selected rather than missed.
        let everyone = selection(None);
        assert_eq!(
            judge(&everyone, "CONFIRMED", at("2020-01-01T00:00:00Z")),
            Selected
        );
        assert_eq!(judge(&since, "CONFIRMED", None), Selected);
    }

    #[test]
    fn users_changed_within_the_grace_are_recent_and_creation_dates_cut_too() {
        let mut s = selection(None);
        s.settled_before = at("2026-11-30T10:00:00Z");
        s.created_since = at("2026-01-01T00:00:00Z");
        use Verdict::*;
        let created = at("2026-06-01T00:00:00Z");
        assert_eq!(
            s.judge("CONFIRMED", created, at("2026-11-30T10:00:00Z")),
            Recent
        );
        assert_eq!(
            s.judge("CONFIRMED", created, at("2026-11-30T09:00:00Z")),
            Selected
        );
        assert_eq!(
            s.judge("UNCONFIRMED", created, at("2026-11-30T10:30:00Z")),
            Passed
        );
        assert_eq!(
            s.judge(
                "CONFIRMED",
                at("2025-12-31T23:59:59Z"),
                at("2026-11-30T09:00:00Z")
            ),
            Passed
        );
    }

    #[test]
    fn a_user_confirmed_days_after_signing_up_is_caught_by_its_confirmation() {
        // Signed up on the 1st, confirmed on the 3rd, after the last pass began (the 2nd).
        let watermark: DateTime<Utc> = "2026-11-02T00:00:00Z".parse().unwrap();
        let s = selection(Some(watermark - chrono::Duration::hours(1)));
        assert_eq!(
            s.judge(
                "CONFIRMED",
                at("2026-11-01T09:00:00Z"),
                at("2026-11-03T09:00:00Z")
            ),
            Verdict::Selected
        );
        // While it was still unconfirmed, the pass before did not publish it.
        assert_eq!(
            selection(None).judge("UNCONFIRMED", None, at("2026-11-01T09:00:00Z")),
            Verdict::Passed
        );
    }

    #[test]
    fn a_pass_succeeds_only_when_it_ends_with_everyone_handled() {
        let mut report = SweepReport {
            complete: true,
            ..Default::default()
        };
        assert!(report.succeeded());
        report.pass_failed = 1;
        assert!(!report.succeeded(), "a failed publish is work left");
        report = SweepReport::default();
        assert!(!report.succeeded(), "a pass cut short is not done");
        report.dry_run = true;
        assert!(!report.succeeded(), "nor is a dry run cut short");
    }

    #[test]
    fn the_metrics_carry_the_counts_and_the_age() {
        let report = SweepReport {
            complete: true,
            scanned: 120,
            had_profile: 117,
            store_reads: 2,
            published: 3,
            oldest_unreconciled_seconds: Some(61),
            ..Default::default()
        };
        let json = report.metrics().to_json();
        assert_eq!(json["Service"], "reconciler");
        assert_eq!(json["UsersScanned"], 120.0);
        assert_eq!(json["HadProfile"], 117.0);
        assert_eq!(json["StoreReads"], 2.0);
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
