//! A real webhook receiver: an HTTP/1.1 server on 127.0.0.1 that records
//! every request and answers as its responder says.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::Future as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The HTTP method (`POST`).
    pub method: String,
    /// The request path, with its query string if any.
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// When the request's body had been read.
    pub at: Instant,
}

impl Received {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How to answer one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The response body.
    pub body: String,
    /// Extra response headers, in order.
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Drop the connection instead of answering (after `delay`).
    pub reset: bool,
    /// Send the body slowly instead: this many chunks of `body`, one every
    /// interval, after the status and headers.
    pub drip: Option<(usize, Duration)>,
}

impl Reply {
    /// An immediate answer with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
            headers: Vec::new(),
            delay: Duration::ZERO,
            reset: false,
            drip: None,
        }
    }

    /// The same reply with `body`.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// The same reply with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same reply, sent after waiting `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers at once, then sends `body` `chunks` times, one chunk every
    /// `interval` (a receiver that drips its body).
    pub fn drip(mut self, chunks: usize, interval: Duration) -> Self {
        self.drip = Some((chunks, interval));
        self
    }

    /// Closes the connection without an answer.
    pub fn reset() -> Self {
        Self {
            reset: true,
            ..Self::status(500)
        }
    }
}

/// Serves HTTP/1.1 on `listener` until `stop` fires or its sender is
/// dropped: every request of every connection goes to `handle`.
pub(crate) fn serve<F, Fut, B>(listener: TcpListener, mut stop: oneshot::Receiver<()>, handle: F)
where
    F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<B>, Dropped>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
        }
    });
}

/// A connection dropped on purpose: a service error makes hyper close it
/// without an answer. The text says who dropped it.
#[derive(Debug)]
pub(crate) struct Dropped(pub(crate) &'static str);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Dropped {}

/// Dropped by the receiver.
const RECEIVER_DROPPED: Dropped = Dropped("connection dropped by the receiver");

type Responder = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// A running receiver; stopped when dropped.
pub struct Receiver {
    /// The loopback address it listens on.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    /// A receiver that answers 200 to everything.
    pub async fn ok() -> std::io::Result<Self> {
        Self::start(|_| Reply::status(200)).await
    }

    /// A receiver that answers 500 to its first `n` requests, then 200.
    pub async fn failing_first(n: u32) -> std::io::Result<Self> {
        let calls = std::sync::atomic::AtomicU32::new(0);
        Self::start(move |_| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                Reply::status(500)
            } else {
                Reply::status(200)
            }
        })
        .await
    }

    /// Starts a receiver on a free port of 127.0.0.1, on the current runtime.
    pub async fn start(responder: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0", responder).await
    }

    /// Starts a receiver listening on `addr` (`"127.0.0.2:0"`, or
    /// `"0.0.0.0:0"` to hear on every IPv4 address of the machine).
    pub async fn start_on(
        addr: &str,
        responder: impl Fn(&Received) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let responder: Responder = Arc::new(responder);
        let (stop, stopped) = oneshot::channel::<()>();
        let (rec, notify) = (received.clone(), arrived.clone());
        serve(listener, stopped, move |req| {
            let (rec, notify, responder) = (rec.clone(), notify.clone(), responder.clone());
            async move { handle(req, &rec, &notify, &*responder).await }
        });
        Ok(Self {
            addr,
            received,
            arrived,
            _stop: stop,
        })
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` requests have arrived or `timeout` passes,
    /// and returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    received: &Mutex<Vec<Received>>,
    arrived: &Notify,
    responder: &(dyn Fn(&Received) -> Reply + Send + Sync),
) -> Result<Response<ReplyBody>, Dropped> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let r = Received {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    };
    let reply = responder(&r);
    if let Ok(mut all) = received.lock() {
        all.push(r);
    }
    arrived.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if reply.reset {
        // A service error makes hyper close the connection without a response.
        return Err(RECEIVER_DROPPED);
    }
    let body = match reply.drip {
        Some((chunks, interval)) => ReplyBody::Drip {
            chunk: Bytes::from(reply.body),
            left: chunks,
            interval,
            sleep: Box::pin(tokio::time::sleep(interval)),
        },
        None => ReplyBody::Full(Full::new(Bytes::from(reply.body))),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}

/// A reply's body: all at once, or dripped a chunk at a time.
pub(crate) enum ReplyBody {
    Full(Full<Bytes>),
    Drip {
        chunk: Bytes,
        left: usize,
        interval: Duration,
        sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    },
}

impl hyper::body::Body for ReplyBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        match self.get_mut() {
            ReplyBody::Full(full) => std::pin::Pin::new(full).poll_frame(cx),
            ReplyBody::Drip {
                chunk,
                left,
                interval,
                sleep,
            } => {
                if *left == 0 {
                    return Poll::Ready(None);
                }
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *left -= 1;
                let next = tokio::time::Instant::now() + *interval;
                sleep.as_mut().reset(next);
                Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk.clone()))))
            }
        }
    }
}
