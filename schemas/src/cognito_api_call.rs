//! Cognito's user-pool API calls as CloudTrail reports them to EventBridge (the account's
//! default bus, `detail-type: "AWS API Call via CloudTrail"`): the few calls that delete,
//! create or activate a user, read leniently, with the only user fact Cognito records — the
//! `sub` (user names and attributes come as `HIDDEN_DUE_TO_SECURITY_REASONS`).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::EnvelopeError;
use crate::envelope::EnvelopeMeta;

/// The `detail-type` EventBridge gives every CloudTrail-recorded API call.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// The envelope `source` of Cognito user-pool calls. Only AWS can put an `aws.*` source on a
/// bus in AWS (PutEvents refuses it), which is what makes the envelope trustworthy; the worker
/// still checks the user against the pool before acting.
pub const COGNITO_SOURCE: &str = "aws.cognito-idp";

/// `detail.eventSource` of those calls.
pub const COGNITO_EVENT_SOURCE: &str = "cognito-idp.amazonaws.com";

/// The calls the pipeline acts on (the lifecycle rule's `eventName` list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleCall {
    /// An administrator deleted a user.
    AdminDeleteUser,
    /// A user deleted their own account with their access token.
    DeleteUser,
    /// An administrator created a user (`FORCE_CHANGE_PASSWORD` until the first sign-in,
    /// unless the pool counts that status).
    AdminCreateUser,
    /// An administrator set a password; with `Permanent` the account becomes `CONFIRMED`
    /// without any trigger.
    AdminSetUserPassword,
}

impl LifecycleCall {
    pub const ALL: [Self; 4] = [
        Self::AdminDeleteUser,
        Self::DeleteUser,
        Self::AdminCreateUser,
        Self::AdminSetUserPassword,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::AdminDeleteUser => "AdminDeleteUser",
            Self::DeleteUser => "DeleteUser",
            Self::AdminCreateUser => "AdminCreateUser",
            Self::AdminSetUserPassword => "AdminSetUserPassword",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|call| call.name() == name)
    }

    /// Whether the call removes the user (else it may make a counted user).
    pub fn is_deletion(self) -> bool {
        matches!(self, Self::AdminDeleteUser | Self::DeleteUser)
    }
}

/// One CloudTrail-recorded call, as far as the pipeline reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoApiCall {
    pub call: LifecycleCall,
    /// `detail.additionalEventData.sub`: the user the call was about. A record without it
    /// names no user the pipeline can find (the sweep catches what it concerned).
    pub sub: Option<String>,
    /// `detail.requestParameters.userPoolId`, when the record names the pool (admin calls do;
    /// a self-service `DeleteUser` authenticates with a token and may not).
    pub user_pool_id: Option<String>,
    /// `detail.errorCode`: the call failed and changed nothing.
    pub error_code: Option<String>,
    /// `detail.eventTime`, else the envelope's `time`: when the call was made.
    pub event_time: Option<DateTime<Utc>>,
    /// `detail.eventID`: CloudTrail's id of the record (for logs).
    pub cloudtrail_event_id: Option<String>,
    pub envelope: EnvelopeMeta,
}

