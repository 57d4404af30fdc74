//! The one pacer: at most `rate` units per second as a ceiling over every window, shared by
//! `&self` across a process's tasks (the worker's Cognito look-ups) or held by one loop (the
//! operations tools' paging, publishing, replay). A batch of n holds the next one back
//! n ÷ rate; time lost to a stall is not made up with a burst.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The longest one unit may be held back, whatever the rate.
const MAX_PER_UNIT: Duration = Duration::from_secs(3600);

/// The longest one booking may hold the next one back.
const MAX_HOLD: Duration = Duration::from_secs(86_400);

#[derive(Debug)]
pub struct Pacer {
    per_unit: Duration,
    /// When the next unit may go (`None`: nothing booked yet).
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `rate` units per second; `None` for a rate that is not positive and finite
    /// (no limit).
    pub fn new(rate: f64) -> Option<Self> {
        (rate.is_finite() && rate > 0.0).then(|| {
            Self::every(
                Duration::try_from_secs_f64(1.0 / rate)
                    .unwrap_or(MAX_PER_UNIT)
                    .min(MAX_PER_UNIT),
            )
        })
    }

    /// At most `per_second` units per second (at least one).
    pub fn per_second(per_second: u32) -> Self {
        Self::every(Duration::from_secs(1) / per_second.max(1))
    }

    fn every(per_unit: Duration) -> Self {
        Self {
            per_unit,
            next: Mutex::new(None),
        }
    }

    /// The time between two units.
    pub fn per_unit(&self) -> Duration {
        self.per_unit
    }

    /// Books `units` and says when they may go (now, or later if earlier ones were booked).
    pub fn reserve(&self, units: usize) -> Instant {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let at = next.map_or(now, |next| next.max(now));
        let hold = self
            .per_unit
            .saturating_mul(u32::try_from(units).unwrap_or(u32::MAX))
            .min(MAX_HOLD);
        *next = Some(at + hold);
        at
    }

    /// Waits until `units` may go.
    pub async fn admit(&self, units: usize) {
        tokio::time::sleep_until(self.reserve(units)).await;
    }

    /// Waits for one unit's turn.
    pub async fn wait(&self) {
        self.admit(1).await;
    }
}

/// Waits for `pacer` if there is one.
pub async fn admit(pacer: &Option<Pacer>, units: usize) {
    if let Some(pacer) = pacer {
        pacer.admit(units).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Batches of 10 at 50/s go 200 ms apart, the first at once; after a stall the next batch
    /// goes at once but the one after waits its full 200 ms again (no catch-up burst).
    #[tokio::test(start_paused = true)]
    async fn the_pacer_is_a_ceiling_without_catch_up() {
        let pacer = Pacer::new(50.0).unwrap();
        let start = Instant::now();
        let mut released = Vec::new();
        for _ in 0..3 {
            pacer.admit(10).await;
            released.push(start.elapsed().as_millis());
        }
        assert_eq!(released, [0, 200, 400]);
        tokio::time::sleep(Duration::from_secs(5)).await; // a stall: a slow page, retries
        let stalled = Instant::now();
        let mut after = Vec::new();
        for batch in [10, 10, 3, 1] {
            pacer.admit(batch).await;
            after.push(stalled.elapsed().as_millis());
        }
        // A batch of n holds the next one back n × 20 ms.
        assert_eq!(after, [0, 200, 400, 460]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_calls() {
        let pacer = Pacer::per_second(10);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }

    /// Tasks sharing one pacer get one slot each, `per_unit` apart, whoever asks first.
    #[tokio::test(start_paused = true)]
    async fn tasks_sharing_a_pacer_share_its_pace() {
        let pacer = Arc::new(Pacer::per_second(20));
        let start = Instant::now();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let pacer = Arc::clone(&pacer);
                tokio::spawn(async move {
                    pacer.wait().await;
                    start.elapsed().as_millis()
                })
            })
            .collect();
        let mut released = Vec::new();
        for task in tasks {
            released.push(task.await.unwrap());
        }
        released.sort_unstable();
        assert_eq!(released, [0, 50, 100, 150, 200, 250]);
    }

    #[test]
    fn only_a_positive_finite_rate_paces_and_an_absurd_one_does_not_overflow() {
        for no_limit in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            assert!(Pacer::new(no_limit).is_none(), "{no_limit}");
        }
        assert_eq!(
            Pacer::new(50.0).unwrap().per_unit(),
            Duration::from_millis(20)
        );
        assert_eq!(Pacer::new(1e-300).unwrap().per_unit(), MAX_PER_UNIT);
        assert_eq!(Pacer::new(1e-9).unwrap().per_unit(), MAX_PER_UNIT);
        assert_eq!(Pacer::per_second(0).per_unit(), Duration::from_secs(1));
        assert_eq!(Pacer::per_second(4).per_unit(), Duration::from_millis(250));
    }
}
