//! The commands, one module each, all of the same shape: a clap `Args` struct, an async `run`
//! that does the work and returns a report, and a `render` that turns the report into the text
//! an operator reads or, with `--json`, the JSON a script reads. `main.rs` only dispatches.

use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use uc_ops::env_file;

pub mod attach;
pub mod backfill;
pub mod dlq;
pub mod events;

/// What a command's report says about the exit code.
pub trait Outcome {
    /// False makes the process exit 1 (after the report is printed).
    fn succeeded(&self) -> bool {
        true
    }
}

/// What a command shows while it runs: a line saying what it is about to do, and a progress
/// spinner. Both stay quiet with `--json`, where stdout is the report alone.
pub struct Ui {
    json: bool,
}

impl Ui {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn announce(&self, line: &str) {
        if !self.json {
            println!("{line}");
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
}

/// `value` as pretty JSON, one trailing newline.
pub fn to_json(value: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Loads `file` into the process environment, without overriding what is already set.
///
/// # Safety
/// Sets environment variables: call it before any other thread exists (from `main`, before
/// the runtime starts).
pub unsafe fn load_env_file(file: &Path) -> anyhow::Result<()> {
    let vars = env_file::read(file).with_context(|| format!("reading {}", file.display()))?;
    for (key, value) in vars {
        if std::env::var_os(&key).is_none() {
            // SAFETY: the caller guarantees no other thread exists yet.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}
