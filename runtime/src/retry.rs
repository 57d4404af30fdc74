//! The pipeline's one failure vocabulary and its one deadline-aware retry runner: every part
//! (emitter publish, worker writes, poller start-up, back-fill, DLQ replay) classifies its
//! failures into [`FailureKind`] and retries through [`RetryPolicy::run`]. The only user of
//! `backon` in the workspace.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

/// What a failed attempt says about the next one (vector's `RetryAction`, minus success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Another attempt may succeed; `throttled` means the other side asked us to slow down.
    Retryable { throttled: bool },
    /// The same request cannot succeed: do not retry.
    Permanent,
}

impl FailureKind {
    pub const RETRYABLE: Self = Self::Retryable { throttled: false };
    pub const THROTTLED: Self = Self::Retryable { throttled: true };

    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    pub fn is_throttled(self) -> bool {
        matches!(self, Self::Retryable { throttled: true })
    }
}

/// An error that knows whether retrying it can help.
pub trait Classified {
    fn kind(&self) -> FailureKind;
}

/// One classified failure with a stable code and a one-line message, for errors that have no
/// richer type of their own (AWS calls, transports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// An AWS error code, or `Timeout` / `Connect` / `Dispatch` / ... for transport failures.
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FailureKind::RETRYABLE, code, message)
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(FailureKind::Permanent, code, message)
    }

    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// Whether the call may have taken effect although it failed: it timed out, or its answer
    /// could not be read, after the request may have reached the service. "Unknown" is neither
    /// "done" nor "failed".
    pub fn outcome_unknown(&self) -> bool {
        matches!(self.code.as_str(), "Timeout" | "BadResponse")
    }

    /// The one failure of a runner that gave up before any attempt could fail: no time was
    /// left before the deadline ([`DEADLINE_REACHED`], retryable: a later try with a fresh
    /// deadline may pass).
    pub fn deadline_reached() -> Self {
        Self::retryable(
            DEADLINE_REACHED,
            "no time left before the deadline for an attempt",
        )
    }
}

/// The code of [`Failure::deadline_reached`]: the runner gave up without an attempt's error.
/// Documented (docs/runbook.md: the lifecycle's `reason`) and the same in every caller.
pub const DEADLINE_REACHED: &str = "DeadlineReached";

/// Runs `fut` for at most `limit`, turning expiry into a retryable `Timeout` (an outcome
/// unknown: the request may have reached the service).
pub async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Failure::retryable(
            "Timeout",
            format!("no answer within {} ms", limit.as_millis()),
        )),
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for Failure {}

impl Classified for Failure {
    fn kind(&self) -> FailureKind {
        self.kind
    }
}

/// How the runner ended without success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaveUp<E> {
    /// The last attempt failed permanently, or the attempts ran out.
    Failed { error: E, attempts: usize },
    /// Not enough time was left before the deadline for another attempt (or its back-off).
    /// `last` is the latest failure, if any attempt was made.
    Deadline { last: Option<E>, attempts: usize },
}

impl<E> GaveUp<E> {
    pub fn attempts(&self) -> usize {
        match self {
            Self::Failed { attempts, .. } | Self::Deadline { attempts, .. } => *attempts,
        }
    }

    /// The latest failure, if an attempt was made.
    pub fn last_error(&self) -> Option<&E> {
        match self {
            Self::Failed { error, .. } => Some(error),
            Self::Deadline { last, .. } => last.as_ref(),
        }
    }

    pub fn into_last_error(self) -> Option<E> {
        match self {
            Self::Failed { error, .. } => Some(error),
            Self::Deadline { last, .. } => last,
        }
    }

    /// The one conversion of a give-up: the latest failure, or [`Failure::deadline_reached`]
    /// when no attempt was made, in the caller's error type.
    pub fn into_error(self) -> E
    where
        E: From<Failure>,
    {
        self.into_last_error()
            .unwrap_or_else(|| Failure::deadline_reached().into())
    }

    /// [`GaveUp::into_error`] in the shared vocabulary.
    pub fn into_failure(self) -> Failure
    where
        E: Into<Failure>,
    {
        self.into_last_error()
            .map_or_else(Failure::deadline_reached, Into::into)
    }
}

/// A success and the attempts it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Succeeded<T> {
    pub value: T,
    pub attempts: usize,
}

/// Exponential back-off with full jitter, bounded by attempts and by an optional deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included).
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// An attempt is not started with less time than this before the deadline.
    pub min_attempt_time: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(3),
            min_attempt_time: Duration::from_millis(200),
        }
    }
}

