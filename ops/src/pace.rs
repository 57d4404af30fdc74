//! The one pace of the operations tools (back-fill, reconciliation, `ListUsers` paging, DLQ
//! replay and redrive): at most `rate` units per second as a ceiling over every window. A batch
//! of n holds the next one back n ÷ rate; time lost to a stall is not made up with a burst.

use std::time::Duration;

use tokio::time::Instant;

/// The longest one unit may be held back, whatever the rate.
const MAX_PER_UNIT: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct Pacer {
    per_unit: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// `None` for a rate that is not positive and finite (no limit).
    pub fn new(rate: f64) -> Option<Self> {
        (rate.is_finite() && rate > 0.0).then(|| Self {
            per_unit: Duration::try_from_secs_f64(1.0 / rate)
                .unwrap_or(MAX_PER_UNIT)
                .min(MAX_PER_UNIT),
            next: None,
        })
    }

    /// The time between two units.
    pub fn per_unit(&self) -> Duration {
        self.per_unit
    }

    /// Books `units` and says when they may go (now, or later if earlier ones were booked).
    pub fn reserve(&mut self, units: usize) -> Instant {
        let now = Instant::now();
        let at = self.next.map_or(now, |next| next.max(now));
        let hold = self
            .per_unit
            .saturating_mul(u32::try_from(units).unwrap_or(u32::MAX))
            .min(Duration::from_secs(86_400));
        self.next = Some(at + hold);
        at
    }

    /// Waits until `units` may go.
    pub async fn admit(&mut self, units: usize) {
        tokio::time::sleep_until(self.reserve(units)).await;
    }
}

/// Waits for `pacer` if there is one.
pub async fn admit(pacer: &mut Option<Pacer>, units: usize) {
    if let Some(pacer) = pacer.as_mut() {
        pacer.admit(units).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of 10 at 50/s go 200 ms apart, the first at once; after a stall the next batch
    /// goes at once but the one after waits its full 200 ms again (no catch-up burst).
    #[tokio::test(start_paused = true)]
    async fn the_pacer_is_a_ceiling_without_catch_up() {
        let mut pacer = Pacer::new(50.0).unwrap();
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
    }
}
