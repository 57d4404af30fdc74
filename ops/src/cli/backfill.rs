//! `uc-ops backfill`: the arguments and the run of a back-fill, the sweep's operator mode: every
//! user of the selected statuses (no watermark), published only when the store has no profile
//! for them (`--all`: every one), its place kept in a checkpoint file. The work itself is
//! `uc_ops::sweep`'s; the report is the sweep's (`super::sweep::render`).

use std::path::PathBuf;

use anyhow::Context;
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use clap::Args;
use uc_ops::profile_lookup::{ConfiguredLookup, ProfileLookup};
use uc_ops::publish::{Clients, DEFAULT_RATE, Target};
use uc_ops::reconcile::DEFAULT_LIST_RATE;
use uc_ops::sweep::{PassOptions, Sweep, SweepConfig, SweepReport};
use uc_ops::sweep_state::FileStateStore;
use uc_schemas::Origin;

use super::sweep::{Place, lookup};
use super::{Ui, positive_rate, terminal_safe_lines};

/// Store variables as the worker reads them: PROFILE_STORE, PROFILE_TABLE, APPSYNC_GRAPHQL_URL /
/// APPSYNC_API_ID (e.g. from --env-file): a user is published only when that store has no
/// profile for them.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 the pool was read to its end and every selected user without a profile was published (a dry run: counted to the end); 1 it stopped early (--max-pages: run again to resume from the checkpoint) or some users could not be published; 2 it could not run (the store could not say which users have a profile, Cognito or the checkpoint failed)."
)]
pub struct BackfillArgs {
    #[arg(long, env = "USER_POOL_ID")]
    user_pool_id: String,
    /// Only users created on or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// The cognito:user_status values to select, comma-separated (any case).
    #[arg(long, default_value = uc_ops::audit::DEFAULT_STATUS_LIST)]
    status: String,
    /// Send to the worker's queue (QUEUE_URL) instead of EventBridge.
    #[arg(long)]
    direct: bool,
    #[arg(long, env = "EVENT_BUS_NAME")]
    event_bus: Option<String>,
    #[arg(long, env = "EVENT_SOURCE", default_value = uc_schemas::DEFAULT_SOURCE)]
    source: String,
    #[arg(long, env = "QUEUE_URL")]
    queue_url: Option<String>,
    /// Count what a real run would publish (the store is asked); publish and save nothing.
    #[arg(long)]
    dry_run: bool,
    /// Publish every selected user, with a profile or not (a forced republish: the store is
    /// not asked, and every consumer of UserConfirmed receives them again).
    #[arg(long)]
    all: bool,
    /// Where the next page token is saved; a later run resumes from it.
    #[arg(long, default_value = "backfill.checkpoint.json")]
    checkpoint: PathBuf,
    /// Stop after this many pages (resume later from the checkpoint).
    #[arg(long)]
    max_pages: Option<u64>,
    /// Users per second, at most: a positive number, or `unlimited`. Paced below the worker's
    /// spare capacity, a back-fill builds no backlog for live sign-ups to wait behind: choose a
    /// rate below (worker capacity − peak sign-up rate) (docs/runbook.md, step 4).
    #[arg(
        long,
        value_name = "PER_SECOND|unlimited",
        value_parser = backfill_rate,
        allow_negative_numbers = true,
        default_value_t = Rate::PerSecond(DEFAULT_RATE)
    )]
    rate: Rate,
    #[arg(long)]
    pub json: bool,
}

/// How fast a back-fill may publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Users per second at most (positive, finite).
    PerSecond(f64),
    /// As fast as Cognito and the target take them: only when nothing else uses the worker.
    Unlimited,
}

