//! Which of a page's users already have a profile, asked of the store the worker writes
//! (`PROFILE_STORE`, read as the worker reads it): the sweep's store check. AppSync: one
//! GraphQL request per page, one `getUserProfile` per user under an alias (the reader needs
//! `Query/fields/getUserProfile` only); DynamoDB: `BatchGetItem` of the ids, 100 keys a call,
//! the key alone projected (the reader needs `dynamodb:BatchGetItem` on the table only). Both
//! retry with the shared runner; an answer that cannot be read is "cannot tell", never "absent".

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde_json::{Map, Value, json};
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::{Classified, Failure, FailureKind};
use uc_worker::classify::{Answer, Outcome, classify};
use uc_worker::{AppSyncClient, EndpointSetting, GraphQlEndpoint, StoreSetting};

use crate::user_pages::PAGE_RETRY;

/// The query field the AppSync lookup reads (Amplify's generated single-item query).
pub const GET_FIELD: &str = "getUserProfile";

/// Ids asked of AppSync in one request (a `ListUsers` page holds 60 users).
const APPSYNC_IDS_PER_REQUEST: usize = 60;

/// Keys one `BatchGetItem` takes at most (DynamoDB's limit).
const DYNAMODB_KEYS_PER_CALL: usize = 100;

/// One lookup request's timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The store could not say which profiles exist.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{store} {operation}: {failure} (after {attempts} attempts)")]
pub struct LookupError {
    pub store: &'static str,
    pub operation: &'static str,
    pub failure: String,
    pub attempts: usize,
}

/// The store check: of `ids`, those that have a profile.
pub trait ProfileLookup {
    fn existing(&self, ids: &[&str]) -> impl Future<Output = Result<HashSet<String>, LookupError>>;

    /// Read requests made so far (GraphQL requests or `BatchGetItem` calls).
    fn reads(&self) -> u64;

    /// What the store is, for an operator's line ("AppSync getUserProfile", "DynamoDB table T").
    fn describe(&self) -> String;
}

/// The GraphQL document asking for `n` profiles by id, each under the alias `p<i>`.
pub fn lookup_document(n: usize) -> String {
    let variables: Vec<String> = (0..n).map(|i| format!("$i{i}: ID!")).collect();
    let mut document = format!("query SweepProfilesExist({}) {{\n", variables.join(", "));
    for i in 0..n {
        document.push_str(&format!("  p{i}: {GET_FIELD}(id: $i{i}) {{ id }}\n"));
    }
    document.push_str("}\n");
    document
}

/// Reads an answer to [`lookup_document`] for `ids`: the ids whose alias holds a profile. A
/// null is an absent profile; an error anywhere, or a value that is neither, is a failure in
/// the worker's outcome vocabulary (so throttling and refused credentials read the same).
pub fn read_lookup_answer(answer: &Answer, ids: &[&str]) -> Result<HashSet<String>, Outcome> {
    let unreadable = || Outcome::Retryable {
        reason: "UnreadableResult".into(),
        throttled: false,
    };
    if let Answer::Http { status: 200, body } = answer
        && let Ok(json) = serde_json::from_slice::<Value>(body)
        && json
            .get("errors")
            .and_then(Value::as_array)
            .is_none_or(|e| e.is_empty())
    {
        let data = json
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(unreadable)?;
        let mut found = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            match data.get(&format!("p{i}")) {
                Some(Value::Null) => {}
                Some(Value::Object(profile)) if profile.get("id") == Some(&json!(id)) => {
                    found.insert((*id).to_owned());
                }
                _ => return Err(unreadable()),
            }
        }
        return Ok(found);
    }
    Err(match classify(answer, "p0") {
        Outcome::Created | Outcome::AlreadyExists => unreadable(),
        outcome => outcome,
    })
}

/// The AppSync lookup, signed with the caller's credentials (the reconciler's role, or the
/// operator's).
pub struct AppSyncLookup<E> {
    endpoint: E,
    reads: AtomicU64,
}

impl<E: GraphQlEndpoint> AppSyncLookup<E> {
    pub fn new(endpoint: E) -> Self {
        Self {
            endpoint,
            reads: AtomicU64::new(0),
        }
    }

