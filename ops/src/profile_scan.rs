//! Every profile of the store the worker writes (`PROFILE_STORE`), id and owner only, page by
//! page at a pace: what the audit compares the pool's users with. AppSync: the read-only
//! `listUserProfiles` query, SigV4-signed with the caller's own credentials; DynamoDB: a `Scan`
//! of the model table projecting `id` and `profileOwner`. No email is ever read.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::{Failure, FailureKind, GaveUp};
use uc_worker::classify::{Answer, Outcome, classify};
use uc_worker::{AppSyncClient, GraphQlEndpoint, StoreSetting};

use crate::pace::{Pacer, admit};
use crate::profile_lookup::{appsync_client, dynamodb_client};
use crate::text::redact;
use crate::user_pages::PAGE_RETRY;

/// The read-only query the audit sends: ids and owners only, never an email.
pub const LIST_USER_PROFILES: &str =
    "query AuditListUserProfiles($limit: Int, $nextToken: String) {
  listUserProfiles(limit: $limit, nextToken: $nextToken) {
    items {
      id
      profileOwner
    }
    nextToken
  }
}
";

/// The query's field: where the page sits under `data`.
pub const LIST_USER_PROFILES_FIELD: &str = "listUserProfiles";

/// One page call's timeout.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The profiles could not all be read: the audit cannot tell.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{store} {operation}: {message}")]
pub struct ScanError {
    pub store: &'static str,
    pub operation: &'static str,
    pub message: String,
}

/// How a scan goes: profiles per page, pages per second.
#[derive(Debug, Clone, Copy)]
pub struct ScanPace {
    pub page_size: u32,
    pub pages_per_second: f64,
}

/// Every profile, as `(id, profileOwner)`.
pub trait ProfileScan {
    /// Calls `each` for every profile; `progress` hears the count after each page.
    fn scan(
        &self,
        pace: ScanPace,
        each: &mut dyn FnMut(&str, Option<&str>),
        progress: &mut dyn FnMut(u64),
    ) -> impl Future<Output = Result<(), ScanError>>;
}

/// Why one `listUserProfiles` page failed, and the answer that said so.
#[derive(Debug)]
struct PageFailure(Outcome, Answer);

impl uc_runtime::Classified for PageFailure {
    fn kind(&self) -> FailureKind {
        uc_runtime::Classified::kind(&self.0)
    }
}

fn appsync_error(message: String) -> ScanError {
    ScanError {
        store: "AppSync",
        operation: LIST_USER_PROFILES_FIELD,
        message,
    }
}

/// `listUserProfiles` through a GraphQL endpoint.
pub struct AppSyncScan<E>(pub E);

