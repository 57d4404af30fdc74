//! The DynamoDB adapter of the profile-store port: for Amplify Gen 1 apps whose model table
//! the worker writes straight into (an API with no IAM authorization mode, say), as the Amplify
//! DynamoDB guide's users do. One conditional `PutItem` (`attribute_not_exists(id)`) per
//! profile: the mapped fields (`MUTATION_INPUT`, as the AppSync mutation's input has them)
//! plus DataStore's (`__typename`, `_version`, `_lastChangedAt`, `createdAt`, `updatedAt`).
//! A failed condition means the profile exists; every other error goes through the shared
//! classification (`uc_runtime::aws`) and the shared retry runner. Removal (the user left the
//! pool) is what DataStore expects of a synced table — a soft delete (`_deleted`, the next
//! `_version`, `_lastChangedAt`, `_ttl`) — with the mapped fields (the email, the owner, which
//! holds the username) removed from the item at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use tokio::time::Instant;
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::{Failure, RetryPolicy};
use uc_schemas::UserConfirmed;
use uc_schemas::dead_letter::stage;

use crate::classify::Outcome;
use crate::limit::AdaptiveLimit;
use crate::mutation::MutationSpec;
use crate::store::{ProfileStore, Removal, WriteReport, result_of_run};

/// DynamoDB's error code when the condition (`attribute_not_exists(id)`) fails.
pub const CONDITION_FAILED: &str = "ConditionalCheckFailedException";

/// The condition that makes creation idempotent: the profile's id is the user's `sub`.
pub const CREATE_ONLY: &str = "attribute_not_exists(id)";

/// How long DataStore keeps a tombstone before DynamoDB's TTL removes it (Amplify's default
/// for conflict-detection tables: 30 days). The tombstone holds no PII.
pub const TOMBSTONE_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// The default `PROFILE_TYPENAME`: the Amplify docs' model.
pub const DEFAULT_TYPENAME: &str = "UserProfile";

/// Where and how profiles are written: `PROFILE_TABLE`, `PROFILE_TYPENAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTable {
    /// The model table's name (`UserProfile-<apiId>-<env>` in an Amplify Gen 1 project).
    pub name: String,
    /// DataStore's `__typename`: the model's name.
    pub typename: String,
}

/// The item for `event`'s profile: the mapped fields, then DataStore's, as AppSync's generated
/// create resolver would have written them at `now`.
pub fn profile_item(
    fields: &MutationSpec,
    typename: &str,
    event: &UserConfirmed,
    now: DateTime<Utc>,
) -> HashMap<String, AttributeValue> {
    let mut item: HashMap<String, AttributeValue> = fields
        .input_values(event)
        .into_iter()
        .map(|(name, value)| (name, attribute(value)))
        .collect();
    let timestamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    for (name, value) in [
        ("__typename", AttributeValue::S(typename.to_owned())),
        ("_version", AttributeValue::N("1".into())),
        (
            "_lastChangedAt",
            AttributeValue::N(now.timestamp_millis().to_string()),
        ),
        ("createdAt", AttributeValue::S(timestamp.clone())),
        ("updatedAt", AttributeValue::S(timestamp)),
    ] {
        item.insert(name.to_owned(), value);
    }
    item
}

/// A mapped value as DynamoDB types it.
fn attribute(value: Value) -> AttributeValue {
    match value {
        Value::String(s) => AttributeValue::S(s),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::Null => AttributeValue::Null(true),
        // No mapping source yields these; kept as JSON text rather than dropped.
        other => AttributeValue::S(other.to_string()),
    }
}

/// What one `PutItem` failure means: a failed condition is an existing profile; anything else
/// is judged by the shared classification, its code the reason a DLQ record carries.
pub fn outcome_of_failure<E>(error: &SdkError<E, HttpResponse>) -> Outcome
where
    E: ProvideErrorMetadata,
{
    if let SdkError::ServiceError(service) = error
        && service.err().code() == Some(CONDITION_FAILED)
    {
        return Outcome::AlreadyExists;
    }
    Outcome::from(classify_sdk_error(error))
}

/// Creates profiles in an Amplify model table with conditional `PutItem`s, with the one retry
/// policy and adaptive concurrency (throttling halves the calls in flight).
#[derive(Debug)]
pub struct DynamoDbProfiles {
    client: aws_sdk_dynamodb::Client,
    table: ProfileTable,
    fields: MutationSpec,
    retry: RetryPolicy,
    request_timeout: Duration,
    limit: AdaptiveLimit,
}

