//! The local stack kit, shared by the integration tests and the demo: starts real processes on
//! free loopback ports (moto server, the AppSync stand-in, function binaries under a Lambda
//! Runtime API) and stops them on drop, plus a scripted HTTP endpoint for faults an emulator
//! cannot produce (slow or odd answers).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const REGION: &str = "us-east-1";
/// The credentials every local process accepts (moto does not check them unless enforcing).
pub const ACCESS_KEY: &str = "AKIDLOCALTEST0000001";
pub const SECRET_KEY: &str = "local/test/secret/key/0000000000000000000";

/// The repository root.
pub fn workspace_root() -> PathBuf {
    // This crate lives in <root>/dev/devkit.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// The Python of the pinned dev venv (`UC_PYTHON` overrides). `make venv` creates it.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("UC_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join("dev/.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `make venv` (make test does it for you)",
        venv.display()
    );
    venv
}

/// A free TCP port on 127.0.0.1 (the OS picks it; another process could take it before we
/// bind again, which the callers' start-up checks would report).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped on drop: every process a test starts, it stops.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    pub name: &'static str,
}

impl ChildGuard {
    pub fn new(name: &'static str, child: Child) -> Self {
        Self { child, name }
    }
    pub fn id(&self) -> u32 {
        self.child.id()
    }
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, guard: &mut ChildGuard, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!("{} exited during start-up: {status}", guard.name);
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} did not listen on 127.0.0.1:{port} within {timeout:?}",
        guard.name
    );
}

/// moto server's command line (after the Python interpreter): `dev/moto_server.py`, moto with
/// a fix for a race that loses SQS messages (see that file).
pub fn moto_args(port: u16) -> Vec<String> {
    vec![
        workspace_root()
            .join("dev/moto_server.py")
            .display()
            .to_string(),
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ]
}

/// A moto server on a free loopback port, for SQS, EventBridge, Cognito and more.
#[derive(Debug)]
pub struct Moto {
    guard: ChildGuard,
    port: u16,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new(python())
            .args(moto_args(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto server");
        let mut guard = ChildGuard::new("moto server", child);
        wait_for_port(port, &mut guard, Duration::from_secs(60));
        Self { guard, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// SDK configuration pointing every service at this moto, with the test credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint()).await
    }
}

/// SDK configuration for a local endpoint, with the test credentials and region.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "uc-devkit",
        ))
        .load()
        .await
}

/// The local AppSync stand-in (`dev/appsync_standin.py`), which verifies SigV4 with botocore.
/// Started by a test and stopped on drop; its control API is [`StandInControl`].
#[derive(Debug)]
pub struct AppSyncStandIn {
    guard: ChildGuard,
    pub url: String,
    control: StandInControl,
}

