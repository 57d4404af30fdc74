//! Reading a Cognito PostConfirmation event, leniently: events in the wild carry
//! `email_verified` as a string or a boolean, new trigger sources and new fields. Pure logic,
//! no AWS types: the decision is whether (and what) to publish.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uc_schemas::{Origin, UserConfirmed};

use uc_schemas::trigger_source::{CONFIRM_FORGOT_PASSWORD, CONFIRM_SIGN_UP};

/// `callerContext.clientId` when no app client was involved (admin confirmation).
const NO_CLIENT: &str = "CLIENT_ID_NOT_APPLICABLE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A password reset fires the same trigger; publishing would create a second profile.
    ForgotPassword,
    UnknownTriggerSource(String),
    NotAnObject,
    /// A field the event needs is absent or empty (the name, never the value).
    MissingField(&'static str),
}

impl SkipReason {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ForgotPassword => "ForgotPassword",
            Self::UnknownTriggerSource(_) => "UnknownTriggerSource",
            Self::NotAnObject => "NotAnObject",
            Self::MissingField(_) => "MissingField",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Publish(Box<UserConfirmed>),
    Skip(SkipReason),
}

/// Decides what to publish for `event`. `default_region` is the function's region, used when
/// the event carries none; `now` is the confirmation time (Cognito's event has no timestamp).
pub fn decide(event: &Value, default_region: &str, now: DateTime<Utc>) -> Decision {
    let Some(object) = event.as_object() else {
        return Decision::Skip(SkipReason::NotAnObject);
    };
    match text(object.get("triggerSource")) {
        Some(CONFIRM_SIGN_UP) => {}
        Some(CONFIRM_FORGOT_PASSWORD) => return Decision::Skip(SkipReason::ForgotPassword),
        Some(other) => return Decision::Skip(SkipReason::UnknownTriggerSource(other.to_owned())),
        None => return Decision::Skip(SkipReason::MissingField("triggerSource")),
    }
    let attributes = event.pointer("/request/userAttributes");
    let attribute = |name: &str| attributes.and_then(|a| a.get(name));
    let Some(sub) = text(attribute("sub")) else {
        return Decision::Skip(SkipReason::MissingField("request.userAttributes.sub"));
    };
    let Some(user_pool_id) = text(object.get("userPoolId")) else {
        return Decision::Skip(SkipReason::MissingField("userPoolId"));
    };
    let Some(username) = text(object.get("userName")) else {
        return Decision::Skip(SkipReason::MissingField("userName"));
    };
    let region = text(object.get("region")).unwrap_or(default_region);
    let email = text(attribute("email")).map(str::to_owned);
    let email_verified = attribute("email_verified").and_then(lenient_bool);
    let client_id = text(event.pointer("/callerContext/clientId"))
        .filter(|c| *c != NO_CLIENT)
        .map(str::to_owned);
    Decision::Publish(Box::new(UserConfirmed::new(
        user_pool_id,
        sub,
        username,
        email,
        email_verified,
        client_id,
        now,
        region,
        Origin::PostConfirmation,
    )))
}

