//! The triggers the runner plays: SQS event source mappings, rules whose
//! target is a function (asynchronous invocations), schedules and HTTP
//! APIs. Each runs as its own task over the shared hosts.

use super::lambda::Outcome;
use super::provision::{self, ScheduleTarget};
use super::{Invocation, Shared, cfn, http, schedule};
use crate::{LocalError, aws_err, esm};
use aws_lambda_events::event::sqs::SqsBatchResponse;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// One SQS event source mapping.
pub(super) async fn poll_sqs(
    shared: Arc<Shared>,
    function: String,
    src: provision::SqsSource,
    concurrency: usize,
    wait_secs: i32,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let queue = esm::QueueRef {
        url: src.queue_url.clone(),
        arn: src.queue_arn.clone(),
    };
    let trigger = format!("sqs:{}", src.queue);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let messages = match receive_batch(&shared.sqs, &src, wait_secs).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("runner: {function} polling {}: {e}", src.queue);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let (shared, function, queue, trigger, report) = (
            shared.clone(),
            function.clone(),
            queue.clone(),
            trigger.clone(),
            src.report_failures,
        );
        tokio::spawn(async move {
            let _permit = permit;
            let event = esm::to_sqs_event(&messages, &queue);
            let payload = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
            let t = Instant::now();
            let host = shared.hosts.get(&function);
            let outcome = match host {
                Some(h) => h.invoke(payload).await,
                None => Outcome::Crashed("no such function".into()),
            };
            let failed: Option<HashSet<String>> = match &outcome {
                Outcome::Ok(body) if report => {
                    let body: &[u8] = body;
                    if body.is_empty() || body == b"null" {
                        Some(HashSet::new())
                    } else {
                        serde_json::from_slice::<SqsBatchResponse>(body)
                            .ok()
                            .and_then(|r| esm::batch_failures(&messages, &r))
                    }
                }
                Outcome::Ok(_) => Some(HashSet::new()),
                _ => None,
            };
            let summary = match &failed {
                Some(f) if f.is_empty() => outcome.summary(),
                Some(f) => format!("ok, {} of {} failed (left on the queue)", f.len(), messages.len()),
                None if outcome.is_ok() => "invalid batch response: whole batch left on the queue".into(),
                None => format!("{} (whole batch left on the queue)", outcome.summary()),
            };
            if let Some(f) = &failed
                && let Err(e) = esm::delete_except(&shared.sqs, &queue.url, &messages, f).await
            {
                eprintln!("runner: deleting from {}: {e}", queue.url);
            }
            shared.record(Invocation {
                function,
                trigger,
                batch: messages.len(),
                duration: t.elapsed(),
                ok: failed.as_ref().is_some_and(HashSet::is_empty),
                outcome: summary,
            });
        });
    }
}

/// Up to `BatchSize` messages: one long poll, then, within the batching
/// window, more receives until the batch is full or the window closes.
async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    src: &provision::SqsSource,
    wait_secs: i32,
) -> Result<Vec<aws_sdk_sqs::types::Message>, LocalError> {
    let want = src.batch_size.max(1) as usize;
    let mut messages = esm::receive(sqs, &src.queue_url, want.min(10) as i32, wait_secs).await?;
    if messages.is_empty() || src.window_secs == 0 {
        return Ok(messages);
    }
    let closes = Instant::now() + Duration::from_secs(src.window_secs as u64);
    while messages.len() < want {
        let left = closes.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let more = esm::receive(
            sqs,
            &src.queue_url,
            (want - messages.len()).min(10) as i32,
            left.as_secs().min(20) as i32,
        )
        .await?;
        if more.is_empty() && left < Duration::from_secs(1) {
            break;
        }
        messages.extend(more);
    }
    Ok(messages)
}

/// A rule whose target is a function: an asynchronous invocation per
/// event, retried `max_retries` times, then sent to the `OnFailure` queue
/// with Lambda's failure record.
pub(super) async fn poll_rule(
    shared: Arc<Shared>,
    ri: provision::RuleInvoke,
    cfg: provision::AsyncConfig,
    wait_secs: i32,
) {
    let trigger = format!("rule:{}", ri.rule);
    loop {
        let messages = match esm::receive(&shared.sqs, &ri.queue_url, 10, wait_secs).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("runner: {} polling {}: {e}", ri.function, ri.rule);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for m in messages {
            let (shared, ri, cfg, trigger) = (shared.clone(), ri.clone(), cfg.clone(), trigger.clone());
            tokio::spawn(async move {
                let body = m.body.clone().unwrap_or_default();
                let outcome = shared
                    .invoke(&ri.function, &trigger, 1, Bytes::from(body.clone()))
                    .await;
                let attempts: u32 = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let receipt = m.receipt_handle.clone().unwrap_or_default();
                if !outcome.is_ok() && attempts <= cfg.max_retries {
                    // Lambda waits a minute, then two; locally 1 s, then 2.
                    let _ = shared
                        .sqs
                        .change_message_visibility()
                        .queue_url(&ri.queue_url)
                        .receipt_handle(&receipt)
                        .visibility_timeout(attempts as i32)
                        .send()
                        .await;
                    return;
                }
                if !outcome.is_ok()
                    && let Some(dest) = &cfg.on_failure_queue_url
                {
                    let record = failure_record(&ri, &body, &outcome, attempts);
                    if let Err(e) = shared
                        .sqs
                        .send_message()
                        .queue_url(dest)
                        .message_body(record.to_string())
                        .send()
                        .await
                    {
                        eprintln!(
                            "runner: {} OnFailure send: {}",
                            ri.function,
                            aws_sdk_sqs::error::DisplayErrorContext(e)
                        );
                        return; // keep the event; it comes back
                    }
                }
                let _ = shared
                    .sqs
                    .delete_message()
                    .queue_url(&ri.queue_url)
                    .receipt_handle(&receipt)
                    .send()
                    .await;
            });
        }
    }
}

