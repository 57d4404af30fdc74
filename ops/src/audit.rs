//! `audit`: are there users without a profile? Lists the pool's users (Cognito `ListUsers`,
//! paced, only the `sub` attribute asked for) and then every profile through a read-only
//! AppSync query (`listUserProfiles`, SigV4-signed with the caller's own credentials), and
//! compares: users without a profile (missing), profiles without a user (orphaned), and
//! profiles whose `profileOwner` is not `"<sub>::<username>"` (or, as Amplify's owner-field
//! resolver returns it, `"<username>"`: the part after `::`).
//!
//! Memory is bounded for a pool of ten million users: only the users are held, 24 bytes each
//! (the `sub` as 128 bits, a 63-bit hash of the username for the owner check and one bit for
//! "counted"), in one sorted vector; profiles stream past page by page and mark what they
//! found in a bitset (one bit per user). No username, email or owner string is kept. The
//! orphan sweep ([`crate::orphans`]) also keeps every orphan's `sub` (16 bytes each).
//!
//! DataStore tombstones (items with `_deleted = true`, see [`crate::profile_scan`]) are
//! counted apart: they are neither profiles nor orphans.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use uc_schemas::is_lowercase_uuid;

use crate::profile_scan::{ProfileScan, ScanPace, Scanned};
use crate::sweep::{Selection, Verdict};
use crate::text::redact;
use crate::user_pages::UserPages;

pub use uc_schemas::counted::{
    ALL_STATUSES, DEFAULT_STATUS_LIST, DEFAULT_STATUSES, parse_statuses,
};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("Cognito {operation}: {message}")]
    Cognito {
        operation: &'static str,
        message: String,
    },
    #[error(transparent)]
    Profiles(#[from] crate::profile_scan::ScanError),
}

const COUNTED: u64 = 1 << 63;

/// One user: 24 bytes (no 16-byte alignment, unlike `u128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UserEntry {
    /// The `sub`'s 128 bits, high half first (so the array order is the UUID order).
    sub: [u64; 2],
    /// Bit 63: counted (a selected status, outside the grace period); bits 0–62: the
    /// username's hash.
    tag: u64,
}

fn sub_bits(sub: &str) -> Option<[u64; 2]> {
    if !is_lowercase_uuid(sub) {
        return None;
    }
    let value = uuid::Uuid::try_parse(sub).ok()?.as_u128();
    Some([(value >> 64) as u64, value as u64])
}

fn sub_text(bits: [u64; 2]) -> String {
    uuid::Uuid::from_u128(((bits[0] as u128) << 64) | bits[1] as u128).to_string()
}

fn username_hash(username: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    username.hash(&mut hasher);
    hasher.finish() & !COUNTED
}

/// The pool's users as the comparison holds them.
#[derive(Debug, Default)]
pub struct Users {
    entries: Vec<UserEntry>,
    pub listed: u64,
    pub by_status: BTreeMap<String, u64>,
    pub counted: u64,
    /// Users of a counted status changed within the grace period: not judged this time.
    pub recent: u64,
    /// Users whose `sub` is not a lowercase UUID (never seen from Cognito): not compared.
    pub unreadable: u64,
}

impl Users {
    /// Room for `users` entries up front (the pool's estimate), so the vector never has to
    /// grow by doubling — which would hold old and new buffers at once.
    pub fn with_capacity(users: usize) -> Self {
        Self {
            entries: Vec::with_capacity(users),
            ..Default::default()
        }
    }

    /// Adds one listed user. `counted`: its status is one the audit judges and it is outside
    /// the grace period; `recent`: a judged status, but inside the grace period.
    pub fn add(&mut self, sub: &str, username: &str, status: &str, counted: bool, recent: bool) {
        self.listed += 1;
        *self.by_status.entry(status.to_owned()).or_default() += 1;
        let Some(bits) = sub_bits(sub) else {
            self.unreadable += 1;
            return;
        };
        if counted {
            self.counted += 1;
        } else if recent {
            self.recent += 1;
        }
        self.entries.push(UserEntry {
            sub: bits,
            tag: username_hash(username) | if counted { COUNTED } else { 0 },
        });
    }

