//! The delivery rules over in-memory ports: every decision without a network.

use super::*;
use crate::endpoint::EndpointUrl;
use crate::endpoint::{Circuit, CustomHeaders};
use crate::envelope::{IngestLimits, Source, parse_event};
use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
use crate::memory::{Memory, MemoryStore};
use crate::model::{SendError, WebhookRequest, WebhookResponse};
use crate::retry::{RetryPolicy, TimeScale};
use crate::signing::verify;
use crate::ssrf::{IpNet, SsrfPolicy};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The in-memory ports of `crate::memory`, plus a sender that records
/// the requests and answers from a script (200 when it runs out).
#[derive(Default)]
struct Mem {
    store: Memory,
    answers: Mutex<VecDeque<Result<WebhookResponse, SendError>>>,
    sent: Mutex<Vec<WebhookRequest>>,
}

impl std::ops::Deref for Mem {
    type Target = MemoryStore;
    fn deref(&self) -> &MemoryStore {
        &self.store
    }
}

type M = Arc<Mem>;

impl WebhookSender for M {
    async fn send(&self, r: &WebhookRequest) -> Result<WebhookResponse, SendError> {
        self.sent.lock().unwrap().push(r.clone());
        self.answers.lock().unwrap().pop_front().unwrap_or(Ok(ok(200)))
    }
}

fn ok(status: u16) -> WebhookResponse {
    WebhookResponse {
        status,
        body: String::new(),
        retry_after: None,
    }
}

fn answer(status: u16, retry_after: Option<&str>) -> Result<WebhookResponse, SendError> {
    Ok(WebhookResponse {
        status,
        body: format!("status {status}"),
        retry_after: retry_after.map(str::to_string),
    })
}

fn t0() -> OffsetDateTime {
    crate::time_util::parse_rfc3339("2026-11-29T10:00:00Z").unwrap()
}

struct World {
    mem: M,
    d: Deliverer<Memory, M, Memory, Memory, Memory>,
    task: DeliveryTask,
    ep: EndpointId,
}

fn world(url: &str, policy: RetryPolicy) -> World {
    let tenant = TenantId::parse("acme").unwrap();
    let env = parse_event(
        br#"{"id":"evt_1","type":"user.created","data":{"a":1}}"#,
        tenant.clone(),
        &Source::parse("api").unwrap(),
        t0(),
        IngestLimits::default(),
    )
    .unwrap();
    let mut ep = Endpoint::new(tenant, EndpointUrl::parse(url).unwrap(), vec![], t0());
    ep.retry_policy = policy;
    let task = DeliveryTask::new(&env, &ep.id, env.webhook_body(), t0());
    let mem = M::default();
    let id = ep.id.clone();
    mem.endpoints.lock().unwrap().insert(id.clone(), ep);
    let config = DeliveryConfig {
        ssrf: SsrfPolicy {
            allow_http: true,
            allow: vec![IpNet::parse("127.0.0.0/8").unwrap()],
        },
        circuit: CircuitConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(60),
            disable_after: Duration::from_secs(3600),
            stall_after: None,
        },
        ..DeliveryConfig::default()
    };
    let d = Deliverer {
        registry: mem.store.clone(),
        sender: mem.clone(),
        log: mem.store.clone(),
        dead_letters: mem.store.clone(),
        ops: mem.store.clone(),
        config,
    };
    World { mem, d, task, ep: id }
}

fn fixed(delay_secs: u64, max_attempts: u32) -> RetryPolicy {
    serde_json::from_value(json!({"kind": "fixed", "delay_secs": delay_secs, "max_attempts": max_attempts})).unwrap()
}

impl World {
    async fn run_at(&self, at: OffsetDateTime) -> DeliveryOutcome {
        self.d.deliver(&self.task, || at, || 0.5).await.unwrap()
    }
    fn answers(&self, a: Vec<Result<WebhookResponse, SendError>>) {
        self.mem.answers.lock().unwrap().extend(a);
    }
    fn record(&self) -> DeliveryRecord {
        self.mem.records.lock().unwrap()[&self.task.delivery_id].clone()
    }
    fn endpoint(&self) -> Endpoint {
        self.mem.endpoints.lock().unwrap()[&self.ep].clone()
    }
    fn sent(&self) -> usize {
        self.mem.sent.lock().unwrap().len()
    }
    fn header(&self, n: usize, name: &str) -> Option<String> {
        self.mem.sent.lock().unwrap()[n]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
    }
}

const URL: &str = "http://127.0.0.1:9/hook";

#[tokio::test]
async fn a_2xx_is_delivered_and_recorded() {
    let w = world(URL, RetryPolicy::default());
    w.answers(vec![answer(204, None)]);
    assert_eq!(w.run_at(t0()).await, DeliveryOutcome::Delivered { status: 204 });
    let r = w.record();
    assert_eq!(
        (r.state, r.attempts, r.round_attempts, r.last_status_code),
        (DeliveryState::Succeeded, 1, 1, Some(204))
    );
    let a = w.mem.attempts.lock().unwrap()[0].clone();
    assert_eq!(r.last_duration_ms, Some(a.duration_ms));
    assert!(a.succeeded && a.attempt == 1 && a.next_attempt_at.is_none() && a.trigger == Trigger::Scheduled);
    assert_eq!(r.first_attempt, Some(a), "the first attempt travels in the record");
    // The same task again (SQS redelivery) does nothing.
    assert_eq!(w.run_at(t0()).await, DeliveryOutcome::AlreadyDone);
    assert_eq!(w.sent(), 1);
}

