//! The one parser for the messages the pipeline consumes, used by every consumer in this
//! repository: a `UserConfirmed` in an EventBridge envelope (as a rule delivers it to SQS) or
//! bare (as the emitter's fallback and the ops CLI's `--direct` path may send it), and, through
//! [`parse_any`], Cognito's CloudTrail-recorded calls ([`CognitoApiCall`]).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cognito_api_call::{CLOUDTRAIL_DETAIL_TYPE, CognitoApiCall};
use crate::{DETAIL_TYPE, SCHEMA_VERSION, UserConfirmed};

/// Bodies larger than this are refused before parsing (SQS's own limit is 256 KiB by default;
/// no genuine event is more than a few hundred bytes).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Why a message is not a usable `UserConfirmed`. Each case is permanent: retrying the same
/// bytes cannot succeed, so consumers should dead-letter the message with [`EnvelopeError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message is empty")]
    Empty,
    #[error("message is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("message is JSON but not an object")]
    NotAnObject,
    #[error("envelope detail-type is {0:?}, expected \"UserConfirmed\"")]
    WrongDetailType(String),
    #[error("envelope has no object `detail`")]
    MissingDetail,
    #[error(
        "message is neither an EventBridge envelope nor a UserConfirmed detail (no `detail-type`, no `schemaVersion`)"
    )]
    Unrecognised,
    #[error("schemaVersion {0:?} is not supported (this consumer reads major version 1)")]
    UnsupportedSchemaVersion(String),
    #[error("detail does not match UserConfirmed v1: {0}")]
    InvalidDetail(String),
    #[error("a CloudTrail record the pipeline does not act on: {0}")]
    UnexpectedCall(String),
}

impl EnvelopeError {
    /// A stable, machine-readable code (used as the DLQ reason attribute).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "EmptyMessage",
            Self::TooLarge { .. } => "MessageTooLarge",
            Self::NotJson(_) => "NotJson",
            Self::NotAnObject => "NotAnObject",
            Self::WrongDetailType(_) => "WrongDetailType",
            Self::MissingDetail => "MissingDetail",
            Self::Unrecognised => "UnrecognisedMessage",
            Self::UnsupportedSchemaVersion(_) => "UnsupportedSchemaVersion",
            Self::InvalidDetail(_) => "InvalidDetail",
            Self::UnexpectedCall(_) => "UnexpectedCall",
        }
    }
}

/// What the envelope said about the event, when there was one. Every field is optional:
/// test tools and replays omit `account`, `id` and more, and that must not make a message poison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EnvelopeMeta {
    pub id: Option<String>,
    pub source: Option<String>,
    pub account: Option<String>,
    pub time: Option<String>,
    pub region: Option<String>,
    #[serde(rename = "replay-name")]
    pub replay_name: Option<String>,
}

/// A parsed message: the event, and its envelope when it came in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEvent {
    pub detail: UserConfirmed,
    pub envelope: Option<EnvelopeMeta>,
}

/// A message of any kind the pipeline consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    UserConfirmed(ReceivedEvent),
    CognitoApiCall(CognitoApiCall),
}

/// Parses an SQS body into whichever message it is: the worker reads its queues with this.
pub fn parse_any(body: &str) -> Result<Message, EnvelopeError> {
    let object = json_object(body)?;
    if object.get("detail-type").and_then(Value::as_str) == Some(CLOUDTRAIL_DETAIL_TYPE) {
        return CognitoApiCall::from_envelope(object).map(Message::CognitoApiCall);
    }
    user_confirmed(object).map(Message::UserConfirmed)
}

/// Parses an SQS body (or any string) into a `UserConfirmed`.
pub fn parse_message(body: &str) -> Result<ReceivedEvent, EnvelopeError> {
    user_confirmed(json_object(body)?)
}

