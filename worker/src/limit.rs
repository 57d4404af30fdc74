//! Adaptive concurrency for calls to the profile store (AppSync or DynamoDB): additive
//! increase, multiplicative decrease. When the store throttles, the worker halves its in-flight
//! calls and recovers gradually, rather than hammering a service that is already over its rate.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    last_decrease: Option<Instant>,
}

/// A concurrency limit that moves between 1 and `max` with the throttling it sees.
#[derive(Debug)]
pub struct AdaptiveLimit {
    max: usize,
    state: Mutex<State>,
    released: Notify,
}

/// Throttles seen within this window after a decrease count as the same congestion event.
const DECREASE_COOLDOWN: Duration = Duration::from_millis(250);

impl AdaptiveLimit {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            state: Mutex::new(State {
                limit: max as f64,
                in_flight: 0,
                last_decrease: None,
            }),
            released: Notify::new(),
        }
    }

    /// The current limit (whole calls).
    pub fn current(&self) -> usize {
        (self.state.lock().unwrap().limit.floor() as usize).max(1)
    }

    /// Waits for a slot under the current limit.
    pub async fn acquire(&self) -> Slot<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut state = self.state.lock().unwrap();
                if state.in_flight < (state.limit.floor() as usize).max(1) {
                    state.in_flight += 1;
                    return Slot { limit: self };
                }
            }
            released.await;
        }
    }

    /// AppSync throttled us: halve the limit (at most once per cool-down).
    pub fn on_throttled(&self) {
        let mut state = self.state.lock().unwrap();
        let now = Instant::now();
        if state
            .last_decrease
            .is_some_and(|t| now.duration_since(t) < DECREASE_COOLDOWN)
        {
            return;
        }
        state.limit = (state.limit / 2.0).max(1.0);
        state.last_decrease = Some(now);
    }

    /// A call went through: grow by about one slot per limit's worth of successes.
    pub fn on_success(&self) {
        let mut state = self.state.lock().unwrap();
        state.limit = (state.limit + 1.0 / state.limit).min(self.max as f64);
    }
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot<'a> {
    limit: &'a AdaptiveLimit,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.limit.state.lock().unwrap().in_flight -= 1;
        self.limit.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn throttling_halves_and_success_recovers() {
        let limit = AdaptiveLimit::new(32);
        assert_eq!(limit.current(), 32);
        limit.on_throttled();
        assert_eq!(limit.current(), 16);
        limit.on_throttled(); // within the cool-down: the same congestion event
        assert_eq!(limit.current(), 16);
        for _ in 0..20 {
            limit.on_success();
        }
        assert_eq!(
            limit.current(),
            17,
            "about one slot per limit's worth of successes"
        );
        for _ in 0..10_000 {
            limit.on_success();
        }
        assert_eq!(limit.current(), 32);
    }

    #[test]
    fn never_below_one() {
        let limit = AdaptiveLimit::new(1);
        limit.on_throttled();
        assert_eq!(limit.current(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_flight_never_exceeds_the_limit() {
        let limit = Arc::new(AdaptiveLimit::new(4));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (limit, in_flight, peak) = (limit.clone(), in_flight.clone(), peak.clone());
                tokio::spawn(async move {
                    let _slot = limit.acquire().await;
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 4);
        assert!(
            peak.load(Ordering::SeqCst) >= 2,
            "the slots were used concurrently"
        );
    }
}
