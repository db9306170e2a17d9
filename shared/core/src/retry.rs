//! When to try a webhook again: per-endpoint retry policies, jitter,
//! `Retry-After`, the judgement of a receiver's status code, the test time
//! scale, and SQS visibility timeouts. Pure: no I/O, no clock (the caller
//! passes `now`), no randomness except [`random_unit`].
//!
//! After attempt `n` fails, the delivery handler computes the next delay as
//!
//! 1. [`judge`] the status (transport errors — timeouts, refused or reset
//!    connections — are not judged here; the caller retries them per policy,
//!    as [`Verdict::Retry`] `{ retry_after_allowed: false }`);
//! 2. [`RetryPolicy::delay_after`]`(n)`; `None` means the policy is
//!    exhausted and the delivery fails;
//! 3. [`jittered`] by ±20 % with [`random_unit`];
//! 4. [`honour_retry_after`] if the verdict allows it, with the header parsed
//!    by [`parse_retry_after`] and bounded by [`MAX_RETRY_AFTER`];
//! 5. [`TimeScale::apply`] (1.0 outside tests);
//! 6. [`visibility_for`] to make the SQS message invisible for (at most
//!    [`MAX_VISIBILITY`]; a longer delay is waited out in steps by the caller).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The longest single delay a policy may express: 24 h.
pub const MAX_DELAY: Duration = Duration::from_secs(MAX_DELAY_SECS);
const MAX_DELAY_SECS: u64 = 24 * 60 * 60;

/// The longest one round of attempts can last: [`MAX_SCHEDULE_DELAYS`]
/// delays of at most [`MAX_DELAY`], each lengthened by up to 20 % of jitter
/// (58.8 days).
pub const LONGEST_ROUND: Duration = Duration::from_secs(MAX_SCHEDULE_DELAYS as u64 * MAX_DELAY_SECS * 6 / 5);

/// The most attempts (the first included) a fixed, linear or exponential
/// policy may allow.
pub const MAX_ATTEMPTS: u32 = 50;

/// The most delays a schedule may list. A schedule of N delays allows N + 1
/// attempts, so no policy allows more than `MAX_SCHEDULE_DELAYS + 1` (50)
/// attempts in all.
pub const MAX_SCHEDULE_DELAYS: usize = 49;

/// The smallest and largest growth factor of an exponential policy.
pub const MIN_FACTOR: f64 = 1.1;
/// See [`MIN_FACTOR`].
pub const MAX_FACTOR: f64 = 10.0;

/// The default schedule, in seconds: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 14 h, 20 h, 24 h. Ten attempts over about three days (272 105 s).
pub const DEFAULT_SCHEDULE_SECS: [u32; 9] = [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400];

/// The longest a receiver's `Retry-After` may push the next attempt back:
/// 6 hours. Long enough for a receiver's maintenance window, short enough
/// that one header cannot park a delivery for days, and within one SQS
/// visibility timeout ([`MAX_VISIBILITY`]).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 60 * 60);

/// The longest SQS lets a message stay invisible: 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(MAX_VISIBILITY_SECS as u64);
pub const MAX_VISIBILITY_SECS: u32 = 12 * 60 * 60;

/// The environment variable the functions and tests read a [`TimeScale`]
/// from.
pub const TIME_SCALE_ENV: &str = "RETRY_TIME_SCALE";

// ---------------------------------------------------------------------------
// Retry policy
// ---------------------------------------------------------------------------

/// Why a retry policy was refused. The messages name the JSON field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("`delays_secs` must list at least one delay")]
    EmptySchedule,
    #[error("`delays_secs` lists {0} delays; at most {MAX_SCHEDULE_DELAYS} are allowed")]
    ScheduleTooLong(usize),
    #[error("`{field}` is {value}; it must be between 1 and {MAX_DELAY_SECS} seconds (24 h)")]
    Delay { field: String, value: u64 },
    #[error("`increment_secs` is {0}; it must be between 0 and {MAX_DELAY_SECS} seconds (24 h)")]
    Increment(u64),
    #[error("`max_attempts` is {0}; it must be between 1 and {MAX_ATTEMPTS}")]
    MaxAttempts(u64),
    #[error("`factor` is {0}; it must be a number between {MIN_FACTOR} and {MAX_FACTOR}")]
    Factor(f64),
    #[error("`max_delay_secs` ({max}) must not be less than `initial_delay_secs` ({initial})")]
    MaxDelayBelowInitial { initial: u64, max: u64 },
}

