//! What AppSync answered (or failed to answer), as an outcome. AppSync often answers HTTP 200
//! with `errors`, so the GraphQL body rules live here; statuses follow the shared rule in
//! `uc_runtime::aws`. Pure logic: the table in docs/worker.md is this function, row by row.

use serde_json::Value;
use uc_runtime::aws::status_kind;
use uc_runtime::{Classified, FailureKind};

/// What the transport saw: an HTTP answer, or no answer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Http {
        status: u16,
        body: Vec<u8>,
    },
    /// Connecting failed (refused, DNS, TLS).
    ConnectFailed(String),
    /// No complete answer within the request timeout.
    TimedOut,
    /// The connection broke mid-request, or another transport error.
    Transport(String),
}

/// What the worker does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The profile was created.
    Created,
    /// The profile exists already (a redelivery, a retry, a replay): success.
    AlreadyExists,
    /// May succeed later; `throttled` asks the caller to slow down.
    Retryable { reason: String, throttled: bool },
    /// The signature or credentials were refused: refresh credentials and retry once.
    AuthRejected { reason: String },
    /// Will not succeed by retrying the same request.
    Permanent { reason: String },
}

impl Outcome {
    /// A short, stable reason code (`Created`, `AlreadyExists`, or the error type).
    pub fn code(&self) -> &str {
        match self {
            Self::Created => "Created",
            Self::AlreadyExists => "AlreadyExists",
            Self::Retryable { reason, .. }
            | Self::AuthRejected { reason }
            | Self::Permanent { reason } => reason,
        }
    }
}

/// As a failure: only `Retryable` may be retried; the write loop itself decides whether an
/// `AuthRejected` earns one retry after a credential refresh.
impl Classified for Outcome {
    fn kind(&self) -> FailureKind {
        match self {
            Self::Retryable { throttled, .. } => FailureKind::Retryable {
                throttled: *throttled,
            },
            _ => FailureKind::Permanent,
        }
    }
}

/// AppSync's errorType when the create resolver's `attribute_not_exists(id)` condition fails.
pub const ALREADY_EXISTS: &str = "DynamoDB:ConditionalCheckFailedException";

/// Error types that mean "the request is wrong or not allowed": retrying cannot help.
const PERMANENT_TYPES: &[&str] = &[
    "Unauthorized",
    "UnauthorizedException",
    "MappingTemplate",
    "ValidationError",
    "BadRequestException",
    "MalformedHttpRequestException",
    "DynamoDB:ValidationException",
    "DynamoDB:ResourceNotFoundException",
    "DynamoDB:AccessDeniedException",
];

/// Classifies one answer to the mutation whose result sits under `data.<field>`.
pub fn classify(answer: &Answer, field: &str) -> Outcome {
    let (status, body) = match answer {
        Answer::ConnectFailed(_) => return retry("ConnectFailed"),
        Answer::TimedOut => return retry("Timeout"),
        Answer::Transport(_) => return retry("TransportError"),
        Answer::Http { status, body } => (*status, body),
    };
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let first_type = json
        .as_ref()
        .and_then(|j| error_types(j).into_iter().next());
    if status != 200 {
        if matches!(status, 401 | 403) {
            return Outcome::AuthRejected {
                reason: first_type.unwrap_or_else(|| format!("Http{status}")),
            };
        }
        let default = if status == 429 {
            "TooManyRequests".to_owned()
        } else {
            format!("Http{status}")
        };
        return outcome_of(status_kind(status), first_type.unwrap_or(default));
    }
    let Some(json) = json else {
        return retry("UnreadableResponse");
    };
    let errors = json
        .get("errors")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty());
    let Some(errors) = errors else {
        return match json.pointer(&format!("/data/{field}")) {
            Some(Value::Object(_)) => Outcome::Created,
            _ => retry("EmptyResult"),
        };
    };
    // Several errors: the most final one decides (permanent, then retryable, then exists).
    let outcomes: Vec<Outcome> = errors.iter().map(classify_graphql_error).collect();
    outcomes
        .iter()
        .find(|o| matches!(o, Outcome::Permanent { .. }))
        .or_else(|| {
            outcomes
                .iter()
                .find(|o| matches!(o, Outcome::Retryable { .. }))
        })
        .or_else(|| outcomes.first())
        .cloned()
        .unwrap_or_else(|| retry("UnknownError"))
}

/// For a read or a delete: `Some(true)` when a 200 answer without errors has the item under
/// `data.<field>`, `Some(false)` when it has `null` there; `None` for anything else (errors,
/// other statuses, no answer), which [`classify`] judges.
pub fn presence(answer: &Answer, field: &str) -> Option<bool> {
    let Answer::Http { status: 200, body } = answer else {
        return None;
    };
    let json: Value = serde_json::from_slice(body).ok()?;
    if json
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty())
    {
        return None;
    }
    match json.pointer(&format!("/data/{field}"))? {
        Value::Object(_) => Some(true),
        Value::Null => Some(false),
        _ => None,
    }
}

