//! Our SigV4 signing, checked by an independent implementation: the AppSync stand-in verifies
//! every request with botocore. The negative cases prove the check is real.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use serde_json::{Value, json};
use uc_devkit::{ACCESS_KEY, AppSyncStandIn, REGION, SECRET_KEY};
use uc_worker::classify::Answer;
use uc_worker::{AppSyncClient, GraphQlEndpoint};

const TOKEN_KEY: &str = "ASIASESSIONTEST00001";
const TOKEN_SECRET: &str = "session/secret/key/000000000000000000000";
const TOKEN: &str = "FwoGZXIvYXdzEXAMPLEsessiontoken//////////";

fn client(url: &str, credentials: Credentials) -> AppSyncClient {
    AppSyncClient::new(
        url.to_owned(),
        REGION.into(),
        SharedCredentialsProvider::new(credentials),
        Duration::from_secs(2),
        4,
    )
    .unwrap()
}

fn create(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "query": uc_schemas::graphql::CREATE_USER_PROFILE,
        "variables": {"input": {"id": id, "email": "signed@example.com", "profileOwner": format!("{id}::user")}}
    }))
    .unwrap()
}

fn status_and_type(answer: &Answer) -> (u16, String) {
    match answer {
        Answer::Http { status, body } => {
            let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            (
                *status,
                json["errors"][0]["errorType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
        other => panic!("no HTTP answer: {other:?}"),
    }
}

async fn send(request: http::Request<Vec<u8>>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .execute(reqwest::Request::try_from(request).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_verify_with_long_term_and_session_credentials() {
    let standin = AppSyncStandIn::start(&[&format!("{TOKEN_KEY}:{TOKEN_SECRET}:{TOKEN}")]);

    let plain = client(
        &standin.url,
        Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"),
    );
    let answer = plain
        .post(
            create("sub-plain"),
            Duration::from_secs(5),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
        )
        .await;
    assert_eq!(
        status_and_type(&answer),
        (200, String::new()),
        "{answer:?} / {}",
        standin.stats().await
    );

    let session = client(
        &standin.url,
        Credentials::new(TOKEN_KEY, TOKEN_SECRET, Some(TOKEN.into()), None, "test"),
    );
    let answer = session
        .post(create("sub-session"), Duration::from_secs(5), None)
        .await;
    assert_eq!(status_and_type(&answer), (200, String::new()), "{answer:?}");

    let stats = standin.stats().await;
    assert_eq!(stats["created"], 2, "{stats}");
    assert_eq!(stats["sessionTokenRequests"], 1, "{stats}");
    // The trace header travels unsigned: the signature still verifies with it present.
    assert_eq!(
        stats["perId"]["sub-plain"]["traceHeader"],
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    );
    let ids: Vec<String> = standin
        .profiles()
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["sub-plain", "sub-session"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_rejects_tampering_wrong_secrets_and_stale_dates() {
    let standin = AppSyncStandIn::start(&[]);
    let good = client(
        &standin.url,
        Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"),
    );
    let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");

    // The control: a request signed now, sent as is, passes.
    let request = good
        .signed_request(
            create("sub-control"),
            credentials.clone(),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(send(request).await.0, 200);

    // Tampered body after signing.
    let mut request = good
        .signed_request(
            create("sub-tampered"),
            credentials.clone(),
            SystemTime::now(),
        )
        .unwrap();
    *request.body_mut() = create("sub-tampereX");
    let (status, body) = send(request).await;
    assert_eq!(
        (status, body["errors"][0]["errorType"].as_str()),
        (403, Some("InvalidSignatureException")),
        "{body}"
    );

    // Wrong secret for a known key.
    let wrong = Credentials::new(
        ACCESS_KEY,
        "not/the/right/secret/0000000000000000000",
        None,
        None,
        "test",
    );
    let request = good
        .signed_request(create("sub-wrong"), wrong, SystemTime::now())
        .unwrap();
    let (status, body) = send(request).await;
    assert_eq!(
        (status, body["errors"][0]["errorType"].as_str()),
        (403, Some("InvalidSignatureException")),
        "{body}"
    );

    // A correct signature from ten minutes ago.
    let stale = SystemTime::now() - Duration::from_secs(600);
    let request = good
        .signed_request(create("sub-stale"), credentials, stale)
        .unwrap();
    let (status, body) = send(request).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired"),
        "{body}"
    );

    // Unsigned.
    let response = reqwest::Client::new()
        .post(&standin.url)
        .body(create("sub-unsigned"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    let ids: Vec<String> = standin
        .profiles()
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        ["sub-control"],
        "only the genuine request created anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_refreshed_once_then_permanent() {
    use uc_runtime::RetryPolicy;
    use uc_worker::classify::Outcome;
    use uc_worker::mutation::MutationSpec;

    let standin = AppSyncStandIn::start(&[]);
    // A key the stand-in does not know: every attempt is refused.
    let unknown = client(
        &standin.url,
        Credentials::new("AKIDUNKNOWN000000000", SECRET_KEY, None, None, "test"),
    );
    let policy = RetryPolicy {
        max_attempts: 5,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(10),
        min_attempt_time: Duration::from_millis(200),
    };
    let writer = uc_worker::ProfileWriter::new(
        unknown,
        MutationSpec::default(),
        policy,
        Duration::from_secs(2),
        4,
    );
    let event: uc_schemas::UserConfirmed = serde_json::from_str(include_str!(
        "../../schemas/examples/detail.email-alias.json"
    ))
    .unwrap();
    let report = writer.write(&event, None, None).await;
    assert_eq!(
        report.outcome,
        Outcome::Permanent {
            reason: "UnrecognizedClientException".into()
        }
    );
    assert_eq!(
        report.attempts, 2,
        "one retry after refreshing credentials, no more"
    );
}

/// `APPSYNC_API_ID`: the URL is looked up once, at start-up, with `GetGraphqlApi`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_id_resolves_to_its_graphql_url() {
    let moto = uc_devkit::Moto::start();
    let sdk = moto.sdk_config().await;
    let api = aws_sdk_appsync::Client::new(&sdk)
        .create_graphql_api()
        .name("profiles")
        .authentication_type(aws_sdk_appsync::types::AuthenticationType::AwsIam)
        .send()
        .await
        .unwrap()
        .graphql_api
        .unwrap();
    let expected = api.uris().unwrap()["GRAPHQL"].clone();
    let resolved = uc_worker::EndpointSetting::ApiId(api.api_id().unwrap().to_owned())
        .resolve(&sdk)
        .await
        .unwrap();
    assert_eq!(resolved, expected);
    let missing = uc_worker::EndpointSetting::ApiId("no-such-api".into())
        .resolve(&sdk)
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("GetGraphqlApi no-such-api"),
        "{missing}"
    );
}