fn json_object(body: &str) -> Result<Map<String, Value>, EnvelopeError> {
    if body.trim().is_empty() {
        return Err(EnvelopeError::Empty);
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(EnvelopeError::TooLarge {
            len: body.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let value: Value =
        serde_json::from_str(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(EnvelopeError::NotAnObject),
    }
}

fn user_confirmed(mut object: Map<String, Value>) -> Result<ReceivedEvent, EnvelopeError> {
    if let Some(detail_type) = object.get("detail-type") {
        let detail_type = detail_type.as_str().unwrap_or_default();
        if detail_type != DETAIL_TYPE {
            return Err(EnvelopeError::WrongDetailType(detail_type.to_owned()));
        }
        let detail = match object.remove("detail") {
            Some(Value::Object(detail)) => detail,
            _ => return Err(EnvelopeError::MissingDetail),
        };
        let meta = EnvelopeMeta::deserialize(Value::Object(object))
            .map_err(|e| EnvelopeError::InvalidDetail(format!("envelope: {e}")))?;
        return Ok(ReceivedEvent {
            detail: parse_detail(detail)?,
            envelope: Some(meta),
        });
    }
    if object.contains_key("schemaVersion") {
        return Ok(ReceivedEvent {
            detail: parse_detail(object)?,
            envelope: None,
        });
    }
    Err(EnvelopeError::Unrecognised)
}

fn parse_detail(detail: Map<String, Value>) -> Result<UserConfirmed, EnvelopeError> {
    let version = match detail.get("schemaVersion") {
        Some(Value::String(v)) => v.clone(),
        Some(other) => other.to_string(),
        None => {
            return Err(EnvelopeError::InvalidDetail(
                "missing field `schemaVersion`".into(),
            ));
        }
    };
    if version.split('.').next() != Some(SCHEMA_VERSION) {
        return Err(EnvelopeError::UnsupportedSchemaVersion(version));
    }
    let event: UserConfirmed = serde_json::from_value(Value::Object(detail))
        .map_err(|e| EnvelopeError::InvalidDetail(e.to_string()))?;
    event
        .validate()
        .map_err(|e| EnvelopeError::InvalidDetail(e.to_string()))?;
    Ok(event)
}

/// The EventBridge envelope a rule would deliver for `detail`: what the emitter's fallback and
/// the ops CLI's `--direct` path send, so the worker sees one shape whichever way an event came.
pub fn to_envelope(source: &str, detail: &UserConfirmed) -> Value {
    serde_json::json!({
        "version": "0",
        "id": detail.event_id,
        "detail-type": DETAIL_TYPE,
        "source": source,
        "time": detail.confirmed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": detail.region,
        "resources": [],
        "detail": detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_SOURCE;
    use chrono::TimeZone;

    fn sample() -> UserConfirmed {
        UserConfirmed::builder("eu-west-1_Pool", "0b8c2a1e-1111-4c3e-9a5b-1234567890ab")
            .username("alice")
            .email("alice@example.com")
            .email_verified(true)
            .client_id("client123")
            .confirmed_at(chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap())
            .build()
    }

    #[test]
    fn envelope_and_bare_detail_parse_to_the_same_event() {
        let event = sample();
        let envelope = to_envelope(DEFAULT_SOURCE, &event).to_string();
        let bare = serde_json::to_string(&event).unwrap();
        let from_envelope = parse_message(&envelope).unwrap();
        assert_eq!(from_envelope.detail, event);
        assert_eq!(
            from_envelope.envelope.unwrap().source.as_deref(),
            Some(DEFAULT_SOURCE)
        );
        let from_bare = parse_message(&bare).unwrap();
        assert_eq!(from_bare.detail, event);
        assert!(from_bare.envelope.is_none());
    }

    #[test]
    fn tolerates_missing_account_and_extra_replay_name() {
        let mut envelope = to_envelope(DEFAULT_SOURCE, &sample());
        envelope["replay-name"] = "nightly".into();
        envelope["something-new"] = serde_json::json!({"x": 1});
        let parsed = parse_message(&envelope.to_string()).unwrap();
        let meta = parsed.envelope.unwrap();
        assert_eq!(meta.replay_name.as_deref(), Some("nightly"));
        assert_eq!(meta.account, None);
    }

    #[test]
    fn each_bad_shape_gets_its_own_error() {
        let good = to_envelope(DEFAULT_SOURCE, &sample());
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "EmptyMessage"),
            ("   ".into(), "EmptyMessage"),
            ("x".repeat(MAX_MESSAGE_BYTES + 1), "MessageTooLarge"),
            ("{not json".into(), "NotJson"),
            ("[1,2]".into(), "NotAnObject"),
            ("\"str\"".into(), "NotAnObject"),
            ("{}".into(), "UnrecognisedMessage"),
            (
                {
                    let mut e = good.clone();
                    e["detail-type"] = "UserDeleted".into();
                    e.to_string()
                },
                "WrongDetailType",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail-type"] = 7.into();
                    e.to_string()
                },
                "WrongDetailType",
            ),
            (
                {
                    let mut e = good.clone();
                    e.as_object_mut().unwrap().remove("detail");
                    e.to_string()
                },
                "MissingDetail",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"] = "text".into();
                    e.to_string()
                },
                "MissingDetail",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"]["schemaVersion"] = "2".into();
                    e.to_string()
                },
                "UnsupportedSchemaVersion",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"].as_object_mut().unwrap().remove("sub");
                    e.to_string()
                },
                "InvalidDetail",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"]["sub"] = "  ".into();
                    e.to_string()
                },
                "InvalidDetail",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"]["eventId"] = "not-a-uuid".into();
                    e.to_string()
                },
                "InvalidDetail",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"]["confirmedAt"] = "yesterday".into();
                    e.to_string()
                },
                "InvalidDetail",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"]["origin"] = "elsewhere".into();
                    e.to_string()
                },
                "InvalidDetail",
            ),
        ];
        for (body, code) in cases {
            let err = parse_message(&body).expect_err(&body[..body.len().min(80)]);
            assert_eq!(err.code(), code, "{err}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(body.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(parse_message(&body).unwrap_err().code(), "NotJson");
    }

    #[test]
    fn minor_versions_of_v1_are_accepted() {
        let mut e = to_envelope(DEFAULT_SOURCE, &sample());
        e["detail"]["schemaVersion"] = "1.1".into();
        e["detail"]["futureField"] = true.into();
        assert!(parse_message(&e.to_string()).is_ok());
    }
}
