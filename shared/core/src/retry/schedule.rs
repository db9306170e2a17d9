//! When the next attempt is due: the longest a round of attempts can last,
//! jitter, the test time scale, and the SQS visibility timeout that keeps a
//! delivery's message away until then.

use super::policy::{MAX_DELAY, MAX_SCHEDULE_DELAYS};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest one round of attempts can last: [`MAX_SCHEDULE_DELAYS`]
/// delays of at most [`MAX_DELAY`], each lengthened by up to 20 % of jitter
/// (58.8 days).
pub const LONGEST_ROUND: Duration = Duration::from_secs(MAX_SCHEDULE_DELAYS as u64 * MAX_DELAY.as_secs() * 6 / 5);

/// The longest SQS lets a message stay invisible: 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(MAX_VISIBILITY_SECS as u64);
/// [`MAX_VISIBILITY`] in seconds.
pub const MAX_VISIBILITY_SECS: u32 = 12 * 60 * 60;

/// The environment variable the functions and tests read a [`TimeScale`]
/// from.
pub const TIME_SCALE_ENV: &str = "RETRY_TIME_SCALE";

/// `delay` moved by up to ±20 %: `unit_random` in [0, 1) maps linearly onto
/// a factor in [0.8, 1.2), so 0.5 leaves the delay as it is. A
/// `unit_random` outside [0, 1] is clamped into it, and NaN counts as 0.5.
/// Saturates at `Duration::MAX`; never negative.
pub fn jittered(delay: Duration, unit_random: f64) -> Duration {
    let unit = if unit_random.is_nan() {
        0.5
    } else {
        unit_random.clamp(0.0, 1.0)
    };
    let factor = 0.8 + 0.4 * unit;
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// A uniformly distributed number in [0, 1), from the operating system's
/// random source (53 random bits).
pub fn random_unit() -> f64 {
    let mut buf = [0u8; 8];
    crate::ids::random_bytes(&mut buf);
    (u64::from_le_bytes(buf) >> 11) as f64 / (1u64 << 53) as f64
}

/// A factor applied to every retry delay so integration tests can run a
/// whole schedule in seconds: 1.0 (the default) is real time, 0.001 turns
/// 5 min into 300 ms. Always finite, above 0 and at most 1. Read from
/// [`TIME_SCALE_ENV`] by the functions.
///
/// Note that SQS visibility timeouts are whole seconds ([`visibility_for`]
/// rounds up), so a scaled delay waits at least 1 s on a real queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(f64);

/// Why a time scale was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a retry time scale must be a number above 0 and at most 1 (1 is real time), not `{0}`")]
pub struct TimeScaleError(String);

impl TimeScale {
    /// Real time.
    pub const REAL: TimeScale = TimeScale(1.0);

    /// Parses a factor: a finite number above 0 and at most 1 (`"0.001"`,
    /// `"1e-3"`, `"1"`). Surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Self, TimeScaleError> {
        match s.trim().parse::<f64>() {
            Ok(f) if f > 0.0 && f <= 1.0 => Ok(Self(f)),
            _ => Err(TimeScaleError(s.to_owned())),
        }
    }

    /// The factor.
    pub fn factor(&self) -> f64 {
        self.0
    }

    /// `d` scaled, to the nanosecond; at real time `d` itself.
    pub fn apply(&self, d: Duration) -> Duration {
        if self.0 >= 1.0 {
            return d;
        }
        // `as u128` saturates; the result is never above `d`.
        let nanos = (d.as_nanos() as f64 * self.0).round() as u128;
        let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
        Duration::new(secs, (nanos % 1_000_000_000) as u32).min(d)
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        Self::REAL
    }
}

impl FromStr for TimeScale {
    type Err = TimeScaleError;

    fn from_str(s: &str) -> Result<Self, TimeScaleError> {
        Self::parse(s)
    }
}

