//! Running the orphan sweep: the comparison ([`survey`]), the erasures ([`erase_all`]) and the
//! whole sweep as `uc-ops reconcile --orphans` and `uc-reconciler` run it ([`OrphanSweep`]).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use serde::Serialize;
use tokio::time::Instant;
use uc_worker::bus::EventSink;
use uc_worker::lifecycle::{Handled, Lifecycle, LifecycleFailure};
use uc_worker::pool_users::PoolDirectory;
use uc_worker::{ConfiguredStore, ProfileStore, SqsDeadLetters, Worker, WorkerConfig};

use super::{
    ERASURE_DEADLINE, GuardVerdict, LISTED_SUBS, OrphanReport, STOP_AFTER_FAILURES_IN_A_ROW, guard,
};
use crate::audit::{self, AuditError, AuditOptions, Comparison, Findings, Orphans, Users};
use crate::profile_scan::{ConfiguredScan, ProfileScan, ScanPace};

#[derive(Debug, thiserror::Error)]
pub enum OrphanError {
    #[error("the worker's configuration (the sweep erases through the worker's lifecycle): {0}")]
    Config(#[from] uc_runtime::ConfigError),
    #[error(
        "EVENT_BUS_NAME is not set: the orphan sweep erases through the worker's lifecycle, which publishes UserDeleted on the pipeline's bus"
    )]
    LifecycleOff,
    #[error("the profile store: {0}")]
    Store(#[from] uc_worker::WorkerError),
    #[error("pool {pool}: {source}")]
    Listing { pool: String, source: AuditError },
    #[error(transparent)]
    Scan(#[from] crate::profile_scan::ScanError),
    #[error(
        "the listing and the scan did not finish in time ({users} users listed, {profiles} store items read): nothing was erased; the pool is too large for one invocation, run `uc-ops reconcile --orphans` from a host"
    )]
    OutOfTime { users: u64, profiles: u64 },
}

/// How the comparison reads.
#[derive(Debug, Clone)]
pub struct SurveyOptions {
    /// Every pool whose users have profiles (`USER_POOL_ID`).
    pub pools: Vec<String>,
    /// Counted statuses (`RECONCILE_STATUSES`): the guard's "users of a counted status".
    pub statuses: Vec<String>,
    pub list_rate: f64,
    pub scan_rate: f64,
    pub page_size: u32,
    /// Orphan ids the findings list (redacted) besides the kept subs.
    pub show: usize,
}

/// The comparison, every orphan kept.
#[derive(Debug)]
pub struct Survey {
    pub users_listed: u64,
    pub users_by_status: BTreeMap<String, u64>,
    pub users_counted: u64,
    pub findings: Findings,
    pub orphans: Orphans,
}

impl Survey {
    pub fn guard_input(&self) -> super::GuardInput {
        super::GuardInput {
            profiles: self.findings.profiles,
            orphans: self.findings.orphaned,
            users_listed: self.users_listed,
            users_counted: self.users_counted,
        }
    }
}

/// Lists every pool's users, then scans the store: the orphans, every one of them.
pub async fn survey(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    profiles: &impl ProfileScan,
    options: &SurveyOptions,
    estimate: Option<u64>,
    mut users_progress: impl FnMut(u64),
    mut profiles_progress: impl FnMut(u64),
) -> Result<Survey, OrphanError> {
    let now = chrono::Utc::now();
    let capacity = estimate.map_or(0, |n| (n + n / 16 + 64) as usize);
    let mut users = Users::with_capacity(capacity);
    for pool in &options.pools {
        let listing = AuditOptions {
            user_pool_id: pool.clone(),
            statuses: options.statuses.clone(),
            // Every user is in the index whatever their age; the grace only spares the
            // "missing" judgement, which the sweep does not make.
            grace: Duration::ZERO,
            list_rate: options.list_rate,
            scan_rate: options.scan_rate,
            page_size: options.page_size,
            show: options.show,
        };
        audit::list_users(cognito, &listing, &mut users, now, &mut users_progress)
            .await
            .map_err(|source| OrphanError::Listing {
                pool: pool.clone(),
                source,
            })?;
    }
    let users_listed = users.listed;
    let users_by_status = users.by_status.clone();
    let users_counted = users.counted + users.recent;
    let mut comparison = Comparison::new(users, options.show).keeping_orphans();
    let pace = ScanPace {
        page_size: options.page_size,
        pages_per_second: options.scan_rate,
    };
    profiles
        .scan(
            pace,
            &mut |item| comparison.item(item),
            &mut profiles_progress,
        )
        .await?;
    let (findings, orphans) = comparison.finish_with_orphans();
    Ok(Survey {
        users_listed,
        users_by_status,
        users_counted,
        findings,
        orphans,
    })
}

/// One erasure that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureFailure {
    pub sub: String,
    /// `ListUsers`, `profile removal` or `PutEvents` (then the profile is gone but its
    /// `UserDeleted` was not published).
    pub stage: String,
    /// The failure's code (an AWS error code, `Timeout`, ...).
    pub code: String,
    /// A later sweep may succeed.
    pub retryable: bool,
}