#[tokio::test]
async fn requests_are_signed_with_a_stable_id_and_carry_custom_headers() {
    let w = world(URL, RetryPolicy::default());
    {
        let mut eps = w.mem.endpoints.lock().unwrap();
        let ep = eps.get_mut(&w.ep).unwrap();
        ep.headers = CustomHeaders::parse([("x-team".to_string(), "billing".to_string())].into()).unwrap();
    }
    w.run_at(t0()).await;
    let msg_id = crate::ids::webhook_id(&w.task.tenant_id, &w.task.event_id);
    assert!(msg_id.starts_with("msg_"));
    assert_eq!(w.header(0, "webhook-id").as_deref(), Some(msg_id.as_str()));
    assert_eq!(w.header(0, "x-team").as_deref(), Some("billing"));
    assert_eq!(w.header(0, "content-type").as_deref(), Some("application/json"));
    assert!(w.header(0, "user-agent").unwrap().starts_with("Switchyard/"));
    let ep = w.endpoint();
    let ts = t0().unix_timestamp();
    let sig = w.header(0, "webhook-signature").unwrap();
    assert_eq!(
        verify(
            [&ep.secret],
            &msg_id,
            &ts.to_string(),
            &sig,
            w.task.payload.as_bytes(),
            ts,
            300
        ),
        Ok(())
    );
}

#[tokio::test]
async fn during_rotation_both_secrets_sign() {
    let w = world(URL, RetryPolicy::default());
    let (old, new) = {
        let mut eps = w.mem.endpoints.lock().unwrap();
        let ep = eps.get_mut(&w.ep).unwrap();
        let old = ep.secret.clone();
        let new = ep.rotate_secret(t0(), time::Duration::hours(24)).clone();
        (old, new)
    };
    w.run_at(t0()).await;
    let msg_id = w.header(0, "webhook-id").unwrap();
    let sig = w.header(0, "webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 2);
    let ts = t0().unix_timestamp();
    for s in [&old, &new] {
        assert_eq!(
            verify([s], &msg_id, &ts.to_string(), &sig, w.task.payload.as_bytes(), ts, 300),
            Ok(())
        );
    }
}

#[tokio::test]
async fn a_failure_is_retried_on_the_policys_schedule() {
    let w = world(URL, RetryPolicy::default());
    w.answers(vec![answer(500, None)]);
    // unit_random = 0.5 means no jitter: the default schedule starts at 5 s.
    assert_eq!(
        w.run_at(t0()).await,
        DeliveryOutcome::Retry {
            delay: Duration::from_secs(5)
        }
    );
    let r = w.record();
    assert_eq!(
        (r.state, r.attempts, r.last_status_code),
        (DeliveryState::Retrying, 1, Some(500))
    );
    assert_eq!(r.next_attempt_at, Some(t0() + time::Duration::seconds(5)));
    let a = w.mem.attempts.lock().unwrap()[0].clone();
    assert_eq!(
        (a.error_kind.as_deref(), a.response_body.as_deref()),
        (Some("http_status"), Some("status 500"))
    );
    assert_eq!(a.next_attempt_at, r.next_attempt_at);

    // Back early: put back to sleep, not attempted.
    assert_eq!(
        w.run_at(t0() + time::Duration::seconds(1)).await,
        DeliveryOutcome::Wait {
            delay: Duration::from_secs(4)
        }
    );
    assert_eq!(w.sent(), 1);

    // On time: attempt 2; its failure schedules the second delay (5 min).
    w.answers(vec![Err(SendError::Timeout)]);
    let out = w.run_at(t0() + time::Duration::seconds(5)).await;
    assert_eq!(
        out,
        DeliveryOutcome::Retry {
            delay: Duration::from_secs(300)
        }
    );
    assert_eq!(w.record().attempts, 2);
    assert_eq!(w.mem.attempts.lock().unwrap()[1].error_kind.as_deref(), Some("timeout"));
    assert_eq!(
        w.record().first_attempt,
        Some(a),
        "the first attempt stays in the record"
    );
}

#[tokio::test]
async fn jitter_moves_delays_by_up_to_twenty_percent() {
    for (unit, expected) in [(0.0, 4.0), (0.5, 5.0), (0.999_999, 6.0)] {
        let w = world(URL, RetryPolicy::default());
        w.answers(vec![answer(500, None)]);
        let DeliveryOutcome::Retry { delay } = w.d.deliver(&w.task, t0, || unit).await.unwrap() else {
            panic!()
        };
        assert!((delay.as_secs_f64() - expected).abs() < 0.01, "{unit}: {delay:?}");
    }
}

#[tokio::test]
async fn status_codes_are_judged_as_designed() {
    // (status, Retry-After) -> delay before the next attempt (fixed policy: 10 s).
    let cases: &[(u16, Option<&str>, Option<u64>)] = &[
        (301, None, Some(10)),
        (302, Some("600"), Some(10)), // Retry-After only counts for 429/502/503/504
        (400, None, Some(10)),
        (404, Some("600"), Some(10)),
        (429, Some("120"), Some(120)),
        (429, Some("1"), Some(10)), // never sooner than our own schedule
        (503, Some("120"), Some(120)),
        (502, None, Some(10)),
        (504, Some("99999999"), Some(crate::retry::MAX_RETRY_AFTER.as_secs())),
        (500, Some("120"), Some(10)),
    ];
    for &(status, retry_after, delay) in cases {
        let w = world(URL, fixed(10, 5));
        w.answers(vec![answer(status, retry_after)]);
        let out = w.run_at(t0()).await;
        assert_eq!(
            out,
            DeliveryOutcome::Retry {
                delay: Duration::from_secs(delay.unwrap())
            },
            "{status} {retry_after:?}"
        );
    }
}

#[tokio::test]
async fn exhaustion_fails_the_delivery_into_the_dlq_and_tells_the_tenant() {
    let w = world(URL, fixed(10, 2));
    w.answers(vec![answer(500, None), answer(503, None)]);
    assert!(matches!(w.run_at(t0()).await, DeliveryOutcome::Retry { .. }));
    let out = w.run_at(t0() + time::Duration::seconds(10)).await;
    assert_eq!(out, DeliveryOutcome::Failed { reason: "exhausted" });
    let r = w.record();
    assert_eq!(
        (r.state, r.attempts, r.reason.as_deref()),
        (DeliveryState::Failed, 2, Some("exhausted"))
    );
    let dead = w.mem.dead_letters.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].delivery_id, w.task.delivery_id);
    assert_eq!(dead[0].dlq_reason.as_deref(), Some("exhausted"));
    let ops = w.mem.ops.lock().unwrap().clone();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].envelope.event_type.as_str(), "delivery.exhausted");
    assert_eq!(ops[0].envelope.tenant_id.as_str(), "acme");
    assert_eq!(ops[0].envelope.data["delivery_id"], json!(w.task.delivery_id));
    assert_eq!(ops[0].envelope.data["attempts"], 2);
    assert_eq!(
        ops[0].skip_endpoint.as_ref(),
        Some(&w.ep),
        "never told to the failing endpoint itself"
    );
    // Once failed, a repeat of the message changes nothing.
    assert_eq!(
        w.run_at(t0() + time::Duration::seconds(60)).await,
        DeliveryOutcome::AlreadyDone
    );
    assert_eq!(w.sent(), 2);
}