impl AppSyncStandIn {
    /// Starts the stand-in accepting the test credentials (and `extra`, `AKID:SECRET[:TOKEN]`).
    pub fn start(extra: &[&str]) -> Self {
        let mut command = Command::new(python());
        command.args(standin_args(0, extra));
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the AppSync stand-in");
        let mut guard = ChildGuard::new("AppSync stand-in", child);
        let stdout = guard.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the AppSync stand-in did not print READY"));
        let url =
            parse_ready_line(&line).unwrap_or_else(|| panic!("unexpected first line: {line}"));
        Self {
            guard,
            control: StandInControl::new(&url),
            url,
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }
}

impl std::ops::Deref for AppSyncStandIn {
    type Target = StandInControl;
    fn deref(&self) -> &StandInControl {
        &self.control
    }
}

/// The stand-in's command line (after the Python interpreter), on `port` (0 = any free one).
pub fn standin_args(port: u16, extra_credentials: &[&str]) -> Vec<String> {
    let mut args = vec![
        workspace_root()
            .join("dev/appsync_standin.py")
            .display()
            .to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--region".into(),
        REGION.into(),
        "--credential".into(),
        format!("{ACCESS_KEY}:{SECRET_KEY}"),
    ];
    for credential in extra_credentials {
        args.push("--credential".into());
        args.push((*credential).to_owned());
    }
    args
}

/// The GraphQL URL from the stand-in's `READY <url>` line.
pub fn parse_ready_line(line: &str) -> Option<String> {
    line.trim().strip_prefix("READY ").map(str::to_owned)
}

/// The stand-in's control API (faults, stored profiles, counters), for a stand-in started here
/// or by the local stack.
#[derive(Debug, Clone)]
pub struct StandInControl {
    base: String,
    http: reqwest::Client,
}

impl StandInControl {
    /// `graphql_url` is the stand-in's `/graphql` URL.
    pub fn new(graphql_url: &str) -> Self {
        Self {
            base: graphql_url.trim_end_matches("/graphql").to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn control(&self, path: &str) -> String {
        format!("{}/_standin/{path}", self.base)
    }

    /// Replaces the fault rules (see `dev/appsync_standin.py`).
    pub async fn set_faults(&self, rules: serde_json::Value) {
        self.post_faults(serde_json::json!({ "rules": rules }))
            .await;
    }

    /// Replaces the fault rules and reseeds the stand-in's fault draws, for reproducible runs.
    pub async fn set_faults_seeded(&self, rules: serde_json::Value, seed: u64) {
        self.post_faults(serde_json::json!({ "rules": rules, "seed": seed }))
            .await;
    }

    async fn post_faults(&self, body: serde_json::Value) {
        let response = self
            .http
            .post(self.control("faults"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "set faults: {}",
            response.status()
        );
    }

    pub async fn clear_faults(&self) {
        self.http
            .delete(self.control("faults"))
            .send()
            .await
            .unwrap();
    }

    /// Clears profiles, faults and counters.
    pub async fn reset(&self) {
        self.http.post(self.control("reset")).send().await.unwrap();
    }

    /// Every stored profile.
    pub async fn profiles(&self) -> Vec<serde_json::Value> {
        let body: serde_json::Value = self
            .http
            .get(self.control("profiles"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// The stand-in's counters.
    pub async fn stats(&self) -> serde_json::Value {
        self.http
            .get(self.control("stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// One canned HTTP answer of a [`ScriptedHttp`] endpoint.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A loopback HTTP/1.1 endpoint that answers requests with a script (the last answer repeats),
/// for faults no emulator produces on demand. Stops when dropped.
pub struct ScriptedHttp {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedHttp {
    pub async fn start(script: Vec<Answer>) -> Self {
        assert!(!script.is_empty());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_connection(stream, script.clone(), seen.clone()));
            }
        });
        Self {
            port,
            requests,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bodies of the requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for ScriptedHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request (head and body, by Content-Length) from `stream`; `None` when
/// the peer closed the connection. `buffer` carries bytes of the next request across calls.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, String)> {
    let header_end = loop {
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buffer[header_end..header_end + length]).into_owned();
    buffer.drain(..header_end + length);
    Some((head, body))
}

async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    script: Arc<Mutex<Vec<Answer>>>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut buffer = Vec::new();
    while let Some((_, body)) = read_request(&mut stream, &mut buffer).await {
        let answer = {
            let mut script = script.lock().unwrap();
            if script.len() > 1 {
                script.remove(0)
            } else {
                script[0].clone()
            }
        };
        seen.lock().unwrap().push(body);
        tokio::time::sleep(answer.delay).await;
        let response = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nx-amzn-requestid: scripted\r\n\r\n{}",
            answer.status,
            answer.body.len(),
            answer.body
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A Lambda Runtime API on loopback that runs a real function binary the way Lambda does:
/// the binary long-polls for invocations, we hand it events and collect its answers and its
/// stdout/stderr lines. The process is killed on drop.
pub struct LambdaHarness {
    process: RunningBinary,
    api: Arc<RuntimeApi>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct RuntimeApi {
    pending: Mutex<std::collections::VecDeque<(String, String, u64)>>,
    results: Mutex<std::collections::HashMap<String, (bool, String)>>,
    wake: tokio::sync::Notify,
    done: tokio::sync::Notify,
}

/// What a function answered to one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Ok(response)` or `Err(error document)`.
    pub result: Result<serde_json::Value, serde_json::Value>,
    /// From handing the event over to receiving the answer.
    pub elapsed: Duration,
}

impl LambdaHarness {
    /// Starts `binary` with the Lambda environment plus `env`.
    pub async fn start(binary: &str, env: &[(&str, String)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let api = Arc::new(RuntimeApi::default());
        let served = api.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_runtime_api(stream, served.clone()));
            }
        });
        let runtime_api = format!("127.0.0.1:{port}");
        let mut lambda_env: Vec<(&str, String)> = vec![
            ("AWS_LAMBDA_RUNTIME_API", runtime_api),
            ("AWS_LAMBDA_FUNCTION_NAME", "local-function".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/local-function".into(),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".into()),
        ];
        lambda_env.extend(env.iter().cloned());
        let process = RunningBinary::start(binary, &[], &lambda_env);
        Self { process, api, task }
    }

    /// Invokes the function with `event`, allowing it `timeout` (its deadline).
    pub async fn invoke(&self, event: &serde_json::Value, timeout: Duration) -> Invocation {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = format!(
            "req-{:08}",
            NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let deadline_ms = (std::time::SystemTime::now() + timeout)
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let start = Instant::now();
        self.api
            .pending
            .lock()
            .unwrap()
            .push_back((id.clone(), event.to_string(), deadline_ms));
        self.api.wake.notify_waiters();
        let limit = timeout + Duration::from_secs(5);
        loop {
            let done = self.api.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if let Some((ok, body)) = self.api.results.lock().unwrap().remove(&id) {
                let value: serde_json::Value =
                    serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
                return Invocation {
                    result: if ok { Ok(value) } else { Err(value) },
                    elapsed: start.elapsed(),
                };
            }
            assert!(
                start.elapsed() < limit,
                "the function did not answer {id} within {limit:?}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), done).await;
        }
    }

    /// Every line the function has written to stdout or stderr so far.
    pub fn output(&self) -> Vec<String> {
        self.process.output()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

impl Drop for LambdaHarness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_runtime_api(mut stream: tokio::net::TcpStream, api: Arc<RuntimeApi>) {
    let mut buffer = Vec::new();
    while let Some((head, body)) = read_request(&mut stream, &mut buffer).await {
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let response = if path.ends_with("/invocation/next") {
            let (id, event, deadline) = loop {
                let wake = api.wake.notified();
                tokio::pin!(wake);
                wake.as_mut().enable();
                if let Some(next) = api.pending.lock().unwrap().pop_front() {
                    break next;
                }
                wake.await;
            };
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:{REGION}:000000000000:function:local-function\r\nlambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n{event}",
                event.len()
            )
        } else if let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") {
            let mut parts = rest.splitn(2, '/');
            let id = parts.next().unwrap_or_default().to_owned();
            let ok = parts.next() == Some("response");
            api.results.lock().unwrap().insert(id, (ok, body));
            api.done.notify_waiters();
            "HTTP/1.1 202 Accepted\r\ncontent-length: 16\r\n\r\n{\"status\":\"OK\"}\n".to_owned()
        } else {
            // init/error and anything else: accept, so the function can report and exit.
            "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}".to_owned()
        };
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// SQS helpers for tests (the queues themselves are the local stack's or the test's own).
pub mod sqs {
    use aws_sdk_sqs::Client;
    use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};

    /// Creates a queue with `visibility_seconds`; returns its URL and ARN.
    pub async fn create_queue(
        client: &Client,
        name: &str,
        visibility_seconds: u32,
    ) -> (String, String) {
        let url = client
            .create_queue()
            .queue_name(name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_seconds.to_string(),
            )
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()
            .remove(&QueueAttributeName::QueueArn)
            .unwrap();
        (url, arn)
    }

    pub async fn send_all(client: &Client, url: &str, bodies: &[String]) {
        for chunk in bodies.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .unwrap()
            });
            let out = client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .unwrap();
            assert!(out.failed().is_empty(), "{:?}", out.failed());
        }
    }

    /// Receives (and deletes) everything currently visible, with all attributes.
    pub async fn drain(client: &Client, url: &str) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let out = client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for m in &messages {
                client
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            all.extend(messages);
        }
    }

    /// Visible plus in-flight messages.
    pub async fn depth(client: &Client, url: &str) -> u64 {
        let attributes = client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        attributes
            .values()
            .map(|v| v.parse::<u64>().unwrap_or(0))
            .sum()
    }
}

/// A started binary whose stdout and stderr lines are collected; killed on drop.
pub struct RunningBinary {
    guard: ChildGuard,
    output: Arc<Mutex<Vec<String>>>,
}

impl RunningBinary {
    pub fn start(binary: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        Self {
            guard: ChildGuard::new("binary", child),
            output,
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.guard.child_mut().try_wait().ok().flatten()
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.guard.child_mut().try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// Polls `check` until it returns true or `timeout` passes; returns whether it did.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