impl<E: GraphQlEndpoint> ProfileScan for AppSyncScan<E> {
    async fn scan(
        &self,
        pace: ScanPace,
        each: &mut dyn FnMut(&str, Option<&str>),
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ScanError> {
        let endpoint = &self.0;
        let mut pacer = Pacer::new(pace.pages_per_second);
        let mut token: Option<String> = None;
        let mut seen = 0u64;
        loop {
            admit(&mut pacer, 1).await;
            let body = serde_json::to_vec(&json!({
                "query": LIST_USER_PROFILES,
                "operationName": "AuditListUserProfiles",
                "variables": {"limit": pace.page_size, "nextToken": token},
            }))
            .expect("serializes");
            let answer = PAGE_RETRY
                .run(
                    None,
                    |_| {
                        let body = body.clone();
                        async move {
                            let answer = endpoint.post(body, PAGE_TIMEOUT, None).await;
                            match classify(&answer, LIST_USER_PROFILES_FIELD) {
                                Outcome::Created => Ok(answer),
                                outcome => Err(PageFailure(outcome, answer)),
                            }
                        }
                    },
                    |_, _| {},
                )
                .await;
            let answer = match answer {
                Ok(answer) => answer.value,
                Err(GaveUp::Failed {
                    error: PageFailure(Outcome::AuthRejected { .. }, _),
                    ..
                }) => {
                    // Credentials may have expired: renew them once and read the page again.
                    endpoint.refresh_credentials().await;
                    let answer = endpoint.post(body.clone(), PAGE_TIMEOUT, None).await;
                    if classify(&answer, LIST_USER_PROFILES_FIELD) != Outcome::Created {
                        return Err(page_error(&answer, 2));
                    }
                    answer
                }
                Err(gave_up) => {
                    let attempts = gave_up.attempts();
                    return Err(match gave_up.into_last_error() {
                        Some(PageFailure(_, answer)) => page_error(&answer, attempts),
                        None => appsync_error("no attempt made".into()),
                    });
                }
            };
            let Answer::Http { body, .. } = answer else {
                unreachable!("only an HTTP answer classifies as a result");
            };
            let page: Value = serde_json::from_slice(&body)
                .map_err(|e| appsync_error(format!("unreadable page: {e}")))?;
            let connection = &page["data"][LIST_USER_PROFILES_FIELD];
            let items = connection["items"]
                .as_array()
                .ok_or_else(|| appsync_error("a page without `items`".into()))?;
            for item in items {
                // AppSync answers null for an item a resolver could not read: unknown, not absent.
                let id = item["id"].as_str().ok_or_else(|| {
                    appsync_error("a page with an unreadable item (no id)".into())
                })?;
                each(id, item["profileOwner"].as_str());
                seen += 1;
            }
            progress(seen);
            token = connection["nextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                return Ok(());
            }
        }
    }
}

/// A failed page's answer as one line: the outcome, the GraphQL error messages, no email.
fn page_error(answer: &Answer, attempts: usize) -> ScanError {
    let outcome = classify(answer, LIST_USER_PROFILES_FIELD);
    let detail = match answer {
        Answer::Http { status, body } => {
            let messages: Vec<String> = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["errors"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e["message"].as_str().map(str::to_owned))
                .collect();
            format!("HTTP {status} {}", messages.join("; "))
        }
        Answer::ConnectFailed(e) | Answer::Transport(e) => e.clone(),
        Answer::TimedOut => "timed out".into(),
    };
    let line: String = format!(
        "{}: {} (after {attempts} attempts)",
        outcome.code(),
        detail.trim()
    )
    .chars()
    .map(|c| if c.is_control() { ' ' } else { c })
    .collect();
    appsync_error(redact(&line))
}

/// A `Scan` of the model table, `id` and `profileOwner` projected.
pub struct DynamoDbScan {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl ProfileScan for DynamoDbScan {
    async fn scan(
        &self,
        pace: ScanPace,
        each: &mut dyn FnMut(&str, Option<&str>),
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ScanError> {
        let mut pacer = Pacer::new(pace.pages_per_second);
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let mut seen = 0u64;
        let error = |message: String| ScanError {
            store: "DynamoDB",
            operation: "Scan",
            message: redact(&message),
        };
        loop {
            admit(&mut pacer, 1).await;
            let answer = PAGE_RETRY
                .run(
                    None,
                    |_| {
                        let call = self
                            .client
                            .scan()
                            .table_name(&self.table)
                            .projection_expression("#id, #owner")
                            .expression_attribute_names("#id", "id")
                            .expression_attribute_names("#owner", "profileOwner")
                            .limit(pace.page_size.min(i32::MAX as u32) as i32)
                            .set_exclusive_start_key(start.clone())
                            .send();
                        async move {
                            match tokio::time::timeout(PAGE_TIMEOUT, call).await {
                                Ok(Ok(page)) => Ok(page),
                                Ok(Err(e)) => Err(classify_sdk_error(&e)),
                                Err(_) => Err(Failure::retryable("Timeout", "Scan took too long")),
                            }
                        }
                    },
                    |_, _| {},
                )
                .await;
            let page = match answer {
                Ok(page) => page.value,
                Err(gave_up) => {
                    let attempts = gave_up.attempts();
                    let last = gave_up
                        .into_last_error()
                        .map_or_else(|| "no attempt made".to_owned(), |f| f.to_string());
                    return Err(error(format!("{last} (after {attempts} attempts)")));
                }
            };
            for item in page.items() {
                let Some(AttributeValue::S(id)) = item.get("id") else {
                    return Err(error("an item without a string id".into()));
                };
                let owner = match item.get("profileOwner") {
                    Some(AttributeValue::S(owner)) => Some(owner.as_str()),
                    _ => None,
                };
                each(id, owner);
                seen += 1;
            }
            progress(seen);
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(());
            }
        }
    }
}

/// The scan of the store `PROFILE_STORE` chose.
pub enum ConfiguredScan {
    AppSync(AppSyncScan<AppSyncClient>),
    DynamoDb(DynamoDbScan),
}

impl ConfiguredScan {
    pub async fn build(
        setting: &StoreSetting,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, uc_worker::WorkerError> {
        Ok(match setting {
            StoreSetting::AppSync(endpoint) => {
                Self::AppSync(AppSyncScan(appsync_client(endpoint, sdk).await?))
            }
            StoreSetting::DynamoDb(table) => Self::DynamoDb(DynamoDbScan {
                client: dynamodb_client(sdk),
                table: table.name.clone(),
            }),
        })
    }

    /// What is scanned, for the operator's line.
    pub fn describe(&self) -> String {
        match self {
            Self::AppSync(_) => format!("AppSync {LIST_USER_PROFILES_FIELD}"),
            Self::DynamoDb(scan) => format!("DynamoDB table {}", scan.table),
        }
    }
}

impl ProfileScan for ConfiguredScan {
    async fn scan(
        &self,
        pace: ScanPace,
        each: &mut dyn FnMut(&str, Option<&str>),
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ScanError> {
        match self {
            Self::AppSync(scan) => scan.scan(pace, each, progress).await,
            Self::DynamoDb(scan) => scan.scan(pace, each, progress).await,
        }
    }
}
