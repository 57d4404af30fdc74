//! What a sweep remembers between runs: the watermark (reconciliation: every change before it
//! has been looked at) and the pass in progress (its next `ListUsers` page), as one small JSON
//! document. [`StateStore`] is the port; [`SsmStateStore`] keeps it in an SSM String parameter
//! (the scheduled reconciler, `uc-ops reconcile`), [`FileStateStore`] in a file (the back-fill's
//! checkpoint).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The whole state, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepState {
    /// The pool the state belongs to (unset before the first pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_id: Option<String>,
    /// The start of the last pass that ended with every selected user published: changes made
    /// before it (less the overlap) need no second look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<DateTime<Utc>>,
    /// A pass an earlier invocation could not finish in its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<PassProgress>,
}

/// How far the pass in progress got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassProgress {
    /// When the pass began: the watermark once it completes.
    pub started_at: DateTime<Utc>,
    /// The cut-off the pass selects by (watermark less overlap), fixed for the whole pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_since: Option<DateTime<Utc>>,
    /// The next `ListUsers` page; `None` before the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub pages: u64,
    pub scanned: u64,
    pub published: u64,
    /// Users whose event could not be published: the pass will not move the watermark.
    pub failed: u64,
    /// Selected users the store already had a profile for (not published).
    #[serde(default)]
    pub had_profile: u64,
    /// The statuses the pass selects: a pass saved with others is started again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("sweep state {name}: {message}")]
    Store { name: String, message: String },
    #[error("sweep state {name} is not valid JSON state ({message}); fix or reset it to {{}}")]
    Corrupt { name: String, message: String },
}

/// Where the state lives.
#[allow(async_fn_in_trait)]
pub trait StateStore {
    /// The stored state (the default when nothing was stored yet).
    async fn load(&self) -> Result<SweepState, StateError>;
    async fn save(&self, state: &SweepState) -> Result<(), StateError>;
}

/// The state as an SSM String parameter (`RECONCILE_WATERMARK_PARAMETER`; the template creates
/// it holding `{}`). A standard parameter holds 4 KB, ample for a page token and three dates.
pub struct SsmStateStore {
    client: aws_sdk_ssm::Client,
    name: String,
}

impl SsmStateStore {
    pub fn new(client: aws_sdk_ssm::Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    fn store_error(&self, message: String) -> StateError {
        StateError::Store {
            name: self.name.clone(),
            message,
        }
    }
}

/// Parses stored text: an empty value or `{}` is a state with nothing done yet.
pub fn parse_state(name: &str, text: &str) -> Result<SweepState, StateError> {
    if text.trim().is_empty() {
        return Ok(SweepState::default());
    }
    serde_json::from_str(text).map_err(|e| StateError::Corrupt {
        name: name.to_owned(),
        message: e.to_string(),
    })
}

/// The state as a file (the back-fill's `--checkpoint`), written whole and renamed into place.
/// A state with nothing to remember (no pass in progress, no watermark) removes the file: a
/// completed back-fill leaves nothing behind.
pub struct FileStateStore {
    path: std::path::PathBuf,
}

impl FileStateStore {
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn store_error(&self, error: std::io::Error) -> StateError {
        StateError::Store {
            name: self.path.display().to_string(),
            message: error.to_string(),
        }
    }
}

impl StateStore for FileStateStore {
    async fn load(&self) -> Result<SweepState, StateError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => parse_state(&self.path.display().to_string(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SweepState::default()),
            Err(e) => Err(self.store_error(e)),
        }
    }

    async fn save(&self, state: &SweepState) -> Result<(), StateError> {
        if state.pass.is_none() && state.watermark.is_none() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.store_error(e)),
                _ => Ok(()),
            };
        }
        let temporary = self.path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(state).expect("the state serializes");
        std::fs::write(&temporary, text).map_err(|e| self.store_error(e))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| self.store_error(e))
    }
}

impl StateStore for SsmStateStore {
    async fn load(&self) -> Result<SweepState, StateError> {
        let answer = self
            .client
            .get_parameter()
            .name(&self.name)
            .send()
            .await
            .map_err(|e| self.store_error(format!("GetParameter: {}", crate::aws_message(&e))))?;
        let text = answer
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or_default();
        parse_state(&self.name, text)
    }

    async fn save(&self, state: &SweepState) -> Result<(), StateError> {
        let text = serde_json::to_string(state).expect("the state serializes");
        self.client
            .put_parameter()
            .name(&self.name)
            .value(text)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| self.store_error(format!("PutParameter: {}", crate::aws_message(&e))))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_parameter_is_a_fresh_state() {
        assert_eq!(parse_state("p", "{}").unwrap(), SweepState::default());
        assert_eq!(parse_state("p", " ").unwrap(), SweepState::default());
    }

    #[test]
    fn the_state_round_trips_and_garbage_is_refused() {
        let state = SweepState {
            user_pool_id: Some("eu-west-1_abc".into()),
            watermark: Some("2026-11-30T10:00:00Z".parse().unwrap()),
            pass: Some(PassProgress {
                started_at: "2026-11-30T11:00:00Z".parse().unwrap(),
                changed_since: Some("2026-11-29T10:00:00Z".parse().unwrap()),
                next_token: Some("token".into()),
                pages: 3,
                scanned: 180,
                published: 2,
                failed: 0,
                had_profile: 178,
                statuses: Some(vec!["CONFIRMED".into()]),
            }),
        };
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(parse_state("p", &text).unwrap(), state);
        let error = parse_state("p", "{\"watermark\": 5}").unwrap_err();
        assert!(error.to_string().contains("reset it to {}"), "{error}");
    }

    #[tokio::test]
    async fn a_file_holds_a_pass_in_progress_and_goes_when_nothing_is_left() {
        let path = std::env::temp_dir().join(format!("uc-sweep-state-{}.json", std::process::id()));
        let store = FileStateStore::new(&path);
        assert_eq!(store.load().await.unwrap(), SweepState::default());
        let mut state = SweepState {
            user_pool_id: Some("eu-west-1_abc".into()),
            watermark: None,
            pass: Some(PassProgress {
                started_at: "2026-11-30T11:00:00Z".parse().unwrap(),
                changed_since: None,
                next_token: Some("token".into()),
                pages: 1,
                scanned: 60,
                published: 60,
                failed: 0,
                had_profile: 0,
                statuses: None,
            }),
        };
        store.save(&state).await.unwrap();
        assert_eq!(store.load().await.unwrap(), state);
        state.pass = None;
        store.save(&state).await.unwrap();
        assert!(
            !path.exists(),
            "a state with nothing to remember is no file"
        );
    }
}
