//! A Lambda Runtime API on loopback ([`LambdaHarness`]): runs a real function binary the way
//! Lambda does, hands it events and collects its answers ([`Invocation`]) and output.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::moto::REGION;
use crate::processes::RunningBinary;
use crate::scripted_http::read_request;

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
    /// The X-Ray trace id this invocation was handed (`Lambda-Runtime-Trace-Id`).
    pub trace_id: String,
}

/// The X-Ray trace header the Runtime API hands the invocation `id` (unique per invocation).
pub fn trace_id_for(id: &str) -> String {
    let digits: String = id.chars().filter(char::is_ascii_digit).collect();
    format!("Root=1-6751f0a2-{digits:0>24};Parent=53995c3f42cd8ad8;Sampled=1")
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
                    trace_id: trace_id_for(&id),
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

    /// The output once `ready` holds for it (see [`RunningBinary::output_when`]).
    pub fn output_when(&self, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
        self.process.output_when(ready, Duration::from_secs(30))
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
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:{REGION}:000000000000:function:local-function\r\nlambda-runtime-trace-id: {}\r\ncontent-length: {}\r\n\r\n{event}",
                trace_id_for(&id),
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
