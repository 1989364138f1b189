//! Percentiles and medians: the only statistics the report uses.

/// Latency percentiles of one run, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Nearest-rank percentiles of `samples` (sorted here); `None` when empty.
pub fn percentiles(samples: &mut [u32]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some(Percentiles {
        p50_us: rank(samples, 0.50),
        p99_us: rank(samples, 0.99),
        max_us: u64::from(samples[samples.len() - 1]),
    })
}

/// The nearest-rank `q` quantile of sorted `samples`: the smallest sample that
/// at least `q` of all samples are less than or equal to.
fn rank(sorted: &[u32], q: f64) -> u64 {
    let n = sorted.len();
    let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    u64::from(sorted[index])
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
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<u32> = (1..=100).rev().collect();
        let p = percentiles(&mut samples).unwrap();
        assert_eq!((p.p50_us, p.p99_us, p.max_us), (50, 99, 100));
        assert_eq!(percentiles(&mut [7]).unwrap().p99_us, 7);
        assert!(percentiles(&mut []).is_none());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([]), None);
        assert_eq!(median_u64([10, 30, 20]), Some(20));
    }
}