    async fn chunk(&self, ids: &[&str]) -> Result<HashSet<String>, LookupError> {
        let variables: Map<String, Value> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("i{i}"), json!(id)))
            .collect();
        let body = serde_json::to_vec(&json!({
            "query": lookup_document(ids.len()),
            "operationName": "SweepProfilesExist",
            "variables": variables,
        }))
        .expect("serializes");
        let refreshed = AtomicBool::new(false);
        let attempt = |_| {
            let body = body.clone();
            let refreshed = &refreshed;
            async move {
                self.reads.fetch_add(1, Ordering::Relaxed);
                let answer = self.endpoint.post(body, REQUEST_TIMEOUT, None).await;
                match read_lookup_answer(&answer, ids) {
                    Ok(found) => Ok(found),
                    // Expired or rotated credentials: renew them and ask again, once.
                    Err(Outcome::AuthRejected { reason })
                        if !refreshed.swap(true, Ordering::Relaxed) =>
                    {
                        self.endpoint.refresh_credentials().await;
                        Err(Outcome::Retryable {
                            reason,
                            throttled: false,
                        })
                    }
                    Err(Outcome::AuthRejected { reason }) => Err(Outcome::Permanent { reason }),
                    Err(other) => Err(other),
                }
            }
        };
        PAGE_RETRY
            .run(None, attempt, |_, _| {})
            .await
            .map(|done| done.value)
            .map_err(|gave_up| {
                let attempts = gave_up.attempts();
                LookupError {
                    store: "AppSync",
                    operation: GET_FIELD,
                    failure: gave_up.into_error().code().to_owned(),
                    attempts,
                }
            })
    }
}

impl<E: GraphQlEndpoint> ProfileLookup for AppSyncLookup<E> {
    async fn existing(&self, ids: &[&str]) -> Result<HashSet<String>, LookupError> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(APPSYNC_IDS_PER_REQUEST) {
            found.extend(self.chunk(chunk).await?);
        }
        Ok(found)
    }

    fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn describe(&self) -> String {
        format!("AppSync {GET_FIELD}")
    }
}

/// Why one `BatchGetItem` attempt failed: the call, or keys DynamoDB left unprocessed
/// (throttling: retried with the back-off).
#[derive(Debug)]
struct BatchGetFailure(Failure);

impl Classified for BatchGetFailure {
    fn kind(&self) -> FailureKind {
        self.0.kind
    }
}

impl From<BatchGetFailure> for Failure {
    fn from(failure: BatchGetFailure) -> Self {
        failure.0
    }
}

/// The DynamoDB lookup: `BatchGetItem` on the model table.
pub struct DynamoDbLookup {
    client: aws_sdk_dynamodb::Client,
    table: String,
    reads: AtomicU64,
}

impl DynamoDbLookup {
    /// `client` should have the SDK's own retries off: the shared runner retries.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            reads: AtomicU64::new(0),
        }
    }

    async fn chunk(&self, ids: &[&str]) -> Result<HashSet<String>, LookupError> {
        let pending: Mutex<Vec<String>> =
            Mutex::new(ids.iter().map(|id| (*id).to_owned()).collect());
        let found: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        let attempt = |_| async {
            let keys: Vec<HashMap<String, AttributeValue>> = pending
                .lock()
                .unwrap()
                .iter()
                .map(|id| HashMap::from([("id".to_owned(), AttributeValue::S(id.clone()))]))
                .collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("#id")
                .expression_attribute_names("#id", "id")
                .build()
                .expect("keys set");
            self.reads.fetch_add(1, Ordering::Relaxed);
            let call = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send();
            let output = match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                Ok(Ok(output)) => output,
                Ok(Err(error)) => return Err(BatchGetFailure(classify_sdk_error(&error))),
                Err(_) => {
                    return Err(BatchGetFailure(Failure::retryable(
                        "Timeout",
                        "BatchGetItem took too long",
                    )));
                }
            };
            let items = output
                .responses()
                .and_then(|r| r.get(&self.table))
                .map(Vec::as_slice)
                .unwrap_or_default();
            {
                let mut found = found.lock().unwrap();
                for item in items {
                    match item.get("id") {
                        Some(AttributeValue::S(id)) => {
                            found.insert(id.clone());
                        }
                        _ => {
                            return Err(BatchGetFailure(Failure::permanent(
                                "UnreadableItem",
                                "an item without a string id",
                            )));
                        }
                    }
                }
            }
            let unprocessed: Vec<String> = output
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys())
                .unwrap_or_default()
                .iter()
                .filter_map(|key| match key.get("id") {
                    Some(AttributeValue::S(id)) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            let left = unprocessed.len();
            *pending.lock().unwrap() = unprocessed;
            if left == 0 {
                Ok(())
            } else {
                Err(BatchGetFailure(Failure::new(
                    FailureKind::Retryable { throttled: true },
                    "UnprocessedKeys",
                    format!("{left} keys left unprocessed"),
                )))
            }
        };
        match PAGE_RETRY.run(None, attempt, |_, _| {}).await {
            Ok(_) => Ok(found.into_inner().unwrap()),
            Err(gave_up) => {
                let attempts = gave_up.attempts();
                let failure = gave_up.into_failure().to_string();
                Err(LookupError {
                    store: "DynamoDB",
                    operation: "BatchGetItem",
                    failure: crate::text::redact(&failure),
                    attempts,
                })
            }
        }
    }
}

