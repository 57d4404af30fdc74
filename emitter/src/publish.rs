//! Publishing within Cognito's patience: the ports the emitter publishes through, and the
//! `PublishPolicy` that runs the one PutEvents retry loop (`uc_runtime::put_events`, a batch of
//! one) with its budget, per-attempt timeout and "unknown outcome", then tries the fallback.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use uc_runtime::put_events::retry_entries;
use uc_runtime::retry::bounded;
use uc_runtime::{Failure, RetryPolicy};

/// Where events are published: EventBridge in production.
pub trait EventPublisher: Send + Sync {
    /// Publishes one event (`detail` is the JSON text) and succeeds only if the entry was
    /// accepted: a 200 answer with a failed entry is an error. `trace_header` (the
    /// invocation's X-Ray header) goes on as the entry's `TraceHeader`.
    fn publish(
        &self,
        detail_json: &str,
        trace_header: Option<&str>,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// Where events go when they cannot be published: the worker's own queue.
pub trait FallbackQueue: Send + Sync {
    /// Sends one message body (an EventBridge-shaped envelope), with `trace_header` as the
    /// message's `AWSTraceHeader`, as EventBridge would have passed it on.
    fn send(
        &self,
        body: &str,
        trace_header: Option<&str>,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// How hard to try, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishPolicy {
    /// The whole publish, fallback included, ends within this.
    pub budget: Duration,
    /// One call's timeout (also bounded by what is left of the budget).
    pub attempt_timeout: Duration,
    pub max_attempts: usize,
    /// Kept back from the publish attempts for the fallback, when there is one.
    pub fallback_reserve: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl PublishPolicy {
    /// The shared runner's settings for the publish attempts.
    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            min_delay: self.min_backoff,
            max_delay: self.max_backoff,
            min_attempt_time: MIN_ATTEMPT_TIME,
        }
    }
}

/// A PutEvents attempt is not started with less time than this left: it could not finish.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(5);

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published {
        attempts: usize,
    },
    /// PutEvents failed; the event went to the fallback queue.
    FellBack {
        attempts: usize,
        error: Failure,
        /// An attempt timed out: EventBridge may have the event too (the worker dedupes).
        maybe_published: bool,
    },
    /// Neither worked within the budget.
    Failed {
        attempts: usize,
        error: Failure,
        fallback_error: Option<Failure>,
        /// An attempt timed out: the event may have been published after all ("unknown", not
        /// "failed").
        maybe_published: bool,
    },
}

impl PublishOutcome {
    pub fn attempts(&self) -> usize {
        match self {
            Self::Published { attempts }
            | Self::FellBack { attempts, .. }
            | Self::Failed { attempts, .. } => *attempts,
        }
    }
}

impl PublishPolicy {
    /// Publishes `detail_json`, retrying within the budget, then sends `fallback_body` to the
    /// fallback queue if there is one. Never takes longer than `budget` (nor `deadline`).
    pub async fn run<P: EventPublisher, F: FallbackQueue>(
        &self,
        publisher: &P,
        fallback: Option<&F>,
        detail_json: &str,
        fallback_body: impl FnOnce() -> String,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
    ) -> PublishOutcome {
        let start = Instant::now();
        let mut end = start + self.budget;
        if let Some(deadline) = deadline {
            end = end.min(deadline);
        }
        let publish_end = match fallback {
            Some(_) => end
                .checked_sub(self.fallback_reserve)
                .unwrap_or(start)
                .max(start),
            None => end,
        };

        // One entry: the port answers its entry's failure as the call's.
        let call = |_, attempt: uc_runtime::Attempt| async move {
            bounded(
                attempt.bound(self.attempt_timeout),
                publisher.publish(detail_json, trace_header),
            )
            .await
            .map(|()| Vec::new())
        };
        let unknown = std::sync::atomic::AtomicBool::new(false);
        let notify = |e: &Failure, delay: Duration| {
            if e.outcome_unknown() {
                unknown.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            tracing::warn!(code = %e.code, retry_in_ms = delay.as_millis() as u64, "PutEvents attempt failed; retrying");
        };
        let outcome =
            retry_entries(&self.retry(), Some(publish_end), 1, call, notify, |_, _| {}).await;
        let attempts = outcome.attempts;
        // No time for an attempt at all is the runner's one `DeadlineReached`.
        let Some((_, error)) = outcome.unpublished.into_iter().next() else {
            return PublishOutcome::Published { attempts };
        };
        let maybe_published = unknown.into_inner() || error.outcome_unknown();

        let Some(fallback) = fallback else {
            return PublishOutcome::Failed {
                attempts,
                error,
                fallback_error: None,
                maybe_published,
            };
        };
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // Not a runner's give-up (that is `DeadlineReached`): the fallback was never tried.
            let fallback_error =
                Failure::permanent("BudgetExhausted", "no time left for the fallback");
            return PublishOutcome::Failed {
                attempts,
                error,
                fallback_error: Some(fallback_error),
                maybe_published,
            };
        }
        match bounded(
            self.attempt_timeout.min(left),
            fallback.send(&fallback_body(), trace_header),
        )
        .await
        {
            Ok(()) => PublishOutcome::FellBack {
                attempts,
                error,
                maybe_published,
            },
            Err(fallback_error) => PublishOutcome::Failed {
                attempts,
                error,
                fallback_error: Some(fallback_error),
                maybe_published,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A scripted port: answers each call with the next scripted result, after a delay.
    struct Script {
        answers: Mutex<Vec<Result<(), Failure>>>,
        delay: Duration,
        calls: Mutex<usize>,
    }

    impl Script {
        fn new(answers: Vec<Result<(), Failure>>, delay: Duration) -> Self {
            Self {
                answers: Mutex::new(answers),
                delay,
                calls: Mutex::new(0),
            }
        }
        fn calls(&self) -> usize {
            *self.calls.lock().unwrap()
        }
        async fn next(&self) -> Result<(), Failure> {
            *self.calls.lock().unwrap() += 1;
            tokio::time::sleep(self.delay).await;
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(())
            } else {
                answers.remove(0)
            }
        }
    }

    impl EventPublisher for Script {
        async fn publish(&self, _: &str, _: Option<&str>) -> Result<(), Failure> {
            self.next().await
        }
    }

    impl FallbackQueue for Script {
        async fn send(&self, _: &str, _: Option<&str>) -> Result<(), Failure> {
            self.next().await
        }
    }

    fn policy() -> PublishPolicy {
        PublishPolicy {
            budget: Duration::from_millis(2000),
            attempt_timeout: Duration::from_millis(300),
            max_attempts: 4,
            fallback_reserve: Duration::from_millis(500),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        }
    }

    fn flaky() -> Failure {
        Failure::retryable("InternalFailure", "entry failed")
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_failures_until_published() {
        let publisher = Script::new(vec![Err(flaky()), Err(flaky())], Duration::from_millis(5));
        let outcome = policy()
            .run(&publisher, None::<&Script>, "{}", String::new, None, None)
            .await;
        assert_eq!(outcome, PublishOutcome::Published { attempts: 3 });
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failure_goes_straight_to_the_fallback() {
        let publisher = Script::new(
            vec![Err(Failure::permanent(
                "ResourceNotFoundException",
                "no bus",
            ))],
            Duration::ZERO,
        );
        let fallback = Script::new(vec![], Duration::ZERO);
        let outcome = policy()
            .run(
                &publisher,
                Some(&fallback),
                "{}",
                || "body".into(),
                None,
                None,
            )
            .await;
        assert!(
            matches!(outcome, PublishOutcome::FellBack { attempts: 1, .. }),
            "{outcome:?}"
        );
        assert_eq!(fallback.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_endpoint_cannot_overrun_the_budget() {
        let publisher = Script::new(vec![], Duration::from_secs(60));
        let fallback = Script::new(vec![], Duration::from_secs(60));
        let start = Instant::now();
        let outcome = policy()
            .run(
                &publisher,
                Some(&fallback),
                "{}",
                || "body".into(),
                None,
                None,
            )
            .await;
        assert!(
            start.elapsed() <= policy().budget,
            "took {:?}",
            start.elapsed()
        );
        match outcome {
            PublishOutcome::Failed {
                attempts,
                error,
                fallback_error,
                maybe_published,
            } => {
                assert!(
                    maybe_published,
                    "every attempt timed out: the outcome is unknown"
                );
                assert_eq!(attempts, 4);
                assert_eq!(error.code, "Timeout");
                assert_eq!(fallback_error.unwrap().code, "Timeout");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_lambda_deadline_shortens_the_budget() {
        let publisher = Script::new(vec![], Duration::from_secs(60));
        let start = Instant::now();
        let deadline = start + Duration::from_millis(700);
        let outcome = policy()
            .run(
                &publisher,
                None::<&Script>,
                "{}",
                String::new,
                Some(deadline),
                None,
            )
            .await;
        assert!(start.elapsed() <= Duration::from_millis(700));
        assert!(matches!(outcome, PublishOutcome::Failed { .. }));
    }
}
