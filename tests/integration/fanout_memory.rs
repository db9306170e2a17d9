//! Fan-out's memory at its limits: one event with the largest body a
//! deployment may accept, for the most endpoints a tenant may register,
//! through the real fan-out handler, DynamoDB and SQS (moto). The heap that
//! the handler's thread holds at its peak is measured by a counting
//! allocator and must stay far below the function's 128 MB: fan-out makes
//! the tasks ten at a time, sharing the one body, instead of one copy of it
//! per endpoint.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use switchyard_aws::aws_sdk_sqs::types::QueueAttributeName;
use switchyard_core::envelope::{IngestLimits, Source, check_queued_size, parse_event};
use switchyard_core::{Endpoint, EndpointUrl, FanoutTask, TenantId};
use switchyard_local::resources::QueueOptions;
use switchyard_tests::Stack;

/// Counts the bytes each thread holds on the heap, and the most it held
/// since [`Peak::start`]. Per thread, so that other tests running at the
/// same time do not count: the handler runs on this test's thread (a
/// current-thread runtime).
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn held(change: isize) {
    let _ = HELD.try_with(|h| {
        let now = h.get() + change;
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is passed to the system allocator unchanged; the
// counters are plain thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            held(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        held(-(layout.size() as isize));
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            held(layout.size() as isize);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            held(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The most this thread held above what it held at [`Peak::start`].
struct Peak(isize);

impl Peak {
    fn start() -> Self {
        let now = HELD.with(Cell::get);
        PEAK.with(|p| p.set(now));
        Self(now)
    }
    fn bytes(&self) -> usize {
        (PEAK.with(Cell::get) - self.0).max(0) as usize
    }
}

/// The fan-out function's memory (`MemorySize` in template.yaml).
const FUNCTION_MEMORY: usize = 128 * 1024 * 1024;

#[tokio::test(flavor = "current_thread")]
async fn fan_out_to_the_most_endpoints_with_the_largest_body_stays_small() {
    // Its own moto: a thousand 200 KiB messages would slow the shared one.
    let stack = Stack::with_own_moto("fanout-memory", QueueOptions::default()).await;
    let tenant = TenantId::parse("acme").unwrap();
    // The most endpoints any deployment lets a tenant register.
    let endpoints = switchyard_core::quota::Limits::MAX_ENDPOINTS_PER_TENANT as usize;
    for i in 0..endpoints {
        let ep = Endpoint::new(
            tenant.clone(),
            EndpointUrl::parse(&format!("https://hooks.example.com/{i}")).unwrap(),
            vec![],
            switchyard_core::time_util::now_utc(),
        );
        stack.registry.put_endpoint(&ep).await.unwrap();
    }
    // The largest body any deployment may accept, and still queued.
    let limits = IngestLimits {
        max_body_bytes: IngestLimits::HARD_MAX_BODY_BYTES,
    };
    let filler = "x".repeat(IngestLimits::HARD_MAX_BODY_BYTES - 200);
    let body = format!(r#"{{"type":"order.placed","data":{{"blob":"{filler}"}}}}"#);
    assert!(body.len() <= IngestLimits::HARD_MAX_BODY_BYTES && body.len() > 199 * 1024);
    let now = switchyard_core::time_util::now_utc();
    let envelope = parse_event(
        body.as_bytes(),
        tenant.clone(),
        &Source::parse("api").unwrap(),
        now,
        limits,
    )
    .unwrap();
    check_queued_size(&envelope).expect("the body fits a queued task");
    let mut message = SqsMessage::default();
    message.message_id = Some("m-1".into());
    message.body = Some(serde_json::to_string(&FanoutTask::new(envelope)).unwrap());
    let mut event = SqsEvent::default();
    event.records = vec![message];

    let fanout = stack.fanout();
    let peak = Peak::start();
    let started = std::time::Instant::now();
    let response = fanout.handle(event).await;
    let (bytes, took) = (peak.bytes(), started.elapsed());
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let queued = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.res.deliveries_queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages).cloned())
        .unwrap_or_default();
    assert_eq!(queued, endpoints.to_string(), "one task per endpoint");
    println!(
        "fan-out of a {} KiB body to {endpoints} endpoints: peak heap {:.1} MiB ({:.1} % of the function's 128 MB), {:.1} s on moto",
        body.len() / 1024,
        bytes as f64 / (1024.0 * 1024.0),
        100.0 * bytes as f64 / FUNCTION_MEMORY as f64,
        took.as_secs_f64()
    );
    // One copy of the body per endpoint would be 200 MB (600 MB with the
    // messages serialised); four calls of ten tasks at a time are tens of MB.
    assert!(
        bytes < FUNCTION_MEMORY / 4,
        "fan-out held {bytes} bytes at its peak; the function has {FUNCTION_MEMORY}"
    );
}
