//! The statistics and number formats every benchmark (and `soak`) reports
//! with: nearest-rank percentiles, medians, milliseconds, megabytes.

use std::time::Duration;

/// The nearest-rank `percent`th percentile of sorted values; the default
/// (zero) for none.
pub(crate) fn nearest_rank<T: Copy + Default>(sorted: &[T], percent: usize) -> T {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// The nearest-rank `percent`th percentile of unsorted values; the default
/// (zero) for none.
pub(crate) fn percentile<T: Ord + Copy + Default>(mut values: Vec<T>, percent: usize) -> T {
    values.sort_unstable();
    nearest_rank(&values, percent)
}

/// Median of sorted `samples` (mean of the middle two when even); zero for
/// none.
pub(crate) fn median(samples: &[Duration]) -> Duration {
    let mid = samples.len() / 2;
    match (samples.len() % 2, samples.get(mid)) {
        (_, None) => Duration::ZERO,
        (1, Some(&m)) => m,
        (_, Some(&m)) => (samples[mid - 1] + m) / 2,
    }
}

/// Median of unsorted `values` (mean of the middle two when even); zero for
/// none.
pub(crate) fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match (values.len() % 2, values.get(mid)) {
        (_, None) => 0.0,
        (1, Some(&m)) => m,
        (_, Some(&m)) => (values[mid - 1] + m) / 2.0,
    }
}

/// A duration in milliseconds.
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A duration as `12.34 ms`.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", millis(d))
}

/// A size as `1.23 MB` (10^6 bytes).
pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// KiB as MiB with one decimal, without the unit.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        let d = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        assert_eq!(median(&d(&[1, 2, 3])), Duration::from_millis(2));
        assert_eq!(median(&d(&[1, 2, 3, 5])), Duration::from_micros(2500));
        assert_eq!(median(&[]), Duration::ZERO);
        let twenty = d(&(1..=20).collect::<Vec<_>>());
        assert_eq!(nearest_rank(&twenty, 90), Duration::from_millis(18));
        assert_eq!(nearest_rank(&d(&[4]), 90), Duration::from_millis(4));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(v.clone(), 50), Duration::from_millis(100));
        assert_eq!(percentile(v.clone(), 99), Duration::from_millis(198));
        assert_eq!(percentile(v, 100), Duration::from_millis(200));
        assert_eq!(percentile(Vec::<Duration>::new(), 99), Duration::ZERO);
    }

    #[test]
    fn p99_and_median() {
        assert_eq!(percentile((1..=100).collect::<Vec<u64>>(), 99), 99);
        assert_eq!(percentile(vec![7u64], 99), 7);
        assert_eq!(percentile(Vec::<u64>::new(), 99), 0);
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f64(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median_f64(vec![]), 0.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50), 50.0);
        assert_eq!(nearest_rank(&v, 99), 99.0);
        assert_eq!(nearest_rank(&[7.0], 99), 7.0);
        assert_eq!(nearest_rank::<f64>(&[], 50), 0.0);
    }

    #[test]
    fn formats() {
        assert_eq!(ms(Duration::from_micros(12_345)), "12.35 ms");
        assert_eq!(millis(Duration::from_millis(3)), 3.0);
        assert_eq!(mb(5_432_100), "5.43 MB");
        assert_eq!(mib(1536), "1.5");
    }
}