fn classify_graphql_error(error: &Value) -> Outcome {
    let error_type = error
        .get("errorType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if error_type == ALREADY_EXISTS {
        return Outcome::AlreadyExists;
    }
    if error_type.trim().is_empty() {
        // AppSync reports query and variable validation failures with no errorType.
        if message.starts_with("Validation error")
            || message.starts_with("Variable '")
            || message.starts_with("Invalid Syntax")
        {
            return Outcome::Permanent {
                reason: "ValidationError".into(),
            };
        }
        return retry("UnknownError");
    }
    if PERMANENT_TYPES.contains(&error_type) {
        return Outcome::Permanent {
            reason: error_type.to_owned(),
        };
    }
    let throttled = [
        "Throttl",
        "ThroughputExceeded",
        "LimitExceeded",
        "TooManyRequests",
    ]
    .iter()
    .any(|needle| error_type.contains(needle));
    Outcome::Retryable {
        reason: error_type.to_owned(),
        throttled,
    }
}

/// The outcome for a failure of `kind` named `reason`.
fn outcome_of(kind: FailureKind, reason: String) -> Outcome {
    match kind {
        FailureKind::Retryable { throttled } => Outcome::Retryable { reason, throttled },
        FailureKind::Permanent => Outcome::Permanent { reason },
    }
}

fn retry(reason: &str) -> Outcome {
    Outcome::Retryable {
        reason: reason.to_owned(),
        throttled: false,
    }
}

