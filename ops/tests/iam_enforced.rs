//! IAM, proven on moto: the happy path with moto **enforcing** SigV4 and IAM, the emitter, the
//! worker and the scheduled reconciler running with credentials of the template's own
//! `EmitterRole`, `WorkerRole` and `ReconcilerRole`, and each principal denied what lies just outside its grant. See infra/README.md ("IAM,
//! proven on moto") for the findings; in short:
//!
//! * **Enforcement.** moto's server authorizes every request once it has served
//!   `INITIAL_NO_AUTH_ACTION_COUNT` requests without (`moto/core/authorization.py`; the count
//!   covers every API call, anonymous or not). Started with `3`, exactly the three calls that
//!   bootstrap an admin IAM user run unchecked (`CreateUser`, `PutUserPolicy` allowing `*`,
//!   `CreateAccessKey`); from then on an unknown key is `InvalidClientTokenId`, a wrong secret
//!   `SignatureDoesNotMatch`, and an action no policy allows `AccessDenied`. The test asserts
//!   all three, so a denial below cannot pass for a bad-credentials reason.
//! * **Principals.** The stack is deployed by the admin (`dev/local_stack.py` takes
//!   `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`), then the admin `sts:AssumeRole`s the two
//!   roles the template created. moto honours assumed-role credentials (`ASIA…` key + session
//!   token) and evaluates the role's inline and attached policies for them. It also evaluates
//!   the role's trust policy: the template trusts only `lambda.amazonaws.com`, and moto refuses
//!   the admin (with a 500, a `TypeError` on a Service-only principal, where AWS says
//!   `AccessDenied`); the test adds the admin's ARN next to the Lambda service principal, the
//!   one edit to the trust policy.
//! * **The policies are the template's.** They are read back from the stack
//!   (`iam:GetRolePolicy`), never retyped, and re-put unchanged as JSON: moto stores a policy
//!   that its CloudFormation created as a Python dict, which its own enforcement cannot read
//!   (`KeyError: 'policy_document'`, a 500 on every call). Only `null` statements (moto's
//!   rendering of `Fn::If … AWS::NoValue`) are dropped.
//! * **moto mismatches, handled by derived extra policies.** (1) moto authorizes a batch call
//!   as its own action (`sqs:DeleteMessageBatch`, `sqs:SendMessageBatch`,
//!   `sqs:ChangeMessageVisibilityBatch`) where AWS authorizes the per-message action: the test
//!   adds a policy `moto-batch-aliases` with, for each allowed SQS action, its batch name on
//!   the *same* resources — no wider than AWS. (2) moto determines the resource only for SQS,
//!   IAM, STS and S3; every other action (EventBridge, Logs, AppSync) is checked against `*`,
//!   so a statement scoped to a bus never matches and the emitter's `events:PutEvents` is
//!   denied even on its own bus (asserted, and the real emitter then falls back to the queue:
//!   its fallback grant is what carries the first event). For the EventBridge leg the test then
//!   adds `moto-unscoped` (each such allowed action on `*`, the template's conditions kept),
//!   and the second event goes bus → rule → queue. Consequently "PutEvents on another bus is
//!   denied" cannot be proven on moto; the test pins that moto lets it through, so a moto that
//!   learns event-bus resources makes this test say so.
//! * **Not evaluated by moto:** conditions in identity policies (no request context is
//!   supplied: `events:source`/`events:detail-type` pass vacuously), resource policies (the bus
//!   policy's Deny and the queue policies are not even created by moto's CloudFormation),
//!   permission boundaries, SCPs. `appsync:GraphQL` is not evaluated either: the AppSync
//!   stand-in verifies the worker's SigV4 signature with the assumed-role credentials, not its
//!   policy; the template test checks that statement's resource.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use serde_json::{Value, json};
use uc_devkit::{
    AppSyncStandIn, ChildGuard, LambdaHarness, REGION, RunningBinary, eventually, free_port,
    moto_args, python, workspace_binary, workspace_root,
};
use uc_runtime::metrics::read_count;