    /// Bytes the users take (the vector's capacity).
    pub fn index_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<UserEntry>()
    }
}

/// Counts, and the first subs or ids of each kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Findings {
    /// Live profiles (tombstones not included).
    pub profiles: u64,
    /// DataStore tombstones (`_deleted = true`): removed profiles the table still holds.
    pub tombstones: u64,
    pub missing: u64,
    pub orphaned: u64,
    pub owner_mismatch: u64,
    pub missing_subs: Vec<String>,
    /// Profile ids (redacted: a profile id is whatever was written).
    pub orphaned_ids: Vec<String>,
    pub owner_mismatch_ids: Vec<String>,
}

/// Every orphan a comparison kept ([`Comparison::keeping_orphans`]): what the orphan sweep
/// erases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Orphans {
    /// The orphans' subs, 16 bytes each, in the order the store listed them.
    subs: Vec<[u64; 2]>,
    /// Orphans whose id is not a `sub` (a lowercase UUID): no user's profile in this pipeline,
    /// never erased by a sweep.
    pub not_subs: u64,
}

impl Orphans {
    /// Orphans with a sub.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The subs, as text.
    pub fn subs(&self) -> impl Iterator<Item = String> + '_ {
        self.subs.iter().map(|bits| sub_text(*bits))
    }
}

/// Users (sorted once) against a stream of profiles.
pub struct Comparison {
    users: Vec<UserEntry>,
    found: Vec<u64>,
    findings: Findings,
    show: usize,
    /// Every orphan, when asked for.
    orphans: Option<Orphans>,
}

impl Comparison {
    /// Sorts `users` by sub (dropping a user listed twice) and starts counting; lists at most
    /// `show` subs or ids of each kind.
    pub fn new(users: Users, show: usize) -> Self {
        let mut entries = users.entries;
        entries.sort_unstable_by_key(|e| e.sub);
        entries.dedup_by_key(|e| e.sub);
        let words = entries.len().div_ceil(64);
        Self {
            users: entries,
            found: vec![0; words],
            findings: Findings::default(),
            show,
            orphans: None,
        }
    }

    /// Keeps every orphan (not only the first `show`), for [`Comparison::finish_with_orphans`].
    pub fn keeping_orphans(mut self) -> Self {
        self.orphans = Some(Orphans::default());
        self
    }

    /// One item of the store: a tombstone is counted apart, a live profile compared.
    pub fn item(&mut self, item: Scanned<'_>) {
        if item.deleted {
            self.findings.tombstones += 1;
        } else {
            self.profile(item.id, item.owner);
        }
    }

    /// Bytes the comparison holds (users and the found-bitset).
    pub fn index_bytes(&self) -> usize {
        self.users.capacity() * std::mem::size_of::<UserEntry>() + self.found.capacity() * 8
    }

    /// One profile.
    pub fn profile(&mut self, id: &str, owner: Option<&str>) {
        self.findings.profiles += 1;
        let index =
            sub_bits(id).and_then(|bits| self.users.binary_search_by_key(&bits, |e| e.sub).ok());
        let Some(index) = index else {
            self.findings.orphaned += 1;
            if self.findings.orphaned_ids.len() < self.show {
                self.findings.orphaned_ids.push(redact(id));
            }
            if let Some(orphans) = &mut self.orphans {
                match sub_bits(id) {
                    Some(bits) => orphans.subs.push(bits),
                    None => orphans.not_subs += 1,
                }
            }
            return;
        };
        self.found[index / 64] |= 1 << (index % 64);
        let expected = self.users[index].tag & !COUNTED;
        // Amplify's read resolvers return an owner field's last `::` part, the username; the
        // id named the sub already.
        let owned = owner.is_some_and(|o| match o.split_once("::") {
            Some((sub, username)) => sub == id && username_hash(username) == expected,
            None => username_hash(o) == expected,
        });
        if !owned {
            self.findings.owner_mismatch += 1;
            if self.findings.owner_mismatch_ids.len() < self.show {
                self.findings.owner_mismatch_ids.push(id.to_owned());
            }
        }
    }