impl DynamoDbProfiles {
    /// `client` should have the SDK's own retries off: the shared runner retries.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: ProfileTable,
        fields: MutationSpec,
        retry: RetryPolicy,
        request_timeout: Duration,
        concurrency: usize,
    ) -> Self {
        Self {
            client,
            table,
            fields,
            retry,
            request_timeout,
            limit: AdaptiveLimit::new(concurrency),
        }
    }

    pub fn table(&self) -> &ProfileTable {
        &self.table
    }

    /// One conditional `PutItem`, bounded by `timeout`.
    async fn put(
        &self,
        item: HashMap<String, AttributeValue>,
        timeout: Duration,
        trace_header: Option<&str>,
    ) -> Outcome {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(item))
            .condition_expression(CREATE_ONLY)
            .customize();
        if let Some(trace) = trace_header {
            let trace = trace.to_owned();
            request = request.mutate_request(move |http| {
                http.headers_mut().insert("x-amzn-trace-id", trace.clone());
            });
        }
        match tokio::time::timeout(timeout, request.send()).await {
            Ok(Ok(_)) => Outcome::Created,
            Ok(Err(error)) => outcome_of_failure(&error),
            Err(_) => Outcome::Retryable {
                reason: "Timeout".into(),
                throttled: false,
            },
        }
    }
}

/// The `UpdateItem` of a soft delete at `now`: DataStore's tombstone fields set, every mapped
/// field but `id` removed (`#f0`, `#f1`, ... in `names`).
pub fn tombstone_update(
    fields: &MutationSpec,
    now: DateTime<Utc>,
) -> (
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
) {
    let mut names: HashMap<String, String> = [
        ("#deleted", "_deleted"),
        ("#version", "_version"),
        ("#changed", "_lastChangedAt"),
        ("#ttl", "_ttl"),
        ("#updated", "updatedAt"),
        ("#id", "id"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut removed = Vec::new();
    for (index, (field, _)) in fields.inputs.iter().filter(|(f, _)| f != "id").enumerate() {
        let placeholder = format!("#f{index}");
        names.insert(placeholder.clone(), field.clone());
        removed.push(placeholder);
    }
    let values: HashMap<String, AttributeValue> = [
        (":true", AttributeValue::Bool(true)),
        (":zero", AttributeValue::N("0".into())),
        (":one", AttributeValue::N("1".into())),
        (
            ":now",
            AttributeValue::N(now.timestamp_millis().to_string()),
        ),
        (
            ":ttl",
            AttributeValue::N((now.timestamp() + TOMBSTONE_TTL_SECONDS).to_string()),
        ),
        (
            ":nowIso",
            AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut expression = "SET #deleted = :true, #version = if_not_exists(#version, :zero) + :one, \
         #changed = :now, #ttl = :ttl, #updated = :nowIso"
        .to_owned();
    if !removed.is_empty() {
        expression.push_str(" REMOVE ");
        expression.push_str(&removed.join(", "));
    }
    (expression, names, values)
}

impl DynamoDbProfiles {
    /// One soft delete, bounded by `timeout`: `Removed` unless the item was missing or already
    /// a tombstone (its email is removed again all the same).
    async fn tombstone(&self, sub: &str, timeout: Duration) -> Result<Removal, Outcome> {
        let (expression, names, values) = tombstone_update(&self.fields, Utc::now());
        let request = self
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("id", AttributeValue::S(sub.to_owned()))
            .update_expression(expression)
            .condition_expression("attribute_exists(#id)")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send();
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(output)) => {
                let was_deleted = output
                    .attributes()
                    .and_then(|old| old.get("_deleted"))
                    .is_some_and(|v| matches!(v, AttributeValue::Bool(true)));
                Ok(if was_deleted {
                    Removal::Absent
                } else {
                    Removal::Removed
                })
            }
            Ok(Err(error)) => match outcome_of_failure(&error) {
                Outcome::AlreadyExists => Ok(Removal::Absent),
                other => Err(other),
            },
            Err(_) => Err(Outcome::Retryable {
                reason: "Timeout".into(),
                throttled: false,
            }),
        }
    }

    /// One consistent `GetItem`: a live (not deleted) item.
    async fn live(&self, sub: &str, timeout: Duration) -> Result<bool, Outcome> {
        let request = self
            .client
            .get_item()
            .table_name(&self.table.name)
            .key("id", AttributeValue::S(sub.to_owned()))
            .consistent_read(true)
            .projection_expression("#id, #deleted")
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#deleted", "_deleted")
            .send();
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(output)) => Ok(output.item().is_some_and(|item| {
                !matches!(item.get("_deleted"), Some(AttributeValue::Bool(true)))
            })),
            Ok(Err(error)) => Err(outcome_of_failure(&error)),
            Err(_) => Err(Outcome::Retryable {
                reason: "Timeout".into(),
                throttled: false,
            }),
        }
    }
}

impl ProfileStore for DynamoDbProfiles {
    fn kind(&self) -> uc_schemas::ProfileStore {
        uc_schemas::ProfileStore::Dynamodb
    }