impl ProfileLookup for DynamoDbLookup {
    async fn existing(&self, ids: &[&str]) -> Result<HashSet<String>, LookupError> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(DYNAMODB_KEYS_PER_CALL) {
            found.extend(self.chunk(chunk).await?);
        }
        Ok(found)
    }

    fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn describe(&self) -> String {
        format!("DynamoDB table {}", self.table)
    }
}

/// The lookup for the store `PROFILE_STORE` chose.
pub enum ConfiguredLookup {
    AppSync(AppSyncLookup<AppSyncClient>),
    DynamoDb(DynamoDbLookup),
    /// A forced republish (`backfill --all`): no store is asked, every user counts as without
    /// a profile.
    NotAsked,
}

impl ConfiguredLookup {
    /// Builds the lookup (for AppSync: the endpoint resolved once, a signing client).
    pub async fn build(
        setting: &StoreSetting,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, uc_worker::WorkerError> {
        Ok(match setting {
            StoreSetting::AppSync(endpoint) => {
                Self::AppSync(AppSyncLookup::new(appsync_client(endpoint, sdk).await?))
            }
            StoreSetting::DynamoDb(table) => Self::DynamoDb(DynamoDbLookup::new(
                dynamodb_client(sdk),
                table.name.clone(),
            )),
        })
    }
}

/// The signing client for the store's API (the endpoint looked up once when given by id), with
/// the caller's credentials: what the operations tools read the AppSync store with.
pub async fn appsync_client(
    endpoint: &EndpointSetting,
    sdk: &aws_config::SdkConfig,
) -> Result<AppSyncClient, uc_worker::WorkerError> {
    let url = endpoint.resolve(sdk).await?;
    AppSyncClient::from_sdk_config(url, sdk, Duration::from_secs(5), 2)
}

/// A DynamoDB client with the SDK's own retries off: the shared runner retries.
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}

impl ProfileLookup for ConfiguredLookup {
    async fn existing(&self, ids: &[&str]) -> Result<HashSet<String>, LookupError> {
        match self {
            Self::AppSync(lookup) => lookup.existing(ids).await,
            Self::DynamoDb(lookup) => lookup.existing(ids).await,
            Self::NotAsked => Ok(HashSet::new()),
        }
    }

    fn reads(&self) -> u64 {
        match self {
            Self::AppSync(lookup) => lookup.reads(),
            Self::DynamoDb(lookup) => lookup.reads(),
            Self::NotAsked => 0,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::AppSync(lookup) => lookup.describe(),
            Self::DynamoDb(lookup) => lookup.describe(),
            Self::NotAsked => "no store (every selected user is published)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(body: Value) -> Answer {
        Answer::Http {
            status: 200,
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    #[test]
    fn the_document_asks_for_each_id_under_its_alias() {
        assert_eq!(
            lookup_document(2),
            "query SweepProfilesExist($i0: ID!, $i1: ID!) {\n  p0: getUserProfile(id: $i0) { id }\n  p1: getUserProfile(id: $i1) { id }\n}\n"
        );
    }

    #[test]
    fn a_null_is_absent_a_profile_is_present_and_anything_else_cannot_tell() {
        let ids = ["a", "b", "c"];
        let answer = http(json!({"data": {"p0": {"id": "a"}, "p1": null, "p2": {"id": "c"}}}));
        let found = read_lookup_answer(&answer, &ids).unwrap();
        assert_eq!(found, HashSet::from(["a".to_owned(), "c".to_owned()]));
        // A missing alias, or a profile under the wrong alias: not "absent".
        for data in [
            json!({"p0": {"id": "a"}, "p1": null}),
            json!({"p0": {"id": "b"}, "p1": null, "p2": null}),
        ] {
            let error = read_lookup_answer(&http(json!({ "data": data })), &ids).unwrap_err();
            assert_eq!(error.code(), "UnreadableResult");
        }
        let throttled = http(json!({"data": {"p0": null}, "errors": [
            {"errorType": "DynamoDB:ProvisionedThroughputExceededException", "message": "slow down"}
        ]}));
        assert!(matches!(
            read_lookup_answer(&throttled, &["a"]),
            Err(Outcome::Retryable {
                throttled: true,
                ..
            })
        ));
        let refused = http(json!({"data": null, "errors": [
            {"errorType": "Unauthorized", "message": "Not Authorized to access getUserProfile on type Query"}
        ]}));
        assert!(matches!(
            read_lookup_answer(&refused, &["a"]),
            Err(Outcome::Permanent { .. })
        ));
        let forbidden = Answer::Http {
            status: 403,
            body: b"{}".to_vec(),
        };
        assert!(matches!(
            read_lookup_answer(&forbidden, &["a"]),
            Err(Outcome::AuthRejected { .. })
        ));
        assert!(matches!(
            read_lookup_answer(&Answer::TimedOut, &["a"]),
            Err(Outcome::Retryable { .. })
        ));
    }
}