impl CognitoApiCall {
    /// Reads a CloudTrail envelope whose `detail-type` is [`CLOUDTRAIL_DETAIL_TYPE`]. Refuses
    /// another source, another event source, and calls the pipeline does not act on.
    pub(crate) fn from_envelope(mut object: Map<String, Value>) -> Result<Self, EnvelopeError> {
        let detail = match object.remove("detail") {
            Some(Value::Object(detail)) => detail,
            _ => return Err(EnvelopeError::MissingDetail),
        };
        let envelope = EnvelopeMeta::deserialize(Value::Object(object))
            .map_err(|e| EnvelopeError::InvalidDetail(format!("envelope: {e}")))?;
        if envelope.source.as_deref() != Some(COGNITO_SOURCE) {
            return Err(EnvelopeError::UnexpectedCall(format!(
                "source is not {COGNITO_SOURCE}"
            )));
        }
        let text = |map: &Map<String, Value>, key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        if text(&detail, "eventSource").as_deref() != Some(COGNITO_EVENT_SOURCE) {
            return Err(EnvelopeError::UnexpectedCall(format!(
                "eventSource is not {COGNITO_EVENT_SOURCE}"
            )));
        }
        let name = text(&detail, "eventName").unwrap_or_default();
        let call = LifecycleCall::from_name(&name).ok_or_else(|| {
            EnvelopeError::UnexpectedCall(format!(
                "eventName {:?} is not a call the pipeline acts on",
                name.chars().take(64).collect::<String>()
            ))
        })?;
        let object_field = |key: &str| match detail.get(key) {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        };
        let sub = object_field("additionalEventData")
            .and_then(|extra| text(extra, "sub"))
            .filter(|sub| crate::is_lowercase_uuid(sub));
        let user_pool_id = object_field("requestParameters")
            .and_then(|request| text(request, "userPoolId"))
            .filter(|pool| pool.len() <= crate::limits::USER_POOL_ID);
        let time = |s: Option<String>| {
            s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        Ok(Self {
            call,
            sub,
            user_pool_id,
            error_code: text(&detail, "errorCode"),
            event_time: time(text(&detail, "eventTime")).or_else(|| time(envelope.time.clone())),
            cloudtrail_event_id: text(&detail, "eventID"),
            envelope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Message, parse_any};

    const SUB: &str = "6f0c3a52-4f7e-4c1e-9d3b-2a1b0c9d8e7f";

    fn record(name: &str) -> Value {
        serde_json::json!({
            "version": "0",
            "id": "c5a4f0e1-0000-4000-8000-000000000001",
            "detail-type": CLOUDTRAIL_DETAIL_TYPE,
            "source": COGNITO_SOURCE,
            "account": "123456789012",
            "time": "2026-12-07T10:00:01Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.08",
                "eventTime": "2026-12-07T10:00:00Z",
                "eventSource": COGNITO_EVENT_SOURCE,
                "eventName": name,
                "awsRegion": "eu-west-1",
                "requestParameters": {
                    "userPoolId": "eu-west-1_Pool",
                    "username": "HIDDEN_DUE_TO_SECURITY_REASONS"
                },
                "responseElements": null,
                "additionalEventData": { "sub": SUB },
                "eventID": "8f1a2b3c-0000-4000-8000-000000000002",
                "eventType": "AwsApiCall",
                "managementEvent": true
            }
        })
    }

    fn parse(value: &Value) -> Result<CognitoApiCall, EnvelopeError> {
        match parse_any(&value.to_string())? {
            Message::CognitoApiCall(call) => Ok(call),
            Message::UserConfirmed(_) => panic!("read as UserConfirmed"),
        }
    }

    #[test]
    fn reads_the_sub_the_pool_and_the_time() {
        let call = parse(&record("AdminDeleteUser")).unwrap();
        assert_eq!(call.call, LifecycleCall::AdminDeleteUser);
        assert!(call.call.is_deletion());
        assert_eq!(call.sub.as_deref(), Some(SUB));
        assert_eq!(call.user_pool_id.as_deref(), Some("eu-west-1_Pool"));
        assert_eq!(call.error_code, None);
        assert_eq!(
            call.event_time.unwrap().to_rfc3339(),
            "2026-12-07T10:00:00+00:00"
        );
    }

    #[test]
    fn a_self_service_deletion_may_name_no_pool() {
        let mut value = record("DeleteUser");
        value["detail"]
            .as_object_mut()
            .unwrap()
            .remove("requestParameters");
        let call = parse(&value).unwrap();
        assert_eq!(
            (call.call, call.user_pool_id),
            (LifecycleCall::DeleteUser, None)
        );
    }

    #[test]
    fn a_failed_call_and_a_missing_or_odd_sub_are_read_not_refused() {
        let mut value = record("AdminCreateUser");
        value["detail"]["errorCode"] = "UsernameExistsException".into();
        value["detail"]["additionalEventData"]["sub"] = "HIDDEN_DUE_TO_SECURITY_REASONS".into();
        let call = parse(&value).unwrap();
        assert_eq!(call.error_code.as_deref(), Some("UsernameExistsException"));
        assert_eq!(call.sub, None);
    }

    #[test]
    fn other_sources_event_sources_and_calls_are_refused() {
        let mut foreign = record("AdminDeleteUser");
        foreign["source"] = "my.app".into();
        assert_eq!(parse(&foreign).unwrap_err().code(), "UnexpectedCall");
        let mut other_service = record("AdminDeleteUser");
        other_service["detail"]["eventSource"] = "iam.amazonaws.com".into();
        assert_eq!(parse(&other_service).unwrap_err().code(), "UnexpectedCall");
        assert_eq!(
            parse(&record("ListUsers")).unwrap_err().code(),
            "UnexpectedCall"
        );
        let mut no_detail = record("AdminDeleteUser");
        no_detail.as_object_mut().unwrap().remove("detail");
        assert_eq!(parse(&no_detail).unwrap_err().code(), "MissingDetail");
    }
}
