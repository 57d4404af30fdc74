//! Percentiles of one run, and the spread of a statistic across repeated runs.

use serde::Serialize;

/// One run's latency samples, summarised (milliseconds).
#[derive(Debug, Clone, Serialize)]
pub struct RunStats {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    /// Invocations that failed (an error answer, or no answer).
    pub errors: usize,
    /// Every sample, in the order taken (ms, rounded to µs).
    pub samples: Vec<f64>,
}

impl RunStats {
    pub fn new(samples: Vec<f64>, errors: usize) -> Self {
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        };
        Self {
            n: sorted.len(),
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0.0),
            mean: round(mean),
            errors,
            samples: samples.into_iter().map(round).collect(),
        }
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    round(sorted[rank.min(sorted.len()) - 1])
}

/// Milliseconds to the microsecond.
pub fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// A statistic over repeated runs: the median is the headline, min/max are the noise.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Self {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Self {
            median: round(median),
            min: round(v[0]),
            max: round(v[v.len() - 1]),
        }
    }
}

/// The spread of p50, p99 and max across runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub samples: usize,
    pub errors: usize,
    pub p50: Spread,
    pub p99: Spread,
    pub max: Spread,
    pub mean: Spread,
}

impl Summary {
    pub fn of(runs: &[RunStats]) -> Self {
        Self {
            runs: runs.len(),
            samples: runs.iter().map(|r| r.n).sum(),
            errors: runs.iter().map(|r| r.errors).sum(),
            p50: Spread::of(runs.iter().map(|r| r.p50)),
            p99: Spread::of(runs.iter().map(|r| r.p99)),
            max: Spread::of(runs.iter().map(|r| r.max)),
            mean: Spread::of(runs.iter().map(|r| r.mean)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn spread_median() {
        let s = Spread::of([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([1.0, 2.0]).median, 1.5);
    }
}
