//! A fake SQS queue for the long-poll throughput runs: the same loopback server as the GraphQL
//! endpoint ([`FixedLatencyEndpoint`]), answering the AWS JSON 1.0 calls the worker's poll mode
//! makes (`GetQueueAttributes`, `ReceiveMessage`, `DeleteMessageBatch`,
//! `ChangeMessageVisibility`) from an in-memory queue, after a fixed round trip. moto serves a
//! few hundred calls a second; C = 256 needs about 2,600 (a receive and a delete per 10
//! messages). An empty queue answers at once (no long-poll wait): it only happens at a run's tail.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fixed_endpoint::{FixedLatencyEndpoint, Reply, header, http_response};

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The queue and what the fake saw.
#[derive(Debug, Default)]
pub struct QueueState {
    /// (message id, body) waiting to be received.
    visible: Mutex<VecDeque<(String, Arc<str>)>>,
    pub receives: AtomicU64,
    pub empty_receives: AtomicU64,
    pub delete_batches: AtomicU64,
    pub deleted: AtomicU64,
    /// Messages handed back (ChangeMessageVisibility): a failure in these runs.
    pub returned: AtomicU64,
    pub other: AtomicU64,
}

impl QueueState {
    pub fn push(&self, messages: impl IntoIterator<Item = (String, String)>) {
        let mut visible = self.visible.lock().unwrap();
        visible.extend(messages.into_iter().map(|(id, body)| (id, body.into())));
    }

    pub fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }

    /// Messages the worker is done with: deleted, or handed back (not re-queued here).
    pub fn settled(&self) -> u64 {
        self.deleted() + self.returned.load(Ordering::Relaxed)
    }
}

pub struct FakeSqs {
    pub endpoint: FixedLatencyEndpoint,
    pub state: Arc<QueueState>,
}

impl FakeSqs {
    pub async fn start(round_trip: Duration) -> Self {
        let state = Arc::new(QueueState::default());
        let shared = state.clone();
        let respond = move |head: &[u8], body: &[u8]| answer(&shared, head, body);
        let endpoint =
            FixedLatencyEndpoint::start_with(round_trip, Reply::Computed(Arc::new(respond))).await;
        Self { endpoint, state }
    }

    /// The endpoint (`AWS_ENDPOINT_URL_SQS`).
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.endpoint.port)
    }

    pub fn queue_url(&self) -> String {
        format!("{}/000000000000/uc-bench", self.endpoint_url())
    }
}

fn answer(state: &QueueState, head: &[u8], body: &[u8]) -> Vec<u8> {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let target = header(head, "x-amz-target").unwrap_or_default();
    let reply = match target.strip_prefix("AmazonSQS.").unwrap_or_default() {
        "GetQueueAttributes" => json!({"Attributes": {"VisibilityTimeout": "300"}}),
        "ReceiveMessage" => {
            state.receives.fetch_add(1, Ordering::Relaxed);
            let wanted = request["MaxNumberOfMessages"].as_u64().unwrap_or(1).min(10) as usize;
            let taken: Vec<(String, Arc<str>)> = {
                let mut visible = state.visible.lock().unwrap();
                let n = wanted.min(visible.len());
                visible.drain(..n).collect()
            };
            if taken.is_empty() {
                state.empty_receives.fetch_add(1, Ordering::Relaxed);
            }
            let sent = chrono::Utc::now().timestamp_millis().to_string();
            let messages: Vec<Value> = taken
                .into_iter()
                .map(|(id, body)| {
                    json!({
                        "MessageId": id,
                        "ReceiptHandle": format!("rh-{id}"),
                        "MD5OfBody": "",
                        "Body": &*body,
                        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": sent},
                    })
                })
                .collect();
            json!({ "Messages": messages })
        }
        "DeleteMessageBatch" => {
            let entries = request["Entries"].as_array().cloned().unwrap_or_default();
            state.delete_batches.fetch_add(1, Ordering::Relaxed);
            state
                .deleted
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
            let ok: Vec<Value> = entries.iter().map(|e| json!({"Id": e["Id"]})).collect();
            json!({"Successful": ok, "Failed": []})
        }
        "ChangeMessageVisibility" => {
            state.returned.fetch_add(1, Ordering::Relaxed);
            json!({})
        }
        _ => {
            state.other.fetch_add(1, Ordering::Relaxed);
            let error =
                json!({"__type": "com.amazonaws.sqs#UnsupportedOperation", "message": "not faked"});
            return http_response("400 Bad Request", CONTENT_TYPE, &error.to_string());
        }
    };
    http_response("200 OK", CONTENT_TYPE, &reply.to_string())
}
