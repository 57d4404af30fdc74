//! The orphan sweep (issue 22): the safety net behind the worker's CloudTrail path for deleted
//! users. It is the audit's comparison ([`crate::audit`]) with every orphan kept: list the users
//! of every configured pool (any status: a profile whose user exists in any status is never an
//! orphan), scan every item of the profile store (DataStore tombstones apart:
//! [`crate::profile_scan`]), and take the profiles whose id is no listed user. Each of those goes
//! through the worker's own [`Lifecycle::erase`], which asks Cognito once more (`ListUsers` on
//! the `sub`, paced by `USER_LOOKUP_RPS`) and refuses while the user exists, removes the profile
//! through the store port, and publishes `UserDeleted` (`detectedBy: sweep`, and
//! `ProfileDeleted` where profiles are announced). So a gap in the listing (a user who signed up
//! after their page was read, `ListUsers`' eventual consistency) costs one refused erasure,
//! never a live user's profile.
//!
//! **The guard.** A whole-store deletion needs only one wrong variable (`USER_POOL_ID` naming
//! another pool, a staging pool, a pool id with a typo that another account owns) or a listing
//! that came back short; the per-sub re-check does not help when the pool it asks is the wrong
//! one. So before erasing anything the sweep judges the comparison ([`guard`]) and refuses —
//! deletes nothing, exits 2, says why — when:
//!
//! 1. **no user of a counted status was listed** while the store holds profiles (an empty or
//!    wrong pool);
//! 2. **fewer users were listed than half the profiles**: every counted user has one profile,
//!    so a healthy pool lists at least as many users as there are profiles less the orphans;
//!    half is far below anything a sweep can meet honestly and far above a listing cut short
//!    or a small wrong pool, and it still holds for small pools, where the orphan limit's floor
//!    of 10 would allow erasing every profile;
//! 3. **more than half of the profiles would be erased**: no plausible rate of deletions between
//!    sweeps comes near it (the CloudTrail path erases deleted users within seconds; a sweep
//!    only meets what that path missed), while a pool of the wrong app or a wrong id mapping
//!    makes nearly every profile an orphan. Not liftable: a store that is mostly orphans is a
//!    decommissioning, for a person;
//! 4. **more orphans than the limit**: `max(10, 1% of the live profiles)` by default, or
//!    `--max-orphans N`. The first sweep after issue 22's deployment may meet every deletion
//!    since the pipeline began: read the dry run's list, then run with `--max-orphans` set to
//!    its count.
//!
//! **Cost, and who runs it.** The whole pool is listed (`ListUsers`, 60 users a call, at
//! `LIST_USERS_RPS`: 5 calls/s by default, 1 million users in 56 min; 9.3 min at the quota's 30
//! per second, docs/benchmarks.md §11; 24 bytes a user in memory, 16 more per orphan), every
//! store item is read (1,000 a page, 5 pages a second: 1 million in 200 s), then one
//! `ListUsers`, one store write and one `PutEvents` per orphan at `USER_LOOKUP_RPS` (5/s by
//! default: the 1% limit of a million profiles, 10,000 orphans, in about 33 min). The
//! comparison cannot be resumed (the listing is held in memory, not in the reconciler's
//! state), so a sweep must finish within one process: `uc-ops reconcile --orphans` on a host,
//! or one invocation of the scheduled reconciler (15 minutes: listing and scan fit for about
//! 240,000 users at the default pace, 1.1 million at 30/s; the erasures take what is left),
//! which runs it when the payload asks (`{"orphans": ...}`) with its own role, the one the
//! bus admits for `UserDeleted` besides the worker's.
//! The template and the construct schedule it weekly (`OrphanSweepSchedule`, with that
//! payload): the CloudTrail path erases deleted users within seconds, so the sweep only meets
//! what that path missed; a pool too large for one invocation disables the schedule and runs
//! `uc-ops reconcile --orphans` (docs/runbook.md).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

mod run;

pub use run::{
    ErasureFailure, Erasures, OrphanError, OrphanSweep, SCAN_PAGE_SIZE, SCAN_RATE, Survey,
    SurveyOptions, SweepRequest, erase_all, survey,
};

/// The orphan limit's floor: a small store may lose this many profiles to a sweep.
pub const MIN_ORPHAN_LIMIT: u64 = 10;

/// The orphan limit's share of the live profiles, in percent.
pub const ORPHAN_LIMIT_PERCENT: u64 = 1;

/// After this many erasures in a row failed, the sweep stops: the store or the bus is refusing
/// every call (a missing permission, an outage), and the rest would fail alike.
pub const STOP_AFTER_FAILURES_IN_A_ROW: u32 = 5;

/// One erasure's time: its `ListUsers`, store write and `PutEvents`, retries included.
pub const ERASURE_DEADLINE: Duration = Duration::from_secs(30);

/// Failed erasures (and subs left standing) listed in a report at most; the counts are exact.
pub const LISTED_SUBS: usize = 1_000;

/// The default orphan limit for `profiles` live profiles.
pub fn default_limit(profiles: u64) -> u64 {
    MIN_ORPHAN_LIMIT.max(profiles * ORPHAN_LIMIT_PERCENT / 100)
}

/// What the guard judges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardInput {
    /// Live profiles in the store.
    pub profiles: u64,
    /// Profiles whose id is no listed user (with a sub or not).
    pub orphans: u64,
    /// Users listed, every status.
    pub users_listed: u64,
    /// Users listed whose status is counted (`RECONCILE_STATUSES`).
    pub users_counted: u64,
}

