//! The operations CLI's library, so tests (and the lab, `dev/lab`) drive the same code: the
//! dead-letter queues ([`dlq`]), the one sweep behind back-fill and reconciliation ([`sweep`]:
//! the pool's pages in [`user_pages`], the store check in [`profile_lookup`], publishing in
//! [`publish`], its state in [`sweep_state`], reconciliation's configuration in [`reconcile`]),
//! the users-versus-profiles check ([`audit`], the profiles read by [`profile_scan`]), the
//! orphan sweep built on it ([`orphans`]), attaching the trigger ([`attach`]), reading env
//! files ([`env_file`]), and what may be printed of text the CLI did not write ([`text`]).

pub mod attach;
pub mod audit;
pub mod dlq;
pub mod env_file;
pub mod events;
pub mod orphans;
pub mod profile_lookup;
pub mod profile_scan;
pub mod publish;
pub mod reconcile;
pub mod sweep;
pub mod sweep_state;
pub mod text;
pub mod user_pages;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

/// An AWS SDK error as an operator reads it: one line, code and message, no email (the
/// shared classification's text, not the SDK's multi-kilobyte debug dump).
pub fn aws_message<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> String {
    uc_runtime::aws::classify_sdk_error(error).to_string()
}
