//! The reconciler: no delivery stays `retrying` without a task behind it.
//!
//! A retrying delivery's record says when its next attempt is due, and its
//! task sits on the deliveries queue until then. If the task is lost (a
//! message deleted by hand, a queue purged, a message dropped by SQS), the
//! record would say `retrying` forever. The monitor's sweep finds every
//! retrying delivery whose next attempt is overdue by more than a margin
//! (the due index: one query per shard, oldest first) and, for each:
//!
//! 1. claims it: a conditional write that raises the record's
//!    `task_generation` and moves its due time on by the margin, only if
//!    the record is still as read (a delivery that acted meanwhile wins);
//! 2. if the event is still stored, rebuilds the task from it (the same
//!    webhook body, byte for byte) with the new generation and sends it to
//!    the deliveries queue, due now. The old copy, if it was only late and
//!    turns up after all, is dropped by delivery as superseded;
//! 3. if the event is gone (its retention passed), the task cannot be
//!    rebuilt: the delivery is recorded `failed` with reason `task_lost`
//!    and the tenant gets a `delivery.exhausted` operational event saying so.
//!
//! A crash between the claim and the send leaves the record due again one
//! margin later, when the next sweep takes it. Each run handles at most
//! `limit` deliveries; the rest wait for the next run.

use crate::delivery::{exhausted_data, notice};
use crate::error::PortError;
use crate::event_type::OperationalType;
use crate::model::{DeliveryRecord, DeliveryState};
use crate::ports::{DeliveryLog, EventStore, TaskQueue};
use crate::{DeliveryTask, FanoutTask};
use serde::Serialize;
use serde_json::json;
use std::future::Future;
use time::{Duration, OffsetDateTime};

/// The reason a delivery whose task could not be rebuilt fails with.
pub const TASK_LOST: &str = "task_lost";