    /// The findings and every orphan (none unless [`Comparison::keeping_orphans`]).
    pub fn finish_with_orphans(mut self) -> (Findings, Orphans) {
        let orphans = self.orphans.take().unwrap_or_default();
        (self.finish(), orphans)
    }

    /// The findings: every counted user no profile named is missing.
    pub fn finish(mut self) -> Findings {
        for (index, user) in self.users.iter().enumerate() {
            let found = self.found[index / 64] & (1 << (index % 64)) != 0;
            if user.tag & COUNTED != 0 && !found {
                self.findings.missing += 1;
                if self.findings.missing_subs.len() < self.show {
                    self.findings.missing_subs.push(sub_text(user.sub));
                }
            }
        }
        self.findings
    }
}

/// What the audit found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditReport {
    pub user_pool_id: String,
    /// The account statuses counted.
    pub statuses: Vec<String>,
    pub grace_seconds: u64,
    pub users_listed: u64,
    pub users_by_status: BTreeMap<String, u64>,
    /// Users judged: a counted status, changed before the grace period.
    pub users_counted: u64,
    /// Users of a counted status changed within the grace period (not judged).
    pub users_recent: u64,
    pub users_unreadable: u64,
    #[serde(flatten)]
    pub findings: Findings,
    /// Memory the comparison held for the users.
    pub index_bytes: u64,
    pub seconds: f64,
}

impl AuditReport {
    /// Nothing found: no user judged is without a profile, no profile is orphaned (its user
    /// gone: reported, never "OK"), every owner matches.
    pub fn succeeded(&self) -> bool {
        let f = &self.findings;
        f.missing == 0 && f.orphaned == 0 && f.owner_mismatch == 0
    }
}

pub struct AuditOptions {
    pub user_pool_id: String,
    pub statuses: Vec<String>,
    /// Users changed (confirmed, say) this recently are not judged: their event may be on its
    /// way.
    pub grace: Duration,
    /// `ListUsers` pages per second, at most.
    pub list_rate: f64,
    /// `listUserProfiles` pages per second, at most.
    pub scan_rate: f64,
    /// Profiles asked for per page.
    pub page_size: u32,
    /// Subs or ids listed per kind.
    pub show: usize,
}

/// The pool's estimated number of users (for the progress bar and the vector's capacity), if
/// the caller may read it (`DescribeUserPool`; optional).
pub async fn estimated_users(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    user_pool_id: &str,
) -> Option<u64> {
    let pool = cognito
        .describe_user_pool()
        .user_pool_id(user_pool_id)
        .send()
        .await
        .ok()?;
    pool.user_pool()
        .map(|p| p.estimated_number_of_users())
        .and_then(|n| u64::try_from(n).ok())
}

