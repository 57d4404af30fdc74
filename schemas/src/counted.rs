//! Which users get a profile: the account statuses that count. One list for everyone who
//! judges a user — the audit, the sweeps, and the worker when an administrator's call makes an
//! account (issue 22) — so they never disagree about who should have a profile.

/// Account statuses counted by default: accounts in use (confirmed sign-ups, administrators'
/// users once their password is set, federated users). Users of other statuses are still
/// known, so a profile of theirs is never "orphaned"; docs/runbook.md explains the choice.
pub const DEFAULT_STATUSES: &[&str] = &["CONFIRMED", "EXTERNAL_PROVIDER"];

/// [`DEFAULT_STATUSES`] as a variable or option value: the back-fill and the reconciler select
/// the same accounts the audit counts.
pub const DEFAULT_STATUS_LIST: &str = "CONFIRMED,EXTERNAL_PROVIDER";

/// Every `cognito:user_status` Cognito reports.
pub const ALL_STATUSES: &[&str] = &[
    "UNCONFIRMED",
    "CONFIRMED",
    "ARCHIVED",
    "COMPROMISED",
    "UNKNOWN",
    "RESET_REQUIRED",
    "FORCE_CHANGE_PASSWORD",
    "EXTERNAL_PROVIDER",
];

/// A comma-separated list of `cognito:user_status` values, any case; at least one.
pub fn parse_statuses(text: &str) -> Result<Vec<String>, String> {
    let mut statuses = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let upper = part.to_ascii_uppercase();
        if !ALL_STATUSES.contains(&upper.as_str()) {
            return Err(format!(
                "{part:?} is not a Cognito user status (one of {})",
                ALL_STATUSES.join(", ")
            ));
        }
        if !statuses.contains(&upper) {
            statuses.push(upper);
        }
    }
    if statuses.is_empty() {
        return Err("name at least one status".into());
    }
    Ok(statuses)
}
