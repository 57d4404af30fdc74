//! `uc-ops audit`: the arguments, the run and the output of the users-versus-profiles check.
//! The listing and the comparison are `uc_ops::audit`'s, the profiles are read from the store
//! the worker writes (`PROFILE_STORE`). Exit status: 0 clean (no profile missing, none orphaned,
//! no owner mismatch), 1 something found, 2 the audit could not tell (a listing failed).

use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use clap::Args;
use uc_ops::audit::{self, AuditOptions, AuditReport, DEFAULT_STATUSES};
use uc_ops::profile_scan::ConfiguredScan;
use uc_worker::{EndpointSetting, ProfileTable, StoreSetting};

use super::{Outcome, Ui, positive_rate, terminal_safe_lines, to_json};

#[derive(Args)]
#[command(
    after_help = "Exit status: 0 every user judged has a profile, no profile is orphaned (its user gone) and every owner matches; 1 something of these was found; 2 the audit could not tell (a listing failed)."
)]
pub struct AuditArgs {
    #[arg(long, env = "USER_POOL_ID")]
    user_pool_id: String,
    /// Also count users who still have to replace an administrator's temporary password
    /// (FORCE_CHANGE_PASSWORD).
    #[arg(long)]
    include_force_change_password: bool,
    /// Also count users whose password an administrator reset (RESET_REQUIRED).
    #[arg(long)]
    include_reset_required: bool,
    /// Count exactly these account statuses (comma-separated, any case; UNCONFIRMED, CONFIRMED,
    /// ARCHIVED, COMPROMISED, UNKNOWN, RESET_REQUIRED, FORCE_CHANGE_PASSWORD, EXTERNAL_PROVIDER)
    /// [default: CONFIRMED,EXTERNAL_PROVIDER].
    #[arg(long, value_delimiter = ',', value_parser = one_status,
          conflicts_with_all = ["include_force_change_password", "include_reset_required"])]
    status: Vec<String>,
    /// Users changed within this many seconds are not judged: their profile may be on its way.
    #[arg(long, default_value_t = 300)]
    grace_seconds: u64,
    /// Cognito ListUsers pages (60 users each) per second, at most. ListUsers counts against the
    /// account's UserList quota (30/s by default, per Region), shared with the reconciler.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 20.0, value_parser = positive_rate, allow_negative_numbers = true)]
    list_rate: f64,
    /// AppSync listUserProfiles pages per second, at most (each page is a DynamoDB Scan).
    #[arg(long, value_name = "PER_SECOND", default_value_t = 5.0, value_parser = positive_rate, allow_negative_numbers = true)]
    scan_rate: f64,
    /// Profiles per listUserProfiles page.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    page_size: u32,
    /// Subs (or profile ids) listed per kind.
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Where the profiles are: the worker's PROFILE_STORE (appsync: listUserProfiles on the
    /// API; dynamodb: a Scan of PROFILE_TABLE).
    #[arg(long, env = "PROFILE_STORE", default_value = "appsync",
          value_parser = ["appsync", "dynamodb"])]
    profile_store: String,
    /// The model table, with --profile-store dynamodb (the worker's PROFILE_TABLE).
    #[arg(long, env = "PROFILE_TABLE")]
    profile_table: Option<String>,
    #[arg(long, env = "APPSYNC_GRAPHQL_URL")]
    appsync_graphql_url: Option<String>,
    #[arg(long, env = "APPSYNC_API_ID")]
    appsync_api_id: Option<String>,
    #[arg(long)]
    pub json: bool,
}

impl Outcome for AuditReport {
    /// Nothing found: no user judged is without a profile, no orphan, no owner mismatch.
    fn succeeded(&self) -> bool {
        AuditReport::succeeded(self)
    }
}

/// One `--status` value, checked and upper-cased as the back-fill's and the reconciler's are.
fn one_status(text: &str) -> Result<String, String> {
    let mut statuses = audit::parse_statuses(text)?;
    Ok(statuses.remove(0))
}

impl AuditArgs {
    fn statuses(&self) -> Vec<String> {
        if !self.status.is_empty() {
            return self.status.clone();
        }
        let mut statuses: Vec<String> = DEFAULT_STATUSES.iter().map(|s| s.to_string()).collect();
        if self.include_force_change_password {
            statuses.push("FORCE_CHANGE_PASSWORD".into());
        }
        if self.include_reset_required {
            statuses.push("RESET_REQUIRED".into());
        }
        statuses
    }

