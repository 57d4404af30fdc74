//! A minimal GraphQL endpoint for the throughput benchmark: HTTP/1.1 with keep-alive, every
//! request answered `createUserProfile` success after a fixed latency. It does not verify
//! signatures (the stand-in does that in the tests); it is built not to be the bottleneck at
//! thousands of requests per second, which the Python stand-in is not. The same server, with a
//! [`Reply::Computed`] answer, is the fake Cognito of the strict-mode benchmark
//! ([`crate::fake_cognito`]).
//!
//! The latency comes from a timer thread rather than `tokio::time::sleep`, whose millisecond
//! wheel rounds every deadline up (20 ms became 21 ms, 5 % off the Little's-law limit).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Requests and total time held (the latency actually served, timer granularity included).
    pub held: AtomicU64,
    pub held_ns: AtomicU64,
}

impl Counters {
    /// Mean time a request was held since the last reset, in ms.
    pub fn mean_held_ms(&self) -> f64 {
        let n = self.held.load(Ordering::Relaxed).max(1);
        self.held_ns.load(Ordering::Relaxed) as f64 / n as f64 / 1e6
    }

    /// Requests answered and their total held time so far (for deltas over one run).
    pub fn held_snapshot(&self) -> HeldSnapshot {
        HeldSnapshot {
            requests: self.held.load(Ordering::Relaxed),
            ns: self.held_ns.load(Ordering::Relaxed),
        }
    }
}

/// [`Counters::held_snapshot`]: requests answered and their total held time.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeldSnapshot {
    pub requests: u64,
    pub ns: u64,
}

impl HeldSnapshot {
    /// Mean held time (ms) of the requests answered between `earlier` and `self`.
    pub fn mean_ms_since(&self, earlier: HeldSnapshot) -> Option<f64> {
        let n = self.requests.checked_sub(earlier.requests)?;
        (n > 0).then(|| (self.ns - earlier.ns) as f64 / n as f64 / 1e6)
    }
}

/// Builds a whole HTTP/1.1 response (keep-alive) from the request's head and body.
pub type Responder = Arc<dyn Fn(&[u8], &[u8]) -> Vec<u8> + Send + Sync>;

/// What the endpoint answers.
#[derive(Clone)]
pub enum Reply {
    /// The same bytes to every request (the GraphQL endpoint: nothing computed per request).
    Fixed(Arc<[u8]>),
    /// Computed from each request, before the latency is served.
    Computed(Responder),
}

/// A whole HTTP/1.1 response with a body.
pub fn http_response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nx-amzn-requestid: bench\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Wakes each waiter at its deadline, to within the OS's timer slack (tens of µs). The latency
/// is fixed, so deadlines arrive in order and a queue suffices.
#[derive(Default)]
struct Timer {
    queue: Mutex<VecDeque<(Instant, tokio::sync::oneshot::Sender<()>)>>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Timer {
    fn start() -> Arc<Self> {
        let timer = Arc::new(Self::default());
        let shared = timer.clone();
        std::thread::Builder::new()
            .name("fixed-latency-timer".into())
            .spawn(move || shared.run())
            .expect("timer thread");
        timer
    }

    fn run(&self) {
        let mut queue = self.queue.lock().unwrap();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            while queue.front().is_some_and(|(at, _)| *at <= now) {
                let (_, waiter) = queue.pop_front().unwrap();
                let _ = waiter.send(());
            }
            queue = match queue.front() {
                Some((at, _)) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed.wait_timeout(queue, wait).unwrap().0
                }
                None => {
                    self.changed
                        .wait_timeout(queue, Duration::from_millis(100))
                        .unwrap()
                        .0
                }
            };
        }
    }

    async fn sleep_until(&self, at: Instant) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut queue = self.queue.lock().unwrap();
            let was_empty = queue.is_empty();
            queue.push_back((at, tx));
            if was_empty {
                self.changed.notify_one();
            }
        }
        let _ = rx.await;
    }
}

pub struct FixedLatencyEndpoint {
    pub port: u16,
    pub counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
    timer: Arc<Timer>,
}

const BODY: &str = r#"{"data":{"createUserProfile":{"id":"bench","email":null,"profileOwner":"bench::bench","createdAt":"2026-01-01T00:00:00.000Z","updatedAt":"2026-01-01T00:00:00.000Z","__typename":"UserProfile"}}}"#;

impl FixedLatencyEndpoint {
    /// The GraphQL endpoint: `createUserProfile` success to every request.
    pub async fn start(latency: Duration) -> Self {
        let reply = http_response("200 OK", "application/json", BODY);
        Self::start_with(latency, Reply::Fixed(reply.into())).await
    }

    /// The same server answering `reply`.
    pub async fn start_with(latency: Duration, reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let timer = Timer::start();
        let shared_timer = timer.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                shared.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(
                    stream,
                    latency,
                    reply.clone(),
                    shared.clone(),
                    shared_timer.clone(),
                ));
            }
        });
        Self {
            port,
            counters,
            task,
            timer,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql", self.port)
    }

    /// Resets the peak in-flight gauge and the held-time mean (between measurements).
    pub fn reset_peak(&self) {
        self.counters.max_in_flight.store(0, Ordering::Relaxed);
        self.counters.held.store(0, Ordering::Relaxed);
        self.counters.held_ns.store(0, Ordering::Relaxed);
    }
}

impl Drop for FixedLatencyEndpoint {
    fn drop(&mut self) {
        self.task.abort();
        self.timer.stop.store(true, Ordering::Relaxed);
        self.timer.changed.notify_one();
    }
}

async fn serve(
    mut stream: TcpStream,
    latency: Duration,
    reply: Reply,
    counters: Arc<Counters>,
    timer: Arc<Timer>,
) {
    let mut buffer: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    loop {
        let header_end = loop {
            if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let length = content_length(&buffer[..header_end]);
        while buffer.len() < header_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let computed = match &reply {
            Reply::Fixed(_) => None,
            Reply::Computed(respond) => Some(respond(
                &buffer[..header_end],
                &buffer[header_end..header_end + length],
            )),
        };
        buffer.drain(..header_end + length);
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::Relaxed);
        let arrived = Instant::now();
        timer.sleep_until(arrived + latency).await;
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        counters.held.fetch_add(1, Ordering::Relaxed);
        counters
            .held_ns
            .fetch_add(arrived.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let response: &[u8] = match (&reply, &computed) {
            (_, Some(bytes)) => bytes,
            (Reply::Fixed(bytes), None) => bytes,
            (Reply::Computed(_), None) => unreachable!("computed above"),
        };
        if stream.write_all(response).await.is_err() {
            return;
        }
    }
}

fn content_length(head: &[u8]) -> usize {
    header(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The value of the first header called `name` (case-insensitive), trimmed.
pub fn header(head: &[u8], name: &str) -> Option<String> {
    let head = String::from_utf8_lossy(head);
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
