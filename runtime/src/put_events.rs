//! The one PutEvents batch with per-entry retry: a batch call of up to ten entries
//! ([`EventBus::put_once`]) and the loop that retries the call and the entries that failed
//! retryably with the one runner ([`retry_entries`], also run over SQS `SendMessageBatch`),
//! saying per entry what could not be published and why. The emitter, the worker and the sweep
//! publish through it; what differs between them (retry policy, deadline, per-attempt timeout,
//! bus, source) is a parameter.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tokio::time::Instant;

use crate::aws::{classify_sdk_error, entry_failure};
use crate::retry::{Attempt, Classified, Failure, FailureKind, RetryPolicy, bounded};

/// PutEvents takes at most ten entries.
pub const MAX_ENTRIES: usize = 10;

/// One event for the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub detail_type: &'a str,
    /// The `detail` as JSON text.
    pub detail: &'a str,
    /// An X-Ray trace header, passed on as the entry's `TraceHeader`.
    pub trace_header: Option<&'a str>,
}

/// What publishing a batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The entries (index in the batch) that were not published, each with why: first those
    /// refused (a permanent entry failure) in the order refused, then those still pending when
    /// the runner gave up, each with its last failure ([`crate::GaveUp::into_failure`]).
    pub unpublished: Vec<(usize, Failure)>,
    /// The call itself failed permanently (access denied, bus or queue missing): retrying the
    /// same call cannot help.
    pub call_refused: Option<Failure>,
    /// Calls made.
    pub attempts: usize,
}

/// Why one batch attempt failed: the call itself, or some of its entries (still pending).
enum BatchFailure {
    Call(Failure),
    Entries(Failure),
}

impl BatchFailure {
    fn failure(&self) -> &Failure {
        let (Self::Call(failure) | Self::Entries(failure)) = self;
        failure
    }
}

impl Classified for BatchFailure {
    fn kind(&self) -> FailureKind {
        self.failure().kind
    }
}

impl From<BatchFailure> for Failure {
    fn from(failure: BatchFailure) -> Self {
        let (BatchFailure::Call(failure) | BatchFailure::Entries(failure)) = failure;
        failure
    }
}

/// Publishes a batch of `len` entries with `call`, retrying with `policy` (within `deadline`)
/// the call when it fails retryably and the entries that failed retryably, until every entry
/// is published or refused, or the runner gives up.
///
/// `call` gets the indices (in the batch) of the entries still pending and answers, by
/// position in that list, the entries that failed (PutEvents and SendMessageBatch answer 200
/// with per-entry failures), or the call's own failure. `on_retry` hears each failure that will
/// be retried with the delay before the next attempt; `on_refused` each entry refused.
pub async fn retry_entries<F, Fut>(
    policy: &RetryPolicy,
    deadline: Option<Instant>,
    len: usize,
    mut call: F,
    mut on_retry: impl FnMut(&Failure, Duration),
    on_refused: impl Fn(usize, &Failure),
) -> BatchOutcome
where
    F: FnMut(Vec<usize>, Attempt) -> Fut,
    Fut: Future<Output = Result<Vec<(usize, Failure)>, Failure>>,
{
    let pending = Mutex::new((0..len).collect::<Vec<_>>());
    let refused = Mutex::new(Vec::new());
    let attempt = |attempt: Attempt| {
        let batch = pending.lock().unwrap().clone();
        let sent = call(batch.clone(), attempt);
        let (pending, refused, on_refused) = (&pending, &refused, &on_refused);
        async move {
            let failed = sent.await.map_err(BatchFailure::Call)?;
            let mut retry = Vec::new();
            let mut last = None;
            for (position, failure) in failed {
                let Some(&index) = batch.get(position) else {
                    continue;
                };
                if failure.is_retryable() {
                    retry.push(index);
                    last = Some(failure);
                } else {
                    on_refused(index, &failure);
                    refused.lock().unwrap().push((index, failure));
                }
            }
            *pending.lock().unwrap() = retry;
            last.map_or(Ok(()), |failure| Err(BatchFailure::Entries(failure)))
        }
    };
    let notify = |failure: &BatchFailure, delay: Duration| on_retry(failure.failure(), delay);
    let result = policy.run(deadline, attempt, notify).await;
    let mut outcome = BatchOutcome {
        unpublished: refused.into_inner().unwrap(),
        call_refused: None,
        attempts: 0,
    };
    match result {
        Ok(done) => outcome.attempts = done.attempts,
        Err(gave_up) => {
            outcome.attempts = gave_up.attempts();
            if let crate::GaveUp::Failed {
                error: BatchFailure::Call(failure),
                ..
            } = &gave_up
                && !failure.is_retryable()
            {
                outcome.call_refused = Some(failure.clone());
            }
            // Whatever is still pending is reported, not lost.
            let failure = gave_up.into_failure();
            let pending = pending.into_inner().unwrap();
            outcome
                .unpublished
                .extend(pending.into_iter().map(|index| (index, failure.clone())));
        }
    }
    outcome
}

/// One EventBridge bus and the `source` its events carry. The client should have the SDK's own
/// retries off: retries are [`retry_entries`]'s.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
}