    fn store(&self) -> anyhow::Result<StoreSetting> {
        if self.profile_store == "dynamodb" {
            let name = self.profile_table.clone().context(
                "the profile table is not configured: set PROFILE_TABLE (or --profile-table)",
            )?;
            return Ok(StoreSetting::DynamoDb(ProfileTable {
                name,
                typename: String::new(),
            }));
        }
        Ok(StoreSetting::AppSync(
            match (&self.appsync_graphql_url, &self.appsync_api_id) {
                (Some(url), _) => EndpointSetting::Url(url.clone()),
                (None, Some(id)) => EndpointSetting::ApiId(id.clone()),
                (None, None) => anyhow::bail!(
                    "the profile API is not configured: set APPSYNC_GRAPHQL_URL or APPSYNC_API_ID"
                ),
            },
        ))
    }
}

pub async fn run(args: &AuditArgs, sdk: &SdkConfig) -> anyhow::Result<AuditReport> {
    let ui = Ui::new(args.json);
    let options = AuditOptions {
        user_pool_id: args.user_pool_id.clone(),
        statuses: args.statuses(),
        grace: Duration::from_secs(args.grace_seconds),
        list_rate: args.list_rate,
        scan_rate: args.scan_rate,
        page_size: args.page_size,
        show: args.show,
    };
    // With the caller's own credentials: the audit needs only appsync:GraphQL on
    // Query/fields/listUserProfiles (or dynamodb:Scan on the table), never the worker's role.
    let profiles = ConfiguredScan::build(&args.store()?, sdk)
        .await
        .context("audit unknown")?;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(sdk);
    let estimate = audit::estimated_users(&cognito, &options.user_pool_id).await;
    ui.announce(&terminal_safe_lines(&format!(
        "Auditing pool {} against {} (statuses {}; users changed in the last {} s not judged): users at {}/s pages, then profiles at {}/s pages",
        options.user_pool_id,
        profiles.describe(),
        options.statuses.join(","),
        options.grace.as_secs(),
        options.list_rate,
        options.scan_rate,
    )));
    let users_bar = ui.bar("users", estimate);
    let profiles_bar = ui.progress("profiles");
    let report = audit::run(
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
    .context("audit unknown")?;
    users_bar.finish_and_clear();
    profiles_bar.finish_and_clear();
    Ok(report)
}

pub fn render(report: &AuditReport, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let f = &report.findings;
    let statuses = super::status_counts(&report.users_by_status);
    let mut out = format!(
        "pool {}: {} users listed ({}); {} counted ({}), {} changed in the last {} s not judged\n\
         profiles {}{}, missing {}, orphaned {}, owner mismatches {}\n",
        report.user_pool_id,
        report.users_listed,
        statuses,
        report.users_counted,
        report.statuses.join(","),
        report.users_recent,
        report.grace_seconds,
        f.profiles,
        if f.tombstones > 0 {
            format!(
                " (and {} DataStore tombstones: removed profiles, not counted)",
                f.tombstones
            )
        } else {
            String::new()
        },
        f.missing,
        f.orphaned,
        f.owner_mismatch,
    );
    let list = |out: &mut String, what: &str, total: u64, items: &[String]| {
        if total > 0 {
            out.push_str(&format!(
                "{what} ({total}{}): {}\n",
                if (items.len() as u64) < total {
                    format!(", first {}", items.len())
                } else {
                    String::new()
                },
                // A profile id is whatever was written: each on its value's line.
                items
                    .iter()
                    .map(|item| uc_ops::text::terminal_safe(item))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    };
    list(
        &mut out,
        "users without a profile",
        f.missing,
        &f.missing_subs,
    );
    list(
        &mut out,
        "profiles without a user",
        f.orphaned,
        &f.orphaned_ids,
    );
    list(
        &mut out,
        "profiles whose profileOwner is not <sub>::<username> (or <username>)",
        f.owner_mismatch,
        &f.owner_mismatch_ids,
    );
    if report.users_unreadable > 0 {
        out.push_str(&format!(
            "{} users with a sub that is not a UUID were not compared\n",
            report.users_unreadable
        ));
    }
    if f.missing > 0 {
        out.push_str(
            "MISSING profiles: a reconcile pass or a back-fill publishes them (uc-ops reconcile, uc-ops backfill), see docs/runbook.md\n",
        );
    }
    if f.orphaned > 0 {
        out.push_str(&format!(
            "ORPHANED profiles: {} profile(s) whose user is not in the pool (deleted, or another pool's): `uc-ops reconcile --orphans --dry-run` lists what the orphan sweep would erase, see docs/runbook.md\n",
            f.orphaned
        ));
    }
    if f.owner_mismatch > 0 {
        out.push_str(&format!(
            "OWNER MISMATCHES: {} profile(s) whose profileOwner does not name its user, see docs/runbook.md\n",
            f.owner_mismatch
        ));
    }
    if report.succeeded() {
        out.push_str(&format!(
            "OK: each of the {} users judged has a profile ({} changed too recently to judge), no profile is orphaned, every owner matches\n",
            report.users_counted, report.users_recent
        ));
    }
    Ok(terminal_safe_lines(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_ops::audit::Findings;

    fn report(missing: u64) -> AuditReport {
        AuditReport {
            user_pool_id: "us-east-1_Pool".into(),
            statuses: vec!["CONFIRMED".into()],
            grace_seconds: 300,
            users_listed: 3,
            users_by_status: [("CONFIRMED".to_owned(), 3)].into_iter().collect(),
            users_counted: 3,
            users_recent: 0,
            users_unreadable: 0,
            findings: Findings {
                profiles: 3 - missing,
                missing,
                missing_subs: (0..missing).map(|i| format!("sub-{i}")).collect(),
                ..Default::default()
            },
            index_bytes: 72,
            seconds: 0.1,
        }
    }

    #[test]
    fn statuses_take_any_case_and_refuse_unknown_ones() {
        assert_eq!(one_status("confirmed").as_deref(), Ok("CONFIRMED"));
        assert_eq!(
            one_status("External_Provider").as_deref(),
            Ok("EXTERNAL_PROVIDER")
        );
        assert!(
            one_status("ACTIVE")
                .unwrap_err()
                .contains("not a Cognito user status")
        );
        assert!(one_status("").is_err());
    }

    #[test]
    fn missing_profiles_fail_the_audit() {
        assert!(Outcome::succeeded(&report(0)));
        assert!(!Outcome::succeeded(&report(2)));
        let text = render(&report(2), false).unwrap();
        assert!(
            text.contains("users without a profile (2): sub-0 sub-1"),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&report(2), true).unwrap()).unwrap();
        assert_eq!(json["missing"], 2);
        assert_eq!(json["missing_subs"][1], "sub-1");
    }

    /// Orphaned profiles (users deleted) are reported and fail the audit: it printed "OK" and
    /// exited 0 with 14 of them.
    #[test]
    fn orphans_are_reported_never_ok() {
        let mut orphans = report(0);
        orphans.findings.orphaned = 14;
        orphans.findings.orphaned_ids = vec![
            "0b7c4f9e-0000-4000-8000-000000000001".into(),
            // A profile id is whatever was written, even a forged verdict.
            "x\nOK: every counted user has a profile".into(),
        ];
        assert!(!Outcome::succeeded(&orphans));
        let text = render(&orphans, false).unwrap();
        assert!(text.contains("ORPHANED profiles: 14"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("OK")), "{text}");
        assert!(text.contains("x\\u{a}OK: every"), "{text}");
        let mut mismatched = report(0);
        mismatched.findings.owner_mismatch = 1;
        assert!(!Outcome::succeeded(&mismatched));
        assert!(
            render(&mismatched, false)
                .unwrap()
                .contains("OWNER MISMATCHES: 1")
        );
    }

    /// The verdict says how many users it judged and how many were too recent to judge (it
    /// said "every counted user has a profile" having judged no one).
    #[test]
    fn ok_says_how_many_were_judged() {
        let mut recent = report(0);
        recent.users_counted = 0;
        recent.users_recent = 7;
        let text = render(&recent, false).unwrap();
        assert!(
            text.contains(
                "OK: each of the 0 users judged has a profile (7 changed too recently to judge)"
            ),
            "{text}"
        );
    }
}