/// One attempt as the runner sees it: its number (from 1) and the time left before the
/// deadline, which the attempt should use as its own timeout bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub number: usize,
    pub time_left: Option<Duration>,
}

impl Attempt {
    /// `timeout`, shortened to what is left before the deadline.
    pub fn bound(&self, timeout: Duration) -> Duration {
        self.time_left.map_or(timeout, |left| timeout.min(left))
    }
}

/// The runner's own stop signal, kept apart from the caller's error type.
enum Stop<E> {
    Error(E),
    Deadline,
}

impl RetryPolicy {
    /// The un-jittered exponential steps between attempts.
    fn schedule(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
    }

    /// The one jitter rule. Full jitter (uniform up to the step) spreads a burst of retries;
    /// a throttled failure waits at least half the step, so slowing down really slows down.
    pub fn jitter(step: Duration, kind: FailureKind) -> Duration {
        let draw = fastrand::f64();
        if kind.is_throttled() {
            step / 2 + (step / 2).mul_f64(draw)
        } else {
            step.mul_f64(draw)
        }
    }

    /// The delays the schedule allows, without jitter (for documentation and tests).
    pub fn steps(&self) -> Vec<Duration> {
        use backon::BackoffBuilder;
        self.schedule().build().collect()
    }

    /// Runs `attempt` until it succeeds, fails permanently, runs out of attempts, or the
    /// `deadline` leaves no room for a back-off plus `min_attempt_time`. Never sleeps past the
    /// deadline. `notify` hears each failure that will be retried, with the delay before the
    /// next attempt.
    pub async fn run<T, E, F, Fut>(
        &self,
        deadline: Option<Instant>,
        mut attempt: F,
        mut notify: impl FnMut(&E, Duration),
    ) -> Result<Succeeded<T>, GaveUp<E>>
    where
        E: Classified,
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempts = AtomicUsize::new(0);
        let out_of_time = AtomicBool::new(false);
        let min_attempt_time = self.min_attempt_time;
        let call = || {
            let time_left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // An attempt needs at least a moment, even when no minimum is configured.
            let starved =
                time_left.is_some_and(|left| left < min_attempt_time.max(Duration::from_millis(1)));
            let fut = (!starved).then(|| {
                let number = attempts.fetch_add(1, Ordering::Relaxed) + 1;
                attempt(Attempt { number, time_left })
            });
            async move {
                match fut {
                    None => Err(Stop::Deadline),
                    // On the heap: an attempt is usually an AWS SDK call, whose future is large;
                    // nested in callers' loops it gave debug builds frames big enough to
                    // overflow a 2 MiB thread stack. One allocation per attempt is nothing
                    // beside a network call.
                    Some(fut) => Box::pin(fut).await.map_err(Stop::Error),
                }
            }
        };
        let result = call
            .retry(self.schedule())
            .when(|stop: &Stop<E>| matches!(stop, Stop::Error(e) if e.kind().is_retryable()))
            .adjust(|stop: &Stop<E>, step: Option<Duration>| {
                let Stop::Error(error) = stop else {
                    return None;
                };
                let delay = Self::jitter(step?, error.kind());
                match deadline {
                    // No sleep that would leave less than an attempt's minimum time.
                    Some(deadline) if Instant::now() + delay + min_attempt_time > deadline => {
                        out_of_time.store(true, Ordering::Relaxed);
                        None
                    }
                    _ => Some(delay),
                }
            })
            .notify(|stop: &Stop<E>, delay: Duration| {
                if let Stop::Error(error) = stop {
                    notify(error, delay);
                }
            })
            .await;
        let attempts = attempts.into_inner();
        match result {
            Ok(value) => Ok(Succeeded { value, attempts }),
            Err(Stop::Deadline) => Err(GaveUp::Deadline {
                last: None,
                attempts,
            }),
            Err(Stop::Error(error)) if out_of_time.into_inner() => Err(GaveUp::Deadline {
                last: Some(error),
                attempts,
            }),
            Err(Stop::Error(error)) => Err(GaveUp::Failed { error, attempts }),
        }
    }
}

