//! The emitter's handling of a Cognito event, over arbitrary bytes taken as the invocation's
//! JSON text (as the runtime hands it over: any JSON, lone surrogate escapes and numbers of any
//! size included).
//!
//! Checks, for every input that is JSON text:
//! - reading and deciding never panic;
//! - what it decides to publish passes `UserConfirmed::validate` (the JSON Schema's limits) and
//!   is accepted unchanged by the worker's parser (as the bare detail PutEvents carries, and as
//!   the fallback's envelope), with the deterministic event id;
//! - `Emitter::handle` returns the very same text when publishing succeeds, and when it fails
//!   under fail-open; under fail-closed it errs exactly when there was something to publish,
//!   with a message that does not name the user.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use uc_emitter::{
    Decision, Emitter, EmitterConfig, EmitterError, EventPublisher, FailurePolicy, FallbackQueue,
    RawValue, decide_text,
};
use uc_runtime::Failure;
use uc_schemas::envelope::MAX_MESSAGE_BYTES;
use uc_schemas::{DEFAULT_SOURCE, event_id, parse_message, to_envelope};

/// Accepts or refuses (permanently: no back-off) every publish.
struct Port(bool);

impl EventPublisher for Port {
    async fn publish(&self, _: &str, _: Option<&str>) -> Result<(), Failure> {
        if self.0 {
            Ok(())
        } else {
            Err(Failure::permanent("AccessDeniedException", "fuzz"))
        }
    }
}

impl FallbackQueue for Port {
    async fn send(&self, _: &str, _: Option<&str>) -> Result<(), Failure> {
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
    // Lambda delivers UTF-8 JSON text; the runtime refuses anything else before the handler.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = RawValue::from_string(text.to_owned()) else {
        return;
    };
    let now = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    let decision = decide_text(event.get(), "eu-west-1", now);
    let publishes = match &decision {
        Decision::Publish { detail, dropped } => {
            assert_eq!(detail.validate(), Ok(()), "published out of contract");
            for value in [&detail.sub, &detail.username, &detail.user_pool_id] {
                assert!(
                    !value.trim().is_empty() && value.trim() == value,
                    "{value:?}"
                );
            }
            for violation in dropped {
                assert!(
                    matches!(violation.field, "email" | "clientId"),
                    "{violation:?}"
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
                    returned.as_ref().map(|r| r.get()),
                    Ok(event.get()),
                    "the event must come back as the very same text"
                );
            }
            let closed = emitters.failing_closed.handle(event.clone(), left).await;
            match closed {
                Ok(returned) => {
                    assert!(!publishes, "fail-closed hid a failed publish");
                    assert_eq!(returned.get(), event.get());
                }
                Err(error) => {
                    assert!(
                        publishes,
                        "fail-closed failed an event it had no reason to publish"
                    );
                    let EmitterError::PublishFailed { sub, .. } = &error;
                    assert!(!error.to_string().contains(sub.as_str()), "{error}");
                }
            }
        });
    });
});
