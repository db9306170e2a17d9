//! A proxy between the functions and moto that counts every AWS request by
//! operation and can inject faults.
//!
//! Point the SDK (or the runner's functions, through `AWS_ENDPOINT_URL`) at
//! [`AwsProxy::endpoint`] instead of moto's. Every request is forwarded
//! unchanged; the proxy
//!
//! - counts it as `service:Operation` (from `X-Amz-Target` for the JSON
//!   protocols SQS, DynamoDB, EventBridge and KMS use, or `Action=` for the query
//!   protocol), with SQS receives that returned nothing counted apart
//!   (`sqs:ReceiveMessage(empty)`);
//! - measures DynamoDB capacity as AWS bills it, because moto reports a
//!   fixed 1.0 or 0.5: write units from the size of the item before and
//!   after each write (read back from moto outside the count; 1 per KB,
//!   twice that in a transaction) and read units from the size of what reads
//!   returned (1 per 4 KB, half that when eventually consistent);
//! - records, per caller, each (action, resource) a request needs allowed,
//!   as IAM names them ([`access`]), for the least-privilege test;
//! - with [`Faults`] set, answers a share of requests with a throttling
//!   error or a 500, or drops the connection before or after forwarding (the
//!   last one: the request took effect, the caller never hears).
//!
//! For the cost benchmark and the fault-injection tests; never deployed.

pub mod access;
mod capacity;

pub use access::Access;
pub use capacity::item_size;

use crate::LocalError;
use bytes::Bytes;
use capacity::{Gsi, dynamo_writes, read_units, write_units};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 400 `ThrottlingException` (the SDK retries it with backoff).
    Throttle,
    /// 500 `InternalFailure`.
    ServerError,
    /// The connection is closed before the request reaches moto.
    Drop,
    /// The request reaches moto and takes effect; the connection is closed
    /// before the answer.
    LoseResponse,
}

/// Which requests fail and how: each request fails with probability `rate`,
/// with a kind drawn evenly from `kinds`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Probability (0.0 to 1.0) that a matching request fails.
    pub rate: f64,
    /// The fault kinds to draw from; no faults when empty.
    pub kinds: Vec<Fault>,
    /// Only operations whose counted name (`sqs:SendMessage`) starts with one
    /// of these; all when empty.
    pub only: Vec<String>,
    /// At most this many faults, then none (`None`: no limit).
    pub limit: Option<u64>,
}

/// What the proxy saw since the last [`AwsProxy::reset`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Requests per `service:Operation`.
    pub requests: BTreeMap<String, u64>,
    /// Requests per caller (the access key id: the local runner gives each
    /// function its logical id, its own pollers use `testing`), then per
    /// `service:Operation`.
    pub by_caller: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per caller, each (IAM action, resource ARN) its requests needed
    /// allowed, with how many requests needed it.
    pub accesses: BTreeMap<String, BTreeMap<Access, u64>>,
    /// DynamoDB write units per `caller service:Operation table`.
    pub write_units_by: BTreeMap<String, f64>,
    /// DynamoDB write and read capacity units, as AWS would bill them.
    pub write_units: f64,
    /// DynamoDB read capacity units, as AWS would bill them.
    pub read_units: f64,
    /// Faults injected, per kind.
    pub faults: BTreeMap<String, u64>,
}