/// A non-blank string value, trimmed.
fn text(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Cognito sends attribute values as strings ("true"), some tools as JSON booleans.
fn lenient_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    /// The sample event from the AWS docs ("Post confirmation Lambda trigger parameters").
    pub(crate) fn aws_docs_sample() -> Value {
        json!({
            "version": "1",
            "region": "us-east-1",
            "userPoolId": "us-east-1_Ab12Cd34E",
            "userName": "testuser",
            "callerContext": {
                "awsSdkVersion": "aws-sdk-unknown-unknown",
                "clientId": "1example23456789"
            },
            "triggerSource": "PostConfirmation_ConfirmSignUp",
            "request": {
                "userAttributes": {
                    "sub": "4b1b2b8e-6b2a-4d3c-9a1e-0123456789ab",
                    "cognito:user_status": "CONFIRMED",
                    "email_verified": "true",
                    "cognito:email_alias": "testuser@example.com",
                    "email": "testuser@example.com"
                }
            },
            "response": {}
        })
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
    }

    fn published(event: &Value) -> UserConfirmed {
        match decide(event, "eu-west-1", now()) {
            Decision::Publish(e) => *e,
            other => panic!("expected a publish, got {other:?}"),
        }
    }

    #[test]
    fn the_aws_docs_sample_becomes_a_user_confirmed() {
        let e = published(&aws_docs_sample());
        assert_eq!(e.sub, "4b1b2b8e-6b2a-4d3c-9a1e-0123456789ab");
        assert_eq!(e.username, "testuser");
        assert_eq!(e.user_pool_id, "us-east-1_Ab12Cd34E");
        assert_eq!(e.email.as_deref(), Some("testuser@example.com"));
        assert_eq!(e.email_verified, Some(true));
        assert_eq!(e.client_id.as_deref(), Some("1example23456789"));
        assert_eq!(e.region, "us-east-1");
        assert_eq!(e.confirmed_at, now());
        assert_eq!(
            e.event_id,
            uc_schemas::event_id("us-east-1_Ab12Cd34E", &e.sub)
        );
        assert_eq!(
            e.profile_owner(),
            "4b1b2b8e-6b2a-4d3c-9a1e-0123456789ab::testuser"
        );
    }

    #[test]
    fn email_verified_as_string_or_boolean() {
        for (raw, expected) in [
            (json!("true"), Some(true)),
            (json!("FALSE"), Some(false)),
            (json!(true), Some(true)),
            (json!(false), Some(false)),
            (json!("maybe"), None),
            (json!(1), None),
        ] {
            let mut event = aws_docs_sample();
            event["request"]["userAttributes"]["email_verified"] = raw.clone();
            assert_eq!(published(&event).email_verified, expected, "{raw}");
        }
    }

    #[test]
    fn forgot_password_is_skipped() {
        let mut event = aws_docs_sample();
        event["triggerSource"] = CONFIRM_FORGOT_PASSWORD.into();
        assert_eq!(
            decide(&event, "r", now()),
            Decision::Skip(SkipReason::ForgotPassword)
        );
    }

    #[test]
    fn unknown_or_missing_trigger_source_is_skipped() {
        let mut event = aws_docs_sample();
        event["triggerSource"] = "PostConfirmation_SomethingNew".into();
        assert_eq!(
            decide(&event, "r", now()),
            Decision::Skip(SkipReason::UnknownTriggerSource(
                "PostConfirmation_SomethingNew".into()
            ))
        );
        event.as_object_mut().unwrap().remove("triggerSource");
        assert_eq!(
            decide(&event, "r", now()),
            Decision::Skip(SkipReason::MissingField("triggerSource"))
        );
        assert_eq!(
            decide(&json!([1]), "r", now()),
            Decision::Skip(SkipReason::NotAnObject)
        );
    }

    #[test]
    fn missing_sub_is_skipped() {
        for sub in [None, Some(json!("")), Some(json!(42))] {
            let mut event = aws_docs_sample();
            let attrs = event["request"]["userAttributes"].as_object_mut().unwrap();
            match sub {
                None => {
                    attrs.remove("sub");
                }
                Some(v) => {
                    attrs.insert("sub".into(), v);
                }
            }
            assert_eq!(
                decide(&event, "r", now()),
                Decision::Skip(SkipReason::MissingField("request.userAttributes.sub"))
            );
        }
        let mut event = aws_docs_sample();
        event.as_object_mut().unwrap().remove("request");
        assert_eq!(
            decide(&event, "r", now()).clone(),
            Decision::Skip(SkipReason::MissingField("request.userAttributes.sub"))
        );
    }

    #[test]
    fn phone_only_user_has_no_email() {
        let mut event = aws_docs_sample();
        event["userName"] = "+15555550100".into();
        event["request"]["userAttributes"] = json!({
            "sub": "c2d4e6f8-0001-4a2b-8c3d-9e8f7a6b5c4d",
            "phone_number": "+15555550100",
            "phone_number_verified": "true",
            "cognito:user_status": "CONFIRMED"
        });
        let e = published(&event);
        assert_eq!(e.email, None);
        assert_eq!(e.email_verified, None);
        assert_eq!(e.username, "+15555550100");
    }

    #[test]
    fn non_ascii_username_is_kept_exactly() {
        let mut event = aws_docs_sample();
        event["userName"] = "Zoë_Łukasz_東京".into();
        let e = published(&event);
        assert_eq!(e.username, "Zoë_Łukasz_東京");
        assert_eq!(e.profile_owner(), format!("{}::Zoë_Łukasz_東京", e.sub));
    }

    #[test]
    fn admin_confirmation_has_no_client_and_missing_region_uses_the_functions() {
        let mut event = aws_docs_sample();
        event["callerContext"]["clientId"] = NO_CLIENT.into();
        event.as_object_mut().unwrap().remove("region");
        let e = published(&event);
        assert_eq!(e.client_id, None);
        assert_eq!(e.region, "eu-west-1");
    }
}
