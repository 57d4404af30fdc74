//! The worker's one retry policy: exponential back-off with full jitter, bounded by attempts
//! and by a deadline (the Lambda's, or the message's visibility), after which SQS takes over.

use std::time::Duration;

use backon::ExponentialBuilder;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// The exponential schedule; [`RetryPolicy::jittered`] applies full jitter to each step.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
    }

    /// Full jitter (a uniform draw up to the exponential step), and no sleep that would end
    /// after `deadline`: then the retries stop and the message goes back to SQS.
    pub fn jittered(delay: Option<Duration>, deadline: Option<Instant>) -> Option<Duration> {
        let delay = delay?.mul_f64(fastrand::f64());
        match deadline {
            Some(deadline) if Instant::now() + delay >= deadline => None,
            _ => Some(delay),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn schedule_is_bounded_by_attempts_and_max_delay() {
        let policy = RetryPolicy {
            max_attempts: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let delays: Vec<u128> = policy.backoff().build().map(|d| d.as_millis()).collect();
        assert_eq!(delays, [100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_under_the_step_and_respects_the_deadline() {
        for _ in 0..100 {
            let d = RetryPolicy::jittered(Some(Duration::from_millis(400)), None).unwrap();
            assert!(d <= Duration::from_millis(400));
        }
        assert_eq!(RetryPolicy::jittered(None, None), None);
        let past = Instant::now();
        assert_eq!(
            RetryPolicy::jittered(Some(Duration::from_millis(400)), Some(past)),
            None
        );
    }
}

/// How long a message that failed retryably stays invisible before SQS redelivers it:
/// `base × 2^(receive_count − 1)`, capped at `max`, with equal jitter (half fixed, half random)
/// so redeliveries of a burst spread out.
pub fn visibility_backoff(receive_count: u32, base: Duration, max: Duration) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(20);
    let step = base.saturating_mul(1u32 << exponent).min(max);
    step / 2 + (step / 2).mul_f64(fastrand::f64())
}

#[cfg(test)]
mod visibility_tests {
    use super::*;

    #[test]
    fn visibility_backoff_grows_with_receive_count_and_is_capped() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(900);
        for (count, step) in [(1, 10), (2, 20), (3, 40), (7, 640), (8, 900), (100, 900)] {
            let d = visibility_backoff(count, base, max);
            let step = Duration::from_secs(step);
            assert!(d >= step / 2 && d <= step, "receive {count}: {d:?}");
        }
        assert_eq!(visibility_backoff(0, Duration::ZERO, max), Duration::ZERO);
    }
}
