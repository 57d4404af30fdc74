//! Strict mode (`VERIFY_USER=cognito`) against moto's Cognito: a message is acted on only when
//! `AdminGetUser` finds the user in the pool with the event's `sub` and a usable status; every
//! other case is dead-lettered with its reason and never reaches AppSync.

use std::sync::Arc;

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use uc_devkit::{AppSyncStandIn, Moto, sqs};
use uc_schemas::dead_letter::attr;
use uc_schemas::{DEFAULT_SOURCE, UserConfirmed, sub_from_label, to_envelope};
use uc_worker::lambda::handle_batch;
use uc_worker::{WorkerConfig, build_worker};

mod support;
use support::sqs_event;

fn sub_of(user: &aws_sdk_cognitoidentityprovider::types::UserType) -> String {
    user.attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_acts_only_on_users_of_the_pool() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let pool = cognito
        .create_user_pool()
        .pool_name("strict")
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap()
        .id
        .unwrap();
    let client_id = cognito
        .create_user_pool_client()
        .user_pool_id(&pool)
        .client_name("app")
        .send()
        .await
        .unwrap()
        .user_pool_client
        .unwrap()
        .client_id
        .unwrap();
    // An administrator-created user (FORCE_CHANGE_PASSWORD: a usable account) ...
    let admin_created = cognito
        .admin_create_user()
        .user_pool_id(&pool)
        .username("invited")
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value("invited@example.com")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .user
        .unwrap();
    // ... and a sign-up nobody confirmed (UNCONFIRMED).
    let unconfirmed_sub = cognito
        .sign_up()
        .client_id(&client_id)
        .username("pending")
        .password("Local-Demo-Passw0rd!")
        .send()
        .await
        .unwrap()
        .user_sub;

    let event = |sub: &str, username: &str| {
        let event = UserConfirmed::builder(&pool, sub)
            .username(username)
            .build();
        to_envelope(DEFAULT_SOURCE, &event).to_string()
    };
    let standin = AppSyncStandIn::start(&[]);
    let client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&client, "strict-dlq", 30).await;
    let pairs = [
        ("APPSYNC_GRAPHQL_URL", standin.url.clone()),
        ("USER_POOL_ID", pool.clone()),
        ("DLQ_URL", dlq_url.clone()),
        ("VERIFY_USER", "cognito".to_owned()),
    ];
    let config = WorkerConfig::from_reader(&uc_runtime::env::from_pairs(pairs)).unwrap();
    let worker = Arc::new(build_worker(&config, &sdk).await.unwrap());

    let genuine_sub = sub_of(&admin_created);
    let batch = sqs_event(&[
        ("m-genuine", event(&genuine_sub, "invited")),
        ("m-unknown", event(&sub_from_label("nobody"), "nobody")),
        ("m-other-sub", event(&sub_from_label("squatter"), "invited")),
        ("m-unconfirmed", event(&unconfirmed_sub, "pending")),
    ]);
    let response = handle_batch(worker.clone(), batch, None, 4).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );

    let profiles = standin.profiles().await;
    assert_eq!(profiles.len(), 1, "{profiles:?}");
    assert_eq!(profiles[0]["id"], genuine_sub.as_str());
    assert_eq!(
        standin.stats().await["requests"],
        1,
        "nothing else reached AppSync"
    );

    let mut reasons: Vec<(String, String)> = sqs::drain(&client, &dlq_url)
        .await
        .iter()
        .map(|m| {
            let a = m.message_attributes().unwrap();
            (
                a[attr::SOURCE_MESSAGE_ID]
                    .string_value()
                    .unwrap()
                    .to_owned(),
                a[attr::REASON].string_value().unwrap().to_owned(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("m-other-sub".to_owned(), "SubMismatch".to_owned()),
            ("m-unconfirmed".to_owned(), "UserNotConfirmed".to_owned()),
            ("m-unknown".to_owned(), "UnknownUser".to_owned()),
        ]
    );

    // A second delivery of the genuine message is answered from the cache (and is a duplicate).
    let again = sqs_event(&[("m-again", event(&genuine_sub, "invited"))]);
    assert!(
        handle_batch(worker, again, None, 1)
            .await
            .unwrap()
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(standin.profiles().await.len(), 1);
}
