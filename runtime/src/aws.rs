//! The one classification of AWS SDK errors (and of HTTP statuses and failed batch entries)
//! into the failure vocabulary: what may succeed on a retry, what asks us to slow down, and
//! what never will. Every AWS call in the workspace is judged here.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::redact::redact_emails;
use crate::retry::{Failure, FailureKind};

/// Codes that mean "slow down".
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Codes that mean "try again" without asking us to slow down.
const TRANSIENT_CODES: &[&str] = &[
    "InternalFailure",
    "InternalError",
    "InternalException",
    "InternalServerError",
    "InternalServiceError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "TransactionInProgressException",
];

/// PutEvents entry codes that may succeed on a retry (the two AWS documents as retryable).
const RETRYABLE_ENTRY_CODES: &[&str] = &["InternalFailure", "ThrottlingException"];

/// How an HTTP error status alone classifies: 429 asks to slow down; 408 and 5xx are
/// transient; any other 4xx means the request itself is at fault; anything else (a redirect
/// from a proxy, say) is unexpected and may pass.
pub fn status_kind(status: u16) -> FailureKind {
    match status {
        429 => FailureKind::THROTTLED,
        408 => FailureKind::RETRYABLE,
        400..=499 => FailureKind::Permanent,
        _ => FailureKind::RETRYABLE,
    }
}

/// How an AWS error code classifies, when the service gave one. `None`: the code alone does
/// not decide (the status does).
pub fn code_kind(code: &str) -> Option<FailureKind> {
    // Some services prefix codes (`com.amazonaws.sqs#QueueDoesNotExist`) or suffix the
    // query-protocol fault (`AWS.SimpleQueueService.NonExistentQueue;Sender`).
    let code = code.rsplit('#').next().unwrap_or(code);
    let code = code.split(';').next().unwrap_or(code);
    if THROTTLING_CODES.contains(&code) {
        Some(FailureKind::THROTTLED)
    } else if TRANSIENT_CODES.contains(&code) {
        Some(FailureKind::RETRYABLE)
    } else {
        None
    }
}

/// A failed entry of a batch call (PutEvents, SendMessageBatch): only the documented transient
/// entry codes are retried; any other entry failure is about the entry itself.
pub fn entry_failure(code: Option<&str>, message: Option<&str>) -> Failure {
    let code = code.unwrap_or("UnknownEntryFailure");
    let kind = if RETRYABLE_ENTRY_CODES.contains(&code) {
        code_kind(code).unwrap_or(FailureKind::RETRYABLE)
    } else {
        FailureKind::Permanent
    };
    Failure::new(kind, code, one_line(message.unwrap_or_default()))
}

/// A failed entry of SendMessageBatch: SQS marks the entries that are the sender's fault
/// (a bad body, a bad attribute), which no retry fixes; the others may pass on a retry.
pub fn sqs_entry_failure(code: &str, message: Option<&str>, sender_fault: bool) -> Failure {
    let kind = if sender_fault {
        FailureKind::Permanent
    } else {
        code_kind(code).unwrap_or(FailureKind::RETRYABLE)
    };
    Failure::new(kind, code, one_line(message.unwrap_or_default()))
}

/// Classifies any SDK error. Transport failures and timeouts are retryable; a service error
/// is judged by its code, then its status; anything the SDK could not even send is permanent.
pub fn classify_sdk_error<E>(error: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::TimeoutError(_) => Failure::retryable("Timeout", "the attempt timed out"),
        SdkError::DispatchFailure(failure) => {
            let code = if failure.is_timeout() {
                "Timeout"
            } else if failure.is_io() {
                "Connect"
            } else {
                "Dispatch"
            };
            // The connector error says only "other"; what went wrong is in its sources (no
            // credentials, no region, connection refused).
            let message = failure
                .as_connector_error()
                .map(|e| causes(e))
                .unwrap_or_default();
            Failure::retryable(code, one_line(&message))
        }
        SdkError::ResponseError(_) => {
            Failure::retryable("BadResponse", "the response could not be read")
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service
                .err()
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("Http{status}"));
            let kind = code_kind(&code).unwrap_or_else(|| status_kind(status));
            Failure::new(
                kind,
                code,
                one_line(service.err().message().unwrap_or_default()),
            )
        }
        _ => Failure::permanent("Construction", "the request could not be built"),
    }
}

/// `error` and each of its sources, joined with ": ", a cause that repeats the one before it
/// left out.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}