/// A retry policy as it is written in JSON (the management API, the
/// endpoint's item in DynamoDB), before validation. Turn it into a
/// [`RetryPolicy`] with `RetryPolicy::try_from`; unknown fields are refused.
///
/// `max_delay_secs` may be left out of linear and exponential policies; it
/// then defaults to 24 h, and is written out explicitly when the policy is
/// serialised again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawRetryPolicy {
    /// Explicit delays between attempts: N delays, N + 1 attempts.
    Schedule { delays_secs: Vec<u64> },
    /// The same delay before every retry.
    Fixed { delay_secs: u64, max_attempts: u64 },
    /// `initial + increment × k` before retry k (0-based), capped.
    Linear {
        initial_delay_secs: u64,
        increment_secs: u64,
        max_attempts: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_delay_secs: Option<u64>,
    },
    /// `initial × factor^k` before retry k (0-based), capped.
    Exponential {
        initial_delay_secs: u64,
        factor: f64,
        max_attempts: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_delay_secs: Option<u64>,
    },
}

/// A validated per-endpoint retry policy. It can only be built from a
/// [`RawRetryPolicy`] that passes validation (which is also how it is
/// deserialised), so every value is usable as is.
///
/// In JSON it is an object tagged by `kind`:
///
/// - `{"kind":"schedule","delays_secs":[5,300,1800]}`: 1 to 50 delays, each
///   1 s to 24 h;
/// - `{"kind":"fixed","delay_secs":60,"max_attempts":10}`;
/// - `{"kind":"linear","initial_delay_secs":60,"increment_secs":60,"max_attempts":10,"max_delay_secs":3600}`;
/// - `{"kind":"exponential","initial_delay_secs":5,"factor":2.0,"max_attempts":12,"max_delay_secs":86400}`
///   (factor 1.1 to 10).
///
/// `max_attempts` counts every attempt, the first included (1 to 50); delays
/// are 1 s to 24 h (an increment may be 0); `max_delay_secs` caps each
/// delay, is at most 24 h and at least the initial delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawRetryPolicy", into = "RawRetryPolicy")]
pub struct RetryPolicy(Kind);

// Every number in a policy is validated; the factor in particular is finite,
// so equality is an equivalence relation.
impl Eq for RetryPolicy {}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Schedule(Vec<u32>),
    Fixed {
        delay: u32,
        max_attempts: u32,
    },
    Linear {
        initial: u32,
        increment: u32,
        max_attempts: u32,
        max_delay: u32,
    },
    Exponential {
        initial: u32,
        factor: f64,
        max_attempts: u32,
        max_delay: u32,
    },
}

impl Default for RetryPolicy {
    /// The schedule 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
    fn default() -> Self {
        Self(Kind::Schedule(DEFAULT_SCHEDULE_SECS.to_vec()))
    }
}

impl RetryPolicy {
    /// How many attempts the policy allows in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        match &self.0 {
            Kind::Schedule(delays) => delays.len() as u32 + 1,
            Kind::Fixed { max_attempts, .. }
            | Kind::Linear { max_attempts, .. }
            | Kind::Exponential { max_attempts, .. } => *max_attempts,
        }
    }

    /// The delay before attempt `failed_attempt + 1`, after attempt
    /// `failed_attempt` (1-based) failed; `None` when that was the last
    /// attempt the policy allows. Attempt 0 does not exist: `delay_after(0)`
    /// is `None` too. No jitter is applied.
    pub fn delay_after(&self, failed_attempt: u32) -> Option<Duration> {
        if failed_attempt == 0 || failed_attempt >= self.max_attempts() {
            return None;
        }
        // The 0-based index of the retry about to be scheduled.
        let k = failed_attempt - 1;
        let secs = match &self.0 {
            Kind::Schedule(delays) => u64::from(*delays.get(k as usize)?),
            Kind::Fixed { delay, .. } => u64::from(*delay),
            Kind::Linear {
                initial,
                increment,
                max_delay,
                ..
            } => u64::from(*increment)
                .saturating_mul(u64::from(k))
                .saturating_add(u64::from(*initial))
                .min(u64::from(*max_delay)),
            Kind::Exponential {
                initial,
                factor,
                max_delay,
                ..
            } => {
                // k < 50 and factor <= 10, so this is finite; the cap keeps it
                // within 24 h, in whole milliseconds.
                let secs = (f64::from(*initial) * factor.powi(k as i32)).min(f64::from(*max_delay));
                return Some(Duration::from_millis((secs * 1000.0).round() as u64));
            }
        };
        Some(Duration::from_secs(secs))
    }

    /// Every delay of the policy in order: `delay_after(1)`,
    /// `delay_after(2)`, … (`max_attempts() - 1` of them).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + '_ {
        (1..self.max_attempts()).filter_map(|n| self.delay_after(n))
    }

    /// The policy in its JSON form.
    pub fn to_raw(&self) -> RawRetryPolicy {
        match &self.0 {
            Kind::Schedule(delays) => RawRetryPolicy::Schedule {
                delays_secs: delays.iter().map(|&d| u64::from(d)).collect(),
            },
            Kind::Fixed { delay, max_attempts } => RawRetryPolicy::Fixed {
                delay_secs: u64::from(*delay),
                max_attempts: u64::from(*max_attempts),
            },
            Kind::Linear {
                initial,
                increment,
                max_attempts,
                max_delay,
            } => RawRetryPolicy::Linear {
                initial_delay_secs: u64::from(*initial),
                increment_secs: u64::from(*increment),
                max_attempts: u64::from(*max_attempts),
                max_delay_secs: Some(u64::from(*max_delay)),
            },
            Kind::Exponential {
                initial,
                factor,
                max_attempts,
                max_delay,
            } => RawRetryPolicy::Exponential {
                initial_delay_secs: u64::from(*initial),
                factor: *factor,
                max_attempts: u64::from(*max_attempts),
                max_delay_secs: Some(u64::from(*max_delay)),
            },
        }
    }
}