const STACK: &str = "uc-iam";
const PASSWORD: &str = "Local-Demo-Passw0rd!";

/// Static credentials of one principal.
#[derive(Clone, Debug)]
struct Keys {
    access_key_id: String,
    secret: String,
    token: Option<String>,
}

impl Keys {
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ];
        if let Some(token) = &self.token {
            env.push(("AWS_SESSION_TOKEN", token.clone()));
        }
        env
    }
}

async fn config(endpoint: &str, keys: &Keys) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            &keys.access_key_id,
            &keys.secret,
            keys.token.clone(),
            None,
            "iam-enforced-test",
        ))
        .load()
        .await
}

/// moto with IAM enforced after `free_requests` requests.
fn start_enforcing_moto(free_requests: u32) -> (ChildGuard, String) {
    let port = free_port();
    let child = Command::new(python())
        .args(moto_args(port))
        .env("INITIAL_NO_AUTH_ACTION_COUNT", free_requests.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto server");
    let mut guard = ChildGuard::new("moto server (enforcing)", child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            guard.child_mut().try_wait().unwrap().is_none(),
            "moto exited during start-up"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "moto did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, format!("http://127.0.0.1:{port}"))
}

/// What a failed SDK call said: its error code and message, or the raw answer.
fn failure<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(e) => format!(
            "{} {} {:?}",
            e.code().unwrap_or("?"),
            e.message().unwrap_or(""),
            error.raw_response()
        ),
        None => format!("{error:?}"),
    }
}

macro_rules! assert_denied {
    ($what:expr, $call:expr) => {{
        match $call.await {
            Ok(_) => panic!("{}: allowed, expected AccessDenied", $what),
            Err(e) => {
                let said = failure(&e);
                assert!(
                    said.contains("AccessDenied") && said.contains("not authorized"),
                    "{}: expected AccessDenied, got {said}",
                    $what
                );
            }
        }
    }};
}

macro_rules! assert_allowed {
    ($what:expr, $call:expr) => {{
        match $call.await {
            Ok(v) => v,
            Err(e) => panic!("{}: expected success, got {}", $what, failure(&e)),
        }
    }};
}

/// moto's GetRolePolicy / GetRole documents as JSON: URL-encoded or not, JSON or (for what
/// its CloudFormation created) a Python dict's repr, which only Python reads exactly.
fn documents_as_json(documents: &[String]) -> Vec<Value> {
    let script = "import ast, json, sys, urllib.parse\n\
        out = []\n\
        for d in json.load(sys.stdin):\n\
        \x20   d = urllib.parse.unquote(d) if d.startswith('%') else d\n\
        \x20   try:\n\
        \x20       out.append(json.loads(d))\n\
        \x20   except ValueError:\n\
        \x20       out.append(ast.literal_eval(d))\n\
        json.dump(out, sys.stdout)\n";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), documents).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).unwrap()
}

