//! A suspended tenant's deliveries wait, unattempted, and go on as usual
//! once it is active again.

use super::*;
use crate::requeue::{self, QueueLimits, Received, Requeue, WaitKind};

fn recheck() -> Duration {
    DeliveryConfig::default().suspended_recheck
}

#[tokio::test]
async fn a_suspended_tenants_delivery_waits_unattempted_however_long_and_is_delivered_after_resume() {
    let w = world(URL, fixed(60, 2));
    w.mem.store.set_suspended(&w.task.tenant_id, true);
    let mut at = t0();
    // Three weeks of looks: longer than the queue's retention, more looks
    // than its receive budget.
    let looks = 21 * 24 * 3600 / recheck().as_secs();
    for _ in 0..looks {
        assert_eq!(w.run_at(at).await, DeliveryOutcome::Wait { delay: recheck() });
        at += std_to_time(recheck());
    }
    let r = w.record();
    assert_eq!(
        (r.state, r.attempts, r.round_attempts, r.reason.as_deref()),
        (DeliveryState::Retrying, 0, 0, Some(TENANT_SUSPENDED))
    );
    assert_eq!(r.next_attempt_at, Some(at));
    assert_eq!(w.sent(), 0, "never called");
    assert!(w.mem.attempts.lock().unwrap().is_empty(), "no attempt recorded");
    assert!(w.mem.dead_letters.lock().unwrap().is_empty(), "never dead-lettered");

    // Back early (a copy of the task): not due yet, nothing read or written.
    assert!(matches!(
        w.run_at(at - time::Duration::seconds(30)).await,
        DeliveryOutcome::Wait { .. }
    ));

    w.mem.store.set_suspended(&w.task.tenant_id, false);
    assert_eq!(w.run_at(at).await, DeliveryOutcome::Delivered { status: 200 });
    let r = w.record();
    assert_eq!(
        (r.state, r.attempts, r.reason.as_deref()),
        (DeliveryState::Succeeded, 1, None)
    );
    let a = w.mem.attempts.lock().unwrap()[0].clone();
    assert_eq!((a.attempt, a.trigger), (1, Trigger::Scheduled));
    assert_eq!(
        w.header(0, "webhook-id").as_deref(),
        Some(crate::ids::webhook_id(&w.task.tenant_id, &w.task.event_id).as_str())
    );
}

#[tokio::test]
async fn a_suspension_in_the_middle_of_retries_keeps_the_count_and_the_schedule_goes_on() {
    let w = world(URL, fixed(60, 3));
    w.answers(vec![answer(500, None)]);
    assert!(matches!(w.run_at(t0()).await, DeliveryOutcome::Retry { .. }));
    w.mem.store.set_suspended(&w.task.tenant_id, true);
    let due = t0() + time::Duration::seconds(60);
    for i in 0..100 {
        let at = due + std_to_time(recheck()) * i;
        assert_eq!(w.run_at(at).await, DeliveryOutcome::Wait { delay: recheck() });
    }
    let r = w.record();
    assert_eq!((r.attempts, r.round_attempts), (1, 1), "waiting is not an attempt");
    assert_eq!(w.sent(), 1);

    w.mem.store.set_suspended(&w.task.tenant_id, false);
    w.answers(vec![answer(500, None)]);
    let at = due + std_to_time(recheck()) * 100;
    assert_eq!(
        w.run_at(at).await,
        DeliveryOutcome::Retry {
            delay: Duration::from_secs(60)
        }
    );
    let r = w.record();
    assert_eq!((r.attempts, r.round_attempts, r.reason), (2, 2, None));
}

#[tokio::test]
async fn only_the_suspended_tenants_deliveries_wait() {
    let w = world(URL, RetryPolicy::default());
    w.mem.store.set_suspended(&TenantId::parse("other").unwrap(), true);
    assert_eq!(w.run_at(t0()).await, DeliveryOutcome::Delivered { status: 200 });
}

#[tokio::test]
async fn the_wait_is_always_a_new_message_and_time_scaled() {
    // However often the task was received and however old its message:
    // sent again, so neither the receive budget nor retention ends it.
    let limits = QueueLimits::default();
    let worn = Received {
        receive_count: limits.max_receive_count - 1,
        age: limits.retention - Duration::from_secs(60),
    };
    for recheck in [Duration::ZERO, recheck(), Duration::from_secs(86_400)] {
        let mut w = world(URL, RetryPolicy::default());
        w.d.config.suspended_recheck = recheck;
        w.mem.store.set_suspended(&w.task.tenant_id, true);
        let DeliveryOutcome::Wait { delay } = w.run_at(t0()).await else {
            panic!("waits")
        };
        assert!(
            (Duration::from_secs(1)..=MAX_SUSPENDED_RECHECK).contains(&delay),
            "{delay:?}"
        );
        assert!(matches!(
            requeue::plan(delay, WaitKind::NotAttempted, worn, &limits),
            Requeue::Resend { .. }
        ));
    }
    let mut w = world(URL, RetryPolicy::default());
    w.d.config.time_scale = TimeScale::parse("0.001").unwrap();
    w.mem.store.set_suspended(&w.task.tenant_id, true);
    assert_eq!(
        w.run_at(t0()).await,
        DeliveryOutcome::Wait {
            delay: Duration::from_millis(300)
        }
    );
}
