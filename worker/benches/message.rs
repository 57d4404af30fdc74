//! CPU per message in the worker: parsing the SQS body (an EventBridge envelope), building the
//! `createUserProfile` request and signing it with SigV4. `make bench` records the results in
//! docs/benchmarks.json; nothing here is a test.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use chrono::TimeZone;
use criterion::{Criterion, criterion_group, criterion_main};
use uc_schemas::{Origin, UserConfirmed, parse_message, to_envelope};
use uc_worker::AppSyncClient;
use uc_worker::mutation::MutationSpec;

fn credentials() -> Credentials {
    Credentials::new(
        "AKIDLOCALTEST0000001",
        "local/test/secret/key/0000000000000000000",
        Some("session-token-of-a-lambda-role".into()),
        None,
        "bench",
    )
}

fn message(c: &mut Criterion) {
    let event = UserConfirmed::new(
        "us-east-1_Ab12Cd34E",
        "94a8f4d8-3031-70a1-5c2e-0123456789ab",
        "94a8f4d8-3031-70a1-5c2e-0123456789ab",
        Some("jane.doe@example.com".into()),
        Some(true),
        Some("1example23456789".into()),
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 22, 10, 15, 30)
            .unwrap(),
        "us-east-1",
        Origin::PostConfirmation,
    );
    let body = to_envelope(uc_schemas::DEFAULT_SOURCE, &event).to_string();
    let spec = MutationSpec::default();
    let client = AppSyncClient::new(
        "https://abcdefghijklmnopqrstuvwxyz.appsync-api.us-east-1.amazonaws.com/graphql".into(),
        "us-east-1".into(),
        SharedCredentialsProvider::new(credentials()),
        Duration::from_secs(1),
        16,
    )
    .unwrap();
    let creds = credentials();
    let now = SystemTime::now();
    let request_body = spec.request_body(&event);

    let mut group = c.benchmark_group("worker");
    group.bench_function("parse", |b| {
        b.iter(|| parse_message(black_box(&body)).unwrap())
    });
    group.bench_function("request_body", |b| {
        b.iter(|| spec.request_body(black_box(&event)))
    });
    group.bench_function("sign", |b| {
        b.iter(|| {
            client
                .signed_request(black_box(request_body.clone()), creds.clone(), now)
                .unwrap()
        })
    });
    // Everything the worker does to a message before the network.
    group.bench_function("parse+build+sign", |b| {
        b.iter(|| {
            let received = parse_message(black_box(&body)).unwrap();
            let request_body = spec.request_body(&received.detail);
            client
                .signed_request(request_body, creds.clone(), now)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = message
}
criterion_main!(benches);