/// The deliveries the sweep reads and claims.
pub trait OverdueDeliveries: Sync {
    /// Retrying deliveries whose next attempt was due before `before`,
    /// oldest first, at most `limit`.
    fn overdue(
        &self,
        before: OffsetDateTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeliveryRecord>, PortError>> + Send;
    /// Sets the delivery's `task_generation` to `generation` and its next
    /// attempt to `next`, if it is still retrying and due at the time
    /// `seen` says; `Ok(false)` if it changed meanwhile.
    fn claim(
        &self,
        seen: &DeliveryRecord,
        generation: u32,
        next: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Overdue deliveries found.
    pub overdue: u64,
    /// Tasks rebuilt and sent again.
    pub requeued: u64,
    /// Deliveries failed because their event is gone.
    pub lost: u64,
}

/// The sweep's ports and settings.
pub struct Reconciler<O, E, L, Q, F> {
    /// Where overdue deliveries are found.
    pub deliveries: O,
    /// The event store, to rebuild a lost task from its event.
    pub events: E,
    /// The delivery log, where lost deliveries are marked failed.
    pub log: L,
    /// The deliveries queue.
    pub queue: Q,
    /// Where operational events go (the fan-out queue).
    pub ops: F,
    /// How overdue a next attempt must be before its task counts as lost.
    pub margin: Duration,
    /// The most deliveries one sweep handles.
    pub limit: usize,
}

impl<O, E, L, Q, F> Reconciler<O, E, L, Q, F>
where
    O: OverdueDeliveries,
    E: EventStore,
    L: DeliveryLog,
    Q: TaskQueue<DeliveryTask>,
    F: TaskQueue<FanoutTask>,
{
    /// One sweep at `now`. Stops at the first error, with what it did so far
    /// lost to the report but not to the records (each step is durable).
    pub async fn sweep(&self, now: OffsetDateTime) -> Result<Swept, PortError> {
        let overdue = self.deliveries.overdue(now - self.margin, self.limit).await?;
        let mut swept = Swept {
            overdue: overdue.len() as u64,
            ..Swept::default()
        };
        for record in overdue {
            if record.state != DeliveryState::Retrying {
                continue;
            }
            let generation = record.task_generation + 1;
            if !self.deliveries.claim(&record, generation, now + self.margin).await? {
                continue;
            }
            let event = self.events.find_event(&record.tenant_id, &record.event_id, now).await?;
            match event {
                Some(event) => {
                    let mut task = DeliveryTask::new(
                        &event.envelope,
                        &record.endpoint_id,
                        event.envelope.webhook_body(),
                        record.created_at,
                    );
                    task.generation = generation;
                    task.operational = record.operational;
                    self.queue.send_all(&[task]).await?;
                    tracing::warn!(tenant_id = %record.tenant_id, delivery_id = %record.delivery_id, generation, "overdue delivery's task sent again");
                    swept.requeued += 1;
                }
                None => {
                    self.give_up(record, generation, now).await?;
                    swept.lost += 1;
                }
            }
        }
        Ok(swept)
    }

    /// Tells the tenant, then records the delivery failed (a crash between
    /// the two leaves it overdue, and the next sweep tells again rather
    /// than never).
    async fn give_up(&self, record: DeliveryRecord, generation: u32, now: OffsetDateTime) -> Result<(), PortError> {
        if !record.operational {
            self.tell_lost(&record, now).await?;
        }
        tracing::error!(tenant_id = %record.tenant_id, delivery_id = %record.delivery_id, "overdue delivery's task is lost and its event gone; failed");
        let failed = DeliveryRecord {
            state: DeliveryState::Failed,
            reason: Some(TASK_LOST.to_string()),
            next_attempt_at: None,
            updated_at: now,
            task_generation: generation,
            ..record
        };
        self.log.record_delivery(&failed).await
    }

    /// The `delivery.exhausted` notice of a lost delivery, to the tenant's
    /// other endpoints (a lost notice tells no one: see `give_up`).
    async fn tell_lost(&self, record: &DeliveryRecord, now: OffsetDateTime) -> Result<(), PortError> {
        let mut data = exhausted_data(record, record.attempts, record.last_status_code);
        data.insert("reason".into(), json!(TASK_LOST));
        let task = notice(
            &record.tenant_id,
            &record.endpoint_id,
            OperationalType::DeliveryExhausted,
            data,
            now,
        );
        self.ops.send_all(&[task]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::parse_event;
    use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
    use crate::memory::{Memory, MemoryStore};
    use crate::model::{
        ClaimOutcome, DeliveryState, EventRecord, InsertOutcome, KeyClaim, SendError, WebhookRequest, WebhookResponse,
    };
    use std::sync::{Arc, Mutex};

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    /// The overdue index and the event store, in memory, over the
    /// in-memory delivery log.
    #[derive(Default)]
    struct World {
        mem: Memory,
        events: Mutex<Vec<EventRecord>>,
        /// Claims that lose, as if a delivery wrote first.
        contested: Mutex<Vec<DeliveryId>>,
    }

    impl OverdueDeliveries for &World {
        async fn overdue(&self, before: OffsetDateTime, limit: usize) -> Result<Vec<DeliveryRecord>, PortError> {
            let mut due: Vec<DeliveryRecord> = self
                .mem
                .records
                .lock()
                .unwrap()
                .values()
                .filter(|r| r.state == DeliveryState::Retrying && r.next_attempt_at.is_some_and(|n| n < before))
                .cloned()
                .collect();
            due.sort_by_key(|r| r.next_attempt_at);
            due.truncate(limit);
            Ok(due)
        }
        async fn claim(&self, seen: &DeliveryRecord, generation: u32, next: OffsetDateTime) -> Result<bool, PortError> {
            if self.contested.lock().unwrap().contains(&seen.delivery_id) {
                return Ok(false);
            }
            let mut records = self.mem.records.lock().unwrap();
            let r = records.get_mut(&seen.delivery_id).unwrap();
            if r.state != DeliveryState::Retrying || r.next_attempt_at != seen.next_attempt_at {
                return Ok(false);
            }
            r.task_generation = generation;
            r.next_attempt_at = Some(next);
            Ok(true)
        }
    }

    impl EventStore for &World {
        async fn find_event(
            &self,
            tenant: &TenantId,
            id: &EventId,
            _now: OffsetDateTime,
        ) -> Result<Option<EventRecord>, PortError> {
            Ok(self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| &e.envelope.tenant_id == tenant && &e.envelope.id == id)
                .cloned())
        }
        async fn insert_event(&self, _: &EventRecord) -> Result<InsertOutcome, PortError> {
            unreachable!("the sweep never inserts")
        }
        async fn claim_key(&self, _: &KeyClaim) -> Result<ClaimOutcome, PortError> {
            unreachable!("the sweep never claims keys")
        }
    }

    /// A retrying delivery of a new event, due at `t(due)`; its event is
    /// stored if `stored`.
    fn retrying(w: &World, n: u32, due: i64, stored: bool) -> DeliveryTask {
        let tenant = TenantId::parse("acme").unwrap();
        let body = format!(r#"{{"type":"order.placed","data":{{"n":{n}}}}}"#);
        let env = parse_event(
            body.as_bytes(),
            tenant,
            &crate::envelope::Source::parse("api").unwrap(),
            t(0),
            Default::default(),
        )
        .unwrap();
        let task = DeliveryTask::new(&env, &EndpointId::generate(), env.webhook_body(), t(1));
        let mut record = DeliveryRecord::new(&task, DeliveryState::Retrying, t(2));
        record.attempts = 1;
        record.round_attempts = 1;
        record.next_attempt_at = Some(t(due));
        w.mem.records.lock().unwrap().insert(task.delivery_id.clone(), record);
        if stored {
            w.events.lock().unwrap().push(EventRecord {
                envelope: env,
                received_at: t(0),
                expires_at: t(86_400),
            });
        }
        task
    }

    fn reconciler(w: &World) -> Reconciler<&World, &World, Memory, Memory, Memory> {
        Reconciler {
            deliveries: w,
            events: w,
            log: w.mem.clone(),
            queue: w.mem.clone(),
            ops: w.mem.clone(),
            margin: Duration::minutes(10),
            limit: 100,
        }
    }

    #[tokio::test]
    async fn an_overdue_delivery_with_its_event_is_sent_again_as_a_newer_copy() {
        let w = World::default();
        let lost = retrying(&w, 1, 100, true);
        let on_time = retrying(&w, 2, 500, true);
        let swept = reconciler(&w).sweep(t(100 + 601)).await.unwrap();
        assert_eq!(
            swept,
            Swept {
                overdue: 1,
                requeued: 1,
                lost: 0
            }
        );
        // Sent to the deliveries queue (the in-memory store keeps what is
        // sent to a `TaskQueue<DeliveryTask>` with the dead letters).
        let sent = w.mem.dead_letters.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].delivery_id, lost.delivery_id);
        assert_eq!(sent[0].payload, lost.payload, "the same webhook body, byte for byte");
        assert_eq!(sent[0].created_at, lost.created_at);
        assert_eq!(sent[0].generation, 1);
        let records = w.mem.records.lock().unwrap();
        assert_eq!(records[&lost.delivery_id].task_generation, 1);
        assert_eq!(records[&lost.delivery_id].state, DeliveryState::Retrying);
        assert_eq!(records[&lost.delivery_id].next_attempt_at, Some(t(701 + 600)));
        assert_eq!(records[&on_time.delivery_id].task_generation, 0);
    }

    #[tokio::test]
    async fn an_overdue_delivery_whose_event_is_gone_fails_and_the_tenant_is_told() {
        let w = World::default();
        let task = retrying(&w, 1, 100, false);
        let swept = reconciler(&w).sweep(t(1000)).await.unwrap();
        assert_eq!((swept.requeued, swept.lost), (0, 1));
        let record = w.mem.records.lock().unwrap()[&task.delivery_id].clone();
        assert_eq!(record.state, DeliveryState::Failed);
        assert_eq!(record.reason.as_deref(), Some(TASK_LOST));
        assert_eq!(record.next_attempt_at, None);
        let ops = w.mem.ops.lock().unwrap().clone();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].envelope.event_type.as_str(), "delivery.exhausted");
        assert_eq!(ops[0].envelope.data["reason"], TASK_LOST);
        assert_eq!(ops[0].envelope.data["delivery_id"], json!(task.delivery_id));
        assert_eq!(ops[0].skip_endpoint.as_ref(), Some(&task.endpoint_id));
    }