/// Why a sweep erased nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "no user of a counted status was listed while the store holds {profiles} profiles: a wrong or empty pool (USER_POOL_ID), or a listing that came back empty"
    )]
    EmptyListing { profiles: u64 },
    #[error(
        "only {listed} users were listed for {profiles} profiles (fewer than half): a wrong pool, or a listing cut short"
    )]
    ShortListing { listed: u64, profiles: u64 },
    #[error(
        "{orphans} of the {profiles} profiles have no user in the pool (more than half): a wrong pool or a wrong id mapping; a sweep never erases most of the store"
    )]
    MostlyOrphaned { orphans: u64, profiles: u64 },
    #[error(
        "{orphans} orphaned profiles are more than the limit of {limit} ({why}): check the dry run's list, then raise --max-orphans to erase them"
    )]
    TooManyOrphans {
        orphans: u64,
        limit: u64,
        why: String,
    },
}

impl Refusal {
    /// A stable code for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyListing { .. } => "EmptyListing",
            Self::ShortListing { .. } => "ShortListing",
            Self::MostlyOrphaned { .. } => "MostlyOrphaned",
            Self::TooManyOrphans { .. } => "TooManyOrphans",
        }
    }
}

/// The guard: `Ok(limit)` when a sweep may erase the orphans (at most `limit`), or why not.
/// `max_orphans` replaces the default limit ([`default_limit`]); nothing lifts the other
/// rules (see the module's notes).
pub fn guard(input: GuardInput, max_orphans: Option<u64>) -> Result<u64, Refusal> {
    let limit = max_orphans.unwrap_or_else(|| default_limit(input.profiles));
    let GuardInput {
        profiles,
        orphans,
        users_listed,
        users_counted,
    } = input;
    if orphans == 0 {
        return Ok(limit);
    }
    if users_counted == 0 {
        return Err(Refusal::EmptyListing { profiles });
    }
    if users_listed.saturating_mul(2) < profiles {
        return Err(Refusal::ShortListing {
            listed: users_listed,
            profiles,
        });
    }
    if orphans.saturating_mul(2) > profiles {
        return Err(Refusal::MostlyOrphaned { orphans, profiles });
    }
    if orphans > limit {
        let why = match max_orphans {
            Some(_) => "--max-orphans".to_owned(),
            None => format!(
                "the default, max({MIN_ORPHAN_LIMIT}, {ORPHAN_LIMIT_PERCENT}% of {profiles} profiles)"
            ),
        };
        return Err(Refusal::TooManyOrphans {
            orphans,
            limit,
            why,
        });
    }
    Ok(limit)
}

/// The guard's verdict as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardVerdict {
    pub allowed: bool,
    /// The orphan limit applied.
    pub limit: u64,
    /// The refusal's code ([`Refusal::code`]).
    pub refusal: Option<&'static str>,
    pub reason: Option<String>,
}

impl GuardVerdict {
    pub fn of(verdict: &Result<u64, Refusal>, input: GuardInput, max: Option<u64>) -> Self {
        match verdict {
            Ok(limit) => Self {
                allowed: true,
                limit: *limit,
                refusal: None,
                reason: None,
            },
            Err(refusal) => Self {
                allowed: false,
                limit: max.unwrap_or_else(|| default_limit(input.profiles)),
                refusal: Some(refusal.code()),
                reason: Some(refusal.to_string()),
            },
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrphanReport {
    pub dry_run: bool,
    pub user_pool_ids: Vec<String>,
    /// What was scanned ("AppSync listUserProfiles", "DynamoDB table …").
    pub store: String,
    pub users_listed: u64,
    pub users_by_status: BTreeMap<String, u64>,
    /// Users of a counted status.
    pub users_counted: u64,
    /// Live profiles.
    pub profiles: u64,
    /// DataStore tombstones: not profiles, not orphans.
    pub tombstones: u64,
    /// Profiles whose id is no listed user.
    pub orphans: u64,
    /// Of `orphans`, those whose id is not a sub: never erased, left for a person.
    pub orphans_not_subs: u64,
    pub guard: GuardVerdict,
    /// The orphans' subs: every one when the guard allowed the sweep, else the first `--show`.
    pub orphan_subs: Vec<String>,
    /// Set unless a dry run or a refusal.
    pub erasures: Option<Erasures>,
    pub seconds: f64,
}

impl OrphanReport {
    /// The sweep's EMF record (the scheduled reconciler's, `Service=reconciler`).
    pub fn metrics(&self) -> uc_runtime::metrics::MetricsRecord {
        let e = self.erasures.clone().unwrap_or_default();
        let mut metrics = uc_runtime::metrics::MetricsRecord::new("reconciler");
        metrics
            .count("OrphansFound", self.orphans)
            .count("OrphansErased", e.erased)
            .count("OrphansAlreadyGone", e.already_gone)
            .count("OrphansUserExists", e.user_exists)
            .count("OrphanErasuresFailed", e.failed)
            .count("OrphanErasuresNotAttempted", e.not_attempted)
            .count("OrphanSweepsRefused", u64::from(!self.guard.allowed))
            .property("OrphanSweepDryRun", self.dry_run);
        metrics
    }

    /// 0 every orphan handled (a dry run: the guard would allow it); 1 some erasures failed or
    /// were not attempted, or some orphans' ids are not subs (a person must look); 2 the guard
    /// refused: nothing was deleted.
    pub fn exit_code(&self) -> u8 {
        if !self.guard.allowed {
            return 2;
        }
        if self.dry_run {
            return 0;
        }
        let left = self
            .erasures
            .as_ref()
            .is_some_and(|e| e.failed > 0 || e.not_attempted > 0);
        if left || self.orphans_not_subs > 0 {
            1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests;
