//! The AppSync edge: one pooled HTTPS client that signs every request with SigV4 (service
//! `appsync`), credentials from the default chain cached until near expiry, and the endpoint
//! resolved once at start-up; and [`ProfileWriter`], the AppSync adapter of the profile-store
//! port (`crate::store`).

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use tokio::time::Instant;
use uc_runtime::{Failure, GaveUp, RetryPolicy, Succeeded};
use uc_schemas::UserConfirmed;

use crate::WorkerError;
use crate::classify::{Answer, Outcome, classify, presence};
use crate::limit::AdaptiveLimit;
use crate::mutation::MutationSpec;
use crate::store::{Removal, WriteReport, result_of_run};

/// What the worker needs from a GraphQL endpoint: post a body, and renew credentials after
/// the endpoint refused them.
pub trait GraphQlEndpoint: Send + Sync {
    /// Posts `body`; `trace_header` (an X-Ray header) travels as `X-Amzn-Trace-Id`, so the
    /// request joins the trace the sign-up started.
    fn post(
        &self,
        body: Vec<u8>,
        timeout: Duration,
        trace_header: Option<&str>,
    ) -> impl Future<Output = Answer> + Send;
    fn refresh_credentials(&self) -> impl Future<Output = ()> + Send;
}

/// Credentials are renewed this long before they expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);

/// The default chain's credentials, cached (the chain itself may call STS or IMDS).
#[derive(Debug)]
pub struct CredentialsCache {
    provider: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<Credentials>>,
}

