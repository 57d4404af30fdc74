//! The inputs: Cognito PostConfirmation events (one new user each) and the SQS records the
//! worker receives for them.

use serde_json::{Value, json};
use uc_schemas::{Origin, UserConfirmed};

pub const USER_POOL_ID: &str = "us-east-1_Bench0001";
pub const CLIENT_ID: &str = "1benchclient23456789";

/// A distinct, stable `sub` for user `n` of a series.
pub fn sub(series: u32, n: u64) -> String {
    format!("b3c40000-{series:04x}-4000-8000-{n:012x}")
}

/// Cognito's PostConfirmation event for a confirmed sign-up (the AWS docs' sample shape).
pub fn cognito_event(series: u32, n: u64) -> Value {
    let sub = sub(series, n);
    json!({
        "version": "1",
        "region": "us-east-1",
        "userPoolId": USER_POOL_ID,
        "userName": sub,
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": CLIENT_ID},
        "triggerSource": "PostConfirmation_ConfirmSignUp",
        "request": {
            "userAttributes": {
                "sub": sub,
                "email_verified": "true",
                "cognito:user_status": "CONFIRMED",
                "cognito:email_alias": format!("user{n}@example.com"),
                "email": format!("user{n}@example.com")
            }
        },
        "response": {}
    })
}

/// The `UserConfirmed` the emitter publishes for user `n`.
pub fn user_confirmed(series: u32, n: u64) -> UserConfirmed {
    let sub = sub(series, n);
    UserConfirmed::new(
        USER_POOL_ID,
        sub.clone(),
        sub,
        Some(format!("user{n}@example.com")),
        Some(true),
        Some(CLIENT_ID.to_owned()),
        chrono::Utc::now(),
        "us-east-1",
        Origin::PostConfirmation,
    )
}

/// The body SQS holds for user `n`: the EventBridge envelope the rule delivers.
pub fn envelope_body(series: u32, n: u64) -> String {
    uc_schemas::to_envelope(uc_schemas::DEFAULT_SOURCE, &user_confirmed(series, n)).to_string()
}

/// An SQS event (what Lambda's event source mapping hands the worker) for users
/// `first..first + count`, each body the EventBridge envelope the rule delivers.
pub fn sqs_batch(series: u32, first: u64, count: u64) -> Value {
    let sent = chrono::Utc::now().timestamp_millis().to_string();
    let records: Vec<Value> = (first..first + count)
        .map(|n| {
            let body = envelope_body(series, n);
            json!({
                "messageId": format!("m-{series}-{n}"),
                "receiptHandle": format!("rh-{series}-{n}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent,
                    "SenderId": "AIDAEVENTBRIDGE",
                    "ApproximateFirstReceiveTimestamp": sent
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:uc-bench",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}