#[tokio::test]
async fn a_redrive_from_the_dlq_starts_a_new_round() {
    let w = world(URL, fixed(10, 1));
    w.answers(vec![answer(500, None)]);
    assert_eq!(w.run_at(t0()).await, DeliveryOutcome::Failed { reason: "exhausted" });
    let redriven = w.mem.dead_letters.lock().unwrap()[0].clone();
    w.answers(vec![answer(200, None)]);
    let out =
        w.d.deliver(&redriven, || t0() + time::Duration::hours(1), || 0.5)
            .await
            .unwrap();
    assert_eq!(out, DeliveryOutcome::Delivered { status: 200 });
    let r = w.record();
    assert_eq!(
        (r.state, r.attempts, r.round_attempts),
        (DeliveryState::Succeeded, 2, 1)
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_ends_the_delivery() {
    let w = world(URL, RetryPolicy::default());
    w.answers(vec![answer(410, None)]);
    assert_eq!(
        w.run_at(t0()).await,
        DeliveryOutcome::Failed {
            reason: "endpoint_gone"
        }
    );
    let ep = w.endpoint();
    assert!(!ep.enabled);
    assert!(ep.disabled_reason.unwrap().contains("410"));
    let ops = w.mem.ops.lock().unwrap().clone();
    assert_eq!(
        ops.iter().map(|o| o.envelope.event_type.as_str()).collect::<Vec<_>>(),
        ["endpoint.disabled"]
    );
    assert_eq!(
        w.mem.dead_letters.lock().unwrap()[0].dlq_reason.as_deref(),
        Some("endpoint_gone")
    );
}

#[tokio::test]
async fn deleted_or_disabled_endpoints_are_skipped_without_sending() {
    let w = world(URL, RetryPolicy::default());
    w.mem.endpoints.lock().unwrap().get_mut(&w.ep).unwrap().enabled = false;
    assert_eq!(
        w.run_at(t0()).await,
        DeliveryOutcome::Skipped {
            reason: "endpoint_disabled"
        }
    );
    let w = world(URL, RetryPolicy::default());
    w.mem.endpoints.lock().unwrap().clear();
    assert_eq!(
        w.run_at(t0()).await,
        DeliveryOutcome::Skipped {
            reason: "endpoint_deleted"
        }
    );
    assert_eq!(w.record().state, DeliveryState::Skipped);
    assert_eq!(w.sent(), 0);
}

#[tokio::test]
async fn a_refused_url_is_never_called() {
    for url in [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
    ] {
        let w = world(url, RetryPolicy::default());
        assert_eq!(
            w.run_at(t0()).await,
            DeliveryOutcome::Failed { reason: "url_refused" },
            "{url}"
        );
        assert_eq!(w.sent(), 0);
        let a = w.mem.attempts.lock().unwrap()[0].clone();
        assert_eq!(a.error_kind.as_deref(), Some("url_refused"));
        assert_eq!(w.record().last_duration_ms, None, "nothing was measured");
    }
}

/// A sender whose stall timer fires at once and whose request is answered
/// `status` only once `release` is set: an attempt that stalls.
struct Stalling {
    mem: M,
    release: std::sync::atomic::AtomicBool,
    status: u16,
}

impl WebhookSender for Arc<Stalling> {
    async fn send(&self, r: &WebhookRequest) -> Result<WebhookResponse, SendError> {
        self.mem.sent.lock().unwrap().push(r.clone());
        std::future::poll_fn(|cx| {
            if self.release.load(std::sync::atomic::Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
        Ok(ok(self.status))
    }
    fn wait(&self, _: Duration) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

type StallingDeliverer = Deliverer<Memory, Arc<Stalling>, Memory, Memory, Memory>;

/// World `w`'s deliverer with a stalling sender and `stall_after` set; and
/// a second task for the same endpoint.
fn stalling(w: &World, status: u16) -> (StallingDeliverer, Arc<Stalling>, DeliveryTask) {
    let sender = Arc::new(Stalling {
        mem: w.mem.clone(),
        release: false.into(),
        status,
    });
    let mut config = w.d.config.clone();
    config.circuit.stall_after = Some(Duration::from_secs(5));
    let d = Deliverer {
        registry: w.mem.store.clone(),
        sender: sender.clone(),
        log: w.mem.store.clone(),
        dead_letters: w.mem.store.clone(),
        ops: w.mem.store.clone(),
        config,
    };
    let event_id = EventId::parse("evt_2").unwrap();
    let other = DeliveryTask {
        delivery_id: DeliveryId::derive(&w.task.tenant_id, &event_id, &w.ep),
        event_id,
        ..w.task.clone()
    };
    (d, sender, other)
}

/// Runs `w.task` with the stalling deliverer and, once its attempt has
/// stalled, the other task; then lets the stalled attempt answer.
async fn stall_then_other(w: &World, status: u16) -> (DeliveryOutcome, DeliveryOutcome, Circuit) {
    let (d, sender, other) = stalling(w, status);
    let stalled = d.deliver(&w.task, t0, || 0.5);
    let meanwhile = async {
        while w.endpoint().circuit.open_until_ms.is_none() {
            tokio::task::yield_now().await;
        }
        let out = d.deliver(&other, || t0() + time::Duration::seconds(1), || 0.5).await;
        let held = w.endpoint().circuit;
        sender.release.store(true, std::sync::atomic::Ordering::SeqCst);
        (out, held)
    };
    let (first, (second, held)) = tokio::join!(stalled, meanwhile);
    (first.unwrap(), second.unwrap(), held)
}

#[tokio::test]
async fn a_stalled_attempt_holds_the_circuit_open_and_its_success_closes_it() {
    let w = world(URL, RetryPolicy::default());
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let (first, second, held) = stall_then_other(&w, 200).await;
    // While the first attempt hung, the circuit was held open for the probe
    // window (30 s by default) from its start; the other delivery to the
    // endpoint was deferred without calling it.
    assert_eq!(held.open_until_ms, Some(ms(t0()) + 30_000));
    assert_eq!(held.failures, 0);
    assert_eq!(
        second,
        DeliveryOutcome::Retry {
            delay: Duration::from_secs(29)
        }
    );
    assert_eq!(w.sent(), 1, "the endpoint was called once");
    let attempts = w.mem.attempts.lock().unwrap().clone();
    let other = attempts.iter().find(|a| a.delivery_id != w.task.delivery_id).unwrap();
    assert_eq!(other.error_kind.as_deref(), Some("circuit_open"));
    // The stalled attempt answered 2xx in the end: delivered, circuit closed.
    assert_eq!(first, DeliveryOutcome::Delivered { status: 200 });
    assert_eq!(w.endpoint().circuit, Circuit::default());
}

#[tokio::test]
async fn a_stalled_attempt_that_fails_counts_once_and_the_hold_stands() {
    let w = world(URL, fixed(1, 50));
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let (first, second, _) = stall_then_other(&w, 503).await;
    assert!(matches!(first, DeliveryOutcome::Retry { .. }), "{first:?}");
    assert!(matches!(second, DeliveryOutcome::Retry { .. }), "{second:?}");
    let c = w.endpoint().circuit;
    assert_eq!(c.failures, 1, "only the attempt that called the endpoint counts");
    assert_eq!(c.open_until_ms, Some(ms(t0()) + 30_000), "held until a probe may go");
    // After the hold, one delivery probes, as after any open period.
    let after = t0() + time::Duration::seconds(30);
    w.answers(vec![answer(200, None)]);
    assert_eq!(w.run_at(after).await, DeliveryOutcome::Delivered { status: 200 });
    assert_eq!(w.endpoint().circuit, Circuit::default());
}

#[tokio::test]
async fn an_attempt_that_answers_before_the_stall_timer_holds_nothing() {
    // The timer is ready at once, but so is the answer (a failure): the
    // answer wins, the failure counts, and nothing holds the circuit.
    let w = world(URL, RetryPolicy::default());
    let (d, sender, _) = stalling(&w, 503);
    sender.release.store(true, std::sync::atomic::Ordering::SeqCst);
    let out = d.deliver(&w.task, t0, || 0.5).await.unwrap();
    assert!(matches!(out, DeliveryOutcome::Retry { .. }), "{out:?}");
    let c = w.endpoint().circuit;
    assert_eq!((c.failures, c.open_until_ms), (1, None));
}

#[tokio::test]
async fn the_circuit_opens_defers_probes_and_closes() {
    let w = world(URL, fixed(1, 50));
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    // Three consecutive failures (the threshold) open the circuit for 60 s.
    w.answers(vec![answer(500, None), answer(500, None), answer(500, None)]);
    let mut t = t0();
    for _ in 0..3 {
        assert!(matches!(w.run_at(t).await, DeliveryOutcome::Retry { .. }));
        t += time::Duration::seconds(1);
    }
    let c = w.endpoint().circuit;
    assert_eq!(c.failures, 3);
    assert_eq!(c.open_until_ms, Some(ms(t0() + time::Duration::seconds(62))));

    // While open: deferred until it may close, without calling the endpoint.
    let out = w.run_at(t).await;
    assert_eq!(
        out,
        DeliveryOutcome::Retry {
            delay: Duration::from_secs(59)
        }
    );
    assert_eq!(w.sent(), 3);
    assert_eq!(
        w.mem.attempts.lock().unwrap().last().unwrap().error_kind.as_deref(),
        Some("circuit_open")
    );

    // After the open period, this delivery claims the probe; success closes it.
    t = t0() + time::Duration::seconds(62);
    w.answers(vec![answer(200, None)]);
    assert_eq!(w.run_at(t).await, DeliveryOutcome::Delivered { status: 200 });
    assert_eq!(w.sent(), 4);
    assert_eq!(w.endpoint().circuit, Circuit::default());
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again() {
    let w = world(URL, fixed(1, 50));
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    w.mem.endpoints.lock().unwrap().get_mut(&w.ep).unwrap().circuit = Circuit {
        failures: 7,
        failing_since_ms: Some(ms(t0())),
        open_until_ms: Some(ms(t0())),
    };
    w.answers(vec![answer(500, None)]);
    let t = t0() + time::Duration::seconds(5);
    assert!(matches!(w.run_at(t).await, DeliveryOutcome::Retry { .. }));
    assert_eq!(w.sent(), 1, "the probe called the endpoint");
    assert_eq!(
        w.endpoint().circuit.open_until_ms,
        Some(ms(t + time::Duration::seconds(60)))
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_too_long_is_disabled() {
    let w = world(URL, fixed(1, 50));
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    w.mem.endpoints.lock().unwrap().get_mut(&w.ep).unwrap().circuit = Circuit {
        failures: 1,
        failing_since_ms: Some(ms(t0())),
        open_until_ms: None,
    };
    w.answers(vec![answer(500, None)]);
    assert!(matches!(
        w.run_at(t0() + time::Duration::hours(2)).await,
        DeliveryOutcome::Retry { .. }
    ));
    let ep = w.endpoint();
    assert!(
        !ep.enabled,
        "disabled after an hour of failures (the configured period)"
    );
    let ops = w.mem.ops.lock().unwrap().clone();
    assert_eq!(ops[0].envelope.event_type.as_str(), "endpoint.disabled");
    assert_eq!(ops[0].envelope.data["endpoint_id"], json!(w.ep));
    // The next task for it is skipped.
    assert!(matches!(
        w.run_at(t0() + time::Duration::hours(3)).await,
        DeliveryOutcome::Skipped { .. } | DeliveryOutcome::AlreadyDone
    ));
}

#[tokio::test]
async fn a_time_scale_shrinks_every_delay() {
    let w = world(URL, RetryPolicy::default());
    let mut w = w;
    w.d.config.time_scale = TimeScale::parse("0.001").unwrap();
    w.answers(vec![answer(500, None)]);
    assert_eq!(
        w.run_at(t0()).await,
        DeliveryOutcome::Retry {
            delay: Duration::from_millis(5)
        }
    );
}

#[test]
fn bodies_are_truncated_on_character_boundaries() {
    assert_eq!(truncate_body(b"hello", 10), "hello");
    assert_eq!(truncate_body(b"hello", 3), "hel");
    assert_eq!(truncate_body("héllo".as_bytes(), 2), "h");
    assert_eq!(truncate_body(&[0xff, 0x41], 10), "\u{fffd}A");
    assert_eq!(truncate_body(&[b'x'; 5000], MAX_RECORDED_BODY).len(), MAX_RECORDED_BODY);
}

#[test]
fn only_2xx_is_success() {
    assert!(is_success(200) && is_success(204) && is_success(299));
    assert!(!is_success(301) && !is_success(304) && !is_success(199) && !is_success(410) && !is_success(500));
}

#[tokio::test]
async fn a_rate_limited_endpoint_gets_at_most_its_rate_each_second() {
    let w = world(URL, RetryPolicy::default());
    w.mem.endpoints.lock().unwrap().get_mut(&w.ep).unwrap().rate_limit =
        Some(crate::endpoint::RateLimit::new(2).unwrap());
    // Three deliveries due in the same second: two go out, the third waits
    // (no attempt counted) and goes out the next second.
    let mut tasks = Vec::new();
    for n in 0..3 {
        let mut t = w.task.clone();
        t.delivery_id = DeliveryId::parse(format!("dlv_rate{n}")).unwrap();
        tasks.push(t);
    }
    w.answers(vec![answer(200, None), answer(200, None), answer(200, None)]);
    let run = |t: &DeliveryTask, at: OffsetDateTime| {
        let d = &w.d;
        let t = t.clone();
        async move { d.deliver(&t, || at, || 0.5).await.unwrap() }
    };
    assert_eq!(run(&tasks[0], t0()).await, DeliveryOutcome::Delivered { status: 200 });
    assert_eq!(run(&tasks[1], t0()).await, DeliveryOutcome::Delivered { status: 200 });
    assert_eq!(
        run(&tasks[2], t0()).await,
        DeliveryOutcome::Wait {
            delay: Duration::from_millis(1500)
        }
    );
    assert_eq!(w.sent(), 2);
    assert!(!w.mem.records.lock().unwrap().contains_key(&tasks[2].delivery_id));
    let next = t0() + time::Duration::seconds(1);
    assert_eq!(run(&tasks[2], next).await, DeliveryOutcome::Delivered { status: 200 });
}

#[tokio::test]
async fn a_replay_request_starts_a_new_round_once_and_is_recorded_as_manual() {
    let w = world(URL, fixed(60, 2));
    w.answers(vec![answer(200, None)]);
    assert_eq!(w.run_at(t0()).await, DeliveryOutcome::Delivered { status: 200 });
    // The tenant asks for a resend of the succeeded delivery.
    let mut replay = w.task.clone();
    replay.manual_request = Some("rpl_1".into());
    w.answers(vec![answer(500, None), answer(200, None)]);
    let later = t0() + time::Duration::minutes(5);
    let first = w.d.deliver(&replay, || later, || 0.5).await.unwrap();
    assert!(matches!(first, DeliveryOutcome::Retry { .. }), "{first:?}");
    let a = w.mem.attempts.lock().unwrap().last().unwrap().clone();
    assert_eq!((a.attempt, a.trigger), (2, Trigger::Manual));
    let r = w.record();
    assert_eq!((r.state, r.round_attempts), (DeliveryState::Retrying, 1));
    // The same message back after its delay: an ordinary, scheduled retry.
    let retry_at = later + time::Duration::seconds(61);
    let second = w.d.deliver(&replay, || retry_at, || 0.5).await.unwrap();
    assert_eq!(second, DeliveryOutcome::Delivered { status: 200 });
    let a = w.mem.attempts.lock().unwrap().last().unwrap().clone();
    assert_eq!((a.attempt, a.trigger), (3, Trigger::Scheduled));
    // And once more: done, nothing sent.
    assert_eq!(
        w.d.deliver(&replay, || retry_at, || 0.5).await.unwrap(),
        DeliveryOutcome::AlreadyDone
    );
    assert_eq!(w.sent(), 3);
}

#[tokio::test]
async fn the_attempt_log_merges_the_first_attempt_once_and_in_order() {
    let w = world(URL, RetryPolicy::default());
    w.answers(vec![answer(500, None)]);
    w.run_at(t0()).await;
    let first = w.mem.attempts.lock().unwrap()[0].clone();
    let later = AttemptRecord {
        attempt: 2,
        ..first.clone()
    };
    let r = w.record();
    assert_eq!(r.attempt_log(vec![]), std::slice::from_ref(&first));
    assert_eq!(r.attempt_log(vec![later.clone()]), [first.clone(), later.clone()]);
    // Stored on its own as well (recorded before it moved into the record).
    assert_eq!(
        r.attempt_log(vec![later.clone(), first.clone()]),
        [first.clone(), later]
    );
    let without = DeliveryRecord {
        first_attempt: None,
        ..r
    };
    assert_eq!(without.attempt_log(vec![first.clone()]), [first]);
}

/// What fan-out makes of `f` for the world's endpoints (none filtered):
/// one task per endpoint but the one it skips, marked operational if `f`
/// is (fan-out's own test checks that it marks them).
fn fanned_out(w: &World, f: &FanoutTask) -> Vec<DeliveryTask> {
    let body = f.envelope.webhook_body();
    let mut ids: Vec<EndpointId> = w.mem.endpoints.lock().unwrap().keys().cloned().collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.iter()
        .filter(|id| f.skip_endpoint.as_ref() != Some(*id))
        .map(|id| DeliveryTask {
            operational: f.is_operational(),
            ..DeliveryTask::new(&f.envelope, id, body.clone(), t0())
        })
        .collect()
}

/// Three unfiltered endpoints of one tenant that fail everything, one
/// attempt each: every exhausted delivery tells the other two. A notice
/// that fails tells no one, so the feed stops after one generation of
/// notices: 3 deliveries, then 3 × 2 notices, then nothing (it grew
/// 3 · 2^g a generation, without end, when notices told about notices).
#[tokio::test]
async fn notices_about_failed_notices_are_never_sent_so_the_feed_ends() {
    let w = world("http://127.0.0.1:9/a", fixed(1, 1));
    let tenant = w.task.tenant_id.clone();
    for path in ["b", "c"] {
        let mut ep = Endpoint::new(
            tenant.clone(),
            EndpointUrl::parse(&format!("http://127.0.0.1:9/{path}")).unwrap(),
            vec![],
            t0(),
        );
        ep.retry_policy = fixed(1, 1);
        w.mem.put_endpoint(ep);
    }
    w.answers((0..1000).map(|_| answer(500, None)).collect());
    let env = parse_event(
        br#"{"id":"evt_loop","type":"user.created","data":{}}"#,
        tenant,
        &Source::parse("api").unwrap(),
        t0(),
        IngestLimits::default(),
    )
    .unwrap();
    let mut generation = vec![FanoutTask::new(env)];
    let mut per_generation = Vec::new();
    for _ in 0..6 {
        let mut tasks = Vec::new();
        for f in &generation {
            tasks.extend(fanned_out(&w, f));
        }
        if tasks.is_empty() {
            break;
        }
        per_generation.push(tasks.len());
        for t in &tasks {
            let outcome = w.d.deliver(t, t0, || 0.5).await.unwrap();
            assert!(matches!(outcome, DeliveryOutcome::Failed { .. }), "{outcome:?}");
        }
        generation = std::mem::take(&mut *w.mem.ops.lock().unwrap());
    }
    assert_eq!(per_generation, vec![3, 6], "deliveries per generation");
    assert!(generation.is_empty(), "no notice about a notice");
    // The notices were delivered as operational, and their records say so.
    let records = w.mem.records.lock().unwrap();
    assert_eq!(records.values().filter(|r| r.operational).count(), 6);
}

/// Two resends at once: the newer request starts a new round; the older
/// one, coming back after it, is an ordinary retry and resets nothing (they
/// reset each other's round on every return before, calling the endpoint at
/// every retry delay until SQS dead-lettered both).
#[tokio::test]
async fn an_older_replay_request_never_restarts_the_round_of_a_newer_one() {
    let w = world("http://127.0.0.1:9/hook", fixed(60, 3));
    w.answers((0..10).map(|_| answer(500, None)).collect());
    let replay = |id: &str| DeliveryTask {
        manual_request: Some(id.to_string()),
        ..w.task.clone()
    };
    let (older, newer) = (
        replay("rpl_01KJ0000000000000000000000"),
        replay("rpl_01KJ0000010000000000000000"),
    );
    assert!(older.manual_request < newer.manual_request);
    let first = w.d.deliver(&newer, t0, || 0.5).await.unwrap();
    assert!(matches!(first, DeliveryOutcome::Retry { .. }), "{first:?}");
    let after = w.record();
    // The older request comes back twice, ten seconds apart.
    for s in [10, 20] {
        let later = t0() + time::Duration::seconds(s);
        let outcome = w.d.deliver(&older, || later, || 0.5).await.unwrap();
        assert!(matches!(outcome, DeliveryOutcome::Wait { .. }), "{outcome:?}");
    }
    assert_eq!(w.mem.sent.lock().unwrap().len(), 1, "the endpoint was called once");
    let r = w.record();
    assert_eq!(
        (r.round_attempts, r.manual_request.clone()),
        (1, newer.manual_request.clone())
    );
    assert_eq!(r.next_attempt_at, after.next_attempt_at);
    // The newer request's own message coming back is a retry too.
    let due = after.next_attempt_at.unwrap();
    w.d.deliver(&newer, || due, || 0.5).await.unwrap();
    assert_eq!(w.record().round_attempts, 2);
}

/// A dead endpoint whose deliveries are given up one after another tells
/// the tenant once per window, not once per delivery; and the tenant's
/// notices in all are capped per hour.
#[tokio::test]
async fn delivery_exhausted_notices_are_coalesced_per_endpoint_and_capped_per_tenant() {
    let mut w = world("http://127.0.0.1:9/dead", fixed(1, 1));
    w.d.config.notices = NoticeLimits {
        window: Duration::from_secs(300),
        per_endpoint: 1,
        per_tenant_hour: 2,
    };
    w.answers((0..100).map(|_| answer(500, None)).collect());
    let tenant = w.task.tenant_id.clone();
    let mut dead = vec![w.ep.clone()];
    for path in ["b", "c"] {
        let ep = Endpoint::new(
            tenant.clone(),
            EndpointUrl::parse(&format!("http://127.0.0.1:9/{path}")).unwrap(),
            vec![],
            t0(),
        );
        dead.push(ep.id.clone());
        w.mem.put_endpoint(Endpoint {
            retry_policy: fixed(1, 1),
            ..ep
        });
    }
    // Ten events to the first endpoint, given up within five minutes: one
    // notice. A minute later, one to each of the others: the tenant's cap
    // (two an hour) lets one more through.
    let task_for = |n: u32, ep: &EndpointId| {
        let event = EventId::parse(format!("evt_{n}")).unwrap();
        DeliveryTask {
            delivery_id: DeliveryId::derive(&tenant, &event, ep),
            event_id: event,
            endpoint_id: ep.clone(),
            ..w.task.clone()
        }
    };
    for n in 0..10 {
        let at = t0() + time::Duration::seconds(i64::from(n) * 20);
        let outcome = w.d.deliver(&task_for(n, &dead[0]), || at, || 0.5).await.unwrap();
        assert!(matches!(outcome, DeliveryOutcome::Failed { .. }), "{outcome:?}");
    }
    assert_eq!(
        w.mem.ops.lock().unwrap().len(),
        1,
        "one notice for the dead endpoint's window"
    );
    for (n, ep) in [(10, &dead[1]), (11, &dead[2])] {
        let at = t0() + time::Duration::seconds(240);
        w.d.deliver(&task_for(n, ep), || at, || 0.5).await.unwrap();
    }
    let ops = w.mem.ops.lock().unwrap().clone();
    assert_eq!(ops.len(), 2, "the tenant's cap of two an hour");
    assert_eq!(ops[0].envelope.data["coalesce_window_secs"], 300);
    // Every delivery was still given up and sent to the DLQ.
    assert_eq!(w.mem.dead_letters.lock().unwrap().len(), 12);
}

#[test]
fn webhook_ids_are_unique_per_tenant_and_event_and_stable_for_resends() {
    let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());
    let (e1, e2) = (EventId::parse("evt_1").unwrap(), EventId::parse("evt_2").unwrap());
    let id = crate::ids::webhook_id;
    // The producer's event id is unique within its tenant only.
    assert_ne!(id(&a, &e1), id(&b, &e1));
    assert_ne!(id(&a, &e1), id(&a, &e2));
    let env = |t: &TenantId| {
        crate::envelope::parse_event(
            br#"{"id":"evt_1","type":"user.created","data":{}}"#,
            t.clone(),
            &crate::envelope::Source::parse("api").unwrap(),
            t0(),
            crate::envelope::IngestLimits::default(),
        )
        .unwrap()
    };
    let (ea, eb) = (env(&a), env(&b));
    let (x, y) = (EndpointId::generate(), EndpointId::generate());
    let build = |e: &crate::Envelope, ep: &EndpointId| {
        let task = DeliveryTask::new(e, ep, e.webhook_body(), t0());
        let endpoint = Endpoint::new(
            e.tenant_id.clone(),
            crate::endpoint::EndpointUrl::parse(URL).unwrap(),
            vec![],
            t0(),
        );
        let request = build_request(&task, &endpoint, t0());
        request
            .headers
            .iter()
            .find(|(k, _)| k == "webhook-id")
            .map(|(_, v)| v.to_string())
            .unwrap()
    };
    // Two tenants that use the same event id: two webhook ids.
    assert_ne!(build(&ea, &x), build(&eb, &x));
    // One event: one id for every endpoint and every copy of the task (a
    // resend rebuilds the task the same way).
    assert_eq!(build(&ea, &x), build(&ea, &y));
    assert_eq!(build(&ea, &x), build(&ea, &x));
    assert_eq!(build(&ea, &x), id(&a, &e1));
    // A task written before the id was named is sent with the event id.
    let mut old = DeliveryTask::new(&ea, &x, ea.webhook_body(), t0());
    old.webhook_id = None;
    let endpoint = Endpoint::new(
        a.clone(),
        crate::endpoint::EndpointUrl::parse(URL).unwrap(),
        vec![],
        t0(),
    );
    let request = build_request(&old, &endpoint, t0());
    assert!(request.headers.iter().any(|(k, v)| k == "webhook-id" && v == "evt_1"));
}

#[test]
fn each_attempt_carries_the_events_trace_with_a_span_of_its_own() {
    let mut env = crate::envelope::parse_event(
        br#"{"id":"evt_1","type":"user.created","data":{}}"#,
        TenantId::parse("t1").unwrap(),
        &crate::envelope::Source::parse("api").unwrap(),
        t0(),
        crate::envelope::IngestLimits::default(),
    )
    .unwrap();
    let endpoint = Endpoint::new(
        env.tenant_id.clone(),
        crate::endpoint::EndpointUrl::parse(URL).unwrap(),
        vec![],
        t0(),
    );
    let header = |task: &DeliveryTask| {
        build_request(task, &endpoint, t0())
            .headers
            .iter()
            .find(|(k, _)| k == HEADER_TRACEPARENT)
            .map(|(_, v)| v.to_string())
    };
    // An event accepted before traces were recorded: no header.
    let old = DeliveryTask::new(&env, &endpoint.id, env.webhook_body(), t0());
    assert_eq!(header(&old), None);

    let event_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    env.metadata.traceparent = Some(event_trace.into());
    let task = DeliveryTask::new(&env, &endpoint.id, env.webhook_body(), t0());
    let (first, second) = (header(&task).unwrap(), header(&task).unwrap());
    for sent in [&first, &second] {
        let t = crate::trace::TraceParent::parse(sent).unwrap();
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{sent}");
        assert_ne!(sent, event_trace, "the attempt is a span of its own");
    }
    assert_ne!(first, second, "each attempt has its own span");
}

mod suspended;
