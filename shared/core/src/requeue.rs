//! How a delivery task that must wait goes back on the deliveries queue
//! without meeting either of SQS's limits on a message:
//!
//! - **retention**: SQS drops a message this long after it was first sent
//!   (at most 14 days), however often it has been received since. A retry
//!   schedule may span longer (50 attempts, delays up to 24 h).
//! - **the receive budget**: the queue's redrive policy moves a message to
//!   the DLQ once it has been received `maxReceiveCount` times. A task that
//!   waits for its endpoint's rate limit, or for a long delay in 12 h steps,
//!   is received many times without anything failing.
//!
//! A wait is one of two things. The cheap one hides the same message
//! (ChangeMessageVisibility, up to 12 h): one request, but the next receive
//! counts against the budget and the message keeps ageing. The other sends
//! the task again as a new message (SendMessage with `DelaySeconds`, up to
//! 15 min) and acknowledges the received one: the new message starts with
//! no receives and a fresh retention period. Nothing the delivery needs is
//! lost by that: the attempt count, the round, the first attempt and the
//! time the next attempt is due all live in the delivery record, not in the
//! message.
//!
//! [`plan`] chooses. A wait that is not a failure (the next attempt is not
//! due yet, the endpoint's rate limit is taken) and is short enough for
//! `DelaySeconds` is always a new message, so it never brings the task
//! closer to the DLQ. Anything else hides the message, unless hiding it would
//! take it within a margin of its retention or of its receive budget; then
//! it is sent again too.

use crate::retry;
use std::time::Duration;

/// The longest `DelaySeconds` SQS takes on a message: 15 minutes.
pub const MAX_SEND_DELAY_SECS: u32 = 900;
/// SQS's longest retention, and the deliveries queue's: 14 days.
pub const MAX_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// The redrive policy's `maxReceiveCount` on the deliveries queue.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 200;

/// The deliveries queue's limits, as the template sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// The redrive policy's `maxReceiveCount`.
    pub max_receive_count: u32,
    /// The queue's `MessageRetentionPeriod`.
    pub retention: Duration,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            retention: MAX_RETENTION,
        }
    }
}

impl QueueLimits {
    /// Receives kept in hand for what the handler does not plan: a batch
    /// that fails (the registry or the log unreachable) or a crashed
    /// process brings its messages back after the visibility timeout, each
    /// receive counted.
    pub fn receive_reserve(&self) -> u32 {
        (self.max_receive_count / 10).clamp(1, 10)
    }

    /// How long before its retention ends a message must have been sent
    /// again: an eighth of the retention, at most an hour (a message may
    /// come back late behind a backlog, or fail once before it is handled).
    pub fn retention_margin(&self) -> Duration {
        (self.retention / 8).min(Duration::from_secs(3600))
    }
}

/// What is known of the received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// `ApproximateReceiveCount`: 1 on the first receive.
    pub receive_count: u32,
    /// How long ago the message was sent (`SentTimestamp`).
    pub age: Duration,
}

/// Why the task waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// An attempt was made (or deferred by an open circuit) and recorded;
    /// the next one follows the retry schedule.
    Attempted,
    /// Nothing was attempted: the next attempt is not due yet, or the
    /// endpoint's rate limit is taken.
    NotAttempted,
}

/// How the task goes back on the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Hide the received message for this many seconds (at most 12 h).
    Hide {
        /// Seconds the message stays hidden.
        secs: u32,
    },
    /// Send the task again as a new message delayed this many seconds (at
    /// most 15 min), then acknowledge the received one.
    Resend {
        /// Seconds the new message is delayed.
        delay_secs: u32,
    },
}