/// What the erasures came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erasures {
    /// The user was gone and the profile removed (`UserDeleted` published).
    pub erased: u64,
    /// The user was gone and the profile too, by the time the sweep came (`UserDeleted`
    /// published all the same).
    pub already_gone: u64,
    /// Cognito still has the user: nothing was deleted (a listing gap, or a sign-up during the
    /// sweep).
    pub user_exists: u64,
    pub failed: u64,
    /// Left when the sweep stopped early (`stopped` says why).
    pub not_attempted: u64,
    /// Why the sweep stopped before the last orphan: `FailuresInARow` (the store or Cognito
    /// refusing every call), `UserDeletedNotPublished` (the bus refused: every further erasure
    /// would remove a profile without its event), `Deadline`.
    pub stopped: Option<&'static str>,
    /// The first [`LISTED_SUBS`] of `user_exists`.
    pub user_exists_subs: Vec<String>,
    /// The first [`LISTED_SUBS`] of `failed`.
    pub failures: Vec<ErasureFailure>,
}

/// Erases each of `subs` through the lifecycle, one at a time (its `ListUsers` pacer sets the
/// pace), starting none that could not finish before `deadline`; `progress` hears the count
/// done after each.
pub async fn erase_all<P: PoolDirectory, B: EventSink, S: ProfileStore>(
    lifecycle: &Lifecycle<P, B>,
    store: &S,
    subs: impl IntoIterator<Item = String>,
    deadline: Option<Instant>,
    mut progress: impl FnMut(u64),
) -> Erasures {
    let mut done = Erasures::default();
    let mut in_a_row = 0;
    let mut count = 0;
    for sub in subs {
        if done.stopped.is_none() {
            if in_a_row >= STOP_AFTER_FAILURES_IN_A_ROW {
                done.stopped = Some("FailuresInARow");
            } else if deadline.is_some_and(|d| Instant::now() + ERASURE_DEADLINE > d) {
                done.stopped = Some("Deadline");
            }
        }
        if done.stopped.is_some() {
            done.not_attempted += 1;
            continue;
        }
        let own = Instant::now() + ERASURE_DEADLINE;
        let bound = Some(deadline.map_or(own, |d| d.min(own)));
        match lifecycle.erase(store, &sub, bound).await {
            Ok(Handled::Erased { profile_removed }) => {
                in_a_row = 0;
                tracing::info!(sub = %sub, profile_removed, "orphan sweep: user gone, UserDeleted published");
                if profile_removed {
                    done.erased += 1;
                } else {
                    done.already_gone += 1;
                }
            }
            Ok(other) => {
                // `erase` answers nothing else; counted as a failure rather than assumed.
                in_a_row += 1;
                done.failed += 1;
                push_listed(
                    &mut done.failures,
                    ErasureFailure {
                        sub,
                        stage: "lifecycle".into(),
                        code: other.code().to_owned(),
                        retryable: false,
                    },
                );
            }
            Err(LifecycleFailure::UserStillExists { .. }) => {
                in_a_row = 0;
                tracing::info!(sub = %sub, "orphan sweep: the user exists, profile kept");
                done.user_exists += 1;
                push_listed(&mut done.user_exists_subs, sub);
            }
            Err(LifecycleFailure::Failed { stage, failure }) => {
                in_a_row += 1;
                let retryable = failure.is_retryable();
                tracing::warn!(sub = %sub, stage, code = %failure.code, retryable, "orphan sweep: erasure failed");
                // The profile is gone and the bus refused its event (after the bus edge's own
                // retries): another erasure would do the same, and a later sweep no longer
                // sees this one. Stop at once; the report names the sub.
                if stage == "PutEvents" {
                    done.stopped = Some("UserDeletedNotPublished");
                }
                done.failed += 1;
                push_listed(
                    &mut done.failures,
                    ErasureFailure {
                        sub,
                        stage: stage.to_owned(),
                        code: failure.code,
                        retryable,
                    },
                );
            }
        }
        count += 1;
        progress(count);
    }
    done
}

fn push_listed<T>(list: &mut Vec<T>, item: T) {
    if list.len() < LISTED_SUBS {
        list.push(item);
    }
}

/// What one sweep is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepRequest {
    pub dry_run: bool,
    /// The orphan limit instead of the default ([`super::default_limit`]).
    pub max_orphans: Option<u64>,
    /// Nothing is erased unless the listing and the scan end before it; no erasure starts that
    /// could not end before it.
    pub deadline: Option<Instant>,
    /// Orphan subs a refused report lists.
    pub show_refused: usize,
}

/// The sweep as the worker's variables configure it: the pools, the store and the bus are the
/// worker's (`USER_POOL_ID`, `PROFILE_STORE` and the store's, `EVENT_BUS_NAME`, `EVENT_SOURCE`,
/// `RECONCILE_STATUSES`, `USER_LOOKUP_RPS`, `PROFILE_CREATED_EVENTS`), so it reads and erases
/// exactly where the worker writes.
pub struct OrphanSweep {
    worker: Worker<ConfiguredStore, SqsDeadLetters>,
    scan: ConfiguredScan,
    cognito: aws_sdk_cognitoidentityprovider::Client,
    bus: String,
    options: SurveyOptions,
}

