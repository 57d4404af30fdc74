//! Issue 13 end to end: forged messages put straight on the worker queue (as anyone with
//! `sqs:SendMessage` could) make no profile and land in the DLQ with their reason, while the
//! pipeline's own message beside them makes its profile once — with the worker long-polling,
//! and with the worker as a Lambda function fed the same messages as an SQS event.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use uc_devkit::{LambdaHarness, eventually, sqs};
use uc_lab::pipeline::Pipeline;
use uc_schemas::dead_letter::attr;
use uc_schemas::{UserConfirmed, event_id, sub_from_label, to_envelope};

mod support;
use support::{TestStack, binary};

/// (label, body, expected DLQ reason) for each forged kind of issue 13.
fn forged(pool: &str, source: &str) -> Vec<(&'static str, String, &'static str)> {
    let genuine = |label: &str| UserConfirmed::builder(pool, sub_from_label(label)).build();
    let envelope = |event: &UserConfirmed| to_envelope(source, event);
    let with = |label: &str, edit: &dyn Fn(&mut Value)| {
        let mut body = envelope(&genuine(label));
        edit(&mut body);
        body.to_string()
    };
    vec![
        (
            "another source",
            envelope(&genuine("forged-source"))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("source".into(), "someone.else".into());
                    Value::Object(o).to_string()
                })
                .unwrap(),
            "ForeignSource",
        ),
        (
            "another user pool",
            {
                let mut other = genuine("forged-pool");
                other.user_pool_id = "us-east-1_Elsewhere".into();
                other.event_id = event_id(&other.user_pool_id, &other.sub);
                envelope(&other).to_string()
            },
            "ForeignUserPool",
        ),
        (
            "a random eventId",
            with("forged-id", &|b| {
                b["detail"]["eventId"] = event_id("x", "y").to_string().into()
            }),
            "EventIdMismatch",
        ),
        (
            "a non-UUID sub",
            with("forged-sub", &|b| b["detail"]["sub"] = "victim".into()),
            "InvalidDetail",
        ),
        (
            "a sub with ::",
            with("forged-colons", &|b| {
                b["detail"]["sub"] = "0b8c2a1e-1111-4c3e-9a5b-12345::admin".into()
            }),
            "InvalidDetail",
        ),
        (
            "a 500-character sub",
            with("forged-long", &|b| {
                b["detail"]["sub"] = "a".repeat(500).into()
            }),
            "InvalidDetail",
        ),
        (
            "a bare detail",
            serde_json::to_string(&genuine("forged-bare")).unwrap(),
            "ForeignSource",
        ),
    ]
}

/// Sends the forged bodies, then checks what reached the DLQ and the stand-in.
async fn assert_refused(stack: &TestStack, pipeline: &Pipeline, forged: &[(&str, String, &str)]) {
    let client = stack.sqs().await;
    let dlq = stack.env.get("DLQ_URL").unwrap();
    assert!(
        eventually(Duration::from_secs(60), || async {
            sqs::depth(&client, dlq).await >= forged.len() as u64
        })
        .await,
        "every forged message reaches the DLQ"
    );
    let dead: HashMap<String, String> = sqs::drain(&client, dlq)
        .await
        .into_iter()
        .map(|m| {
            let attributes = m.message_attributes().unwrap();
            assert_eq!(
                attributes[attr::STAGE].string_value().unwrap() == "verify",
                !attributes[attr::REASON]
                    .string_value()
                    .unwrap()
                    .starts_with("Invalid"),
            );
            (
                m.body().unwrap().to_owned(),
                attributes[attr::REASON].string_value().unwrap().to_owned(),
            )
        })
        .collect();
    for (kind, body, reason) in forged {
        assert_eq!(dead.get(body).map(String::as_str), Some(*reason), "{kind}");
    }
    assert_eq!(dead.len(), forged.len());
    let profiles = pipeline.standin.profiles().await;
    assert_eq!(profiles.len(), 1, "only the genuine user: {profiles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_messages_make_no_profile_with_the_worker_polling() {
    let stack = TestStack::up("forged-poll").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let pool = stack.env.get("USER_POOL_ID").unwrap();
    let source = stack.env.get("EVENT_SOURCE").unwrap();
    let forged = forged(pool, source);
    let client = stack.sqs().await;
    let queue = stack.env.get("QUEUE_URL").unwrap();
    let bodies: Vec<String> = forged.iter().map(|(_, b, _)| b.clone()).collect();
    sqs::send_all(&client, queue, &bodies).await;
    // The pipeline's own event, through the emitter and EventBridge.
    let user = pipeline
        .sign_up_through_trigger("real.user@example.com")
        .await
        .unwrap();

    let _worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    assert_refused(&stack, &pipeline, &forged).await;
    let stats = pipeline.standin.stats().await;
    assert_eq!(stats["perId"][&user.sub]["created"], 1);
    assert_eq!(stats["requests"], 1, "no forged message reached AppSync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_messages_make_no_profile_with_the_worker_as_a_lambda() {
    let stack = TestStack::up("forged-lambda").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let pool = stack.env.get("USER_POOL_ID").unwrap();
    let source = stack.env.get("EVENT_SOURCE").unwrap();
    let forged = forged(pool, source);
    let client = stack.sqs().await;
    let queue = stack.env.get("QUEUE_URL").unwrap();
    let bodies: Vec<String> = forged.iter().map(|(_, b, _)| b.clone()).collect();
    sqs::send_all(&client, queue, &bodies).await;
    let user = pipeline
        .sign_up_through_trigger("real.user@example.com")
        .await
        .unwrap();

    // What Lambda's SQS event source would hand the function: the queue's messages as records.
    let expected = forged.len() + 1;
    let mut messages = Vec::new();
    while messages.len() < expected {
        let batch = client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        assert!(
            !batch.is_empty(),
            "{} of {expected} messages",
            messages.len()
        );
        messages.extend(batch);
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    let env: Vec<(String, String)> = stack.env.binary_env();
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let worker = LambdaHarness::start(&binary("uc-worker").display().to_string(), &env).await;
    let answer = worker
        .invoke(&json!({"Records": records}), Duration::from_secs(30))
        .await
        .result
        .expect("the batch is answered");
    assert_eq!(
        answer["batchItemFailures"],
        json!([]),
        "every message is settled: refused ones by the DLQ"
    );
    assert_refused(&stack, &pipeline, &forged).await;
    assert_eq!(
        pipeline.standin.stats().await["perId"][&user.sub]["created"],
        1
    );
    assert_eq!(pipeline.standin.stats().await["requests"], 1);
    let output = worker.output().join("\n");
    assert!(!output.contains('@'), "no email in the worker's logs");
    assert!(
        output.contains("\"requestId\""),
        "log lines carry the invocation's request id"
    );
}