/// Chooses how a task that waits `delay` goes back on the queue.
pub fn plan(delay: Duration, kind: WaitKind, msg: Received, limits: &QueueLimits) -> Requeue {
    let hide = retry::visibility_for(delay);
    let resend = Requeue::Resend {
        delay_secs: hide.min(MAX_SEND_DELAY_SECS),
    };
    if kind == WaitKind::NotAttempted && hide <= MAX_SEND_DELAY_SECS {
        return resend;
    }
    let back_at = msg.age + Duration::from_secs(u64::from(hide));
    if back_at + limits.retention_margin() >= limits.retention {
        return resend;
    }
    // Hidden, it comes back as receive `receive_count + 1`; that one and
    // the reserve must stay within the budget.
    if msg.receive_count.saturating_add(1 + limits.receive_reserve()) > limits.max_receive_count {
        return resend;
    }
    Requeue::Hide { secs: hide }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn fresh() -> Received {
        Received {
            receive_count: 1,
            age: secs(1),
        }
    }

    #[test]
    fn a_short_wait_that_is_not_a_failure_is_a_new_message() {
        let l = QueueLimits::default();
        assert_eq!(
            plan(Duration::from_millis(1500), WaitKind::NotAttempted, fresh(), &l),
            Requeue::Resend { delay_secs: 2 }
        );
        assert_eq!(
            plan(secs(900), WaitKind::NotAttempted, fresh(), &l),
            Requeue::Resend { delay_secs: 900 }
        );
        // Longer than DelaySeconds can say: hidden, within the budget.
        assert_eq!(
            plan(secs(901), WaitKind::NotAttempted, fresh(), &l),
            Requeue::Hide { secs: 901 }
        );
    }

    #[test]
    fn a_retry_hides_the_same_message() {
        let l = QueueLimits::default();
        assert_eq!(
            plan(secs(5), WaitKind::Attempted, fresh(), &l),
            Requeue::Hide { secs: 5 }
        );
        assert_eq!(
            plan(secs(86_400), WaitKind::Attempted, fresh(), &l),
            Requeue::Hide { secs: 43_200 }
        );
    }

    #[test]
    fn a_message_near_its_retention_is_sent_again() {
        let l = QueueLimits::default();
        let old = |days: u64, hours: u64| Received {
            receive_count: 20,
            age: secs(days * 86_400 + hours * 3600),
        };
        // 13 days old, back in 12 h: 13.5 days, outside the hour's margin.
        assert_eq!(
            plan(secs(12 * 3600), WaitKind::Attempted, old(13, 0), &l),
            Requeue::Hide { secs: 43_200 }
        );
        // 13 days 12 h old, back in 12 h: past the margin.
        assert_eq!(
            plan(secs(12 * 3600), WaitKind::Attempted, old(13, 12), &l),
            Requeue::Resend { delay_secs: 900 }
        );
        assert_eq!(
            plan(secs(30), WaitKind::Attempted, old(13, 23), &l),
            Requeue::Resend { delay_secs: 30 }
        );
    }

    #[test]
    fn a_message_near_its_receive_budget_is_sent_again() {
        let l = QueueLimits {
            max_receive_count: 200,
            retention: MAX_RETENTION,
        };
        assert_eq!(l.receive_reserve(), 10);
        let at = |receive_count| Received {
            receive_count,
            age: secs(60),
        };
        assert_eq!(
            plan(secs(60), WaitKind::Attempted, at(189), &l),
            Requeue::Hide { secs: 60 }
        );
        assert_eq!(
            plan(secs(60), WaitKind::Attempted, at(190), &l),
            Requeue::Resend { delay_secs: 60 }
        );
        assert_eq!(
            plan(secs(50_000), WaitKind::NotAttempted, at(250), &l),
            Requeue::Resend { delay_secs: 900 }
        );
    }

    #[test]
    fn a_small_test_queue_keeps_one_receive_in_reserve() {
        let l = QueueLimits {
            max_receive_count: 3,
            retention: secs(60),
        };
        assert_eq!(l.receive_reserve(), 1);
        assert_eq!(l.retention_margin(), Duration::from_millis(7500));
        let at = |receive_count, age| Received {
            receive_count,
            age: secs(age),
        };
        assert_eq!(
            plan(secs(5), WaitKind::Attempted, at(1, 0), &l),
            Requeue::Hide { secs: 5 }
        );
        assert_eq!(
            plan(secs(5), WaitKind::Attempted, at(2, 0), &l),
            Requeue::Resend { delay_secs: 5 }
        );
        assert_eq!(
            plan(secs(5), WaitKind::Attempted, at(1, 48), &l),
            Requeue::Resend { delay_secs: 5 }
        );
    }

    #[test]
    fn no_wait_the_planner_allows_outlives_the_queue() {
        // Whatever the message's history, the plan never hides it past its
        // retention margin or its budget.
        for max in [2, 3, 10, 200, 1000] {
            for retention in [60, 3600, 1_209_600] {
                let l = QueueLimits {
                    max_receive_count: max,
                    retention: secs(retention),
                };
                for receive_count in 1..=max + 2 {
                    for age in [0, retention / 2, retention - 1, retention + 10] {
                        for delay in [0, 1, 899, 900, 901, 43_200, 86_400] {
                            for kind in [WaitKind::Attempted, WaitKind::NotAttempted] {
                                let msg = Received {
                                    receive_count,
                                    age: secs(age),
                                };
                                match plan(secs(delay), kind, msg, &l) {
                                    Requeue::Hide { secs: s } => {
                                        assert!(receive_count + 1 + l.receive_reserve() <= max);
                                        assert!(secs(age + u64::from(s)) + l.retention_margin() < l.retention);
                                        assert!(s <= retry::MAX_VISIBILITY_SECS);
                                    }
                                    Requeue::Resend { delay_secs } => {
                                        assert!(delay_secs <= MAX_SEND_DELAY_SECS);
                                        assert_eq!(u64::from(delay_secs), delay.min(900));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