/// Profiles read per page and pages per second: the audit's defaults (each page is a
/// DynamoDB Scan of up to 1,000 items).
pub const SCAN_PAGE_SIZE: u32 = 1_000;
pub const SCAN_RATE: f64 = 5.0;

impl OrphanSweep {
    /// From the process environment; `list_rate`: `ListUsers` pages per second.
    pub async fn from_env(sdk: &SdkConfig, list_rate: f64) -> Result<Self, OrphanError> {
        let config = WorkerConfig::from_env()?;
        let bus = config
            .lifecycle
            .as_ref()
            .map(|l| l.bus.clone())
            .ok_or(OrphanError::LifecycleOff)?;
        let worker = uc_worker::build_worker(&config, sdk).await?;
        let settings = worker
            .lifecycle()
            .ok_or(OrphanError::LifecycleOff)?
            .settings();
        let options = SurveyOptions {
            pools: settings.pools.clone(),
            statuses: settings.statuses.clone(),
            list_rate,
            scan_rate: SCAN_RATE,
            page_size: SCAN_PAGE_SIZE,
            show: 0,
        };
        Ok(Self {
            scan: ConfiguredScan::build(&config.store, sdk).await?,
            cognito: aws_sdk_cognitoidentityprovider::Client::new(sdk),
            worker,
            bus,
            options,
        })
    }

    pub fn pools(&self) -> &[String] {
        &self.options.pools
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    pub fn list_rate(&self) -> f64 {
        self.options.list_rate
    }

    /// What is scanned, for the operator's line.
    pub fn describe_store(&self) -> String {
        self.scan.describe()
    }

    /// The pools' estimated number of users (`DescribeUserPool`, if allowed).
    pub async fn estimate(&self) -> Option<u64> {
        let mut total = None;
        for pool in &self.options.pools {
            if let Some(n) = audit::estimated_users(&self.cognito, pool).await {
                total = Some(total.unwrap_or(0) + n);
            }
        }
        total
    }

    /// One sweep: the comparison, the guard, and (unless a dry run or refused) the erasures.
    /// `users`, `profiles` hear the counts as the listing and the scan go; `erasing` hears
    /// `(done, total)`.
    pub async fn run(
        &self,
        request: &SweepRequest,
        estimate: Option<u64>,
        users: impl FnMut(u64),
        profiles: impl FnMut(u64),
        mut erasing: impl FnMut(u64, u64),
    ) -> Result<OrphanReport, OrphanError> {
        let started = Instant::now();
        let listed = std::cell::Cell::new(0u64);
        let read = std::cell::Cell::new(0u64);
        let mut users = users;
        let mut profiles = profiles;
        let comparison = survey(
            &self.cognito,
            &self.scan,
            &self.options,
            estimate,
            |n| {
                listed.set(n);
                users(n)
            },
            |n| {
                read.set(n);
                profiles(n)
            },
        );
        let survey = match request.deadline {
            None => comparison.await?,
            Some(deadline) => tokio::time::timeout_at(deadline, comparison)
                .await
                .map_err(|_| OrphanError::OutOfTime {
                    users: listed.get(),
                    profiles: read.get(),
                })??,
        };
        let input = survey.guard_input();
        let verdict = guard(input, request.max_orphans);
        let allowed = verdict.is_ok();
        let mut report = OrphanReport {
            dry_run: request.dry_run,
            user_pool_ids: self.options.pools.clone(),
            store: self.scan.describe(),
            users_listed: survey.users_listed,
            users_by_status: survey.users_by_status,
            users_counted: survey.users_counted,
            profiles: survey.findings.profiles,
            tombstones: survey.findings.tombstones,
            orphans: survey.findings.orphaned,
            orphans_not_subs: survey.orphans.not_subs,
            guard: GuardVerdict::of(&verdict, input, request.max_orphans),
            orphan_subs: survey
                .orphans
                .subs()
                .take(if allowed {
                    usize::MAX
                } else {
                    request.show_refused
                })
                .collect(),
            erasures: None,
            seconds: 0.0,
        };
        match &verdict {
            Err(refusal) => {
                tracing::warn!(refusal = refusal.code(), orphans = report.orphans, profiles = report.profiles, reason = %refusal, "orphan sweep refused: nothing erased");
            }
            Ok(_) if !request.dry_run => {
                let lifecycle = self.worker.lifecycle().ok_or(OrphanError::LifecycleOff)?;
                let total = survey.orphans.len() as u64;
                let erasures = erase_all(
                    lifecycle,
                    self.worker.store(),
                    survey.orphans.subs(),
                    request.deadline,
                    |n| erasing(n, total),
                )
                .await;
                report.erasures = Some(erasures);
            }
            Ok(_) => {}
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}
