//! Percentiles and medians: the only statistics the report uses.

use std::time::Duration;

/// Latency percentiles of one run, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Latencies of one run, in microseconds, kept in an HDR histogram: its
/// memory does not grow with the number of samples (a C10K room records
/// millions), and its quantiles are within 0.1% of the exact ones.
pub struct Latencies {
    histogram: hdrhistogram::Histogram<u64>,
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            // Three significant digits, from 1 µs up to any value.
            histogram: hdrhistogram::Histogram::new(3).expect("3 significant digits are allowed"),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        self.histogram.saturating_record(micros.max(1));
    }

    /// Adds all of `other`'s samples.
    pub fn merge(&mut self, other: &Latencies) {
        // Both auto-resize, so adding cannot fail for a value out of range.
        let _ = self.histogram.add(&other.histogram);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// p50, p99 and the maximum; `None` when nothing was recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.histogram.is_empty() {
            return None;
        }
        Some(Percentiles {
            p50_us: self.histogram.value_at_quantile(0.50),
            p99_us: self.histogram.value_at_quantile(0.99),
            max_us: self.histogram.max(),
        })
    }
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::new()
    }
}

/// The median of some numbers (the mean of the middle two for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The median of some whole numbers, rounded.
pub fn median_u64(values: impl IntoIterator<Item = u64>) -> Option<u64> {
    median(values.into_iter().map(|v| v as f64)).map(|m| m.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_recorded_latencies() {
        let mut latencies = Latencies::new();
        assert!(latencies.percentiles().is_none());
        for us in (1..=100).rev() {
            latencies.record(Duration::from_micros(us));
        }
        let mut more = Latencies::new();
        more.record(Duration::from_micros(7));
        latencies.merge(&more);
        let p = latencies.percentiles().unwrap();
        assert_eq!(latencies.count(), 101);
        assert_eq!((p.p50_us, p.p99_us, p.max_us), (50, 99, 100));
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([]), None);
        assert_eq!(median_u64([10, 30, 20]), Some(20));
    }
}
