//! Test support shared by the workspace's integration tests: starts real local processes on
//! free loopback ports (moto server, the AppSync stand-in) and stops them on drop, plus a
//! scripted HTTP endpoint for faults an emulator cannot produce (slow or odd answers).

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
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The Python of the pinned dev venv (`UC_PYTHON` overrides). `make venv` creates it.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("UC_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join("dev/.venv/bin/python");
    assert!(venv.exists(), "{} is missing: run `make venv` (make test does it for you)", venv.display());
    venv
}

/// A free TCP port on 127.0.0.1 (the OS picks it; another process could take it before we
/// bind again, which the callers' start-up checks would report).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
    panic!("{} did not listen on 127.0.0.1:{port} within {timeout:?}", guard.name);
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
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
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
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "uc-testkit"))
        .load()
        .await
}

/// The local AppSync stand-in (`dev/appsync_standin.py`), which verifies SigV4 with botocore.
#[derive(Debug)]
pub struct AppSyncStandIn {
    guard: ChildGuard,
    pub url: String,
    http: reqwest::Client,
}

impl AppSyncStandIn {
    /// Starts the stand-in accepting the test credentials (and `extra`, `AKID:SECRET[:TOKEN]`).
    pub fn start(extra: &[&str]) -> Self {
        let script = workspace_root().join("dev/appsync_standin.py");
        let mut command = Command::new(python());
        command
            .arg(script)
            .args(["--host", "127.0.0.1", "--port", "0", "--region", REGION])
            .args(["--credential", &format!("{ACCESS_KEY}:{SECRET_KEY}")]);
        for credential in extra {
            command.args(["--credential", credential]);
        }
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
        let url = line.strip_prefix("READY ").unwrap_or_else(|| panic!("unexpected first line: {line}")).to_owned();
        Self { guard, url, http: reqwest::Client::new() }
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    fn control(&self, path: &str) -> String {
        self.url.replace("/graphql", &format!("/_standin/{path}"))
    }

    /// Replaces the fault rules (see `dev/appsync_standin.py`).
    pub async fn set_faults(&self, rules: serde_json::Value) {
        let response = self.http.post(self.control("faults")).json(&serde_json::json!({ "rules": rules })).send().await.unwrap();
        assert!(response.status().is_success(), "set faults: {}", response.status());
    }

    pub async fn clear_faults(&self) {
        self.http.delete(self.control("faults")).send().await.unwrap();
    }

    /// Every stored profile.
    pub async fn profiles(&self) -> Vec<serde_json::Value> {
        let body: serde_json::Value = self.http.get(self.control("profiles")).send().await.unwrap().json().await.unwrap();
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// The stand-in's counters.
    pub async fn stats(&self) -> serde_json::Value {
        self.http.get(self.control("stats")).send().await.unwrap().json().await.unwrap()
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
        Self { status, body: body.to_string(), delay: Duration::ZERO }
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
                let Ok((stream, _)) = listener.accept().await else { return };
                tokio::spawn(serve_connection(stream, script.clone(), seen.clone()));
            }
        });
        Self { port, requests, task }
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

async fn serve_connection(mut stream: tokio::net::TcpStream, script: Arc<Mutex<Vec<Answer>>>, seen: Arc<Mutex<Vec<String>>>) {
    let mut buffer = Vec::new();
    loop {
        let header_end = loop {
            if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        while buffer.len() < header_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buffer[header_end..header_end + length]).into_owned();
        buffer.drain(..header_end + length);
        let answer = {
            let mut script = script.lock().unwrap();
            if script.len() > 1 { script.remove(0) } else { script[0].clone() }
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