impl Rate {
    fn per_second(self) -> Option<f64> {
        match self {
            Self::PerSecond(rate) => Some(rate),
            Self::Unlimited => None,
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PerSecond(rate) => write!(f, "{rate}"),
            Self::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// clap's parser for `--rate`: a positive, finite number, or `unlimited`.
fn backfill_rate(text: &str) -> Result<Rate, String> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(Rate::Unlimited);
    }
    positive_rate(text).map(Rate::PerSecond).map_err(|_| {
        format!(
            "{text:?}: a rate is a positive, finite number per second (e.g. 50 or 0.5), or \"unlimited\""
        )
    })
}

/// The back-fill's sweep, its checkpoint and where it publishes.
pub struct Backfill {
    pub sweep: SweepConfig,
    pub checkpoint: PathBuf,
    pub dry_run: bool,
    pub max_pages: Option<u64>,
}

pub async fn run(args: &BackfillArgs, sdk: &SdkConfig) -> anyhow::Result<SweepReport> {
    let ui = Ui::new(args.json);
    let backfill = options(args, sdk)?;
    let lookup = if args.all {
        ConfiguredLookup::NotAsked
    } else {
        lookup(sdk).await?
    };
    ui.announce(&intro(&backfill, &lookup));
    let clients = Clients::new(sdk);
    let state = FileStateStore::new(&backfill.checkpoint);
    let bar = ui.progress("users");
    let report = Sweep {
        clients: &clients,
        state: &state,
        lookup: &lookup,
        config: &backfill.sweep,
    }
    .run(
        &PassOptions {
            dry_run: backfill.dry_run,
            // No watermark to ignore (a back-fill looks at everyone): a saved run resumes.
            full: false,
            deadline: None,
            max_pages: backfill.max_pages,
        },
        |r| bar.set_position(r.scanned),
    )
    .await?;
    bar.finish_and_clear();
    Ok(report)
}

fn options(args: &BackfillArgs, sdk: &SdkConfig) -> anyhow::Result<Backfill> {
    let target = if args.direct {
        Target::Queue {
            url: args
                .queue_url
                .clone()
                .context("--direct needs QUEUE_URL or --queue-url")?,
            source: args.source.clone(),
        }
    } else {
        Target::EventBridge {
            bus: args
                .event_bus
                .clone()
                .context("set EVENT_BUS_NAME or --event-bus (or use --direct)")?,
            source: args.source.clone(),
        }
    };
    Ok(Backfill {
        sweep: SweepConfig {
            user_pool_id: args.user_pool_id.clone(),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
            // Known statuses only, so a typo is not a back-fill of nobody.
            statuses: uc_ops::audit::parse_statuses(&args.status)
                .map_err(|why| anyhow::anyhow!("--status {:?}: {why}", args.status))?,
            origin: Origin::Backfill,
            target,
            publish_rate: args.rate.per_second(),
            list_rate: DEFAULT_LIST_RATE,
            overlap: None,
            grace: std::time::Duration::ZERO,
            created_since: args.since.as_deref().map(parse_since).transpose()?,
            republish: args.all,
        },
        checkpoint: args.checkpoint.clone(),
        dry_run: args.dry_run,
        max_pages: args.max_pages,
    })
}

/// The line a back-fill starts with.
fn intro(backfill: &Backfill, lookup: &impl ProfileLookup) -> String {
    let sweep = &backfill.sweep;
    terminal_safe_lines(&format!(
        "{} users of {} with status {}{}{} to {:?}{}; checkpoint {}",
        if backfill.dry_run {
            "Counting (dry run)"
        } else {
            "Publishing UserConfirmed for"
        },
        sweep.user_pool_id,
        sweep.statuses.join(","),
        sweep
            .created_since
            .map(|s| format!(" created since {s}"))
            .unwrap_or_default(),
        if sweep.republish {
            ", every one (--all),".to_owned()
        } else {
            format!(" without a profile in {}", lookup.describe())
        },
        sweep.target,
        match (backfill.dry_run, sweep.publish_rate) {
            (true, _) => String::new(),
            (false, Some(rate)) => format!(", at most {rate} per second"),
            (false, None) => ", with no rate limit".to_owned(),
        },
        backfill.checkpoint.display()
    ))
}

pub fn render(report: &SweepReport, json: bool, args: &BackfillArgs) -> anyhow::Result<String> {
    super::sweep::render(
        report,
        json,
        &Place {
            name: &format!("checkpoint {}", args.checkpoint.display()),
            watermarked: false,
        },
    )
}

fn parse_since(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("--since {text:?}: expected YYYY-MM-DD or RFC 3339"))?;
    Ok(date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_date_or_rfc_3339() {
        assert_eq!(
            parse_since("2026-11-21").unwrap().to_rfc3339(),
            "2026-11-21T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-11-21T10:15:30+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-21T08:15:30+00:00"
        );
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn the_rate_is_50_per_second_unless_told_otherwise() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BackfillArgs,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["uc-ops", "--user-pool-id", "us-east-1_Pool"];
            argv.extend_from_slice(extra);
            <Cli as clap::Parser>::try_parse_from(argv).map(|cli| cli.args.rate)
        };
        assert_eq!(parse(&[]).unwrap(), Rate::PerSecond(50.0));
        assert_eq!(parse(&["--rate", "200"]).unwrap(), Rate::PerSecond(200.0));
        assert_eq!(parse(&["--rate", "0.5"]).unwrap(), Rate::PerSecond(0.5));
        assert_eq!(parse(&["--rate", "unlimited"]).unwrap(), Rate::Unlimited);
        assert_eq!(parse(&["--rate", "Unlimited"]).unwrap(), Rate::Unlimited);
        for bad in ["0", "-3", "inf", "nan", "", "none", "fast"] {
            let error = parse(&[&format!("--rate={bad}")]).unwrap_err().to_string();
            assert!(
                error.contains("positive, finite") && error.contains("unlimited"),
                "{bad}: {error}"
            );
        }
        assert_eq!(Rate::Unlimited.per_second(), None);
        assert_eq!(Rate::PerSecond(50.0).to_string(), "50");
    }

    #[test]
    fn the_intro_says_how_fast_and_what_is_published() {
        let backfill = |rate, dry_run, republish| Backfill {
            sweep: SweepConfig {
                user_pool_id: "us-east-1_Pool".into(),
                region: "us-east-1".into(),
                statuses: vec!["CONFIRMED".into()],
                origin: Origin::Backfill,
                target: Target::EventBridge {
                    bus: "bus".into(),
                    source: "src".into(),
                },
                publish_rate: rate,
                list_rate: 5.0,
                overlap: None,
                grace: std::time::Duration::ZERO,
                created_since: None,
                republish,
            },
            checkpoint: "cp.json".into(),
            dry_run,
            max_pages: None,
        };
        let store = ConfiguredLookup::NotAsked;
        assert!(
            intro(&backfill(Some(50.0), false, false), &store).contains(", at most 50 per second;")
        );
        assert!(intro(&backfill(None, false, false), &store).contains(", with no rate limit;"));
        assert!(!intro(&backfill(Some(50.0), true, false), &store).contains("per second"));
        assert!(intro(&backfill(None, false, false), &store).contains(" without a profile in "));
        assert!(intro(&backfill(None, false, true), &store).contains("every one (--all)"));
    }
}