/// A wall-clock deadline (Lambda's `Context::deadline()`) as a monotonic instant, `margin`
/// before it: the time kept to answer the invocation.
pub fn deadline_before(deadline: std::time::SystemTime, margin: Duration) -> Instant {
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Instant::now() + left.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            min_attempt_time: Duration::from_millis(50),
        }
    }

    /// Answers each attempt with the next scripted result (Ok once the script is empty).
    fn scripted(
        answers: Vec<Failure>,
    ) -> impl FnMut(Attempt) -> std::future::Ready<Result<usize, Failure>> {
        let answers = Mutex::new(answers);
        move |attempt| {
            let mut answers = answers.lock().unwrap();
            std::future::ready(if answers.is_empty() {
                Ok(attempt.number)
            } else {
                Err(answers.remove(0))
            })
        }
    }

    #[test]
    fn schedule_is_bounded_by_attempts_and_max_delay() {
        let millis: Vec<u128> = policy().steps().iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [100, 200, 300]);
    }

    #[test]
    fn jitter_stays_under_the_step_and_throttling_waits_at_least_half() {
        let step = Duration::from_millis(400);
        for _ in 0..200 {
            assert!(RetryPolicy::jitter(step, FailureKind::RETRYABLE) <= step);
            let throttled = RetryPolicy::jitter(step, FailureKind::THROTTLED);
            assert!(throttled >= step / 2 && throttled <= step);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_failures_until_success() {
        let answers = vec![
            Failure::retryable("Throttling", ""),
            Failure::retryable("InternalFailure", ""),
        ];
        let mut heard = Vec::new();
        let done = policy()
            .run(None, scripted(answers), |e: &Failure, _| {
                heard.push(e.code.clone())
            })
            .await
            .unwrap();
        assert_eq!(
            done,
            Succeeded {
                value: 3,
                attempts: 3
            }
        );
        assert_eq!(heard, ["Throttling", "InternalFailure"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_stops_at_once() {
        let answers = vec![Failure::permanent("AccessDenied", "no")];
        let gave_up = policy()
            .run(None, scripted(answers), |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(
            gave_up,
            GaveUp::Failed {
                error: Failure::permanent("AccessDenied", "no"),
                attempts: 1
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_run_out() {
        let answers = vec![Failure::retryable("X", ""); 10];
        let gave_up = policy()
            .run(None, scripted(answers), |_, _| {})
            .await
            .unwrap_err();
        assert!(
            matches!(gave_up, GaveUp::Failed { attempts: 4, .. }),
            "{gave_up:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_sleeps_past_the_deadline_nor_starts_a_starved_attempt() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(120);
        // Each attempt bounds its own call by the time it is told is left, as callers do
        // (`Attempt::bound` on their request timeout); the runner bounds the sleeps between.
        let slow = |attempt: Attempt| async move {
            tokio::time::sleep(attempt.bound(Duration::from_millis(60))).await;
            Err::<(), _>(Failure::retryable("Timeout", ""))
        };
        let gave_up = policy()
            .run(Some(deadline), slow, |_, _| {})
            .await
            .unwrap_err();
        assert!(
            Instant::now() <= deadline,
            "overran by {:?}",
            Instant::now() - deadline
        );
        assert!(
            matches!(gave_up, GaveUp::Deadline { last: Some(_), .. }),
            "{gave_up:?}"
        );

        let past = Instant::now();
        let gave_up = policy()
            .run(Some(past), scripted(vec![]), |_, _| {})
            .await
            .unwrap_err();
        assert_eq!(
            gave_up,
            GaveUp::Deadline {
                last: None,
                attempts: 0
            }
        );
        assert_eq!(gave_up.into_failure().code, DEADLINE_REACHED);
    }

    #[test]
    fn a_give_up_converts_to_its_last_error_or_the_one_deadline_code() {
        let failed = GaveUp::Failed {
            error: Failure::permanent("AccessDenied", ""),
            attempts: 1,
        };
        assert_eq!(failed.into_failure().code, "AccessDenied");
        let starved: GaveUp<Failure> = GaveUp::Deadline {
            last: None,
            attempts: 0,
        };
        let failure = starved.into_error();
        assert_eq!(failure.code, DEADLINE_REACHED);
        assert!(failure.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_turns_expiry_into_an_unknown_timeout() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, Failure>(())
        };
        let failure = bounded(Duration::from_millis(300), slow).await.unwrap_err();
        assert_eq!(failure.code, "Timeout");
        assert_eq!(failure.message, "no answer within 300 ms");
        assert!(failure.outcome_unknown() && failure.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_learns_the_time_left() {
        let deadline = Instant::now() + Duration::from_secs(2);
        let seen = Mutex::new(Vec::new());
        let record = |attempt: Attempt| {
            seen.lock()
                .unwrap()
                .push(attempt.bound(Duration::from_secs(5)));
            std::future::ready(Ok::<_, Failure>(()))
        };
        policy()
            .run(Some(deadline), record, |_, _| {})
            .await
            .unwrap();
        assert_eq!(seen.into_inner().unwrap(), [Duration::from_secs(2)]);
    }
}