    fn stage(&self) -> &'static str {
        stage::DYNAMODB
    }

    fn refusal_detail(&self, reason: &str) -> String {
        format!("DynamoDB refused PutItem on {}: {reason}", self.table.name)
    }

    async fn create(
        &self,
        event: &UserConfirmed,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
    ) -> WriteReport {
        let item = profile_item(&self.fields, &self.table.typename, event, Utc::now());
        let latencies = Mutex::new(Vec::new());
        let attempt = |attempt: uc_runtime::Attempt| {
            let item = item.clone();
            let latencies = &latencies;
            async move {
                let _slot = self.limit.acquire().await;
                let started = Instant::now();
                let outcome = self
                    .put(item, attempt.bound(self.request_timeout), trace_header)
                    .await;
                latencies
                    .lock()
                    .unwrap()
                    .push(started.elapsed().as_secs_f64() * 1000.0);
                match outcome {
                    done @ (Outcome::Created | Outcome::AlreadyExists) => {
                        self.limit.on_success();
                        Ok(done)
                    }
                    throttled @ Outcome::Retryable {
                        throttled: true, ..
                    } => {
                        self.limit.on_throttled();
                        Err(throttled)
                    }
                    other => Err(other),
                }
            }
        };
        let result = self.retry.run(deadline, attempt, |_, _| {}).await;
        WriteReport::of_run(result, latencies.into_inner().unwrap())
    }

    async fn remove(&self, sub: &str, deadline: Option<Instant>) -> Result<Removal, Failure> {
        let attempt = |attempt: uc_runtime::Attempt| async move {
            let _slot = self.limit.acquire().await;
            self.tombstone(sub, attempt.bound(self.request_timeout))
                .await
        };
        result_of_run(self.retry.run(deadline, attempt, |_, _| {}).await)
    }

    async fn exists(&self, sub: &str, deadline: Option<Instant>) -> Result<bool, Failure> {
        let attempt = |attempt: uc_runtime::Attempt| async move {
            self.live(sub, attempt.bound(self.request_timeout)).await
        };
        result_of_run(self.retry.run(deadline, attempt, |_, _| {}).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::{ServiceError, TimeoutError};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;
    use chrono::TimeZone;

    fn event(email: Option<&str>) -> UserConfirmed {
        let mut event = UserConfirmed::builder("pool", "sub-1")
            .username("Zoë")
            .email_verified(true)
            .region("us-east-1")
            .build();
        event.email = email.map(str::to_owned);
        event
    }

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.into())
    }

    fn n(number: &str) -> AttributeValue {
        AttributeValue::N(number.into())
    }

    #[test]
    fn the_item_has_the_mapped_fields_and_datastores() {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::milliseconds(678);
        let item = profile_item(
            &MutationSpec::default(),
            "UserProfile",
            &event(Some("zoe@example.com")),
            now,
        );
        let expected: HashMap<String, AttributeValue> = [
            ("id", s("sub-1")),
            ("email", s("zoe@example.com")),
            ("profileOwner", s("sub-1::Zoë")),
            ("__typename", s("UserProfile")),
            ("_version", n("1")),
            ("_lastChangedAt", n("1767323045678")),
            ("createdAt", s("2026-01-02T03:04:05.678Z")),
            ("updatedAt", s("2026-01-02T03:04:05.678Z")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(item, expected);
    }

    #[test]
    fn absent_values_are_left_out_and_other_sources_keep_their_types() {
        let fields = MutationSpec {
            inputs: MutationSpec::parse_mapping("id=sub,email=email,verified=emailVerified")
                .unwrap(),
            ..MutationSpec::default()
        };
        let item = profile_item(&fields, "Profile", &event(None), Utc::now());
        assert!(!item.contains_key("email"));
        assert_eq!(item["verified"], AttributeValue::Bool(true));
        assert_eq!(item["__typename"], s("Profile"));
    }

    fn service(status: u16, code: &str) -> SdkError<ErrorMetadata, HttpResponse> {
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::ServiceError(
            ServiceError::builder()
                .source(ErrorMetadata::builder().code(code).message("m").build())
                .raw(raw)
                .build(),
        )
    }

    /// What each PutItem failure means, row by row (the DLQ reasons are the codes).
    #[test]
    fn failures_classify_through_the_shared_rule() {
        let permanent = |reason: &str| Outcome::Permanent {
            reason: reason.into(),
        };
        let retryable = |reason: &str, throttled| Outcome::Retryable {
            reason: reason.into(),
            throttled,
        };
        let rows = [
            (service(400, CONDITION_FAILED), Outcome::AlreadyExists),
            (
                service(400, "ProvisionedThroughputExceededException"),
                retryable("ProvisionedThroughputExceededException", true),
            ),
            (
                service(400, "ThrottlingException"),
                retryable("ThrottlingException", true),
            ),
            (
                service(400, "RequestLimitExceeded"),
                retryable("RequestLimitExceeded", true),
            ),
            (
                service(500, "InternalServerError"),
                retryable("InternalServerError", false),
            ),
            (
                service(400, "ResourceNotFoundException"),
                permanent("ResourceNotFoundException"),
            ),
            (
                service(400, "AccessDeniedException"),
                permanent("AccessDeniedException"),
            ),
            (
                service(400, "ValidationException"),
                permanent("ValidationException"),
            ),
            (
                SdkError::TimeoutError(TimeoutError::builder().source("t").build()),
                retryable("Timeout", false),
            ),
        ];
        for (error, expected) in rows {
            assert_eq!(outcome_of_failure(&error), expected);
        }
    }
}