/// Lists every user of the pool into `users`, paced; `progress` hears the count so far.
pub async fn list_users(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    options: &AuditOptions,
    users: &mut Users,
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> Result<(), AuditError> {
    let mut pages = UserPages::new(cognito, &options.user_pool_id, &["sub"], options.list_rate);
    let mut token: Option<String> = None;
    // The sweep's selection: the audit judges the users a sweep would look at.
    let grace = chrono::Duration::from_std(options.grace).unwrap_or_default();
    let selection = Selection {
        statuses: options.statuses.clone(),
        settled_before: (!grace.is_zero()).then(|| now - grace),
        ..Default::default()
    };
    loop {
        let page = pages
            .page(token.take())
            .await
            .map_err(|e| AuditError::Cognito {
                operation: "ListUsers",
                message: e.to_string(),
            })?;
        for user in page.users() {
            let status = user.user_status().map(|s| s.as_str()).unwrap_or("UNKNOWN");
            let sub = user
                .attributes()
                .iter()
                .find(|a| a.name() == "sub")
                .and_then(|a| a.value())
                .unwrap_or_default();
            let verdict = selection.judge_user(user);
            users.add(
                sub,
                user.username().unwrap_or_default(),
                status,
                verdict == Verdict::Selected,
                verdict == Verdict::Recent,
            );
        }
        progress(users.listed);
        token = page.pagination_token;
        if token.is_none() {
            return Ok(());
        }
    }
}

/// Runs the whole audit.
pub async fn run(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    profiles: &impl ProfileScan,
    options: &AuditOptions,
    estimate: Option<u64>,
    users_progress: impl FnMut(u64),
    mut profiles_progress: impl FnMut(u64),
) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let now = Utc::now();
    // Room for the estimate and a little growth; a bad estimate only costs a reallocation.
    let capacity = estimate.map_or(0, |n| (n + n / 16 + 64) as usize);
    let mut users = Users::with_capacity(capacity);
    list_users(cognito, options, &mut users, now, users_progress).await?;
    let listed = users.listed;
    let by_status = users.by_status.clone();
    let (counted, recent, unreadable) = (users.counted, users.recent, users.unreadable);
    let mut comparison = Comparison::new(users, options.show);
    let index_bytes = comparison.index_bytes() as u64;
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
    Ok(AuditReport {
        user_pool_id: options.user_pool_id.clone(),
        statuses: options.statuses.clone(),
        grace_seconds: options.grace.as_secs(),
        users_listed: listed,
        users_by_status: by_status,
        users_counted: counted,
        users_recent: recent,
        users_unreadable: unreadable,
        findings: comparison.finish(),
        index_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Peak resident memory of this process (`VmHWM`), in bytes, on Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(n: u128) -> String {
        uuid::Uuid::from_u128(n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)).to_string()
    }

    #[test]
    fn the_status_list_is_the_default_statuses() {
        assert_eq!(
            parse_statuses(DEFAULT_STATUS_LIST).unwrap(),
            DEFAULT_STATUSES
        );
    }

    #[test]
    fn a_user_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<UserEntry>(), 24);
    }

    #[test]
    fn missing_orphaned_and_mismatched_are_told_apart() {
        let mut users = Users::default();
        users.add(&sub(1), "alice", "CONFIRMED", true, false); // has a good profile
        users.add(&sub(2), "bob", "CONFIRMED", true, false); // missing
        users.add(&sub(3), "carol", "CONFIRMED", true, false); // wrong owner
        users.add(&sub(4), "dan", "UNCONFIRMED", false, false); // not counted, no profile
        users.add(&sub(5), "erin", "FORCE_CHANGE_PASSWORD", false, false); // has a profile: not orphaned
        users.add(&sub(6), "fay", "CONFIRMED", false, true); // recent: not judged
        users.add("not-a-uuid", "gus", "CONFIRMED", true, false);
        assert_eq!(
            (users.listed, users.counted, users.recent, users.unreadable),
            (7, 3, 1, 1)
        );
        let mut comparison = Comparison::new(users, 10);
        comparison.profile(&sub(1), Some(&format!("{}::alice", sub(1))));
        comparison.profile(&sub(3), Some(&format!("{}::mallory", sub(3))));
        comparison.profile(&sub(5), Some(&format!("{}::erin", sub(5))));
        comparison.profile(&sub(99), Some("x::y")); // no such user
        comparison.profile("jane@example.com", None); // not even a sub
        let findings = comparison.finish();
        assert_eq!(findings.profiles, 5);
        assert_eq!(findings.missing, 1);
        assert_eq!(findings.missing_subs, vec![sub(2)]);
        assert_eq!(findings.orphaned, 2);
        assert_eq!(
            findings.orphaned_ids,
            vec![sub(99), "<redacted>".to_owned()]
        );
        assert_eq!(findings.owner_mismatch, 1);
        assert_eq!(findings.owner_mismatch_ids, vec![sub(3)]);
    }

    /// A tombstone is no profile: not counted as one, never an orphan, even when its user is
    /// gone (the usual case: the sweep or the worker removed it); every orphan is kept when
    /// asked, beyond `show`.
    #[test]
    fn tombstones_are_counted_apart_and_orphans_kept() {
        let mut users = Users::default();
        users.add(&sub(1), "alice", "CONFIRMED", true, false);
        users.add(&sub(2), "bob", "CONFIRMED", true, false);
        let mut comparison = Comparison::new(users, 1).keeping_orphans();
        let owner = format!("{}::alice", sub(1));
        let item = |comparison: &mut Comparison, id: &str, deleted: bool| {
            comparison.item(Scanned {
                id,
                owner: None,
                deleted,
            })
        };
        comparison.item(Scanned {
            id: &sub(1),
            owner: Some(&owner),
            deleted: false,
        });
        item(&mut comparison, &sub(2), true); // bob's profile was removed: bob is missing
        item(&mut comparison, &sub(50), true); // a removed profile of a deleted user
        item(&mut comparison, &sub(51), false);
        item(&mut comparison, &sub(52), false);
        item(&mut comparison, "jane@example.com", false);
        let (findings, orphans) = comparison.finish_with_orphans();
        assert_eq!(
            (findings.profiles, findings.tombstones, findings.orphaned),
            (4, 2, 3)
        );
        assert_eq!(findings.missing_subs, vec![sub(2)]);
        assert_eq!(findings.orphaned_ids.len(), 1, "the audit lists `show`");
        assert_eq!(orphans.subs().collect::<Vec<_>>(), vec![sub(51), sub(52)]);
        assert_eq!(orphans.not_subs, 1);
    }

    #[test]
    fn an_owner_must_name_the_sub_and_the_username() {
        let mut users = Users::default();
        users.add(&sub(7), "henry", "CONFIRMED", true, false);
        let mut comparison = Comparison::new(users, 10);
        comparison.profile(&sub(7), Some(&format!("{}::henry", sub(8))));
        comparison.profile(&sub(7), None);
        comparison.profile(&sub(7), Some("harry"));
        let findings = comparison.finish();
        assert_eq!(findings.owner_mismatch, 3);
        assert_eq!(findings.missing, 0);
    }

    #[test]
    fn an_owner_read_through_amplify_names_the_username() {
        // Amplify's owner-field resolver answers "henry" for a stored "<sub>::henry".
        let mut users = Users::default();
        users.add(&sub(7), "henry", "CONFIRMED", true, false);
        let mut comparison = Comparison::new(users, 10);
        comparison.profile(&sub(7), Some("henry"));
        let findings = comparison.finish();
        assert_eq!(findings.owner_mismatch, 0);
        assert_eq!(findings.missing, 0);
    }

    #[test]
    fn listing_is_bounded() {
        let mut users = Users::default();
        for n in 0..100 {
            users.add(&sub(n), "u", "CONFIRMED", true, false);
        }
        let findings = Comparison::new(users, 5).finish();
        assert_eq!(findings.missing, 100);
        assert_eq!(findings.missing_subs.len(), 5);
    }

    /// The memory figure in docs/runbook.md: `UC_AUDIT_USERS=10000000 cargo test -p uc-ops
    /// --release --lib -- audit::tests::memory --ignored --nocapture`. Users added one by one
    /// (as the listing does), sorted, then as many profiles streamed past; prints the peak RSS.
    #[test]
    #[ignore = "a measurement: run by hand"]
    fn memory() {
        let n: u128 = std::env::var("UC_AUDIT_USERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let reserve = std::env::var("UC_AUDIT_RESERVE").as_deref() != Ok("0");
        let before = peak_rss_bytes().unwrap_or(0);
        let mut users = if reserve {
            Users::with_capacity(n as usize)
        } else {
            Users::default()
        };
        for i in 0..n {
            users.add(&sub(i), &format!("user-{i}"), "CONFIRMED", true, false);
        }
        let mut comparison = Comparison::new(users, 20);
        let index = comparison.index_bytes();
        for i in 0..n {
            // Every 100th user has no profile.
            if i % 100 != 0 {
                comparison.profile(&sub(i), Some(&format!("{}::user-{i}", sub(i))));
            }
        }
        let findings = comparison.finish();
        assert_eq!(findings.missing as u128, n.div_ceil(100));
        let peak = peak_rss_bytes().unwrap_or(0);
        println!(
            "users {n}, reserved {reserve}: index {:.1} MB, peak RSS {:.1} MB (process before: {:.1} MB)",
            index as f64 / 1e6,
            peak as f64 / 1e6,
            before as f64 / 1e6
        );
    }
}
