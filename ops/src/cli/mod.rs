//! The commands, one module each, all of the same shape: a clap `Args` struct, an async `run`
//! that does the work and returns a report, and a `render` that turns the report into the text
//! an operator reads or, with `--json`, the JSON a script reads. `main.rs` only dispatches.

use std::io::Write;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use uc_ops::env_file;

pub mod attach;
pub mod audit;
pub mod backfill;
pub mod dlq;
pub mod events;
pub mod orphans;
pub mod reconcile;
pub mod sweep;

/// What a command's report says about the exit code.
pub trait Outcome {
    /// False makes the process exit 1 (after the report is printed).
    fn succeeded(&self) -> bool {
        true
    }

    /// The exit code after the report is printed: 0 or 1 from [`Outcome::succeeded`]; a
    /// report that refused to act says 2 itself (the orphan sweep's guard).
    fn exit_code(&self) -> u8 {
        if self.succeeded() { 0 } else { 1 }
    }
}

/// What a command shows while it runs: a line saying what it is about to do, and a progress
/// bar or spinner on stderr (indicatif draws nothing when stderr is not a terminal). Both stay
/// quiet with `--json`, where stdout is the report alone.
pub struct Ui {
    json: bool,
}

impl Ui {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn announce(&self, line: &str) {
        if !self.json {
            // A closed stdout (`| head`) is not a reason to stop the work: the report's own
            // print says how the run ends.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }

    /// A spinner counting `message` (hidden with `--json`).
    pub fn progress(&self, message: &'static str) -> ProgressBar {
        if self.json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {msg}: {pos} {elapsed}")
                .expect("valid template"),
        );
        bar.set_message(message);
        bar
    }

    /// A bar towards `total` (an estimate), or a spinner when there is none.
    pub fn bar(&self, message: &'static str, total: Option<u64>) -> ProgressBar {
        let Some(total) = total.filter(|_| !self.json) else {
            return self.progress(message);
        };
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "  {msg}: {pos}/~{len} [{bar:30}] {elapsed} (about {eta} left)",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(message);
        bar
    }
}

/// `value` as pretty JSON, one trailing newline, with nothing a terminal would obey
/// ([`uc_ops::text::json_terminal_safe`]).
pub fn to_json(value: &impl serde::Serialize) -> anyhow::Result<String> {
    let json = serde_json::to_string_pretty(value)?;
    Ok(format!("{}\n", uc_ops::text::json_terminal_safe(&json)))
}

/// Users per account status as a report prints them (`CONFIRMED 3, RESET_REQUIRED 1`), or
/// `none`.
pub fn status_counts(by_status: &std::collections::BTreeMap<String, u64>) -> String {
    if by_status.is_empty() {
        return "none".into();
    }
    by_status
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every line of `text` made safe for a terminal ([`uc_ops::text::terminal_safe`]), the line
/// breaks kept: what every text report goes through.
pub fn terminal_safe_lines(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(line) => format!("{}\n", uc_ops::text::terminal_safe(line)),
            None => uc_ops::text::terminal_safe(line),
        })
        .collect()
}

/// clap's parser for a rate: a positive, finite number per second (`inf`, `nan`, `0` and
/// negative numbers are refused with a clear message instead of a panic or a silent
/// "unlimited"). Its arguments take `allow_negative_numbers`, so `-1` reaches it rather than
/// clap's "unexpected argument".
pub fn positive_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!(
            "{text:?}: a rate is a positive, finite number per second (e.g. 20 or 0.5); the option's default is in --help"
        ))
    }
}

/// Why an env file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("env file {0} not found")]
    NotFound(String),
    #[error("env file {0}: {1}")]
    Unreadable(String, std::io::Error),
}

/// Loads `file` into the process environment, without overriding what is already set.
///
/// # Safety
/// Sets environment variables: call it before any other thread exists (from `main`, before
/// the runtime starts).
pub unsafe fn load_env_file(file: &Path) -> Result<(), EnvFileError> {
    let vars = env_file::read(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EnvFileError::NotFound(file.display().to_string()),
        _ => EnvFileError::Unreadable(file.display().to_string(), e),
    })?;
    for (key, value) in vars {
        if std::env::var_os(&key).is_none() {
            // SAFETY: the caller guarantees no other thread exists yet.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_positive_and_finite() {
        assert_eq!(positive_rate("20"), Ok(20.0));
        assert_eq!(positive_rate("0.14"), Ok(0.14));
        for bad in ["0", "-3", "inf", "-inf", "nan", "NaN", "", "fast"] {
            assert!(positive_rate(bad).is_err(), "{bad}");
        }
        let refusal = positive_rate("inf").unwrap_err();
        assert!(refusal.contains("positive, finite"), "{refusal}");
        assert!(!refusal.contains("no limit"), "{refusal}");
    }

    #[test]
    fn a_missing_env_file_says_so() {
        let missing = Path::new("/nonexistent/uc-ops/stack.env");
        // SAFETY: the file does not exist, so nothing is set.
        let error = unsafe { load_env_file(missing) }.unwrap_err();
        assert_eq!(
            error.to_string(),
            "env file /nonexistent/uc-ops/stack.env not found"
        );
    }
}