fn error_types(json: &Value) -> Vec<String> {
    json.get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| {
                    e.get("errorType")
                        .and_then(Value::as_str)
                        // A blank type is no type: the status names the reason instead (an empty
                        // reason would be an empty `uc.reason`, which SQS refuses).
                        .filter(|t| !t.trim().is_empty())
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELD: &str = "createUserProfile";

    fn http(status: u16, body: Value) -> Answer {
        Answer::Http {
            status,
            body: body.to_string().into_bytes(),
        }
    }

    fn gql_error(error_type: Option<&str>, message: &str) -> Value {
        let mut e = json!({"path": [FIELD], "data": null, "errorInfo": null, "locations": [{"line": 2, "column": 3, "sourceName": null}], "message": message});
        if let Some(t) = error_type {
            e["errorType"] = t.into();
        }
        json!({"data": {FIELD: null}, "errors": [e]})
    }

    fn retryable(reason: &str, throttled: bool) -> Outcome {
        Outcome::Retryable {
            reason: reason.into(),
            throttled,
        }
    }

    fn permanent(reason: &str) -> Outcome {
        Outcome::Permanent {
            reason: reason.into(),
        }
    }

    /// The classification table in docs/worker.md, row by row.
    #[test]
    fn classification_table() {
        let rows: Vec<(&str, Answer, Outcome)> = vec![
            (
                "200 with data",
                http(200, json!({"data": {FIELD: {"id": "s"}}})),
                Outcome::Created,
            ),
            (
                "200 exists",
                http(
                    200,
                    gql_error(Some(ALREADY_EXISTS), "The conditional request failed"),
                ),
                Outcome::AlreadyExists,
            ),
            (
                "200 Unauthorized",
                http(
                    200,
                    gql_error(
                        Some("Unauthorized"),
                        "Not Authorized to access createUserProfile on type Mutation",
                    ),
                ),
                permanent("Unauthorized"),
            ),
            (
                "200 MappingTemplate",
                http(200, gql_error(Some("MappingTemplate"), "bad template")),
                permanent("MappingTemplate"),
            ),
            (
                "200 validation",
                http(
                    200,
                    json!({"data": null, "errors": [{"path": null, "locations": [], "message": "Validation error of type FieldUndefined: Field 'x' in type 'Mutation' is undefined"}]}),
                ),
                permanent("ValidationError"),
            ),
            (
                "200 throughput",
                http(
                    200,
                    gql_error(
                        Some("DynamoDB:ProvisionedThroughputExceededException"),
                        "slow down",
                    ),
                ),
                retryable("DynamoDB:ProvisionedThroughputExceededException", true),
            ),
            (
                "200 throttling",
                http(
                    200,
                    gql_error(Some("DynamoDB:ThrottlingException"), "slow down"),
                ),
                retryable("DynamoDB:ThrottlingException", true),
            ),
            (
                "200 execution timeout",
                http(
                    200,
                    gql_error(Some("ExecutionTimeout"), "Execution timed out."),
                ),
                retryable("ExecutionTimeout", false),
            ),
            (
                "200 unknown errorType",
                http(200, gql_error(Some("Lambda:Unhandled"), "boom")),
                retryable("Lambda:Unhandled", false),
            ),
            (
                "200 bad variable",
                http(
                    200,
                    json!({"data": null, "errors": [{"message": "Variable 'input' has coerced Null value for NonNull type 'ID!'"}]}),
                ),
                permanent("ValidationError"),
            ),
            (
                "200 syntax error",
                http(
                    200,
                    json!({"data": null, "errors": [{"message": "Invalid Syntax : offending token '}'"}]}),
                ),
                permanent("ValidationError"),
            ),
            (
                "200 error without type",
                http(200, gql_error(None, "something")),
                retryable("UnknownError", false),
            ),
            (
                "200 null result, no errors",
                http(200, json!({"data": {FIELD: null}})),
                retryable("EmptyResult", false),
            ),
            (
                "200 not JSON",
                Answer::Http {
                    status: 200,
                    body: b"<html>".to_vec(),
                },
                retryable("UnreadableResponse", false),
            ),
            (
                "401 unsigned",
                http(
                    401,
                    json!({"errors": [{"errorType": "UnauthorizedException", "message": "Valid authorization header not provided."}]}),
                ),
                Outcome::AuthRejected {
                    reason: "UnauthorizedException".into(),
                },
            ),
            (
                "403 bad signature",
                http(
                    403,
                    json!({"errors": [{"errorType": "InvalidSignatureException", "message": "Signature expired"}]}),
                ),
                Outcome::AuthRejected {
                    reason: "InvalidSignatureException".into(),
                },
            ),
            (
                "403 no body",
                Answer::Http {
                    status: 403,
                    body: vec![],
                },
                Outcome::AuthRejected {
                    reason: "Http403".into(),
                },
            ),
            (
                "429",
                http(
                    429,
                    json!({"errors": [{"errorType": "TooManyRequestsException", "message": "rate"}]}),
                ),
                retryable("TooManyRequestsException", true),
            ),
            (
                "429 no body",
                Answer::Http {
                    status: 429,
                    body: vec![],
                },
                retryable("TooManyRequests", true),
            ),
            (
                "500",
                http(
                    500,
                    json!({"errors": [{"errorType": "InternalFailureException"}]}),
                ),
                retryable("InternalFailureException", false),
            ),
            (
                "503",
                Answer::Http {
                    status: 503,
                    body: b"Service Unavailable".to_vec(),
                },
                retryable("Http503", false),
            ),
            (
                "400 malformed",
                http(
                    400,
                    json!({"errors": [{"errorType": "MalformedHttpRequestException"}]}),
                ),
                permanent("MalformedHttpRequestException"),
            ),
            (
                "404",
                Answer::Http {
                    status: 404,
                    body: vec![],
                },
                permanent("Http404"),
            ),
            (
                "302",
                Answer::Http {
                    status: 302,
                    body: vec![],
                },
                retryable("Http302", false),
            ),
            (
                "connect refused",
                Answer::ConnectFailed("refused".into()),
                retryable("ConnectFailed", false),
            ),
            ("timeout", Answer::TimedOut, retryable("Timeout", false)),
            (
                "broken connection",
                Answer::Transport("reset".into()),
                retryable("TransportError", false),
            ),
        ];
        for (name, answer, expected) in rows {
            assert_eq!(classify(&answer, FIELD), expected, "row: {name}");
        }
    }

    #[test]
    fn the_most_final_error_decides() {
        let body = json!({"data": {FIELD: null}, "errors": [
            {"errorType": ALREADY_EXISTS, "message": "exists"},
            {"errorType": "ExecutionTimeout", "message": "slow"},
            {"errorType": "Unauthorized", "message": "no"},
        ]});
        assert_eq!(
            classify(&http(200, body.clone()), FIELD),
            permanent("Unauthorized")
        );
        let mut two = body.clone();
        two["errors"].as_array_mut().unwrap().pop();
        assert_eq!(
            classify(&http(200, two), FIELD),
            retryable("ExecutionTimeout", false)
        );
    }

    /// Found by the `classification_is_total` property test (worker/tests/hostile_input.rs):
    /// a 4xx whose error has `"errorType": ""` was classified `Permanent { reason: "" }`.
    #[test]
    fn a_blank_error_type_falls_back_to_the_status() {
        let body = json!({"errors": [{"errorType": "", "message": "x"}, {"errorType": " "}]});
        assert_eq!(
            classify(&http(200, json!({"errors": [{"errorType": " "}]})), FIELD),
            retryable("UnknownError", false)
        );
        for (status, expected) in [
            (400, permanent("Http400")),
            (
                401,
                Outcome::AuthRejected {
                    reason: "Http401".into(),
                },
            ),
            (429, retryable("TooManyRequests", true)),
            (500, retryable("Http500", false)),
            (200, retryable("UnknownError", false)),
        ] {
            assert_eq!(
                classify(&http(status, body.clone()), FIELD),
                expected,
                "{status}"
            );
        }
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(Outcome::Created.code(), "Created");
        assert_eq!(Outcome::AlreadyExists.code(), "AlreadyExists");
        assert_eq!(permanent("Unauthorized").code(), "Unauthorized");
    }
}