    #[tokio::test]
    async fn a_delivery_that_moved_on_meanwhile_is_left_alone() {
        let w = World::default();
        let task = retrying(&w, 1, 100, true);
        w.contested.lock().unwrap().push(task.delivery_id.clone());
        let swept = reconciler(&w).sweep(t(1000)).await.unwrap();
        assert_eq!((swept.overdue, swept.requeued, swept.lost), (1, 0, 0));
        assert!(w.mem.dead_letters.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_older_copy_is_dropped_once_a_newer_one_was_sent() {
        use crate::delivery::{Deliverer, DeliveryConfig, DeliveryOutcome};
        let w = World::default();
        let task = retrying(&w, 1, 100, true);
        reconciler(&w).sweep(t(1000)).await.unwrap();
        let newer = w.mem.dead_letters.lock().unwrap()[0].clone();
        let store: Memory = Arc::new(MemoryStore::default());
        let d = Deliverer {
            registry: store.clone(),
            sender: NeverCalled,
            log: w.mem.clone(),
            dead_letters: store.clone(),
            ops: store.clone(),
            config: DeliveryConfig::default(),
        };
        let old = d.deliver(&task, || t(1001), || 0.5).await.unwrap();
        assert_eq!(old, DeliveryOutcome::Superseded);
        // The newer copy goes on to the endpoint (here: none registered).
        let new = d.deliver(&newer, || t(1001), || 0.5).await.unwrap();
        assert_ne!(new, DeliveryOutcome::Superseded);
        // A replay the API asks for is never superseded.
        let mut replay = task.clone();
        replay.manual_request = Some("req_1".into());
        assert_ne!(
            d.deliver(&replay, || t(1002), || 0.5).await.unwrap(),
            DeliveryOutcome::Superseded
        );
    }

    struct NeverCalled;

    impl crate::ports::WebhookSender for NeverCalled {
        async fn send(&self, _: &WebhookRequest) -> Result<WebhookResponse, SendError> {
            unreachable!("no endpoint is called here")
        }
    }
}