impl Tally {
    /// Requests of one service (`sqs`), all operations.
    pub fn service_total(&self, service: &str) -> u64 {
        let prefix = format!("{service}:");
        self.requests
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Requests of one caller for one `service:Operation`.
    pub fn calls_by(&self, caller: &str, op: &str) -> u64 {
        self.by_caller
            .get(caller)
            .and_then(|ops| ops.get(op).copied())
            .unwrap_or(0)
    }
}

struct State {
    tally: Mutex<Tally>,
    faults: Mutex<Faults>,
    upstream: String,
    client: reqwest::Client,
    /// A xorshift state for the fault draws.
    rng: Mutex<u64>,
    /// Each table's global secondary indexes, read once.
    indexes: Mutex<BTreeMap<String, Vec<Gsi>>>,
    /// Faults injected since the faults were last set.
    injected: std::sync::atomic::AtomicU64,
}

/// A running proxy; stopped when dropped.
pub struct AwsProxy {
    /// The loopback address the proxy listens on (the SDK's endpoint).
    pub addr: SocketAddr,
    state: Arc<State>,
    _stop: oneshot::Sender<()>,
}

impl AwsProxy {
    /// Starts a proxy to `upstream` (moto's endpoint) on a free port of
    /// 127.0.0.1, on the current runtime.
    pub async fn start(upstream: &str) -> Result<Self, LocalError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(LocalError::io("binding the AWS proxy"))?;
        let addr = listener.local_addr().map_err(LocalError::io("the proxy's address"))?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| LocalError::Setup(format!("the proxy's HTTP client: {e}")))?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        let state = Arc::new(State {
            tally: Mutex::new(Tally::default()),
            faults: Mutex::new(Faults::default()),
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            rng: Mutex::new(seed),
            indexes: Mutex::new(BTreeMap::new()),
            injected: Default::default(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let st = state.clone();
        crate::receiver::serve(listener, stopped, move |req| {
            let st = st.clone();
            async move { forward(&st, req).await }
        });
        Ok(Self {
            addr,
            state,
            _stop: stop,
        })
    }

    /// The endpoint URL to give the SDK instead of moto's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What was seen since the last reset.
    pub fn tally(&self) -> Tally {
        self.state.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets what was seen.
    pub fn reset(&self) {
        *self.state.tally.lock().unwrap_or_else(|p| p.into_inner()) = Tally::default();
    }

    /// Sets (or, with the default, clears) the faults to inject.
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut f) = self.state.faults.lock() {
            *f = faults;
        }
        self.state.injected.store(0, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Dropped by the proxy: a fault injected, or moto unreachable.
const DROPPED: crate::receiver::Dropped = crate::receiver::Dropped("connection dropped by the AWS proxy");

/// `service:Operation` of one request.
pub fn operation(target: Option<&str>, body: &[u8]) -> String {
    if let Some(t) = target
        && let Some((prefix, op)) = t.split_once('.')
    {
        let service = match prefix {
            "AmazonSQS" => "sqs",
            p if p.starts_with("DynamoDB") => "dynamodb",
            "AWSEvents" => "events",
            "TrentService" => "kms",
            "secretsmanager" => "secretsmanager",
            "GraniteServiceVersion20100801" => "cloudwatch",
            p if p.starts_with("Logs_") => "logs",
            other => other,
        };
        return format!("{service}:{op}");
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "Action")
        .map(|(_, a)| format!("query:{a}"))
        .unwrap_or_else(|| "unknown".into())
}

/// The access key id of a SigV4 `Authorization` header.
fn caller(authorization: &str) -> Option<String> {
    let rest = authorization.split("Credential=").nth(1)?;
    Some(rest.split('/').next()?.to_string())
}

impl State {
    fn draw(&self, op: &str) -> Option<Fault> {
        let faults = self.faults.lock().ok()?.clone();
        if faults.rate <= 0.0 || faults.kinds.is_empty() {
            return None;
        }
        if !faults.only.is_empty() && !faults.only.iter().any(|p| op.starts_with(p.as_str())) {
            return None;
        }
        let mut rng = self.rng.lock().ok()?;
        let mut next = || {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng
        };
        let hit = (next() >> 11) as f64 / (1u64 << 53) as f64;
        if hit >= faults.rate {
            return None;
        }
        let kind = faults.kinds[(next() % faults.kinds.len() as u64) as usize];
        let before = self.injected.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if faults.limit.is_some_and(|l| before >= l) {
            return None;
        }
        Some(kind)
    }

    fn count(&self, f: impl FnOnce(&mut Tally)) {
        f(&mut self.tally.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Sends one request to moto, outside the tally.
    async fn upstream(
        &self,
        headers: &[(String, Vec<u8>)],
        target: Option<&str>,
        body: Bytes,
    ) -> Result<(u16, Vec<(String, Vec<u8>)>, Bytes), reqwest::Error> {
        let mut req = self.client.post(format!("{}/", self.upstream)).body(body);
        for (k, v) in headers {
            if matches!(k.as_str(), "host" | "content-length" | "connection" | "x-amz-target") {
                continue;
            }
            req = req.header(k.as_str(), v.as_slice());
        }
        if let Some(t) = target {
            req = req.header("x-amz-target", t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection"))
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        let body = resp.bytes().await?;
        Ok((status, headers, body))
    }

    /// The item under `key` in `table`, read consistently from moto.
    async fn item(&self, headers: &[(String, Vec<u8>)], table: &Value, key: &Value) -> Option<Value> {
        let body = json!({"TableName": table, "Key": key, "ConsistentRead": true}).to_string();
        let (status, _, out) = self
            .upstream(headers, Some("DynamoDB_20120810.GetItem"), Bytes::from(body))
            .await
            .ok()?;
        if status != 200 {
            return None;
        }
        serde_json::from_slice::<Value>(&out).ok()?.get("Item").cloned()
    }

    /// The global secondary indexes of `table` (DescribeTable, once).
    async fn indexes(&self, headers: &[(String, Vec<u8>)], table: &Value) -> Vec<Gsi> {
        let name = table.as_str().unwrap_or_default().to_string();
        if let Some(known) = self.indexes.lock().ok().and_then(|m| m.get(&name).cloned()) {
            return known;
        }
        let body = json!({"TableName": table}).to_string();
        let Ok((200, _, out)) = self
            .upstream(headers, Some("DynamoDB_20120810.DescribeTable"), Bytes::from(body))
            .await
        else {
            return Vec::new();
        };
        let desc: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        let gsis = capacity::indexes_of(&desc);
        if let Ok(mut m) = self.indexes.lock() {
            m.insert(name, gsis.clone());
        }
        gsis
    }
}

fn fault_response(fault: Fault) -> Response<Full<Bytes>> {
    let (status, kind, message) = match fault {
        Fault::Throttle => (400, "ThrottlingException", "Rate exceeded (injected by the AWS proxy)"),
        _ => (500, "InternalFailure", "Internal failure (injected by the AWS proxy)"),
    };
    let mut resp = Response::new(Full::new(Bytes::from(
        json!({"__type": kind, "message": message}).to_string(),
    )));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    resp.headers_mut()
        .insert("x-amzn-errortype", hyper::header::HeaderValue::from_static(kind));
    resp
}

async fn forward(
    st: &State,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, crate::receiver::Dropped> {
    let headers: Vec<(String, Vec<u8>)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req.into_body().collect().await.map_err(|_| DROPPED)?.to_bytes();
    let op = operation(target.as_deref(), &body);
    let authorization = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let caller = caller(&authorization).unwrap_or_else(|| "anonymous".into());
    let region = access::signing_region(&authorization).unwrap_or_else(|| crate::LOCAL_REGION.into());
    // The JSON protocols' body (every service the functions call speaks one).
    let request: Value = if target.is_some() {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let record = |response: &Value| {
        let seen = access::accesses(&op, &region, crate::runner::cfn::ACCOUNT_ID, &request, response);
        st.count(|t| {
            let mine = t.accesses.entry(caller.clone()).or_default();
            for a in seen {
                *mine.entry(a).or_default() += 1;
            }
        });
    };
    st.count(|t| {
        *t.requests.entry(op.clone()).or_default() += 1;
        *t.by_caller
            .entry(caller.clone())
            .or_default()
            .entry(op.clone())
            .or_default() += 1;
    });
    let fault = st.draw(&op);
    if let Some(f) = fault {
        st.count(|t| *t.faults.entry(format!("{f:?}")).or_default() += 1);
        match f {
            Fault::Throttle | Fault::ServerError => {
                record(&Value::Null);
                return Ok(fault_response(f));
            }
            Fault::Drop => {
                record(&Value::Null);
                return Err(DROPPED);
            }
            Fault::LoseResponse => {}
        }
    }
    let writes = dynamo_writes(&op, &request);
    let mut before = Vec::with_capacity(writes.len());
    for (table, key, _) in &writes {
        before.push(st.item(&headers, table, key).await);
    }
    let (status, resp_headers, out) = st
        .upstream(&headers, target.as_deref(), body)
        .await
        .map_err(|_| DROPPED)?;
    // Only KMS's Decrypt names its resource in the answer alone.
    record(&if op.starts_with("kms:") {
        serde_json::from_slice(&out).unwrap_or(Value::Null)
    } else {
        Value::Null
    });
    if op.starts_with("dynamodb:") {
        let mut wru = 0.0;
        let mut by = Vec::new();
        for ((table, key, factor), before) in writes.iter().zip(before) {
            let start = wru;
            let after = st.item(&headers, table, key).await;
            let size = |i: &Option<Value>| i.as_ref().map_or(0, item_size);
            // A write that changed nothing still costs its units (a failed
            // condition too); the indexes cost only what changed in them.
            wru += factor * write_units(size(&before).max(size(&after)));
            for gsi in st.indexes(&headers, table).await {
                wru += factor * gsi.write_units(before.as_ref(), after.as_ref());
            }
            by.push((format!("{caller} {op} {}", table.as_str().unwrap_or("?")), wru - start));
        }
        let rru = if status == 200 {
            read_units(&op, &request, &serde_json::from_slice(&out).unwrap_or(Value::Null))
        } else {
            0.0
        };
        st.count(|t| {
            t.write_units += wru;
            t.read_units += rru;
            for (k, v) in by {
                *t.write_units_by.entry(k).or_default() += v;
            }
        });
    }
    if op == "sqs:ReceiveMessage"
        && status == 200
        && serde_json::from_slice::<Value>(&out)
            .ok()
            .and_then(|v| v.get("Messages").and_then(Value::as_array).map(Vec::len))
            .unwrap_or(0)
            == 0
    {
        st.count(|t| {
            if let Some(n) = t.requests.get_mut(&op) {
                *n = n.saturating_sub(1);
            }
            *t.requests.entry("sqs:ReceiveMessage(empty)".into()).or_default() += 1;
            let mine = t.by_caller.entry(caller.clone()).or_default();
            if let Some(n) = mine.get_mut(&op) {
                *n = n.saturating_sub(1);
            }
            *mine.entry("sqs:ReceiveMessage(empty)".into()).or_default() += 1;
        });
    }
    if fault == Some(Fault::LoseResponse) {
        return Err(DROPPED);
    }
    let mut resp = Response::new(Full::new(out));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    for (k, v) in resp_headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_bytes(&v),
        ) {
            resp.headers_mut().append(name, value);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_service() {
        assert_eq!(operation(Some("AmazonSQS.SendMessage"), b""), "sqs:SendMessage");
        assert_eq!(operation(Some("DynamoDB_20120810.PutItem"), b"{}"), "dynamodb:PutItem");
        assert_eq!(operation(Some("AWSEvents.PutEvents"), b"{}"), "events:PutEvents");
        assert_eq!(operation(Some("TrentService.Decrypt"), b"{}"), "kms:Decrypt");
        assert_eq!(
            operation(Some("secretsmanager.GetSecretValue"), b"{}"),
            "secretsmanager:GetSecretValue"
        );
        assert_eq!(
            operation(None, b"Action=GetQueueAttributes&Version=2012-11-05"),
            "query:GetQueueAttributes"
        );
        assert_eq!(
            operation(None, b"Version=2012-11-05&Action=Send%4Dessage"),
            "query:SendMessage"
        );
        assert_eq!(operation(None, b"{}"), "unknown");
    }

    #[test]
    fn the_caller_is_the_access_key_id() {
        let auth = "AWS4-HMAC-SHA256 Credential=IngestFunction/20261129/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=ab";
        assert_eq!(caller(auth).as_deref(), Some("IngestFunction"));
        assert_eq!(caller("Bearer x"), None);
    }

    #[test]
    fn faults_hit_at_their_rate_and_only_where_asked() {
        let st = State {
            tally: Mutex::new(Tally::default()),
            faults: Mutex::new(Faults {
                rate: 0.25,
                kinds: vec![Fault::Throttle, Fault::Drop],
                only: vec!["sqs:".into()],
                limit: None,
            }),
            upstream: String::new(),
            client: reqwest::Client::new(),
            rng: Mutex::new(42),
            indexes: Mutex::new(BTreeMap::new()),
            injected: Default::default(),
        };
        let hits = (0..10_000)
            .filter_map(|_| st.draw("sqs:SendMessage"))
            .collect::<Vec<_>>();
        assert!((2_000..3_000).contains(&hits.len()), "{}", hits.len());
        assert!(hits.contains(&Fault::Throttle) && hits.contains(&Fault::Drop));
        assert!((0..1000).all(|_| st.draw("dynamodb:PutItem").is_none()));
        // A limit stops them.
        if let Ok(mut f) = st.faults.lock() {
            f.rate = 1.0;
            f.limit = Some(2);
        }
        st.injected.store(0, std::sync::atomic::Ordering::SeqCst);
        let hits = (0..100).filter_map(|_| st.draw("sqs:SendMessage")).count();
        assert_eq!(hits, 2);
    }
}