fn delay_secs(field: impl Into<String>, value: u64) -> Result<u32, RetryPolicyError> {
    if (1..=MAX_DELAY_SECS).contains(&value) {
        Ok(value as u32)
    } else {
        Err(RetryPolicyError::Delay {
            field: field.into(),
            value,
        })
    }
}

fn attempts(value: u64) -> Result<u32, RetryPolicyError> {
    if (1..=u64::from(MAX_ATTEMPTS)).contains(&value) {
        Ok(value as u32)
    } else {
        Err(RetryPolicyError::MaxAttempts(value))
    }
}

fn capped(initial: u32, max_delay_secs: Option<u64>) -> Result<u32, RetryPolicyError> {
    let max = delay_secs("max_delay_secs", max_delay_secs.unwrap_or(MAX_DELAY_SECS))?;
    if max < initial {
        return Err(RetryPolicyError::MaxDelayBelowInitial {
            initial: u64::from(initial),
            max: u64::from(max),
        });
    }
    Ok(max)
}

impl TryFrom<RawRetryPolicy> for RetryPolicy {
    type Error = RetryPolicyError;

    fn try_from(raw: RawRetryPolicy) -> Result<Self, RetryPolicyError> {
        let kind = match raw {
            RawRetryPolicy::Schedule { delays_secs } => {
                if delays_secs.is_empty() {
                    return Err(RetryPolicyError::EmptySchedule);
                }
                if delays_secs.len() > MAX_SCHEDULE_DELAYS {
                    return Err(RetryPolicyError::ScheduleTooLong(delays_secs.len()));
                }
                let delays = delays_secs
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| delay_secs(format!("delays_secs[{i}]"), d))
                    .collect::<Result<_, _>>()?;
                Kind::Schedule(delays)
            }
            RawRetryPolicy::Fixed {
                delay_secs: delay,
                max_attempts,
            } => Kind::Fixed {
                delay: delay_secs("delay_secs", delay)?,
                max_attempts: attempts(max_attempts)?,
            },
            RawRetryPolicy::Linear {
                initial_delay_secs,
                increment_secs,
                max_attempts,
                max_delay_secs,
            } => {
                let initial = delay_secs("initial_delay_secs", initial_delay_secs)?;
                if increment_secs > MAX_DELAY_SECS {
                    return Err(RetryPolicyError::Increment(increment_secs));
                }
                Kind::Linear {
                    initial,
                    increment: increment_secs as u32,
                    max_attempts: attempts(max_attempts)?,
                    max_delay: capped(initial, max_delay_secs)?,
                }
            }
            RawRetryPolicy::Exponential {
                initial_delay_secs,
                factor,
                max_attempts,
                max_delay_secs,
            } => {
                let initial = delay_secs("initial_delay_secs", initial_delay_secs)?;
                // `contains` is false for NaN; infinities are out of range.
                if !(MIN_FACTOR..=MAX_FACTOR).contains(&factor) {
                    return Err(RetryPolicyError::Factor(factor));
                }
                Kind::Exponential {
                    initial,
                    factor,
                    max_attempts: attempts(max_attempts)?,
                    max_delay: capped(initial, max_delay_secs)?,
                }
            }
        };
        Ok(Self(kind))
    }
}

impl From<RetryPolicy> for RawRetryPolicy {
    fn from(policy: RetryPolicy) -> Self {
        policy.to_raw()
    }
}

// ---------------------------------------------------------------------------
// Jitter
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Retry-After
// ---------------------------------------------------------------------------

