//! CPU per event on the sign-up path: reading Cognito's event and mapping it to the
//! `UserConfirmed` detail that PutEvents carries. `make bench` records the results in
//! docs/benchmarks.json; nothing here is a test.

use std::hint::black_box;
use std::time::Duration;

use chrono::TimeZone;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use serde_json::value::RawValue;
use uc_emitter::{Decision, decide, decide_text};

/// The AWS docs' sample PostConfirmation event, as Lambda hands it over.
const EVENT: &str = r#"{
  "version": "1", "region": "us-east-1", "userPoolId": "us-east-1_Ab12Cd34E",
  "userName": "94a8f4d8-3031-70a1-5c2e-0123456789ab",
  "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "1example23456789"},
  "triggerSource": "PostConfirmation_ConfirmSignUp",
  "request": {"userAttributes": {
    "sub": "94a8f4d8-3031-70a1-5c2e-0123456789ab", "cognito:user_status": "CONFIRMED",
    "email_verified": "true", "cognito:email_alias": "jane.doe@example.com",
    "email": "jane.doe@example.com"}},
  "response": {}
}"#;

fn mapping(c: &mut Criterion) {
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 22, 10, 15, 30)
        .unwrap();
    let event: Value = serde_json::from_str(EVENT).unwrap();
    let mut group = c.benchmark_group("emitter");
    group.bench_function("decide", |b| {
        b.iter(|| decide(black_box(&event), "us-east-1", now))
    });
    group.bench_function("decide+serialize", |b| {
        b.iter(|| match decide(black_box(&event), "us-east-1", now) {
            Decision::Publish { detail, .. } => serde_json::to_string(&detail).unwrap(),
            Decision::Skip(_) => unreachable!(),
        })
    });
    // The whole mapping as the function does it: Lambda's payload taken as JSON text (what the
    // runtime does), read into a copy, decided, and the PutEvents detail out.
    group.bench_function("parse+decide+serialize", |b| {
        b.iter(|| {
            let event: Box<RawValue> = serde_json::from_str(black_box(EVENT)).unwrap();
            match decide_text(event.get(), "us-east-1", now) {
                Decision::Publish { detail, .. } => serde_json::to_string(&detail).unwrap(),
                Decision::Skip(_) => unreachable!(),
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = mapping
}
criterion_main!(benches);
