//! Retry policies: the JSON an endpoint's retry policy is written in
//! ([`RawRetryPolicy`]), its validation, and the validated
//! [`RetryPolicy`] that says how many attempts there are and the delay
//! before each.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest single delay a policy may express: 24 h.
pub const MAX_DELAY: Duration = Duration::from_secs(MAX_DELAY_SECS);
const MAX_DELAY_SECS: u64 = 24 * 60 * 60;

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

/// Why a retry policy was refused. The messages name the JSON field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryPolicyError {
    /// A schedule with no delay.
    #[error("`delays_secs` must list at least one delay")]
    EmptySchedule,
    /// A schedule with more than [`MAX_SCHEDULE_DELAYS`] delays (how many it has).
    #[error("`delays_secs` lists {0} delays; at most {MAX_SCHEDULE_DELAYS} are allowed")]
    ScheduleTooLong(usize),
    /// A delay outside 1 s to 24 h.
    #[error("`{field}` is {value}; it must be between 1 and {MAX_DELAY_SECS} seconds (24 h)")]
    Delay {
        /// The JSON field that holds it (`delays_secs[2]`, `delay_secs`, ...).
        field: String,
        /// The delay given, in seconds.
        value: u64,
    },
    /// A linear increment above 24 h (the increment given, in seconds).
    #[error("`increment_secs` is {0}; it must be between 0 and {MAX_DELAY_SECS} seconds (24 h)")]
    Increment(u64),
    /// `max_attempts` outside 1 to [`MAX_ATTEMPTS`] (the value given).
    #[error("`max_attempts` is {0}; it must be between 1 and {MAX_ATTEMPTS}")]
    MaxAttempts(u64),
    /// An exponential factor outside [`MIN_FACTOR`] to [`MAX_FACTOR`], or not finite.
    #[error("`factor` is {0}; it must be a number between {MIN_FACTOR} and {MAX_FACTOR}")]
    Factor(f64),
    /// A cap below the first delay.
    #[error("`max_delay_secs` ({max}) must not be less than `initial_delay_secs` ({initial})")]
    MaxDelayBelowInitial {
        /// `initial_delay_secs`, in seconds.
        initial: u64,
        /// `max_delay_secs`, in seconds.
        max: u64,
    },
}

/// A retry policy as it is written in JSON (the management API, the
/// endpoint's item in DynamoDB), before validation. Turn it into a
/// [`RetryPolicy`] with `RetryPolicy::try_from`; unknown fields are refused.
///
/// `max_delay_secs` may be left out of linear and exponential policies; it
/// then defaults to 24 h, and is written out explicitly when the policy is
/// serialised again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(
        as = RetryPolicy,
        description = "When failed attempts are retried: one of four kinds, told apart by `kind`. `max_attempts` counts every attempt, the first included; `max_delay_secs` caps each delay and is at least the initial delay."
    )
)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawRetryPolicy {
    /// Explicit delays between attempts: N delays, N + 1 attempts.
    #[cfg_attr(feature = "openapi", schema(title = "ScheduleRetryPolicy"))]
    Schedule {
        /// The delay before each retry, in seconds (1 s to 24 h), in order.
        #[cfg_attr(
            feature = "openapi",
            schema(min_items = 1, max_items = 50, inline, value_type = Vec<crate::retry::policy::DelaySecs>)
        )]
        delays_secs: Vec<u64>,
    },
    /// The same delay before every retry.
    #[cfg_attr(feature = "openapi", schema(title = "FixedRetryPolicy"))]
    Fixed {
        /// The delay before each retry, in seconds.
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
        delay_secs: u64,
        /// Attempts in all, the first included.
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
        max_attempts: u64,
    },
    /// `initial + increment × k` before retry k (0-based), capped.
    #[cfg_attr(feature = "openapi", schema(title = "LinearRetryPolicy"))]
    Linear {
        /// The delay before the first retry, in seconds.
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
        initial_delay_secs: u64,
        /// Added to the delay for each further retry, in seconds.
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 86400))]
        increment_secs: u64,
        /// Attempts in all, the first included.
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
        max_attempts: u64,
        /// The longest delay, in seconds (at least the initial delay); 24 h
        /// when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
        max_delay_secs: Option<u64>,
    },
    /// `initial × factor^k` before retry k (0-based), capped.
    #[cfg_attr(feature = "openapi", schema(title = "ExponentialRetryPolicy"))]
    Exponential {
        /// The delay before the first retry, in seconds.
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
        initial_delay_secs: u64,
        /// Each delay is the previous one times this.
        #[cfg_attr(feature = "openapi", schema(minimum = 1.1, maximum = 10))]
        factor: f64,
        /// Attempts in all, the first included.
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 50))]
        max_attempts: u64,
        /// The longest delay, in seconds (at least the initial delay); 24 h
        /// when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86400))]
        max_delay_secs: Option<u64>,
    },
}

/// One delay of a schedule, in seconds: 1 s to 24 h.
#[cfg(feature = "openapi")]
pub(crate) struct DelaySecs;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for DelaySecs {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(86400))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for DelaySecs {}

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

#[cfg(test)]
mod tests;