fn as_list(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

/// Allow statements of `policies`, nulls dropped.
fn allow_statements(policies: &[Value]) -> Vec<Value> {
    policies
        .iter()
        .flat_map(|p| match &p["Statement"] {
            Value::Array(s) => s.clone(),
            other => vec![other.clone()],
        })
        .filter(|s| s["Effect"] == "Allow")
        .collect()
}

/// moto mismatch 1: for every allowed SQS action with a batch form, the batch form on the same
/// resources (AWS authorizes a batch as the per-message action).
fn batch_aliases(policies: &[Value]) -> Option<Value> {
    let statements: Vec<Value> = allow_statements(policies)
        .iter()
        .filter_map(|s| {
            let actions: Vec<String> = as_list(&s["Action"])
                .into_iter()
                .filter(|a| {
                    [
                        "sqs:SendMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                    ]
                    .contains(&a.as_str())
                })
                .map(|a| format!("{a}Batch"))
                .collect();
            (!actions.is_empty())
                .then(|| json!({"Effect": "Allow", "Action": actions, "Resource": s["Resource"]}))
        })
        .collect();
    (!statements.is_empty()).then(|| json!({"Version": "2012-10-17", "Statement": statements}))
}

/// moto mismatch 2: actions of services whose resource moto does not determine (it checks
/// them against "*"), allowed on "*" with the template's conditions kept.
fn unscoped(policies: &[Value]) -> Option<Value> {
    let statements: Vec<Value> = allow_statements(policies)
        .iter()
        .filter_map(|s| {
            let actions: Vec<String> = as_list(&s["Action"])
                .into_iter()
                .filter(|a| {
                    !["sqs:", "iam:", "sts:", "s3:"]
                        .iter()
                        .any(|p| a.starts_with(p))
                })
                .collect();
            if actions.is_empty() {
                return None;
            }
            let mut statement = json!({"Effect": "Allow", "Action": actions, "Resource": "*"});
            if !s["Condition"].is_null() {
                statement["Condition"] = s["Condition"].clone();
            }
            Some(statement)
        })
        .collect();
    (!statements.is_empty()).then(|| json!({"Version": "2012-10-17", "Statement": statements}))
}

fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// Reads the role's inline policies back from the stack and re-puts them as JSON (moto's
/// enforcement cannot read the dicts its CloudFormation stored). Returns them.
async fn normalise_role_policies(iam: &aws_sdk_iam::Client, role: &str) -> Vec<Value> {
    let names = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap()
        .policy_names;
    assert!(!names.is_empty(), "{role} has no inline policy");
    let mut raw = Vec::new();
    for name in &names {
        let got = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .unwrap();
        raw.push(got.policy_document);
    }
    let mut policies = documents_as_json(&raw);
    for (name, policy) in names.iter().zip(policies.iter_mut()) {
        if let Value::Array(statements) = &mut policy["Statement"] {
            statements.retain(|s| !s.is_null());
        }
        iam.put_role_policy()
            .role_name(role)
            .policy_name(name)
            .policy_document(policy.to_string())
            .send()
            .await
            .unwrap();
    }
    policies
}

async fn put_policy(iam: &aws_sdk_iam::Client, role: &str, name: &str, policy: &Value) {
    iam.put_role_policy()
        .role_name(role)
        .policy_name(name)
        .policy_document(policy.to_string())
        .send()
        .await
        .unwrap();
}

/// Lets `admin_arn` assume `role` too (the template trusts only lambda.amazonaws.com).
async fn trust_admin_too(iam: &aws_sdk_iam::Client, role: &str, admin_arn: &str) {
    let trust = iam
        .get_role()
        .role_name(role)
        .send()
        .await
        .unwrap()
        .role
        .unwrap()
        .assume_role_policy_document
        .unwrap();
    let mut trust = documents_as_json(&[trust]).remove(0);
    let statement = &mut trust["Statement"][0];
    assert_eq!(
        statement["Principal"],
        json!({"Service": "lambda.amazonaws.com"}),
        "{role}: the template's trust policy changed"
    );
    statement["Principal"]["AWS"] = json!(admin_arn);
    iam.update_assume_role_policy()
        .role_name(role)
        .policy_document(trust.to_string())
        .send()
        .await
        .unwrap();
}

async fn assume(sts: &aws_sdk_sts::Client, role_arn: &str, session: &str) -> Keys {
    let credentials = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session)
        .send()
        .await
        .unwrap_or_else(|e| panic!("assume {role_arn}: {}", failure(&e)))
        .credentials
        .unwrap();
    Keys {
        access_key_id: credentials.access_key_id,
        secret: credentials.secret_access_key,
        token: Some(credentials.session_token),
    }
}

/// Deploys the template as the admin; the stack's outputs.
fn deploy(endpoint: &str, admin: &Keys, graphql_url: &str) -> BTreeMap<String, String> {
    let output = Command::new(python())
        .arg(workspace_root().join("dev/local_stack.py"))
        .args(["deploy", "--endpoint", endpoint, "--stack-name", STACK])
        .args(["--param", &format!("AppSyncGraphqlUrl={graphql_url}")])
        .args(["--param", "QueueVisibilityTimeoutSeconds=10"])
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .envs(admin.env())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "deploy: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A user signed up and confirmed in the stack's pool, and the PostConfirmation event Cognito
/// would send the emitter for it (as `uc_lab::pipeline` builds it).
async fn confirmed_user_event(
    cognito: &aws_sdk_cognitoidentityprovider::Client,
    out: &BTreeMap<String, String>,
    email: &str,
) -> (String, Value) {
    let pool = &out["UserPoolId"];
    let client_id = &out["UserPoolClientId"];
    // The pool local_stack.py creates signs in with the email as the username.
    let username = email.to_owned();
    let signed_up = cognito
        .sign_up()
        .client_id(client_id)
        .username(&username)
        .password(PASSWORD)
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value(email)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    cognito
        .admin_confirm_sign_up()
        .user_pool_id(pool)
        .username(&username)
        .send()
        .await
        .unwrap();
    let fetched = cognito
        .admin_get_user()
        .user_pool_id(pool)
        .username(&username)
        .send()
        .await
        .unwrap();
    let mut attributes = serde_json::Map::new();
    for a in fetched.user_attributes() {
        attributes.insert(a.name().to_owned(), json!(a.value().unwrap_or_default()));
    }
    attributes.insert("cognito:user_status".into(), json!("CONFIRMED"));
    attributes.entry("email_verified").or_insert(json!("true"));
    let event = json!({
        "version": "1",
        "region": REGION,
        "userPoolId": pool,
        "userName": fetched.username,
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": client_id},
        "triggerSource": "PostConfirmation_ConfirmSignUp",
        "request": {"userAttributes": attributes},
        "response": {}
    });
    (signed_up.user_sub, event)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_runs_with_the_templates_own_iam_and_nothing_more() {
    let (_moto, endpoint) = start_enforcing_moto(3);
    let anonymous = Keys {
        access_key_id: "AKIDNOTKNOWN00000000".into(),
        secret: "not-a-secret".into(),
        token: None,
    };

    // 1. The three free requests: an admin user with keys.
    let iam = aws_sdk_iam::Client::new(&config(&endpoint, &anonymous).await);
    iam.create_user().user_name("admin").send().await.unwrap();
    iam.put_user_policy()
        .user_name("admin")
        .policy_name("admin")
        .policy_document(
            json!({"Version": "2012-10-17",
                   "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("admin")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let admin = Keys {
        access_key_id: key.access_key_id,
        secret: key.secret_access_key,
        token: None,
    };
    // From now on moto enforces: an unknown key and a wrong secret are refused as such.
    let said = failure(
        &aws_sdk_sqs::Client::new(&config(&endpoint, &anonymous).await)
            .list_queues()
            .send()
            .await
            .unwrap_err(),
    );
    assert!(said.contains("InvalidClientTokenId"), "{said}");
    let wrong_secret = Keys {
        secret: format!("{}x", admin.secret),
        ..admin.clone()
    };
    let said = failure(
        &aws_sdk_sqs::Client::new(&config(&endpoint, &wrong_secret).await)
            .list_queues()
            .send()
            .await
            .unwrap_err(),
    );
    assert!(said.contains("SignatureDoesNotMatch"), "{said}");

    // 2. The stack, deployed by the admin.
    let admin_config = config(&endpoint, &admin).await;
    let iam = aws_sdk_iam::Client::new(&admin_config);
    let sts = aws_sdk_sts::Client::new(&admin_config);
    let admin_sqs = aws_sdk_sqs::Client::new(&admin_config);
    let admin_arn = sts.get_caller_identity().send().await.unwrap().arn.unwrap();
    let standin = AppSyncStandIn::start(&[]);
    let out = deploy(&endpoint, &admin, &standin.url);
    let (emitter_arn, worker_arn) = (&out["EmitterRoleArn"], &out["WorkerRoleArn"]);
    let (emitter_role, worker_role) = (role_name(emitter_arn), role_name(worker_arn));

    // 3. The roles' own policies, read back from the stack; the trust evaluated; credentials.
    let emitter_policies = normalise_role_policies(&iam, emitter_role).await;
    let worker_policies = normalise_role_policies(&iam, worker_role).await;
    assert!(
        sts.assume_role()
            .role_arn(emitter_arn)
            .role_session_name("before-trust")
            .send()
            .await
            .is_err(),
        "moto let the admin assume a role that trusts only lambda.amazonaws.com"
    );
    trust_admin_too(&iam, emitter_role, &admin_arn).await;
    trust_admin_too(&iam, worker_role, &admin_arn).await;
    for (role, policies) in [
        (emitter_role, &emitter_policies),
        (worker_role, &worker_policies),
    ] {
        if let Some(policy) = batch_aliases(policies) {
            put_policy(&iam, role, "moto-batch-aliases", &policy).await;
        }
    }
    let emitter = assume(&sts, emitter_arn, "uc-emitter").await;
    let worker = assume(&sts, worker_arn, "uc-worker").await;
    let emitter_config = config(&endpoint, &emitter).await;
    let worker_config = config(&endpoint, &worker).await;
    let whoami = aws_sdk_sts::Client::new(&emitter_config)
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    assert!(
        whoami.contains(&format!("assumed-role/{emitter_role}/")),
        "{whoami}"
    );

    // 4. The real binaries with those credentials.
    let token = worker.token.clone().unwrap();
    let registered = reqwest::Client::new()
        .post(standin.url.replace("/graphql", "/_standin/credentials"))
        .json(
            &json!({"credentials": [{"accessKeyId": worker.access_key_id,
            "secretAccessKey": worker.secret, "sessionToken": token}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(
        registered.status().is_success(),
        "stand-in credentials: {}",
        registered.status()
    );
    let mut worker_env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("QUEUE_URL", out["QueueUrl"].clone()),
        ("DLQ_URL", out["WorkerDlqUrl"].clone()),
        ("APPSYNC_GRAPHQL_URL", standin.url.clone()),
        ("USER_POOL_ID", out["UserPoolId"].clone()),
        ("EVENT_SOURCE", out["EventSource"].clone()),
        ("WAIT_TIME_SECONDS", "1".into()),
        // The worker accepts only the pipeline's own events: this pool, this source.
        ("USER_POOL_ID", out["UserPoolId"].clone()),
        ("EVENT_SOURCE", out["EventSource"].clone()),
    ];
    worker_env.extend(worker.env());
    let worker_process = RunningBinary::start(
        &workspace_binary("uc-worker").display().to_string(),
        &["poll"],
        &worker_env,
    );
    let mut emitter_env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_REGION", REGION.into()),
        ("EVENT_BUS_NAME", out["EventBusName"].clone()),
        ("EVENT_SOURCE", out["EventSource"].clone()),
        ("FALLBACK_QUEUE_URL", out["QueueUrl"].clone()),
    ];
    emitter_env.extend(emitter.env());
    let lambda = LambdaHarness::start(
        &workspace_binary("uc-emitter").display().to_string(),
        &emitter_env,
    )
    .await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&admin_config);
    let profile_of = |sub: String| {
        let standin = &standin;
        async move {
            eventually(Duration::from_secs(60), || async {
                standin.profiles().await.iter().any(|p| p["id"] == sub)
            })
            .await
        }
    };

    // 4a. Exactly the template's grants: moto denies PutEvents even on the emitter's own bus
    // (it checks events actions against "*"), so the event reaches the queue by the fallback.
    let events_as_emitter = aws_sdk_eventbridge::Client::new(&emitter_config);
    let put_on = |bus: String| {
        events_as_emitter.put_events().entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(bus)
                .source(out["EventSource"].clone())
                .detail_type("UserConfirmed")
                .detail("{}")
                .build(),
        )
    };
    assert_denied!(
        "moto gap: PutEvents on the emitter's own bus, template policy only",
        put_on(out["EventBusName"].clone()).send()
    );
    let (sub1, event1) = confirmed_user_event(&cognito, &out, "iam.one@example.com").await;
    let answer = lambda.invoke(&event1, Duration::from_secs(5)).await;
    assert_eq!(answer.result.unwrap(), event1);
    assert!(profile_of(sub1).await, "no profile for the fallback event");
    let lines = lambda.output();
    assert_eq!(read_count(&lines, "emitter", "Fallback"), 1, "{lines:#?}");

    // 4b. With the EventBridge grant unscoped for moto: bus → rule → queue → worker.
    if let Some(policy) = unscoped(&emitter_policies) {
        put_policy(&iam, emitter_role, "moto-unscoped", &policy).await;
    }
    let (sub2, event2) = confirmed_user_event(&cognito, &out, "iam.two@example.com").await;
    let answer = lambda.invoke(&event2, Duration::from_secs(5)).await;
    assert_eq!(answer.result.unwrap(), event2);
    assert!(profile_of(sub2).await, "no profile for the published event");
    let lines = lambda.output();
    assert_eq!(read_count(&lines, "emitter", "Published"), 1, "{lines:#?}");
    assert_eq!(read_count(&lines, "emitter", "Fallback"), 1, "{lines:#?}");
    let stats = standin.stats().await;
    assert!(
        stats["sessionTokenRequests"].as_u64().unwrap_or(0) >= 2,
        "the worker signed with the role's session credentials: {stats}"
    );
    // The worker's DeleteMessageBatch went through (else the messages would stay in flight
    // and come back every 10 s).
    let drained = eventually(Duration::from_secs(30), || async {
        uc_devkit::sqs::depth(&admin_sqs, &out["QueueUrl"]).await == 0
    })
    .await;
    assert!(drained, "the worker queue is not drained");
    let dlq_depth = uc_devkit::sqs::depth(&admin_sqs, &out["WorkerDlqUrl"]).await;
    assert_eq!(dlq_depth, 0, "the worker dead-lettered something");

    // 4c. The scheduled reconciler with its own role: an administrator's user (no trigger runs
    // for it) gets its profile from one invocation of the real uc-reconciler.
    let reconciler_arn = &out["ReconcilerRoleArn"];
    let reconciler_role = role_name(reconciler_arn);
    let reconciler_policies = normalise_role_policies(&iam, reconciler_role).await;
    trust_admin_too(&iam, reconciler_role, &admin_arn).await;
    // Its grants are all on services moto checks against "*" (Cognito, EventBridge, SSM):
    // unscoped for moto, conditions kept, nothing added.
    if let Some(policy) = unscoped(&reconciler_policies) {
        put_policy(&iam, reconciler_role, "moto-unscoped", &policy).await;
    }
    let reconciler = assume(&sts, reconciler_arn, "uc-reconciler").await;
    let reconciler_config = config(&endpoint, &reconciler).await;
    // The pass reads profiles through AppSync: the stand-in must know its credentials too.
    let registered = reqwest::Client::new()
        .post(standin.url.replace("/graphql", "/_standin/credentials"))
        .json(&json!({"credentials": [{"accessKeyId": reconciler.access_key_id,
            "secretAccessKey": reconciler.secret, "sessionToken": reconciler.token.clone().unwrap()}]}))
        .send()
        .await
        .unwrap();
    assert!(registered.status().is_success(), "{}", registered.status());
    let invited = cognito
        .admin_create_user()
        .user_pool_id(&out["UserPoolId"])
        .username("iam.invited@example.com")
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value("iam.invited@example.com")
                .build()
                .unwrap(),
        )
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    cognito
        .admin_set_user_password()
        .user_pool_id(&out["UserPoolId"])
        .username("iam.invited@example.com")
        .password(PASSWORD)
        .permanent(true)
        .send()
        .await
        .unwrap();
    let invited_sub = invited
        .user()
        .and_then(|u| u.attributes().iter().find(|a| a.name() == "sub"))
        .and_then(|a| a.value())
        .unwrap()
        .to_owned();
    let mut reconciler_env: Vec<(&str, String)> = vec![
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_REGION", REGION.into()),
        ("USER_POOL_ID", out["UserPoolId"].clone()),
        ("EVENT_BUS_NAME", out["EventBusName"].clone()),
        ("EVENT_SOURCE", out["EventSource"].clone()),
        (
            "RECONCILE_WATERMARK_PARAMETER",
            out["ReconcileWatermarkParameter"].clone(),
        ),
        // Where the pass checks for profiles (getUserProfile, signed with the role's
        // credentials), and the user just created is judged at once.
        ("APPSYNC_GRAPHQL_URL", standin.url.clone()),
        ("RECONCILE_GRACE_SECONDS", "0".into()),
    ];
    reconciler_env.extend(reconciler.env());
    let reconciler_lambda = LambdaHarness::start(
        &workspace_binary("uc-reconciler").display().to_string(),
        &reconciler_env,
    )
    .await;
    let answer = reconciler_lambda
        .invoke(&json!({}), Duration::from_secs(60))
        .await;
    let report = answer.result.unwrap();
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["watermarkAdvanced"], true, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(
        profile_of(invited_sub).await,
        "no profile for the administrator's user"
    );
    let lines = reconciler_lambda.output();
    assert!(
        read_count(&lines, "reconciler", "Published") >= 1,
        "{lines:#?}"
    );
    drop(reconciler_lambda);

    // 5. Just outside each grant. A queue of nobody's, made by the admin.
    let (other_url, _) = uc_devkit::sqs::create_queue(&admin_sqs, "someone-elses-queue", 30).await;
    let queue = &out["QueueUrl"];
    let dlq = &out["WorkerDlqUrl"];
    let rule_dlq = &out["RuleDlqUrl"];

    let sqs = aws_sdk_sqs::Client::new(&emitter_config);
    assert_allowed!(
        "emitter SendMessage → worker queue",
        sqs.send_message()
            .queue_url(queue)
            .message_body("not an event")
            .send()
    );
    assert_denied!(
        "emitter SendMessage → another queue",
        sqs.send_message()
            .queue_url(&other_url)
            .message_body("x")
            .send()
    );
    assert_denied!(
        "emitter SendMessage → worker DLQ",
        sqs.send_message().queue_url(dlq).message_body("x").send()
    );
    assert_denied!(
        "emitter ReceiveMessage ← worker queue",
        sqs.receive_message().queue_url(queue).send()
    );
    assert_denied!(
        "emitter DeleteQueue",
        sqs.delete_queue().queue_url(queue).send()
    );
    assert_allowed!(
        "emitter PutEvents → its bus",
        put_on(out["EventBusName"].clone()).send()
    );
    // moto gap pinned: EventBridge actions are checked against "*", so a bus outside the grant
    // is not refused. When moto learns bus resources this fails: make it assert_denied!.
    assert_allowed!(
        "moto gap: emitter PutEvents → default bus",
        put_on("default".into()).send()
    );
    assert_denied!("emitter ListQueues", sqs.list_queues().send());

    let sqs = aws_sdk_sqs::Client::new(&worker_config);
    assert_allowed!(
        "worker ReceiveMessage ← worker queue",
        sqs.receive_message().queue_url(queue).send()
    );
    assert_allowed!(
        "worker GetQueueAttributes ← worker queue",
        sqs.get_queue_attributes().queue_url(queue).send()
    );
    assert_allowed!(
        "worker SendMessage → worker DLQ",
        sqs.send_message()
            .queue_url(dlq)
            .message_body("dead-lettered by the test")
            .send()
    );
    assert_denied!(
        "worker DeleteQueue (its own queue)",
        sqs.delete_queue().queue_url(queue).send()
    );
    assert_denied!(
        "worker PurgeQueue (its own queue)",
        sqs.purge_queue().queue_url(queue).send()
    );
    assert_denied!(
        "worker ReceiveMessage ← another queue",
        sqs.receive_message().queue_url(&other_url).send()
    );
    assert_denied!(
        "worker ReceiveMessage ← worker DLQ",
        sqs.receive_message().queue_url(dlq).send()
    );
    assert_denied!(
        "worker ReceiveMessage ← rule DLQ",
        sqs.receive_message().queue_url(rule_dlq).send()
    );
    assert_denied!(
        "worker SendMessage → worker queue",
        sqs.send_message().queue_url(queue).message_body("x").send()
    );
    assert_denied!(
        "worker SendMessage → another queue",
        sqs.send_message()
            .queue_url(&other_url)
            .message_body("x")
            .send()
    );
    assert_denied!(
        "worker PutEvents",
        aws_sdk_eventbridge::Client::new(&worker_config)
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(out["EventBusName"].clone())
                    .source(out["EventSource"].clone())
                    .detail_type("UserConfirmed")
                    .detail("{}")
                    .build(),
            )
            .send()
    );
    assert_denied!(
        "worker iam:ListRoles",
        aws_sdk_iam::Client::new(&worker_config).list_roles().send()
    );
    let ssm = aws_sdk_ssm::Client::new(&reconciler_config);
    let state = &out["ReconcileWatermarkParameter"];
    assert_allowed!(
        "reconciler GetParameter ← its state",
        ssm.get_parameter().name(state).send()
    );
    assert_denied!(
        "reconciler DeleteParameter (its state)",
        ssm.delete_parameter().name(state).send()
    );
    let reconciler_cognito = aws_sdk_cognitoidentityprovider::Client::new(&reconciler_config);
    assert_allowed!(
        "reconciler ListUsers ← the pool",
        reconciler_cognito
            .list_users()
            .user_pool_id(&out["UserPoolId"])
            .send()
    );
    assert_denied!(
        "reconciler AdminCreateUser",
        reconciler_cognito
            .admin_create_user()
            .user_pool_id(&out["UserPoolId"])
            .username("not-allowed")
            .send()
    );
    assert_denied!(
        "reconciler AdminGetUser",
        reconciler_cognito
            .admin_get_user()
            .user_pool_id(&out["UserPoolId"])
            .username("iam.invited@example.com")
            .send()
    );
    let sqs = aws_sdk_sqs::Client::new(&reconciler_config);
    assert_denied!(
        "reconciler SendMessage → worker queue",
        sqs.send_message().queue_url(queue).message_body("x").send()
    );
    assert_denied!(
        "reconciler iam:ListRoles",
        aws_sdk_iam::Client::new(&reconciler_config)
            .list_roles()
            .send()
    );
    // moto gap pinned: SSM is checked against "*", so another parameter is not refused. When
    // moto learns SSM resources this fails: make it assert_denied!.
    assert_allowed!(
        "moto gap: reconciler PutParameter → another parameter",
        ssm.put_parameter()
            .name("/someone-else/parameter")
            .value("x")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
    );
    // The admin (positive control for the foreign queue itself) may do all of it.
    assert_allowed!(
        "admin ReceiveMessage ← another queue",
        admin_sqs.receive_message().queue_url(&other_url).send()
    );
    // moto gap pinned: resource-policy denies are not evaluated, so the admin's `*` identity
    // grant still reaches the worker queue here. In AWS the queue policy's
    // `OnlyThePipelinesRolesSend` refuses it (its statements are checked exactly in
    // dev/tests/test_template.py). When moto starts enforcing it this fails: make it
    // assert_denied!.
    assert_allowed!(
        "moto gap: admin (* on *) SendMessage → worker queue",
        admin_sqs
            .send_message()
            .queue_url(queue)
            .message_body("not an event")
            .send()
    );

    // 6. Every process started here stops on drop (worker, emitter, stand-in, moto).
    drop(worker_process);
    drop(lambda);
}