impl EventBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, source: String) -> Self {
        Self {
            client,
            bus,
            source,
        }
    }

    /// One PutEvents call, no retry: the entries (by position) that failed, each classified by
    /// the shared entry rule, or the call's own failure.
    pub async fn put_once(&self, entries: &[Entry<'_>]) -> Result<Vec<(usize, Failure)>, Failure> {
        let request = entries.iter().map(|entry| {
            PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus)
                .source(&self.source)
                .detail_type(entry.detail_type)
                .detail(entry.detail)
                .set_trace_header(entry.trace_header.map(str::to_owned))
                .build()
        });
        // Boxed: the SDK's send future is large, and inlined into every caller's retry loop it
        // made a debug build's frames big enough to overflow a 2 MiB thread stack.
        let call = self
            .client
            .put_events()
            .set_entries(Some(request.collect()))
            .send();
        let output = Box::pin(call).await.map_err(|e| classify_sdk_error(&e))?;
        Ok(output
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.error_code().is_some())
            .map(|(position, entry)| {
                (
                    position,
                    entry_failure(entry.error_code(), entry.error_message()),
                )
            })
            .collect())
    }

    /// Publishes `entries` (at most [`MAX_ENTRIES`]) with [`retry_entries`], each call bounded
    /// by `attempt_timeout` (and the time left before `deadline`) when given.
    pub async fn put(
        &self,
        entries: &[Entry<'_>],
        policy: &RetryPolicy,
        deadline: Option<Instant>,
        attempt_timeout: Option<Duration>,
        on_retry: impl FnMut(&Failure, Duration),
        on_refused: impl Fn(usize, &Failure),
    ) -> BatchOutcome {
        let call = |batch: Vec<usize>, attempt: Attempt| async move {
            let entries: Vec<Entry<'_>> = batch.iter().map(|&index| entries[index]).collect();
            match attempt_timeout {
                Some(timeout) => bounded(attempt.bound(timeout), self.put_once(&entries)).await,
                None => self.put_once(&entries).await,
            }
        };
        retry_entries(policy, deadline, entries.len(), call, on_retry, on_refused).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            min_attempt_time: Duration::from_millis(5),
        }
    }

    type Answer = Result<Vec<(usize, Failure)>, Failure>;

    /// A scripted batch call: records each batch it is given, answers the next scripted answer
    /// (all published once the script is empty).
    fn scripted(
        answers: Vec<Answer>,
        seen: &Mutex<Vec<Vec<usize>>>,
    ) -> impl FnMut(Vec<usize>, Attempt) -> std::future::Ready<Answer> + '_ {
        let answers = Mutex::new(answers);
        move |batch, _| {
            seen.lock().unwrap().push(batch);
            let mut answers = answers.lock().unwrap();
            std::future::ready(if answers.is_empty() {
                Ok(vec![])
            } else {
                answers.remove(0)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_entries_that_failed_retryably_are_sent_again() {
        let seen = Mutex::new(Vec::new());
        let answers = vec![Ok(vec![
            (1, Failure::retryable("InternalFailure", "")),
            (2, Failure::permanent("MalformedDetail", "")),
            (3, Failure::retryable("ThrottlingException", "")),
        ])];
        let refused = Mutex::new(Vec::new());
        let mut retried = Vec::new();
        let outcome = retry_entries(
            &policy(),
            None,
            4,
            scripted(answers, &seen),
            |failure, _| retried.push(failure.code.clone()),
            |index, failure| refused.lock().unwrap().push((index, failure.code.clone())),
        )
        .await;
        assert_eq!(seen.into_inner().unwrap(), [vec![0, 1, 2, 3], vec![1, 3]]);
        assert_eq!(retried, ["ThrottlingException"]);
        assert_eq!(
            refused.into_inner().unwrap(),
            [(2, "MalformedDetail".to_owned())]
        );
        assert_eq!(
            outcome,
            BatchOutcome {
                unpublished: vec![(2, Failure::permanent("MalformedDetail", ""))],
                call_refused: None,
                attempts: 2,
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn what_is_still_pending_when_retries_run_out_is_reported_with_the_last_failure() {
        let seen = Mutex::new(Vec::new());
        let flaky = || Ok(vec![(0, Failure::retryable("InternalFailure", "again"))]);
        let answers = vec![
            Err(Failure::retryable("Timeout", "")),
            Ok(vec![(1, Failure::retryable("InternalFailure", "once"))]),
            flaky(),
        ];
        let outcome = retry_entries(
            &policy(),
            None,
            2,
            scripted(answers, &seen),
            |_, _| {},
            |_, _| {},
        )
        .await;
        // Entry 1 was the second entry of the second call, the first of the third.
        assert_eq!(
            seen.into_inner().unwrap(),
            [vec![0, 1], vec![0, 1], vec![1]]
        );
        assert_eq!(
            outcome.unpublished,
            [(1, Failure::retryable("InternalFailure", "again"))]
        );
        assert_eq!((outcome.call_refused, outcome.attempts), (None, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_refused_stops_at_once_and_says_so() {
        let seen = Mutex::new(Vec::new());
        let denied = Failure::permanent("AccessDeniedException", "no");
        let outcome = retry_entries(
            &policy(),
            None,
            2,
            scripted(vec![Err(denied.clone())], &seen),
            |_, _| {},
            |_, _| {},
        )
        .await;
        assert_eq!(outcome.call_refused, Some(denied.clone()));
        assert_eq!(outcome.unpublished, [(0, denied.clone()), (1, denied)]);
        assert_eq!(outcome.attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_time_for_an_attempt_is_the_one_deadline_code() {
        let seen = Mutex::new(Vec::new());
        let outcome = retry_entries(
            &policy(),
            Some(Instant::now()),
            1,
            scripted(vec![], &seen),
            |_, _| {},
            |_, _| {},
        )
        .await;
        assert!(seen.into_inner().unwrap().is_empty());
        assert_eq!(outcome.unpublished, [(0, Failure::deadline_reached())]);
        assert_eq!(outcome.attempts, 0);
    }
}