/// Parses a `Retry-After` header value (RFC 9110 section 10.2.3) received at
/// `now` into how long to wait.
///
/// - delay-seconds (`"120"`, ASCII digits only): that many seconds. A number
///   too large for a `u64` saturates (then [`honour_retry_after`] caps it).
/// - an HTTP-date in any of the three forms RFC 9110 requires recipients to
///   accept: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
///   (`Sunday, 06-Nov-94 08:49:37 GMT`, a two-digit year more than 50 years
///   ahead of `now` meaning the previous century) and asctime
///   (`Sun Nov  6 08:49:37 1994`): the time until then, or zero for a date
///   not in the future. The weekday must be a weekday name but is not
///   checked against the date; names are matched case-insensitively.
///
/// Surrounding whitespace is ignored. Anything else — empty, negative
/// (`"-5"`), signed (`"+5"`), fractional (`"1.5"`), an impossible date — is
/// `None`: the header is ignored.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only overflow can make the parse fail.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = parse_http_date(value, now.year())?;
    let ahead = date - now;
    Some(if ahead.is_positive() {
        ahead.unsigned_abs()
    } else {
        Duration::ZERO
    })
}

const SHORT_WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn parse_http_date(s: &str, this_year: i32) -> Option<OffsetDateTime> {
    let tokens: Vec<&str> = s.split_ascii_whitespace().collect();
    let (year, month, day, clock) = match tokens.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [weekday, day, month, year, clock, gmt] => {
            weekday_in(weekday.strip_suffix(',')?, &SHORT_WEEKDAYS)?;
            is_gmt(gmt)?;
            (digits(year, 4, 4)?, month_named(month)?, digits(day, 2, 2)?, *clock)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [weekday, date, clock, gmt] => {
            weekday_in(weekday.strip_suffix(',')?, &LONG_WEEKDAYS)?;
            is_gmt(gmt)?;
            let mut parts = date.split('-');
            let (day, month, yy) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let yy: i32 = digits(yy, 2, 2)?;
            let mut year = this_year - this_year.rem_euclid(100) + yy;
            if year > this_year + 50 {
                year -= 100;
            }
            (year, month_named(month)?, digits(day, 2, 2)?, *clock)
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [weekday, month, day, clock, year] => {
            weekday_in(weekday, &SHORT_WEEKDAYS)?;
            (digits(year, 4, 4)?, month_named(month)?, digits(day, 1, 2)?, *clock)
        }
        _ => return None,
    };
    let mut hms = clock.split(':');
    let (h, m, sec) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() {
        return None;
    }
    let time = Time::from_hms(digits(h, 2, 2)?, digits(m, 2, 2)?, digits(sec, 2, 2)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

fn weekday_in(name: &str, names: &[&str]) -> Option<()> {
    names.iter().any(|n| n.eq_ignore_ascii_case(name)).then_some(())
}

fn is_gmt(zone: &str) -> Option<()> {
    zone.eq_ignore_ascii_case("GMT").then_some(())
}

fn month_named(name: &str) -> Option<Month> {
    let i = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    Month::try_from(i as u8 + 1).ok()
}

/// `s` as a number of `min..=max` ASCII digits (no sign).
fn digits<T: FromStr>(s: &str, min: usize, max: usize) -> Option<T> {
    if !(min..=max).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The delay before the next attempt when the receiver sent `Retry-After`:
/// never sooner than `policy_delay` (our own schedule), and never later than
/// `max` because of the header (a longer `policy_delay` still wins).
/// `max(policy_delay, min(retry_after, max))`; without a header,
/// `policy_delay`.
pub fn honour_retry_after(policy_delay: Duration, retry_after: Option<Duration>, max: Duration) -> Duration {
    match retry_after {
        Some(wanted) => policy_delay.max(wanted.min(max)),
        None => policy_delay,
    }
}

// ---------------------------------------------------------------------------
// Verdict
// ---------------------------------------------------------------------------

/// What a receiver's HTTP status means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 410 Gone: the receiver wants no more; disable the endpoint and end
    /// the delivery.
    Gone,
    /// Any other status: try again per the endpoint's policy.
    /// `retry_after_allowed` says whether the response's `Retry-After` may
    /// push the next attempt back (429, 502, 503, 504).
    Retry { retry_after_allowed: bool },
}

/// Judges a receiver's status code. 2xx is delivered; 410 is gone; 429, 502,
/// 503 and 504 are retried honouring `Retry-After`; every other status is
/// retried per policy without it: 3xx (redirects are never followed), other
/// 4xx and 5xx, and anything outside 200..=599.
///
/// Transport errors (timeouts, refused or reset connections) have no status;
/// the caller retries them per policy, like
/// `Verdict::Retry { retry_after_allowed: false }`.
pub fn judge(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        429 | 502 | 503 | 504 => Verdict::Retry {
            retry_after_allowed: true,
        },
        _ => Verdict::Retry {
            retry_after_allowed: false,
        },
    }
}

// ---------------------------------------------------------------------------
// Time scale
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// SQS visibility
// ---------------------------------------------------------------------------

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
    use serde_json::json;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn policy(v: serde_json::Value) -> RetryPolicy {
        serde_json::from_value(v).unwrap()
    }

    fn refused(v: serde_json::Value) -> String {
        serde_json::from_value::<RetryPolicy>(v).unwrap_err().to_string()
    }

    fn at(s: &str) -> OffsetDateTime {
        crate::time_util::parse_rfc3339(s).unwrap()
    }

    // --- policies ---------------------------------------------------------

    #[test]
    fn the_default_is_the_three_day_schedule() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 10);
        let delays: Vec<u64> = p.delays().map(|d| d.as_secs()).collect();
        assert_eq!(delays, [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400]);
        assert_eq!(p.delay_after(1), Some(secs(5)));
        assert_eq!(p.delay_after(9), Some(secs(24 * 3600)));
        assert_eq!(p.delay_after(10), None);
        let total: Duration = p.delays().sum();
        assert_eq!(total, secs(272_105));
        assert!(total > secs(3 * 86_400) && total < secs(4 * 86_400));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"kind": "schedule", "delays_secs": [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]})
        );
    }

    #[test]
    fn a_schedule_allows_one_attempt_more_than_it_has_delays() {
        let p = policy(json!({"kind": "schedule", "delays_secs": [5, 60, 3600]}));
        assert_eq!(p.max_attempts(), 4);
        assert_eq!(p.delay_after(1), Some(secs(5)));
        assert_eq!(p.delay_after(2), Some(secs(60)));
        assert_eq!(p.delay_after(3), Some(secs(3600)));
        assert_eq!(p.delay_after(4), None);
        assert_eq!(p.delay_after(5), None);

        let one = policy(json!({"kind": "schedule", "delays_secs": [1]}));
        assert_eq!(one.max_attempts(), 2);
        assert_eq!(one.delay_after(1), Some(secs(1)));
        assert_eq!(one.delay_after(2), None);

        let longest = policy(json!({"kind": "schedule", "delays_secs": vec![MAX_DELAY_SECS; MAX_SCHEDULE_DELAYS]}));
        assert_eq!(longest.max_attempts(), 50);
        assert_eq!(longest.delay_after(49), Some(MAX_DELAY));
        assert_eq!(longest.delay_after(50), None);
    }

    #[test]
    fn fixed_repeats_its_delay_until_the_last_attempt() {
        let p = policy(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 10}));
        assert_eq!(p.max_attempts(), 10);
        assert_eq!(p.delays().collect::<Vec<_>>(), vec![secs(60); 9]);
        assert_eq!(p.delay_after(9), Some(secs(60)));
        assert_eq!(p.delay_after(10), None);

        let once = policy(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 1}));
        assert_eq!(once.max_attempts(), 1);
        assert_eq!(once.delay_after(1), None);
        assert_eq!(once.delays().count(), 0);

        let most = policy(json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 50}));
        assert_eq!(most.delay_after(49), Some(secs(1)));
        assert_eq!(most.delay_after(50), None);
    }

    #[test]
    fn linear_grows_by_its_increment_up_to_the_cap() {
        let p = policy(json!({
            "kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 10, "max_delay_secs": 300
        }));
        assert_eq!(p.max_attempts(), 10);
        let delays: Vec<u64> = p.delays().map(|d| d.as_secs()).collect();
        assert_eq!(delays, [60, 120, 180, 240, 300, 300, 300, 300, 300]);
        assert_eq!(p.delay_after(10), None);

        // A zero increment is a fixed delay; the cap defaults to 24 h.
        let flat = policy(json!({"kind": "linear", "initial_delay_secs": 5, "increment_secs": 0, "max_attempts": 3}));
        assert_eq!(flat.delays().collect::<Vec<_>>(), [secs(5), secs(5)]);

        let steep = policy(json!({
            "kind": "linear", "initial_delay_secs": MAX_DELAY_SECS, "increment_secs": MAX_DELAY_SECS, "max_attempts": 50
        }));
        assert_eq!(steep.delay_after(49), Some(MAX_DELAY));
    }

    #[test]
    fn exponential_multiplies_by_its_factor_up_to_the_cap() {
        let p = policy(json!({
            "kind": "exponential", "initial_delay_secs": 5, "factor": 2.0, "max_attempts": 12, "max_delay_secs": 3600
        }));
        assert_eq!(p.max_attempts(), 12);
        let delays: Vec<u64> = p.delays().map(|d| d.as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]);
        assert_eq!(p.delay_after(12), None);

        // Fractional results are kept to the millisecond.
        let gentle = policy(json!({"kind": "exponential", "initial_delay_secs": 60, "factor": 1.1, "max_attempts": 4}));
        let delays: Vec<u128> = gentle.delays().map(|d| d.as_millis()).collect();
        assert_eq!(delays, [60_000, 66_000, 72_600]);

        // The largest growth never overflows: capped at 24 h by default.
        let wild = policy(
            json!({"kind": "exponential", "initial_delay_secs": MAX_DELAY_SECS, "factor": 10, "max_attempts": 50}),
        );
        assert_eq!(wild.delay_after(1), Some(MAX_DELAY));
        assert_eq!(wild.delay_after(49), Some(MAX_DELAY));
        assert_eq!(wild.delay_after(50), None);
    }

    #[test]
    fn attempt_zero_and_huge_attempt_numbers_have_no_delay() {
        let policies = [
            RetryPolicy::default(),
            policy(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 50})),
            policy(
                json!({"kind": "linear", "initial_delay_secs": 1, "increment_secs": MAX_DELAY_SECS, "max_attempts": 50}),
            ),
            policy(json!({"kind": "exponential", "initial_delay_secs": 1, "factor": 10.0, "max_attempts": 50})),
        ];
        for p in &policies {
            assert_eq!(p.delay_after(0), None, "{p:?}");
            for n in [
                p.max_attempts(),
                p.max_attempts() + 1,
                1_000,
                u32::MAX / 2,
                u32::MAX - 1,
                u32::MAX,
            ] {
                assert_eq!(p.delay_after(n), None, "{p:?} {n}");
            }
            for n in 1..p.max_attempts() {
                let d = p.delay_after(n).unwrap();
                assert!(d >= secs(1) && d <= MAX_DELAY, "{p:?} {n}: {d:?}");
            }
        }
    }

    #[test]
    fn policies_round_trip_through_json() {
        let cases = [
            json!({"kind": "schedule", "delays_secs": [5, 300, 1800]}),
            json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 10}),
            json!({"kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 10, "max_delay_secs": 3600}),
            json!({"kind": "exponential", "initial_delay_secs": 5, "factor": 2.0, "max_attempts": 12, "max_delay_secs": 86400}),
            json!({"kind": "exponential", "initial_delay_secs": 5, "factor": 1.5, "max_attempts": 3, "max_delay_secs": 5}),
        ];
        for v in cases {
            let p = policy(v.clone());
            assert_eq!(serde_json::to_value(&p).unwrap(), v);
            let again: RetryPolicy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(again, p);
            assert_eq!(RetryPolicy::try_from(p.to_raw()).unwrap(), p);
            assert_eq!(RawRetryPolicy::from(p.clone()), p.to_raw());
        }
        let default = RetryPolicy::default();
        assert_eq!(policy(serde_json::to_value(&default).unwrap()), default);
    }

    #[test]
    fn a_missing_cap_defaults_to_seven_days_and_is_written_out() {
        let p = policy(json!({"kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 3}));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 3, "max_delay_secs": 86400})
        );
        let p = policy(json!({"kind": "exponential", "initial_delay_secs": 5, "factor": 3, "max_attempts": 2}));
        assert_eq!(
            p.to_raw(),
            RawRetryPolicy::Exponential {
                initial_delay_secs: 5,
                factor: 3.0,
                max_attempts: 2,
                max_delay_secs: Some(MAX_DELAY_SECS),
            }
        );
    }

    #[test]
    fn schedules_are_validated() {
        assert_eq!(
            refused(json!({"kind": "schedule", "delays_secs": []})),
            "`delays_secs` must list at least one delay"
        );
        assert_eq!(
            refused(json!({"kind": "schedule", "delays_secs": vec![5; 50]})),
            "`delays_secs` lists 50 delays; at most 49 are allowed"
        );
        assert_eq!(
            refused(json!({"kind": "schedule", "delays_secs": [5, 0]})),
            "`delays_secs[1]` is 0; it must be between 1 and 86400 seconds (24 h)"
        );
        assert_eq!(
            refused(json!({"kind": "schedule", "delays_secs": [86401]})),
            "`delays_secs[0]` is 86401; it must be between 1 and 86400 seconds (24 h)"
        );
        assert!(refused(json!({"kind": "schedule", "delays_secs": [-5]})).contains("-5"));
        assert!(refused(json!({"kind": "schedule", "delays_secs": [1.5]})).contains("1.5"));
        assert!(refused(json!({"kind": "schedule"})).contains("missing field `delays_secs`"));
    }

    #[test]
    fn fixed_policies_are_validated() {
        let err = |delay: u64, attempts: u64| {
            refused(json!({"kind": "fixed", "delay_secs": delay, "max_attempts": attempts}))
        };
        assert_eq!(
            err(0, 10),
            "`delay_secs` is 0; it must be between 1 and 86400 seconds (24 h)"
        );
        assert_eq!(
            err(86_401, 10),
            "`delay_secs` is 86401; it must be between 1 and 86400 seconds (24 h)"
        );
        assert_eq!(err(60, 0), "`max_attempts` is 0; it must be between 1 and 50");
        assert_eq!(err(60, 51), "`max_attempts` is 51; it must be between 1 and 50");
        assert_eq!(
            err(60, u64::MAX),
            format!("`max_attempts` is {}; it must be between 1 and 50", u64::MAX)
        );
        assert!(refused(json!({"kind": "fixed", "delay_secs": 60})).contains("missing field `max_attempts`"));
    }

    #[test]
    fn linear_policies_are_validated() {
        let err = |initial: u64, increment: u64, attempts: u64, max: u64| {
            refused(json!({
                "kind": "linear", "initial_delay_secs": initial, "increment_secs": increment,
                "max_attempts": attempts, "max_delay_secs": max
            }))
        };
        assert_eq!(
            err(0, 60, 5, 600),
            "`initial_delay_secs` is 0; it must be between 1 and 86400 seconds (24 h)"
        );
        assert_eq!(
            err(60, 86_401, 5, 600),
            "`increment_secs` is 86401; it must be between 0 and 86400 seconds (24 h)"
        );
        assert_eq!(err(60, 60, 0, 600), "`max_attempts` is 0; it must be between 1 and 50");
        assert_eq!(
            err(60, 60, 5, 0),
            "`max_delay_secs` is 0; it must be between 1 and 86400 seconds (24 h)"
        );
        assert_eq!(
            err(60, 60, 5, 86_401),
            "`max_delay_secs` is 86401; it must be between 1 and 86400 seconds (24 h)"
        );
        assert_eq!(
            err(60, 60, 5, 59),
            "`max_delay_secs` (59) must not be less than `initial_delay_secs` (60)"
        );
        assert!(policy(json!({
            "kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 5, "max_delay_secs": 60
        }))
        .delays()
        .all(|d| d == secs(60)));
    }

    #[test]
    fn exponential_policies_are_validated() {
        let err = |initial: u64, factor: serde_json::Value, attempts: u64, max: u64| {
            refused(json!({
                "kind": "exponential", "initial_delay_secs": initial, "factor": factor,
                "max_attempts": attempts, "max_delay_secs": max
            }))
        };
        assert_eq!(
            err(0, json!(2.0), 5, 600),
            "`initial_delay_secs` is 0; it must be between 1 and 86400 seconds (24 h)"
        );
        assert_eq!(
            err(5, json!(1.0), 5, 600),
            "`factor` is 1; it must be a number between 1.1 and 10"
        );
        assert_eq!(
            err(5, json!(1.09), 5, 600),
            "`factor` is 1.09; it must be a number between 1.1 and 10"
        );
        assert_eq!(
            err(5, json!(10.5), 5, 600),
            "`factor` is 10.5; it must be a number between 1.1 and 10"
        );
        assert_eq!(
            err(5, json!(-2), 5, 600),
            "`factor` is -2; it must be a number between 1.1 and 10"
        );
        assert!(err(5, json!("2"), 5, 600).contains("invalid type"));
        assert_eq!(
            err(5, json!(2.0), 51, 600),
            "`max_attempts` is 51; it must be between 1 and 50"
        );
        assert_eq!(
            err(5, json!(2.0), 5, 4),
            "`max_delay_secs` (4) must not be less than `initial_delay_secs` (5)"
        );
        assert_eq!(
            err(5, json!(2.0), 5, 86_401),
            "`max_delay_secs` is 86401; it must be between 1 and 86400 seconds (24 h)"
        );
        // The bounds themselves are allowed.
        assert!(
            serde_json::from_value::<RetryPolicy>(
                json!({"kind": "exponential", "initial_delay_secs": 1, "factor": 1.1, "max_attempts": 1})
            )
            .is_ok()
        );
        assert!(
            serde_json::from_value::<RetryPolicy>(
                json!({"kind": "exponential", "initial_delay_secs": 1, "factor": 10, "max_attempts": 50})
            )
            .is_ok()
        );
        // Non-finite factors, which JSON cannot carry, are refused when built directly.
        for factor in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let raw = RawRetryPolicy::Exponential {
                initial_delay_secs: 5,
                factor,
                max_attempts: 5,
                max_delay_secs: None,
            };
            assert!(
                matches!(RetryPolicy::try_from(raw), Err(RetryPolicyError::Factor(_))),
                "{factor}"
            );
        }
    }

    #[test]
    fn unknown_kinds_and_fields_and_shapes_are_refused() {
        assert!(refused(json!({"kind": "random", "delay_secs": 5})).contains("unknown variant `random`"));
        assert!(refused(json!({"delays_secs": [5]})).contains("missing field `kind`"));
        assert!(
            refused(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 10, "max_attempt": 3}))
                .contains("unknown field `max_attempt`")
        );
        assert!(refused(json!({"kind": "schedule", "delays_secs": [5], "max_attempts": 3})).contains("unknown field"));
        assert!(serde_json::from_value::<RetryPolicy>(json!("schedule")).is_err());
        assert!(serde_json::from_value::<RetryPolicy>(json!(null)).is_err());
    }

    // --- jitter -----------------------------------------------------------

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

    // --- Retry-After ------------------------------------------------------

    #[test]
    fn retry_after_accepts_delta_seconds() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(secs(120)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("007", now), Some(secs(7)));
        assert_eq!(parse_retry_after("99999999", now), Some(secs(99_999_999)));
        // Too large for u64: saturates (and is capped when honoured).
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(secs(u64::MAX)));
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        let now = at("1994-11-06T08:47:37Z");
        let two_min = Some(secs(120));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), two_min);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), two_min);
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), two_min);
        assert_eq!(parse_retry_after("Sun Nov 06 08:49:37 1994", now), two_min);
        assert_eq!(parse_retry_after("  sun, 06 nov 1994 08:49:37 gmt\t", now), two_min);
        // The weekday is not checked against the date.
        assert_eq!(parse_retry_after("Mon, 06 Nov 1994 08:49:37 GMT", now), two_min);
        // `now` with a fraction of a second and another offset.
        let now = at("1994-11-06T09:47:36.5+01:00");
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_millis(120_500))
        );
        // Across a year boundary and a leap day.
        let now = at("2028-02-28T23:00:00Z");
        assert_eq!(
            parse_retry_after("Tue, 29 Feb 2028 23:00:00 GMT", now),
            Some(secs(86_400))
        );
    }

    #[test]
    fn rfc_850_years_are_read_relative_to_now() {
        let now = at("2026-06-01T00:00:00Z");
        assert_eq!(parse_retry_after("Monday, 01-Jun-26 00:01:00 GMT", now), Some(secs(60)));
        // 2076 is not more than 50 years ahead; 2077 is, so it means 1977.
        assert!(parse_retry_after("Monday, 01-Jun-76 00:00:00 GMT", now).unwrap() > secs(49 * 365 * 86_400));
        assert_eq!(
            parse_retry_after("Wednesday, 01-Jun-77 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_dates_in_the_past_mean_now() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("Thu, 01 Jan 2026 00:00:01 GMT", now), Some(secs(1)));
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        let now = at("2026-01-01T00:00:00Z");
        for garbage in [
            "",
            "   ",
            "-5",
            "+5",
            "1.5",
            "1e3",
            "120s",
            "soon",
            "١٢٠", // Arabic-Indic digits are not ASCII digits
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Feb 2026 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sun Nov 6 08:49:37 94",
            "Sun Nov 123 08:49:37 1994",
            "2026-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let max = MAX_RETRY_AFTER;
        assert_eq!(max, secs(6 * 3600));
        assert!(MAX_RETRY_AFTER <= MAX_VISIBILITY);
        // Without a header: the policy's delay.
        assert_eq!(honour_retry_after(secs(10), None, max), secs(10));
        // Later than our schedule: the header wins.
        assert_eq!(honour_retry_after(secs(10), Some(secs(120)), max), secs(120));
        // Sooner than our schedule: never sooner.
        assert_eq!(honour_retry_after(secs(10), Some(secs(1)), max), secs(10));
        assert_eq!(honour_retry_after(secs(10), Some(Duration::ZERO), max), secs(10));
        // Beyond the bound: capped.
        assert_eq!(honour_retry_after(secs(10), Some(secs(99_999_999)), max), max);
        assert_eq!(honour_retry_after(secs(10), Some(Duration::MAX), max), max);
        assert_eq!(honour_retry_after(secs(10), Some(max), max), max);
        // A policy delay longer than the bound still wins.
        assert_eq!(
            honour_retry_after(secs(86_400), Some(secs(99_999_999)), max),
            secs(86_400)
        );
        assert_eq!(honour_retry_after(secs(86_400), Some(secs(60)), max), secs(86_400));
        // A bound of zero ignores the header.
        assert_eq!(honour_retry_after(secs(10), Some(secs(120)), Duration::ZERO), secs(10));
    }

    // --- verdicts ---------------------------------------------------------

    #[test]
    fn statuses_are_judged_as_designed() {
        let retry = |allowed| Verdict::Retry {
            retry_after_allowed: allowed,
        };
        let cases = [
            (200, Verdict::Delivered),
            (201, Verdict::Delivered),
            (204, Verdict::Delivered),
            (299, Verdict::Delivered),
            (301, retry(false)),
            (302, retry(false)),
            (304, retry(false)),
            (307, retry(false)),
            (400, retry(false)),
            (401, retry(false)),
            (403, retry(false)),
            (404, retry(false)),
            (408, retry(false)),
            (409, retry(false)),
            (410, Verdict::Gone),
            (413, retry(false)),
            (429, retry(true)),
            (500, retry(false)),
            (501, retry(false)),
            (502, retry(true)),
            (503, retry(true)),
            (504, retry(true)),
            (505, retry(false)),
            (0, retry(false)),
            (100, retry(false)),
            (199, retry(false)),
            (300, retry(false)),
            (600, retry(false)),
            (u16::MAX, retry(false)),
        ];
        for (status, verdict) in cases {
            assert_eq!(judge(status), verdict, "{status}");
        }
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
