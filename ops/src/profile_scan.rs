//! Every profile of the store the worker writes (`PROFILE_STORE`), id and owner only, page by
//! page at a pace: what the audit compares the pool's users with. AppSync: the read-only
//! `listUserProfiles` query, SigV4-signed with the caller's own credentials; DynamoDB: a `Scan`
//! of the model table projecting `id` and `profileOwner`. No email is ever read.
//!
//! **Tombstones.** A DataStore (conflict-detection) model never deletes an item: a delete sets
//! `_deleted = true` and DynamoDB's TTL removes the item weeks later; the worker's DynamoDB
//! store removes profiles the same way. Such an item is no profile: each scan says which items
//! are tombstones ([`Scanned::deleted`]) and the audit counts them apart, never as profiles or
//! orphans (an orphan sweep would otherwise "erase" the same tombstone on every run). DynamoDB:
//! the scan projects `_deleted`. AppSync: a versioned API's list resolver returns tombstones
//! like live items (amplify-cli#4111, #4230), its type has a `_deleted` field, and the query
//! selects it; a non-versioned API (Amplify Gen 2, the stand-in) has no such field and refuses
//! the selection (`FieldUndefined`), and has no tombstones either: the scan then reads the
//! pages without it, one refused request per scan.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::{Failure, FailureKind, GaveUp};
use uc_worker::classify::{Answer, Outcome, classify};
use uc_worker::{AppSyncClient, GraphQlEndpoint, StoreSetting};

use crate::profile_lookup::{appsync_client, dynamodb_client};
use crate::text::redact;
use crate::user_pages::PAGE_RETRY;
use uc_runtime::pace::{Pacer, admit};

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

