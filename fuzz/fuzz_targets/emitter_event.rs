//! The emitter's handling of a Cognito event, over arbitrary bytes read as JSON.
//!
//! Checks, for every input that is JSON:
//! - `decide` never panics;
//! - what it decides to publish is a valid `UserConfirmed` that the worker's parser accepts
//!   unchanged (as the bare detail PutEvents carries, and as the fallback's envelope), with the
//!   deterministic event id;
//! - `Emitter::handle` returns Cognito's event unchanged when publishing succeeds, and when it
//!   fails under fail-open; under fail-closed it errs exactly when there was something to publish.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use uc_runtime::Failure;
use uc_emitter::{
    Decision, Emitter, EmitterConfig, EventPublisher, FailurePolicy, FallbackQueue,
    decide,
};
use uc_schemas::envelope::MAX_MESSAGE_BYTES;
use uc_schemas::{DEFAULT_SOURCE, event_id, parse_message, to_envelope};

/// Accepts or refuses (permanently: no back-off) every publish.
struct Port(bool);

impl EventPublisher for Port {
    async fn publish(&self, _: &str) -> Result<(), Failure> {
        if self.0 {
            Ok(())
        } else {
            Err(Failure::permanent("AccessDeniedException", "fuzz"))
        }
    }
}

impl FallbackQueue for Port {
    async fn send(&self, _: &str) -> Result<(), Failure> {
        if self.0 {
            Ok(())
        } else {
            Err(Failure::permanent("AccessDenied", "fuzz"))
        }
    }
}

fn config(failure_policy: FailurePolicy) -> EmitterConfig {
    EmitterConfig {
        event_bus: "bus".into(),
        source: DEFAULT_SOURCE.into(),
        budget: Duration::from_millis(2000),
        attempt_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(250),
        max_attempts: 4,
        failure_policy,
        fallback_queue_url: Some("http://127.0.0.1:1/queue".into()),
        fallback_reserve: Duration::from_millis(500),
    }
}

struct Emitters {
    publishing: Emitter<Port, Port>,
    failing_open: Emitter<Port, Port>,
    failing_closed: Emitter<Port, Port>,
}

fn emitters() -> &'static Emitters {
    static EMITTERS: OnceLock<Emitters> = OnceLock::new();
    EMITTERS.get_or_init(|| {
        let emitter =
            |policy, ok| Emitter::new(config(policy), "eu-west-1".into(), Port(ok), Some(Port(ok)));
        Emitters {
            publishing: emitter(FailurePolicy::FailOpen, true),
            failing_open: emitter(FailurePolicy::FailOpen, false),
            failing_closed: emitter(FailurePolicy::FailClosed, false),
        }
    })
}

thread_local! {
    // Paused time: any back-off or timeout completes at once.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let now = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    let decision = decide(&event, "eu-west-1", now);
    let publishes = match &decision {
        Decision::Publish(detail) => {
            for value in [&detail.sub, &detail.username, &detail.user_pool_id] {
                assert!(
                    !value.trim().is_empty() && value.trim() == value,
                    "{value:?}"
                );
            }
            assert_eq!(detail.event_id, event_id(&detail.user_pool_id, &detail.sub));
            assert_eq!(detail.confirmed_at, now);
            let bare = serde_json::to_string(detail).expect("serializes");
            let envelope = to_envelope(DEFAULT_SOURCE, detail).to_string();
            if envelope.len() <= MAX_MESSAGE_BYTES {
                for body in [&bare, &envelope] {
                    let parsed = parse_message(body).unwrap_or_else(|e| {
                        panic!("the worker refuses what the emitter publishes: {e}")
                    });
                    assert_eq!(&parsed.detail, detail.as_ref());
                }
            }
            true
        }
        Decision::Skip(reason) => {
            assert!(!reason.code().is_empty());
            false
        }
    };

    let emitters = emitters();
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            let left = Some(tokio::time::Instant::now() + Duration::from_secs(3));
            for emitter in [&emitters.publishing, &emitters.failing_open] {
                let returned = emitter.handle(event.clone(), left).await;
                assert_eq!(
                    returned.as_ref(),
                    Ok(&event),
                    "the event must come back unchanged"
                );
            }
            let closed = emitters
                .failing_closed
                .handle(event.clone(), left)
                .await;
            match closed {
                Ok(returned) => {
                    assert!(!publishes, "fail-closed hid a failed publish");
                    assert_eq!(returned, event);
                }
                Err(_) => assert!(
                    publishes,
                    "fail-closed failed an event it had no reason to publish"
                ),
            }
        });
    });
});
