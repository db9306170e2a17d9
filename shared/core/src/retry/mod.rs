//! When to try a webhook again: per-endpoint retry policies (`policy`),
//! the receiver's `Retry-After` (`retry_after`), the judgement of a
//! receiver's status code (`verdict`), and when the next attempt is due
//! (`schedule`: jitter, the test time scale, SQS visibility timeouts).
//! Pure: no I/O, no clock (the caller passes `now`), no randomness except
//! [`random_unit`]. Every item is re-exported here: callers name
//! `retry::X`.
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

mod policy;
mod retry_after;
mod schedule;
mod verdict;

pub use policy::{
    DEFAULT_SCHEDULE_SECS, MAX_ATTEMPTS, MAX_DELAY, MAX_FACTOR, MAX_SCHEDULE_DELAYS, MIN_FACTOR, RawRetryPolicy,
    RetryPolicy, RetryPolicyError,
};
pub use retry_after::{MAX_RETRY_AFTER, honour_retry_after, parse_retry_after};
pub use schedule::{
    LONGEST_ROUND, MAX_VISIBILITY, MAX_VISIBILITY_SECS, TIME_SCALE_ENV, TimeScale, TimeScaleError, jittered,
    random_unit, visibility_for,
};
pub use verdict::{Verdict, judge};