/// The same for a versioned (DataStore) API, whose list resolver returns tombstones too.
pub const LIST_USER_PROFILES_VERSIONED: &str =
    "query AuditListUserProfiles($limit: Int, $nextToken: String) {
  listUserProfiles(limit: $limit, nextToken: $nextToken) {
    items {
      id
      profileOwner
      _deleted
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

/// One item of the store, as a scan reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned<'a> {
    pub id: &'a str,
    pub owner: Option<&'a str>,
    /// A DataStore tombstone (`_deleted = true`): a removed profile, not a live one.
    pub deleted: bool,
}

/// Every item of the store: profiles and tombstones.
pub trait ProfileScan {
    /// Calls `each` for every item; `progress` hears the count after each page.
    fn scan(
        &self,
        pace: ScanPace,
        each: &mut dyn FnMut(Scanned<'_>),
        progress: &mut dyn FnMut(u64),
    ) -> impl Future<Output = Result<(), ScanError>>;
}

/// Whether a refused page says the type has no `_deleted` field: AppSync's `Validation error
/// of type FieldUndefined: Field '_deleted' in type 'UserProfile' is undefined`, graphql-js's
/// `Cannot query field "_deleted" on type "UserProfile".` (Amplify's simulator). Only an
/// error naming the field counts: any other refusal stays a failed page.
fn lacks_deleted_field(answer: &Answer) -> bool {
    let Answer::Http { body, .. } = answer else {
        return false;
    };
    let Ok(page) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    page["errors"].as_array().is_some_and(|errors| {
        errors.iter().any(|e| {
            e["message"].as_str().is_some_and(|m| {
                m.contains("'_deleted'") || m.contains("\"_deleted\"") || m.contains("`_deleted`")
            })
        })
    })
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
        each: &mut dyn FnMut(Scanned<'_>),
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ScanError> {
        let endpoint = &self.0;
        let pacer = Pacer::new(pace.pages_per_second);
        let mut token: Option<String> = None;
        let mut seen = 0u64;
        // Until the API says its type has no `_deleted` (see the module's notes).
        let mut versioned = true;
        loop {
            admit(&pacer, 1).await;
            let query = if versioned {
                LIST_USER_PROFILES_VERSIONED
            } else {
                LIST_USER_PROFILES
            };
            let body = serde_json::to_vec(&json!({
                "query": query,
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
                                // Not worth a retry: the schema will not change.
                                _ if versioned && lacks_deleted_field(&answer) => Err(PageFailure(
                                    Outcome::Permanent {
                                        reason: "FieldUndefined".into(),
                                    },
                                    answer,
                                )),
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
                    error: PageFailure(_, answer),
                    ..
                }) if versioned && lacks_deleted_field(&answer) => {
                    // No conflict detection: no tombstones. The same page again, without it.
                    versioned = false;
                    continue;
                }
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
                        None => appsync_error(Failure::deadline_reached().to_string()),
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
                each(Scanned {
                    id,
                    owner: item["profileOwner"].as_str(),
                    deleted: item["_deleted"].as_bool() == Some(true),
                });
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
        each: &mut dyn FnMut(Scanned<'_>),
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ScanError> {
        let pacer = Pacer::new(pace.pages_per_second);
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        let mut seen = 0u64;
        let error = |message: String| ScanError {
            store: "DynamoDB",
            operation: "Scan",
            message: redact(&message),
        };
        loop {
            admit(&pacer, 1).await;
            let answer = PAGE_RETRY
                .run(
                    None,
                    |_| {
                        let call = self
                            .client
                            .scan()
                            .table_name(&self.table)
                            .projection_expression("#id, #owner, #deleted")
                            .expression_attribute_names("#id", "id")
                            .expression_attribute_names("#owner", "profileOwner")
                            .expression_attribute_names("#deleted", "_deleted")
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
                    let last = gave_up.into_failure();
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
                let deleted = matches!(item.get("_deleted"), Some(AttributeValue::Bool(true)));
                each(Scanned { id, owner, deleted });
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
        each: &mut dyn FnMut(Scanned<'_>),
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ScanError> {
        match self {
            Self::AppSync(scan) => scan.scan(pace, each, progress).await,
            Self::DynamoDb(scan) => scan.scan(pace, each, progress).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A GraphQL endpoint answering from a script, recording the documents it was sent.
    struct Scripted {
        answers: Mutex<Vec<Value>>,
        queries: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(answers: Vec<Value>) -> Self {
            Self {
                answers: Mutex::new(answers.into_iter().rev().collect()),
                queries: Mutex::new(Vec::new()),
            }
        }
    }

    impl GraphQlEndpoint for Scripted {
        async fn post(&self, body: Vec<u8>, _: Duration, _: Option<&str>) -> Answer {
            let sent: Value = serde_json::from_slice(&body).unwrap();
            self.queries
                .lock()
                .unwrap()
                .push(sent["query"].as_str().unwrap().to_owned());
            let answer = self
                .answers
                .lock()
                .unwrap()
                .pop()
                .expect("a scripted answer");
            Answer::Http {
                status: 200,
                body: serde_json::to_vec(&answer).unwrap(),
            }
        }

        async fn refresh_credentials(&self) {}
    }

    const PACE: ScanPace = ScanPace {
        page_size: 2,
        pages_per_second: 1000.0,
    };

    async fn scan_all(scan: &impl ProfileScan) -> Result<Vec<(String, bool)>, ScanError> {
        let mut items = Vec::new();
        scan.scan(
            PACE,
            &mut |item| items.push((item.id.to_owned(), item.deleted)),
            &mut |_| {},
        )
        .await?;
        Ok(items)
    }

    fn page(items: Value, next: Option<&str>) -> Value {
        json!({"data": {"listUserProfiles": {"items": items, "nextToken": next}}})
    }

    /// A versioned (DataStore) API lists tombstones beside live items: each says which it is.
    #[tokio::test]
    async fn a_versioned_api_marks_its_tombstones() {
        let endpoint = Scripted::new(vec![
            page(
                json!([{"id": "a", "profileOwner": "a::x", "_deleted": null},
                       {"id": "b", "profileOwner": null, "_deleted": true}]),
                Some("t"),
            ),
            page(
                json!([{"id": "c", "profileOwner": "c::y", "_deleted": false}]),
                None,
            ),
        ]);
        let scan = AppSyncScan(endpoint);
        let items = scan_all(&scan).await.unwrap();
        assert_eq!(
            items,
            [("a".into(), false), ("b".into(), true), ("c".into(), false)]
        );
        let queries = scan.0.queries.lock().unwrap();
        assert!(
            queries.iter().all(|q| q.contains("_deleted")),
            "{queries:?}"
        );
    }

    /// An API without conflict detection refuses the `_deleted` selection once; the scan reads
    /// the same page again without it, and every later page.
    #[tokio::test]
    async fn an_api_without_the_field_is_read_without_it() {
        for refusal in [
            "Validation error of type FieldUndefined: Field '_deleted' in type 'UserProfile' is undefined @ 'listUserProfiles/items/_deleted'",
            "Cannot query field \"_deleted\" on type \"UserProfile\".",
        ] {
            let endpoint = Scripted::new(vec![
                json!({"data": null, "errors": [{"message": refusal, "errorType": null}]}),
                page(json!([{"id": "a", "profileOwner": "a::x"}]), Some("t")),
                page(json!([{"id": "b", "profileOwner": "b::y"}]), None),
            ]);
            let scan = AppSyncScan(endpoint);
            let items = scan_all(&scan).await.unwrap();
            assert_eq!(items, [("a".into(), false), ("b".into(), false)]);
            let queries = scan.0.queries.lock().unwrap();
            assert_eq!(queries.len(), 3, "one refused request: {queries:?}");
            assert!(queries[0].contains("_deleted"));
            assert!(!queries[1].contains("_deleted") && !queries[2].contains("_deleted"));
        }
    }

    /// Any other refusal is a failed page: the audit cannot tell.
    #[tokio::test]
    async fn another_refusal_fails_the_scan() {
        let endpoint = Scripted::new(vec![json!({"data": null, "errors": [{
            "message": "Validation error of type FieldUndefined: Field 'profileOwner' in type 'UserProfile' is undefined",
        }]})]);
        let error = scan_all(&AppSyncScan(endpoint)).await.unwrap_err();
        assert!(error.message.contains("ValidationError"), "{error}");
    }
}