/// One line, no email: what an AWS message may show an operator or a log.
fn one_line(message: &str) -> String {
    let flat: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    redact_emails(flat.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::{ServiceError, TimeoutError};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service(
        status: u16,
        code: Option<&str>,
        message: &str,
    ) -> SdkError<ErrorMetadata, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message(message);
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        SdkError::ServiceError(
            ServiceError::builder()
                .source(meta.build())
                .raw(raw)
                .build(),
        )
    }

    /// Every AWS classification rule, one row each.
    #[test]
    fn classification_table() {
        use FailureKind as K;
        let rows: Vec<(
            &str,
            SdkError<ErrorMetadata, HttpResponse>,
            &str,
            FailureKind,
        )> = vec![
            (
                "throttling code",
                service(400, Some("ThrottlingException"), "slow"),
                "ThrottlingException",
                K::THROTTLED,
            ),
            (
                "prefixed throttling code",
                service(400, Some("com.amazonaws.sqs#RequestThrottled"), ""),
                "com.amazonaws.sqs#RequestThrottled",
                K::THROTTLED,
            ),
            (
                "transient code",
                service(500, Some("InternalFailure"), ""),
                "InternalFailure",
                K::RETRYABLE,
            ),
            (
                "transient code on a 400",
                service(400, Some("ServiceUnavailable"), ""),
                "ServiceUnavailable",
                K::RETRYABLE,
            ),
            (
                "other 5xx",
                service(502, Some("Whatever"), ""),
                "Whatever",
                K::RETRYABLE,
            ),
            ("503", service(503, None, ""), "Http503", K::RETRYABLE),
            (
                "429 slows down",
                service(429, None, ""),
                "Http429",
                K::THROTTLED,
            ),
            (
                "queue missing",
                service(
                    400,
                    Some("AWS.SimpleQueueService.NonExistentQueue"),
                    "no queue",
                ),
                "AWS.SimpleQueueService.NonExistentQueue",
                K::Permanent,
            ),
            (
                "queue missing (JSON)",
                service(400, Some("QueueDoesNotExist"), ""),
                "QueueDoesNotExist",
                K::Permanent,
            ),
            (
                "access denied",
                service(403, Some("AccessDeniedException"), ""),
                "AccessDeniedException",
                K::Permanent,
            ),
            (
                "unknown key",
                service(400, Some("UnrecognizedClientException"), ""),
                "UnrecognizedClientException",
                K::Permanent,
            ),
            (
                "bus missing",
                service(400, Some("ResourceNotFoundException"), ""),
                "ResourceNotFoundException",
                K::Permanent,
            ),
            (
                "validation",
                service(400, Some("ValidationException"), ""),
                "ValidationException",
                K::Permanent,
            ),
            (
                "no code, 4xx",
                service(404, None, ""),
                "Http404",
                K::Permanent,
            ),
            (
                "timeout",
                SdkError::TimeoutError(TimeoutError::builder().source("t").build()),
                "Timeout",
                K::RETRYABLE,
            ),
        ];
        for (row, error, code, kind) in rows {
            let failure = classify_sdk_error(&error);
            assert_eq!(
                (failure.code.as_str(), failure.kind),
                (code, kind),
                "row: {row}"
            );
        }
    }

    #[test]
    fn status_rules() {
        assert_eq!(status_kind(408), FailureKind::RETRYABLE);
        assert_eq!(status_kind(500), FailureKind::RETRYABLE);
        assert_eq!(status_kind(429), FailureKind::THROTTLED);
        assert_eq!(status_kind(400), FailureKind::Permanent);
        assert_eq!(status_kind(403), FailureKind::Permanent);
        assert_eq!(status_kind(302), FailureKind::RETRYABLE);
    }

    #[test]
    fn entry_rule_retries_only_the_documented_codes() {
        assert_eq!(
            entry_failure(Some("InternalFailure"), None).kind,
            FailureKind::RETRYABLE
        );
        assert_eq!(
            entry_failure(Some("ThrottlingException"), None).kind,
            FailureKind::THROTTLED
        );
        assert_eq!(
            entry_failure(Some("MalformedDetail"), None).kind,
            FailureKind::Permanent
        );
        assert_eq!(entry_failure(None, None).code, "UnknownEntryFailure");
        assert_eq!(
            sqs_entry_failure("InvalidMessageContents", None, true).kind,
            FailureKind::Permanent
        );
        assert_eq!(
            sqs_entry_failure("InternalError", None, false).kind,
            FailureKind::RETRYABLE
        );
    }

    #[test]
    fn messages_are_one_line_without_email() {
        let failure = classify_sdk_error(&service(
            400,
            Some("ValidationException"),
            "bad\nvalue jane@example.com\r\u{1b}[2J",
        ));
        assert!(
            !failure.message.contains('\n')
                && !failure.message.contains('@')
                && !failure.message.contains('\u{1b}')
        );
        assert_eq!(failure.to_string().lines().count(), 1);
    }

    /// A dispatch failure says why it could not send (here: no credentials), not just "other".
    #[test]
    fn a_dispatch_failure_names_its_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("the credential provider was not enabled")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("no credentials found in chain")]
        struct Inner;
        let error: SdkError<ErrorMetadata, HttpResponse> = SdkError::dispatch_failure(
            aws_smithy_runtime_api::client::result::ConnectorError::other(
                Box::new(Outer(Inner)),
                None,
            ),
        );
        let failure = classify_sdk_error(&error);
        assert_eq!(failure.code, "Dispatch");
        assert_eq!(
            failure.message,
            "other: the credential provider was not enabled: no credentials found in chain"
        );
    }
}
