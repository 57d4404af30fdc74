//! Reading a Cognito PostConfirmation event, leniently: events in the wild carry
//! `email_verified` as a string or a boolean, new trigger sources and new fields. Pure logic,
//! no AWS types: the decision is whether (and what) to publish. The event arrives as a parsed
//! copy of the invocation's JSON text (`crate::payload`); the text itself goes back to Cognito.
//!
//! # Never publishing what the contract refuses
//!
//! Every detail `decide` returns to publish passes [`UserConfirmed::validate`], the contract's
//! own check of the JSON Schema's limits. What falls outside is decided per field:
//!
//! | Field (Cognito → contract) | Out of contract | Decision |
//! | --- | --- | --- |
//! | `request.userAttributes.sub` → `sub` | not a lowercase UUID (an uppercase UUID too) | **skip**, `OutOfContract` |
//! | `userPoolId` | over 55 characters | **skip**, `OutOfContract` |
//! | `userName` → `username` | over 128 characters | **skip**, `OutOfContract` |
//! | `region` | not `^[a-z]{2}(-[a-z]+)+-[0-9]+$` (`moon`); absent, blank or not a string → the function's region | **skip**, `OutOfContract` |
//! | `request.userAttributes.email` → `email` | over 2,048 characters | **dropped** with `emailVerified`, published |
//! | `callerContext.clientId` → `clientId` | over 128 characters (`CLIENT_ID_NOT_APPLICABLE` and blank → absent, as before) | **dropped**, published |
//! | any of `userPoolId`, `userName`, `email`, `clientId` in a [repaired](crate::payload) copy | holds U+FFFD, which may stand for an unpaired surrogate | as the field's row: skip, or drop |
//!
//! Values are trimmed first, as before. Why these decisions: `sub`, `userPoolId` and `userName`
//! are the user's identity — the event id is derived from the first two and `profileOwner` is
//! `sub::userName` — so no rewriting (lowercasing, truncating) can produce the right value, and
//! Cognito itself never sends them outside these limits (its `sub` is a lowercase UUID, pool ids
//! are at most 55 characters, user names at most 128). Such an event is not a real confirmation
//! as Cognito makes them, so nothing is published; the skip is counted in `Skipped` like any
//! other, but logged at ERROR with its reason code, the field and the `sub` when it is a valid
//! one (`SkipReason::needs_attention`): an operator must look — either something other than
//! Cognito invoked the function, or a user is left without a profile. The same holds for a
//! `region` that is not a region: guessing another would publish a wrong fact. `email` and
//! `clientId` are optional in the contract and not identity: leaving an impossible one out keeps
//! the user's profile (a phone-only pool's events have no email either), and the handler logs a
//! warning naming the field. Blank values and values that are not strings are read as before
//! (absent, or `MissingField`). A skip is not a failure: Cognito gets its event back under
//! either failure policy.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uc_schemas::{ContractViolation, Origin, UserConfirmed};

use uc_schemas::trigger_source::{CONFIRM_FORGOT_PASSWORD, CONFIRM_SIGN_UP};

/// `callerContext.clientId` when no app client was involved (admin confirmation).
const NO_CLIENT: &str = "CLIENT_ID_NOT_APPLICABLE";

/// Why an event published nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A password reset fires the same trigger; publishing would create a second profile.
    ForgotPassword,
    UnknownTriggerSource(String),
    NotAnObject,
    /// A field the event needs is absent or empty (the name, never the value).
    MissingField(&'static str),
    /// A field the detail needs is outside the contract (`sub` not a lowercase UUID, a
    /// 200-character user name, region `moon`, …): the field and the problem, never the value.
    OutOfContract(ContractViolation),
    /// The event's JSON could not be read even leniently (nesting deeper than 128 levels); the
    /// parser's message, which carries positions, not values.
    UnreadableEvent(String),
}

