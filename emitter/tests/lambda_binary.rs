//! The real emitter binary, run the way Lambda runs it (under a local Runtime API), against
//! moto: it answers Cognito correctly, finds its endpoint through `AWS_ENDPOINT_URL`, and never
//! writes an email address to its logs.

use std::time::Duration;

use serde_json::{Value, json};
use uc_devkit::{LambdaHarness, Moto};

const BINARY: &str = env!("CARGO_BIN_EXE_uc-emitter");
const EMAIL: &str = "jane.doe+signup@example.com";

fn event(trigger: &str, sub: Option<&str>, email: Option<&str>) -> Value {
    let mut attributes = json!({"cognito:user_status": "CONFIRMED", "email_verified": true});
    if let Some(sub) = sub {
        attributes["sub"] = sub.into();
    }
    if let Some(email) = email {
        attributes["email"] = email.into();
    }
    json!({
        "version": "1", "region": "us-east-1", "userPoolId": "us-east-1_Ab12Cd34E",
        "userName": "jane", "triggerSource": trigger,
        "callerContext": {"awsSdkVersion": "aws-sdk-js-3", "clientId": "1example23456789"},
        "request": {"userAttributes": attributes, "clientMetadata": {"secret": "do-not-log"}},
        "response": {}
    })
}

fn assert_no_pii(lines: &[String]) {
    assert!(!lines.is_empty());
    for line in lines {
        assert!(
            !line.contains('@'),
            "an address-like value was logged: {line}"
        );
        assert!(!line.contains("jane.doe"), "{line}");
        assert!(
            !line.contains("do-not-log"),
            "client metadata was logged: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_answers_cognito_and_logs_no_email() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    aws_sdk_eventbridge::Client::new(&sdk)
        .create_event_bus()
        .name("bus")
        .send()
        .await
        .unwrap();

    let harness = LambdaHarness::start(
        BINARY,
        &[
            ("EVENT_BUS_NAME", "bus".into()),
            ("AWS_ENDPOINT_URL", moto.endpoint()),
        ],
    )
    .await;
    let cases = [
        event(
            "PostConfirmation_ConfirmSignUp",
            Some("sub-published"),
            Some(EMAIL),
        ),
        event(
            "PostConfirmation_ConfirmForgotPassword",
            Some("sub-reset"),
            Some(EMAIL),
        ),
        event("PostConfirmation_ConfirmSignUp", None, Some(EMAIL)),
        event("PostConfirmation_Unknown", Some("sub-unknown"), Some(EMAIL)),
        event("PostConfirmation_ConfirmSignUp", Some("sub-phone"), None),
    ];
    for case in &cases {
        let invocation = harness.invoke(case, Duration::from_secs(3)).await;
        assert_eq!(
            invocation.result.as_ref().unwrap(),
            case,
            "the event comes back unchanged"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = harness.output();
    assert_no_pii(&lines);
    let joined = lines.join("\n");
    assert!(
        joined.contains("sub-published") && joined.contains("published UserConfirmed"),
        "{joined}"
    );
    assert!(joined.contains("ForgotPassword"), "{joined}");
    assert!(
        joined.contains("\"Published\":1.0"),
        "EMF metric line: {joined}"
    );
    assert!(joined.contains("\"Skipped\":1.0"), "{joined}");

    // Fail-closed with nowhere to publish: Cognito gets an error, still without the email.
    let failing = LambdaHarness::start(
        BINARY,
        &[
            ("EVENT_BUS_NAME", "no-such-bus".into()),
            ("FAILURE_POLICY", "fail-closed".into()),
            ("AWS_ENDPOINT_URL", moto.endpoint()),
        ],
    )
    .await;
    let invocation = failing.invoke(&cases[0], Duration::from_secs(3)).await;
    let error = invocation.result.unwrap_err();
    assert!(error.to_string().contains("sub-published"), "{error}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_no_pii(&failing.output());
    assert_no_pii(&[error.to_string()]);
}

#[test]
fn a_missing_variable_stops_the_cold_start_with_its_name() {
    let output = std::process::Command::new(BINARY)
        .env_remove("EVENT_BUS_NAME")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("EVENT_BUS_NAME is required"), "{text}");
}