impl fmt::Display for TimeScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The SQS visibility timeout, in whole seconds rounded up, that keeps a
/// message away for `delay`: 0 for no delay, at most 43 200 (12 h,
/// [`MAX_VISIBILITY`]). A longer delay cannot be expressed in one step: the
/// message comes back early, and the caller, seeing that the next attempt is
/// not due yet, makes it invisible again for the rest.
pub fn visibility_for(delay: Duration) -> u32 {
    let secs = delay.as_secs().saturating_add(u64::from(delay.subsec_nanos() > 0));
    secs.min(u64::from(MAX_VISIBILITY_SECS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryPolicy;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let d = secs(100);
        assert_eq!(jittered(d, 0.0), secs(80));
        assert_eq!(jittered(d, 0.5), d);
        let top = jittered(d, 0.999_999);
        assert!(top < secs(120) && top > Duration::from_millis(119_999), "{top:?}");
        assert_eq!(jittered(secs(5), 0.0), secs(4));
        assert!((jittered(secs(5), 0.999_999).as_secs_f64() - 6.0).abs() < 1e-5);
        for i in 0..1000 {
            let j = jittered(d, f64::from(i) / 1000.0);
            assert!(j >= secs(80) && j < secs(120), "{i}: {j:?}");
        }
    }

    #[test]
    fn jitter_clamps_odd_input_and_never_panics() {
        assert_eq!(jittered(secs(100), -1.0), secs(80));
        assert_eq!(jittered(secs(100), 7.0), secs(120));
        assert_eq!(jittered(secs(100), f64::NAN), secs(100));
        assert_eq!(jittered(secs(100), f64::INFINITY), secs(120));
        assert_eq!(jittered(secs(100), f64::NEG_INFINITY), secs(80));
        assert_eq!(jittered(Duration::ZERO, 0.3), Duration::ZERO);
        assert_eq!(jittered(Duration::MAX, 0.999), Duration::MAX);
        assert!(jittered(Duration::MAX, 0.0) < Duration::MAX);
    }

    #[test]
    fn random_units_are_in_the_unit_interval_and_vary() {
        let values: Vec<f64> = (0..10_000).map(|_| random_unit()).collect();
        assert!(values.iter().all(|&u| (0.0..1.0).contains(&u)));
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(min < 0.01 && max > 0.99, "{min} {max}");
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
    // --- time scale -------------------------------------------------------

    #[test]
    fn time_scales_parse_positive_factors_up_to_one() {
        assert_eq!(TimeScale::default(), TimeScale::REAL);
        assert_eq!(TimeScale::default().factor(), 1.0);
        assert_eq!(TimeScale::parse("1").unwrap().factor(), 1.0);
        assert_eq!(TimeScale::parse("1.0").unwrap().factor(), 1.0);
        assert_eq!(TimeScale::parse("0.001").unwrap().factor(), 0.001);
        assert_eq!(TimeScale::parse(" 1e-3 ").unwrap().factor(), 0.001);
        assert_eq!("0.5".parse::<TimeScale>().unwrap().factor(), 0.5);
        assert_eq!(TimeScale::parse("0.25").unwrap().to_string(), "0.25");
        for bad in [
            "", "0", "-0", "0.0", "-0.5", "1.0001", "2", "NaN", "inf", "-inf", "fast", "1/1000",
        ] {
            assert!(TimeScale::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            TimeScale::parse("2").unwrap_err().to_string(),
            "a retry time scale must be a number above 0 and at most 1 (1 is real time), not `2`"
        );
    }

    #[test]
    fn time_scales_shrink_delays() {
        let fast = TimeScale::parse("0.001").unwrap();
        assert_eq!(fast.apply(secs(300)), Duration::from_millis(300));
        assert_eq!(fast.apply(secs(5)), Duration::from_millis(5));
        assert_eq!(fast.apply(secs(86_400)), Duration::from_millis(86_400));
        assert_eq!(fast.apply(Duration::ZERO), Duration::ZERO);
        assert_eq!(fast.apply(Duration::from_nanos(1)), Duration::ZERO);
        let total: Duration = RetryPolicy::default().delays().map(|d| fast.apply(d)).sum();
        assert_eq!(total, Duration::from_millis(272_105));

        let half = TimeScale::parse("0.5").unwrap();
        assert_eq!(half.apply(Duration::from_millis(1500)), Duration::from_millis(750));
        assert!(half.apply(Duration::MAX) <= Duration::MAX);
        assert!(half.apply(Duration::MAX) > Duration::from_secs(u64::MAX / 3));

        assert_eq!(TimeScale::REAL.apply(secs(300)), secs(300));
        assert_eq!(TimeScale::REAL.apply(Duration::MAX), Duration::MAX);
        let nearly = TimeScale::parse("0.9999999999999999").unwrap();
        assert!(nearly.apply(Duration::MAX) <= Duration::MAX);
        assert!(TimeScale::parse("1e-300").unwrap().apply(Duration::MAX) < secs(1));
    }

    // --- SQS visibility ---------------------------------------------------

    #[test]
    fn visibility_rounds_up_to_whole_seconds_and_caps_at_twelve_hours() {
        assert_eq!(MAX_VISIBILITY, secs(43_200));
        assert_eq!(visibility_for(Duration::ZERO), 0);
        assert_eq!(visibility_for(Duration::from_nanos(1)), 1);
        assert_eq!(visibility_for(Duration::from_millis(5)), 1);
        assert_eq!(visibility_for(Duration::from_millis(999)), 1);
        assert_eq!(visibility_for(secs(1)), 1);
        assert_eq!(visibility_for(Duration::from_millis(1001)), 2);
        assert_eq!(visibility_for(Duration::from_millis(4_000)), 4);
        assert_eq!(visibility_for(Duration::from_secs_f64(299.5)), 300);
        assert_eq!(visibility_for(secs(43_199)), 43_199);
        assert_eq!(visibility_for(Duration::from_millis(43_199_500)), 43_200);
        assert_eq!(visibility_for(secs(43_200)), 43_200);
        assert_eq!(visibility_for(Duration::from_millis(43_200_001)), 43_200);
        assert_eq!(visibility_for(secs(86_400)), 43_200);
        assert_eq!(visibility_for(MAX_DELAY), 43_200);
        assert_eq!(visibility_for(Duration::MAX), 43_200);
        assert_eq!(visibility_for(Duration::new(u64::MAX, 1)), 43_200);
    }
}