impl SkipReason {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ForgotPassword => "ForgotPassword",
            Self::UnknownTriggerSource(_) => "UnknownTriggerSource",
            Self::NotAnObject => "NotAnObject",
            Self::MissingField(_) => "MissingField",
            Self::OutOfContract(_) => "OutOfContract",
            Self::UnreadableEvent(_) => "UnreadableEvent",
        }
    }

    /// Whether an operator should look: Cognito never sends such an event, so either something
    /// other than Cognito invoked the function or a real user is left without a profile.
    pub fn needs_attention(&self) -> bool {
        matches!(self, Self::OutOfContract(_) | Self::UnreadableEvent(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Publish `detail` (which passes `validate`); `dropped` names the optional fields left out
    /// because they were out of contract.
    Publish {
        detail: Box<UserConfirmed>,
        dropped: Vec<ContractViolation>,
    },
    Skip(SkipReason),
}

/// Decides what to publish for `event`. `default_region` is the function's region, used when
/// the event carries none; `now` is the confirmation time (Cognito's event has no timestamp).
pub fn decide(event: &Value, default_region: &str, now: DateTime<Utc>) -> Decision {
    decide_read(event, false, default_region, now)
}

/// [`decide`] for a copy that was `repaired` (`crate::payload::EventCopy`): then a U+FFFD in a
/// published field may stand for an unpaired surrogate, and counts as out of contract.
pub(crate) fn decide_read(
    event: &Value,
    repaired: bool,
    default_region: &str,
    now: DateTime<Utc>,
) -> Decision {
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
    let mut detail = Box::new(UserConfirmed::new(
        user_pool_id,
        sub,
        username,
        email,
        email_verified,
        client_id,
        now,
        region,
        Origin::PostConfirmation,
    ));
    // Optional fields out of contract are left out; anything else out of contract skips. Each
    // round removes a field, so this ends.
    let mut dropped = Vec::new();
    loop {
        let violation = match check(&detail, repaired) {
            Ok(()) => return Decision::Publish { detail, dropped },
            Err(violation) => violation,
        };
        match violation.field {
            "email" => {
                detail.email = None;
                detail.email_verified = None;
            }
            "clientId" => detail.client_id = None,
            _ => return Decision::Skip(SkipReason::OutOfContract(violation)),
        }
        dropped.push(violation);
    }
}

/// The contract's check, and, for a repaired copy, no U+FFFD in a field read from the event
/// (`sub` and `region` cannot hold one and pass `validate`).
fn check(detail: &UserConfirmed, repaired: bool) -> Result<(), ContractViolation> {
    detail.validate()?;
    if !repaired {
        return Ok(());
    }
    let suspect = |value: &str| value.contains(char::REPLACEMENT_CHARACTER);
    for (field, value) in [
        ("userPoolId", Some(detail.user_pool_id.as_str())),
        ("username", Some(detail.username.as_str())),
        ("email", detail.email.as_deref()),
        ("clientId", detail.client_id.as_deref()),
    ] {
        if value.is_some_and(suspect) {
            return Err(ContractViolation {
                field,
                problem: "held an unpaired UTF-16 surrogate escape, which is not text",
            });
        }
    }
    Ok(())
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
            Decision::Publish { detail, dropped } => {
                assert_eq!(dropped, []);
                *detail
            }
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

    fn out_of_contract(event: &Value) -> &'static str {
        match decide(event, "eu-west-1", now()) {
            Decision::Skip(SkipReason::OutOfContract(violation)) => violation.field,
            other => panic!("expected an out-of-contract skip, got {other:?}"),
        }
    }

    #[test]
    fn identity_fields_out_of_contract_are_skipped() {
        let sample = aws_docs_sample();
        let with = |pointer: &str, value: Value| {
            let mut event = sample.clone();
            *event.pointer_mut(pointer).unwrap() = value;
            event
        };
        let sub = "/request/userAttributes/sub";
        for (event, field) in [
            (with("/userName", "u".repeat(200).into()), "username"),
            (with("/userPoolId", "p".repeat(80).into()), "userPoolId"),
            (with("/region", "moon".into()), "region"),
            (with("/region", "us-east-1 ".repeat(2).into()), "region"),
            (
                with(sub, "4B1B2B8E-6B2A-4D3C-9A1E-0123456789AB".into()),
                "sub",
            ),
            (with(sub, "s-1".into()), "sub"),
            (
                with(sub, "4b1b2b8e-6b2a-4d3c-9a1e-0123456789::".into()),
                "sub",
            ),
        ] {
            assert_eq!(out_of_contract(&event), field, "{event}");
        }
        // At the limits, and the function's region when the event has none.
        let e = published(&with("/userName", "é".repeat(128).into()));
        assert_eq!(e.username.chars().count(), 128);
        assert_eq!(
            published(&with("/userPoolId", "p".repeat(55).into()))
                .user_pool_id
                .len(),
            55
        );
        let mut event = sample.clone();
        event.as_object_mut().unwrap().remove("region");
        assert_eq!(
            decide(&event, "moon", now()),
            Decision::Skip(SkipReason::OutOfContract(uc_schemas::ContractViolation {
                field: "region",
                problem: "is not an AWS region name"
            }))
        );
    }

    #[test]
    fn optional_fields_out_of_contract_are_left_out() {
        let mut event = aws_docs_sample();
        event["request"]["userAttributes"]["email"] =
            format!("{}@example.com", "e".repeat(2040)).into();
        event["callerContext"]["clientId"] = "c".repeat(129).into();
        let Decision::Publish { detail, dropped } = decide(&event, "eu-west-1", now()) else {
            panic!("expected a publish");
        };
        assert_eq!(
            (detail.email.as_deref(), detail.email_verified),
            (None, None)
        );
        assert_eq!(detail.client_id, None);
        let fields: Vec<_> = dropped.iter().map(|v| v.field).collect();
        assert_eq!(fields, ["email", "clientId"]);
        assert_eq!(detail.validate(), Ok(()));

        let email = format!("{}@example.com", "e".repeat(2048 - 12));
        event["request"]["userAttributes"]["email"] = email.clone().into();
        event["callerContext"]["clientId"] = "c".repeat(128).into();
        let e = published(&event);
        assert_eq!(e.email, Some(email));
        assert_eq!(e.client_id.map(|c| c.len()), Some(128));
    }

    #[test]
    fn a_repaired_copy_publishes_no_field_that_held_a_surrogate() {
        use crate::payload::EventCopy;
        let event = |user: &str, email: &str, metadata: &str| {
            format!(
                r#"{{"region": "us-east-1", "userPoolId": "us-east-1_Ab12Cd34E", "userName": "{user}",
                "triggerSource": "PostConfirmation_ConfirmSignUp",
                "request": {{"userAttributes": {{"sub": "4b1b2b8e-6b2a-4d3c-9a1e-0123456789ab",
                  "email": "{email}", "email_verified": "true"}}, "clientMetadata": {{"k": "{metadata}"}}}}}}"#
            )
        };
        let decide = |text: String| EventCopy::read(&text).unwrap().decide("eu-west-1", now());
        // In the user name: skipped; in the email: left out; elsewhere: published as usual.
        assert!(matches!(
            decide(event("jane\\ud800", "j@example.com", "\\udc00")),
            Decision::Skip(SkipReason::OutOfContract(v)) if v.field == "username"
        ));
        let Decision::Publish { detail, dropped } =
            decide(event("jane", "j\\ud800@example.com", "x"))
        else {
            panic!("expected a publish");
        };
        assert_eq!((detail.email, dropped[0].field), (None, "email"));
        let Decision::Publish { detail, dropped } =
            decide(event("jane", "j@example.com", "\\ud800"))
        else {
            panic!("expected a publish");
        };
        assert_eq!(
            (detail.email.as_deref(), dropped),
            (Some("j@example.com"), vec![])
        );
        // A real U+FFFD in a copy that needed no repair is text like any other.
        let Decision::Publish { detail, .. } = decide(event("jane\u{fffd}", "j@example.com", "x"))
        else {
            panic!("expected a publish");
        };
        assert_eq!(detail.username, "jane\u{fffd}");
    }

    #[test]
    fn only_impossible_events_need_attention() {
        let violation = uc_schemas::ContractViolation {
            field: "sub",
            problem: "p",
        };
        assert!(SkipReason::OutOfContract(violation).needs_attention());
        assert!(SkipReason::UnreadableEvent("x".into()).needs_attention());
        assert!(!SkipReason::ForgotPassword.needs_attention());
        assert!(!SkipReason::MissingField("userName").needs_attention());
    }
}
