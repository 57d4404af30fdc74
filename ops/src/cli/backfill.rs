//! `uc-ops backfill`: the arguments, the run and the output of a back-fill. The work itself is
//! `uc_ops::backfill`'s.

use std::path::PathBuf;

use anyhow::Context;
use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use clap::Args;
use uc_ops::backfill::{self, BackfillOptions, BackfillSummary, Clients, Target};

use super::{Outcome, Ui, positive_rate, terminal_safe_lines, to_json};

#[derive(Args)]
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
    /// Count what would be published; publish nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the next page token is saved; a later run resumes from it.
    #[arg(long, default_value = "backfill.checkpoint.json")]
    checkpoint: PathBuf,
    /// Stop after this many pages (resume later from the checkpoint).
    #[arg(long)]
    max_pages: Option<usize>,
    /// Users per second, at most: a positive number, or `unlimited`. Paced below the worker's
    /// spare capacity, a back-fill builds no backlog for live sign-ups to wait behind: choose a
    /// rate below (worker capacity − peak sign-up rate) (docs/runbook.md, step 4).
    #[arg(
        long,
        value_name = "PER_SECOND|unlimited",
        value_parser = backfill_rate,
        default_value_t = Rate::PerSecond(backfill::DEFAULT_RATE)
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

impl Outcome for BackfillSummary {
    /// Every selected user was published.
    fn succeeded(&self) -> bool {
        self.failed == 0
    }
}

pub async fn run(args: &BackfillArgs, sdk: &SdkConfig) -> anyhow::Result<BackfillSummary> {
    let ui = Ui::new(args.json);
    let options = options(args, sdk)?;
    ui.announce(&intro(&options));
    let clients = Clients {
        cognito: aws_sdk_cognitoidentityprovider::Client::new(sdk),
        events: aws_sdk_eventbridge::Client::new(sdk),
        sqs: aws_sdk_sqs::Client::new(sdk),
    };
    let bar = ui.progress("users");
    let summary =
        backfill::run(&clients, &options, |s| bar.set_position(s.selected as u64)).await?;
    bar.finish_and_clear();
    Ok(summary)
}

fn options(args: &BackfillArgs, sdk: &SdkConfig) -> anyhow::Result<BackfillOptions> {
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
    Ok(BackfillOptions {
        user_pool_id: args.user_pool_id.clone(),
        region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        since: args.since.as_deref().map(parse_since).transpose()?,
        // Known statuses only, so a typo is not a back-fill of nobody.
        statuses: uc_ops::audit::parse_statuses(&args.status)
            .map_err(|why| anyhow::anyhow!("--status {:?}: {why}", args.status))?,
        target,
        dry_run: args.dry_run,
        checkpoint: args.checkpoint.clone(),
        max_pages: args.max_pages,
        rate: args.rate.per_second(),
    })
}

/// The line a back-fill starts with.
fn intro(options: &BackfillOptions) -> String {
    format!(
        "{} users of {} with status {}{} to {:?}{}; checkpoint {}",
        if options.dry_run {
            "Counting (dry run)"
        } else {
            "Publishing UserConfirmed for"
        },
        options.user_pool_id,
        options.statuses.join(","),
        options
            .since
            .map(|s| format!(" created since {s}"))
            .unwrap_or_default(),
        options.target,
        match (options.dry_run, options.rate) {
            (true, _) => String::new(),
            (false, Some(rate)) => format!(", at most {rate} per second"),
            (false, None) => ", with no rate limit".to_owned(),
        },
        options.checkpoint.display()
    )
}

pub fn render(summary: &BackfillSummary, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(summary);
    }
    Ok(terminal_safe_lines(&format!(
        "listed {}, selected {}, published {}, failed {}, pages {}{}{}\n",
        summary.listed,
        summary.selected,
        summary.published,
        summary.failed,
        summary.pages,
        if summary.resumed {
            ", resumed from checkpoint"
        } else {
            ""
        },
        if summary.complete {
            ", complete"
        } else {
            ", NOT complete: run again to resume"
        },
    )))
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
    fn the_intro_says_how_fast() {
        let options = |rate, dry_run| BackfillOptions {
            user_pool_id: "us-east-1_Pool".into(),
            region: "us-east-1".into(),
            since: None,
            statuses: vec!["CONFIRMED".into()],
            target: Target::EventBridge {
                bus: "bus".into(),
                source: "src".into(),
            },
            dry_run,
            checkpoint: "cp.json".into(),
            max_pages: None,
            rate,
        };
        assert!(intro(&options(Some(50.0), false)).contains(", at most 50 per second;"));
        assert!(intro(&options(None, false)).contains(", with no rate limit;"));
        assert!(!intro(&options(Some(50.0), true)).contains("per second"));
    }

    #[test]
    fn an_incomplete_run_says_so() {
        let summary = BackfillSummary {
            listed: 60,
            selected: 60,
            published: 60,
            pages: 1,
            ..Default::default()
        };
        assert!(summary.succeeded());
        assert_eq!(
            render(&summary, false).unwrap(),
            "listed 60, selected 60, published 60, failed 0, pages 1, NOT complete: run again to resume\n"
        );
    }
}