/// Lambda's record of an asynchronous invocation that failed for good.
fn failure_record(ri: &provision::RuleInvoke, payload: &str, outcome: &Outcome, attempts: u32) -> Value {
    let (error_type, message) = match outcome {
        Outcome::Error { error_type, message } => (error_type.clone(), message.clone()),
        Outcome::Timeout => ("Sandbox.Timedout".into(), "Task timed out".into()),
        Outcome::Crashed(why) => ("Runtime.ExitError".into(), why.clone()),
        Outcome::Ok(_) => (String::new(), String::new()),
    };
    json!({
        "version": "1.0",
        "timestamp": switchyard_core::time_util::rfc3339(switchyard_core::time_util::now_utc()),
        "requestContext": {
            "requestId": switchyard_core::ids::ulid(),
            "functionArn": format!("{}:$LATEST", ri.function),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": serde_json::from_str::<Value>(payload).unwrap_or(Value::String(payload.to_string())),
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "responsePayload": { "errorType": error_type, "errorMessage": message },
    })
}

/// A schedule: fires at each time the expression gives, with the
/// target's constant `Input` or EventBridge's scheduled event.
pub(super) async fn run_schedule(shared: Arc<Shared>, s: provision::Schedule) {
    let Ok(expr) = schedule::Expression::parse(&s.expression) else {
        return;
    };
    let trigger = format!("schedule:{}", s.rule);
    loop {
        let now = switchyard_core::time_util::now_utc();
        let Some(next) = expr.next_after(now) else { return };
        let wait = (next - now).try_into().unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        let payload = s.input.clone().unwrap_or_else(|| {
            json!({
                "version": "0",
                "id": switchyard_core::ids::ulid(),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": cfn::ACCOUNT_ID,
                "time": switchyard_core::time_util::rfc3339(switchyard_core::time_util::whole_seconds(next)),
                "region": crate::LOCAL_REGION,
                "resources": [s.rule_arn],
                "detail": {},
            })
            .to_string()
        });
        match &s.target {
            ScheduleTarget::Function(f) => {
                let (shared, f, trigger) = (shared.clone(), f.clone(), trigger.clone());
                tokio::spawn(async move {
                    shared.invoke(&f, &trigger, 1, Bytes::from(payload)).await;
                });
            }
            ScheduleTarget::Queue(url) => {
                if let Err(e) = shared
                    .sqs
                    .send_message()
                    .queue_url(url)
                    .message_body(payload)
                    .send()
                    .await
                {
                    eprintln!(
                        "runner: schedule {}: {}",
                        s.rule,
                        aws_err("SendMessage", aws_sdk_sqs::error::DisplayErrorContext(e))
                    );
                }
            }
        }
    }
}

/// An HTTP API: serves `routes` on `listener`, each request invoking its
/// route's function.
pub(super) async fn serve_api(
    shared: Arc<Shared>,
    listener: TcpListener,
    api_id: String,
    routes: Vec<provision::Route>,
) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let routes = Arc::new(routes);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let (shared, routes, api_id) = (shared.clone(), routes.clone(), api_id.clone());
        conns.spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (shared, routes, api_id) = (shared.clone(), routes.clone(), api_id.clone());
                async move { Ok::<_, hyper::Error>(api_request(&shared, &routes, &api_id, req, peer).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// One request to an HTTP API: matched, turned into the event, answered
/// from the function's outcome.
async fn api_request(
    shared: &Shared,
    routes: &[provision::Route],
    api_id: &str,
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> hyper::Response<http_body_util::Full<Bytes>> {
    let (parts, body) = http::parts(req);
    let Some((route, params)) = http::match_route(routes, parts.method.as_str(), parts.uri.path()) else {
        return http::gateway_error(hyper::StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(body) = http::read_body(body).await else {
        return http::gateway_error(hyper::StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let event = http::event(api_id, route, params, &parts, &body, &peer.ip().to_string());
    let Ok(event) = serde_json::to_vec(&event) else {
        return http::gateway_error(hyper::StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let trigger = format!("http:{} {}", parts.method, parts.uri.path());
    let outcome = shared
        .invoke_described(&route.function, &trigger, 1, Bytes::from(event), |o| {
            let status = http::response(o).status();
            let text = match o {
                Outcome::Ok(_) => format!("{}", status.as_u16()),
                other => format!("{} ({})", status.as_u16(), other.summary()),
            };
            (text, o.is_ok() && !status.is_server_error())
        })
        .await;
    http::response(&outcome)
}