impl CredentialsCache {
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Cached credentials, fetched when absent or within [`EXPIRY_MARGIN`] of expiry.
    pub async fn get(&self) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        if let Some(credentials) = cached.as_ref() {
            let fresh = credentials.expiry().is_none_or(|expiry| {
                expiry
                    .duration_since(SystemTime::now())
                    .is_ok_and(|left| left > EXPIRY_MARGIN)
            });
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| e.to_string())?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// Drops the cached credentials; the next `get` fetches new ones.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

/// A SigV4-signing client for one AppSync GraphQL URL.
#[derive(Debug)]
pub struct AppSyncClient {
    http: reqwest::Client,
    url: String,
    region: String,
    credentials: CredentialsCache,
}

impl AppSyncClient {
    pub fn new(
        url: String,
        region: String,
        credentials: SharedCredentialsProvider,
        connect_timeout: Duration,
        pool_size: usize,
    ) -> Result<Self, WorkerError> {
        reqwest::Url::parse(&url)
            .map_err(|e| WorkerError::Endpoint(format!("{url:?} is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(pool_size)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("userconfirmed-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WorkerError::Endpoint(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            url,
            region,
            credentials: CredentialsCache::new(credentials),
        })
    }

    /// Builds the client from the SDK configuration (region, credentials chain).
    pub fn from_sdk_config(
        url: String,
        sdk: &SdkConfig,
        connect_timeout: Duration,
        pool_size: usize,
    ) -> Result<Self, WorkerError> {
        let region = sdk
            .region()
            .ok_or_else(|| WorkerError::Endpoint("no AWS region configured (AWS_REGION)".into()))?
            .to_string();
        let provider = sdk.credentials_provider().ok_or_else(|| {
            WorkerError::Endpoint("no AWS credentials provider configured".into())
        })?;
        Self::new(url, region, provider, connect_timeout, pool_size)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Signs a POST of `body` with `credentials` at `time`.
    pub fn signed_request(
        &self,
        body: Vec<u8>,
        credentials: Credentials,
        time: SystemTime,
    ) -> Result<http::Request<Vec<u8>>, String> {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body)
            .map_err(|e| e.to_string())?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("appsync")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
        let signable = SignableRequest::new(
            "POST",
            &self.url,
            headers,
            SignableBody::Bytes(request.body()),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }
}

impl GraphQlEndpoint for AppSyncClient {
    async fn post(&self, body: Vec<u8>, timeout: Duration, trace_header: Option<&str>) -> Answer {
        let credentials = match self.credentials.get().await {
            Ok(c) => c,
            Err(e) => return Answer::Transport(format!("credentials unavailable: {e}")),
        };
        let request = match self.signed_request(body, credentials, SystemTime::now()) {
            Ok(r) => r,
            Err(e) => return Answer::Transport(format!("signing failed: {e}")),
        };
        let mut request = match reqwest::Request::try_from(request) {
            Ok(r) => r,
            Err(e) => return Answer::Transport(e.to_string()),
        };
        *request.timeout_mut() = Some(timeout);
        // Not signed (aws-sigv4 leaves X-Amzn-Trace-Id out of the signature, as AWS does).
        if let Some(value) =
            trace_header.and_then(|t| reqwest::header::HeaderValue::from_str(t).ok())
        {
            request.headers_mut().insert("x-amzn-trace-id", value);
        }
        let response = match self.http.execute(request).await {
            Ok(r) => r,
            Err(e) => return transport_answer(&e),
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => Answer::Http {
                status,
                body: body.to_vec(),
            },
            Err(e) => transport_answer(&e),
        }
    }

    async fn refresh_credentials(&self) {
        self.credentials.invalidate().await;
    }
}

fn transport_answer(error: &reqwest::Error) -> Answer {
    if error.is_timeout() {
        Answer::TimedOut
    } else if error.is_connect() {
        Answer::ConnectFailed(error.to_string())
    } else {
        Answer::Transport(error.to_string())
    }
}

/// Where the GraphQL endpoint comes from: `APPSYNC_GRAPHQL_URL`, or `APPSYNC_API_ID` looked up
/// once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSetting {
    Url(String),
    ApiId(String),
}

impl EndpointSetting {
    /// The GraphQL URL, calling `GetGraphqlApi` for an API id.
    pub async fn resolve(&self, sdk: &SdkConfig) -> Result<String, WorkerError> {
        match self {
            Self::Url(url) => Ok(url.clone()),
            Self::ApiId(id) => {
                let api = aws_sdk_appsync::Client::new(sdk)
                    .get_graphql_api()
                    .api_id(id)
                    .send()
                    .await
                    .map_err(|e| {
                        WorkerError::Endpoint(format!(
                            "GetGraphqlApi {id}: {}",
                            uc_runtime::aws::classify_sdk_error(&e)
                        ))
                    })?;
                api.graphql_api()
                    .and_then(|a| a.uris())
                    .and_then(|uris| uris.get("GRAPHQL"))
                    .cloned()
                    .ok_or_else(|| WorkerError::Endpoint(format!("API {id} has no GRAPHQL URI")))
            }
        }
    }
}

/// Creates profiles through a GraphQL endpoint, with the one retry policy and adaptive
/// concurrency.
pub struct ProfileWriter<E> {
    endpoint: E,
    mutation: MutationSpec,
    retry: RetryPolicy,
    request_timeout: Duration,
    limit: AdaptiveLimit,
}

impl<E: GraphQlEndpoint> ProfileWriter<E> {
    pub fn new(
        endpoint: E,
        mutation: MutationSpec,
        retry: RetryPolicy,
        request_timeout: Duration,
        concurrency: usize,
    ) -> Self {
        Self {
            endpoint,
            mutation,
            retry,
            request_timeout,
            limit: AdaptiveLimit::new(concurrency),
        }
    }

    pub fn endpoint(&self) -> &E {
        &self.endpoint
    }

    /// The current adaptive concurrency limit.
    pub fn concurrency_limit(&self) -> usize {
        self.limit.current()
    }

    /// Creates `event`'s profile, retrying retryable failures until attempts or `deadline` run
    /// out; `trace_header` joins each request to the sign-up's trace.
    pub async fn write(
        &self,
        event: &UserConfirmed,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
    ) -> WriteReport {
        let body = self.mutation.request_body(event);
        let field = &self.mutation.field;
        let (result, latencies) = self
            .requests(body, deadline, trace_header, |answer| {
                match classify(answer, field) {
                    done @ (Outcome::Created | Outcome::AlreadyExists) => Ok(done),
                    other => Err(other),
                }
            })
            .await;
        WriteReport::of_run(result, latencies)
    }

    /// One GraphQL request, retried with the one runner, credentials renewed once after a
    /// refusal, throttling fed to the adaptive limit; `judge` reads each answer. Returns the
    /// run and each attempt's latency.
    async fn requests<T: Send>(
        &self,
        body: Vec<u8>,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
        judge: impl Fn(&Answer) -> Result<T, Outcome> + Send + Sync,
    ) -> (Result<Succeeded<T>, GaveUp<Outcome>>, Vec<f64>) {
        let refreshed = AtomicBool::new(false);
        let latencies = Mutex::new(Vec::new());
        let attempt = |attempt: uc_runtime::Attempt| {
            let body = body.clone();
            let (refreshed, latencies, judge) = (&refreshed, &latencies, &judge);
            async move {
                let _slot = self.limit.acquire().await;
                let started = Instant::now();
                let answer = self
                    .endpoint
                    .post(body, attempt.bound(self.request_timeout), trace_header)
                    .await;
                latencies
                    .lock()
                    .unwrap()
                    .push(started.elapsed().as_secs_f64() * 1000.0);
                match judge(&answer) {
                    Ok(value) => {
                        self.limit.on_success();
                        Ok(value)
                    }
                    Err(Outcome::AuthRejected { reason })
                        if !refreshed.swap(true, Ordering::Relaxed) =>
                    {
                        // Expired or rotated credentials: fetch new ones and try again, once.
                        self.endpoint.refresh_credentials().await;
                        Err(Outcome::Retryable {
                            reason,
                            throttled: false,
                        })
                    }
                    Err(Outcome::AuthRejected { reason }) => Err(Outcome::Permanent { reason }),
                    Err(
                        retry @ Outcome::Retryable {
                            throttled: true, ..
                        },
                    ) => {
                        self.limit.on_throttled();
                        Err(retry)
                    }
                    Err(other) => Err(other),
                }
            }
        };
        let result = self.retry.run(deadline, attempt, |_, _| {}).await;
        (result, latencies.into_inner().unwrap())
    }
}

impl<E: GraphQlEndpoint> ProfileWriter<E> {
    /// `deleteUserProfile(input: {id: sub})`: Amplify's resolver deletes the item; a missing
    /// one is refused by its condition (or answered `null`), which is [`Removal::Absent`].
    pub async fn delete(&self, sub: &str, deadline: Option<Instant>) -> Result<Removal, Failure> {
        let body = graphql_body(
            uc_schemas::graphql::DELETE_USER_PROFILE,
            "DeleteUserProfile",
            serde_json::json!({ "input": { "id": sub } }),
        );
        let field = uc_schemas::graphql::DELETE_USER_PROFILE_FIELD;
        self.call(body, deadline, |answer| {
            match presence(answer, field) {
                Some(true) => return Ok(Removal::Removed),
                Some(false) => return Ok(Removal::Absent),
                None => {}
            }
            match classify(answer, field) {
                Outcome::Created => Ok(Removal::Removed),
                Outcome::AlreadyExists => Ok(Removal::Absent),
                other => Err(other),
            }
        })
        .await
    }

    /// `getUserProfile(id: sub)`: whether the profile exists.
    pub async fn read(&self, sub: &str, deadline: Option<Instant>) -> Result<bool, Failure> {
        let body = graphql_body(
            uc_schemas::graphql::GET_USER_PROFILE,
            "GetUserProfile",
            serde_json::json!({ "id": sub }),
        );
        let field = uc_schemas::graphql::GET_USER_PROFILE_FIELD;
        self.call(body, deadline, |answer| match presence(answer, field) {
            Some(found) => Ok(found),
            None => match classify(answer, field) {
                // An answer with the item and errors beside it still shows the item.
                Outcome::Created => Ok(true),
                other => Err(other),
            },
        })
        .await
    }

    /// [`ProfileWriter::requests`] for a read or a delete: no trace, the result as the shared
    /// failure vocabulary has it.
    async fn call<T: Send>(
        &self,
        body: Vec<u8>,
        deadline: Option<Instant>,
        judge: impl Fn(&Answer) -> Result<T, Outcome> + Send + Sync,
    ) -> Result<T, Failure> {
        result_of_run(self.requests(body, deadline, None, judge).await.0)
    }
}

/// A GraphQL request body.
fn graphql_body(query: &str, operation: &str, variables: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "query": query,
        "operationName": operation,
        "variables": variables,
    }))
    .expect("JSON serializes")
}
