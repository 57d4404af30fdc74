//! What `uc-ops backfill` and `uc-ops reconcile` share: the store check built from the
//! worker's variables, and the one sweep report as text or JSON. Exit status: 0 the pass
//! ended with every selected user handled; 1 it stopped early or left users unpublished.

use anyhow::Context;
use aws_config::SdkConfig;
use uc_ops::profile_lookup::ConfiguredLookup;
use uc_ops::sweep::SweepReport;
use uc_runtime::env::EnvReader;
use uc_worker::StoreSetting;

use super::{Outcome, terminal_safe_lines, to_json};

impl Outcome for SweepReport {
    fn succeeded(&self) -> bool {
        SweepReport::succeeded(self)
    }
}

/// The store check for the store the worker writes (`PROFILE_STORE`, `PROFILE_TABLE`,
/// `APPSYNC_GRAPHQL_URL` / `APPSYNC_API_ID`), read with the caller's own credentials.
pub async fn lookup(sdk: &SdkConfig) -> anyhow::Result<ConfiguredLookup> {
    let setting = StoreSetting::from_reader(&EnvReader::process())
        .context("the profile store a sweep checks (the worker's variables)")?;
    ConfiguredLookup::build(&setting, sdk)
        .await
        .context("the profile store a sweep checks")
}

/// Where a sweep keeps its place, as its report names it.
pub struct Place<'a> {
    /// "checkpoint backfill.checkpoint.json", "state /uc/reconciler/state".
    pub name: &'a str,
    /// Reconciliation: the report says what the pass looked at and where the watermark is.
    pub watermarked: bool,
}

pub fn render(report: &SweepReport, json: bool, place: &Place) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let mut text = format!(
        "listed {} users in {} pages{}: {} selected ({} changed too recently to judge), {} with a profile already ({} store reads), {} without\n",
        report.scanned,
        report.pages,
        if report.resumed {
            ", resuming a pass in progress"
        } else {
            ""
        },
        report.selected,
        report.recent,
        report.had_profile,
        report.store_reads,
        report.to_publish,
    );
    if place.watermarked {
        let since = report
            .changed_since
            .map(|t| format!("users changed since {}", t.to_rfc3339()))
            .unwrap_or_else(|| "every user (no watermark yet, or --full)".into());
        text.push_str(&format!("looked at: {since}\n"));
    }
    if report.dry_run {
        text.push_str(&if report.complete {
            format!(
                "dry run: a real run would publish {} UserConfirmed events; nothing was published or saved\n",
                report.to_publish
            )
        } else {
            format!(
                "dry run stopped before the end of the pool ({} pages): a real run would publish {} UserConfirmed events for these pages, and go on to the end; nothing was published or saved\n",
                report.pages, report.to_publish
            )
        });
        return Ok(terminal_safe_lines(&text));
    }
    text.push_str(&format!(
        "published {}, failed {}\n",
        report.published, report.failed
    ));
    text.push_str(&if !report.complete {
        format!(
            "NOT complete: the pass stopped before the end of the pool and saved its place ({}); run again to resume\n",
            place.name
        )
    } else if report.pass_failed > 0 {
        format!(
            "complete, but {} user(s) of this pass could not be published{}\n",
            report.pass_failed,
            if place.watermarked {
                ": the watermark stays, the next pass retries them"
            } else {
                ": run again to retry them"
            }
        )
    } else if report.watermark_advanced {
        format!(
            "complete: watermark now {}\n",
            report
                .watermark
                .map(|w| w.to_rfc3339())
                .unwrap_or_default()
        )
    } else {
        "complete: every selected user without a profile was published\n".to_owned()
    });
    if !report.failed_subs.is_empty() {
        let listed = report.failed_subs.len() as u64;
        let which = if listed < report.failed {
            format!("sub, the first {listed} of {}", report.failed)
        } else {
            "sub".to_owned()
        };
        text.push_str(&format!(
            "not published ({which}): {}\n",
            uc_ops::text::terminal_safe(&report.failed_subs.join(", "))
        ));
    }
    Ok(terminal_safe_lines(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: Place = Place {
        name: "state /uc/reconciler/state",
        watermarked: true,
    };
    const CHECKPOINT: Place = Place {
        name: "checkpoint cp.json",
        watermarked: false,
    };

    #[test]
    fn the_summary_says_what_is_left() {
        let mut report = SweepReport {
            scanned: 120,
            selected: 2,
            to_publish: 2,
            published: 1,
            failed: 1,
            pass_failed: 1,
            pages: 2,
            complete: true,
            failed_subs: vec!["0b7c4f9e-0000-4000-8000-000000000001".into()],
            ..Default::default()
        };
        let text = render(&report, false, &STATE).unwrap();
        assert!(text.contains("the watermark stays"), "{text}");
        assert!(
            text.contains("0b7c4f9e-0000-4000-8000-000000000001"),
            "{text}"
        );
        assert!(!Outcome::succeeded(&report));
        report.complete = false;
        let text = render(&report, false, &CHECKPOINT).unwrap();
        assert!(
            text.contains("NOT complete") && text.contains("checkpoint cp.json"),
            "{text}"
        );
    }

    /// A back-fill cut short by --max-pages is work left: it says so and fails (it printed
    /// "NOT complete" and exited 0).
    #[test]
    fn a_back_fill_cut_short_fails() {
        let report = SweepReport {
            scanned: 60,
            selected: 60,
            to_publish: 60,
            published: 60,
            pages: 1,
            ..Default::default()
        };
        assert!(!Outcome::succeeded(&report));
        let text = render(&report, false, &CHECKPOINT).unwrap();
        assert!(text.contains("run again to resume"), "{text}");
    }

    /// A dry run says what a real run would do, never "run again to resume" (it saves no place).
    #[test]
    fn a_dry_run_says_what_a_real_run_would_do() {
        let mut report = SweepReport {
            dry_run: true,
            complete: true,
            scanned: 130,
            selected: 70,
            had_profile: 62,
            to_publish: 8,
            pages: 3,
            ..Default::default()
        };
        let text = render(&report, false, &STATE).unwrap();
        assert!(
            text.contains("a real run would publish 8 UserConfirmed events"),
            "{text}"
        );
        assert!(text.contains("62 with a profile already"), "{text}");
        assert!(!text.contains("run again"), "{text}");
        assert!(Outcome::succeeded(&report));
        report.complete = false;
        let text = render(&report, false, &CHECKPOINT).unwrap();
        assert!(
            text.contains("dry run stopped before the end") && !text.contains("run again"),
            "{text}"
        );
        assert!(
            !Outcome::succeeded(&report),
            "a dry run cut short counted less than all"
        );
    }

    /// A pass with more failures than the report names says how many it left out.
    #[test]
    fn a_long_failure_list_is_capped_and_says_so() {
        let mut listed = Vec::new();
        let sub = |i: usize| format!("0b7c4f9e-0000-4000-8000-{i:012}");
        uc_ops::publish::list_failed(&mut listed, (0..600).map(sub).collect());
        uc_ops::publish::list_failed(&mut listed, (600..1_500).map(sub).collect());
        assert_eq!(listed.len(), uc_ops::publish::LISTED_FAILED_SUBS);
        assert_eq!(listed.last(), Some(&sub(999)));
        let report = SweepReport {
            failed: 1_500,
            pass_failed: 1_500,
            complete: true,
            failed_subs: listed,
            ..Default::default()
        };
        let text = render(&report, false, &STATE).unwrap();
        assert!(
            text.contains("not published (sub, the first 1000 of 1500)"),
            "{text}"
        );
    }
}
