//! Playing the Lambda service for one function: its real `bootstrap`
//! binary, run as local processes ("execution environments") behind an
//! emulated Lambda Runtime API.
//!
//! Each instance is a child process with its own Runtime API endpoint
//! (`AWS_LAMBDA_RUNTIME_API`) on loopback. Invocations wait in one queue per
//! function; an instance takes the next one when its runtime calls
//! `GET /runtime/invocation/next`, and answers with `.../response` or
//! `.../error`. Instances start on demand, up to a maximum, and stay warm.
//! As on Lambda, an invocation that outlives the function's timeout gets a
//! timeout error and its instance is killed; an instance that exits in the
//! middle of an invocation fails that invocation (`Runtime.ExitError`); and
//! a function that fails during init fails the invocations waiting for it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};

/// How to run one function.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The function's logical id in the template.
    pub logical_id: String,
    /// The function's ARN (given to the process in its context).
    pub arn: String,
    /// The executable to start for each instance.
    pub binary: PathBuf,
    /// The complete environment of the process.
    pub env: Vec<(String, String)>,
    /// How long one invocation may run before the instance is killed.
    pub timeout: Duration,
    /// The most instances running at once (at least 1).
    pub max_instances: usize,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function's response payload.
    Ok(Bytes),
    /// The function reported an error (`/error` or `/init/error`).
    Error {
        /// The `errorType` it reported.
        error_type: String,
        /// The `errorMessage` it reported.
        message: String,
    },
    /// It ran past its timeout; the instance was killed.
    Timeout,
    /// The process exited, or could not be started.
    Crashed(String),
}

impl Outcome {
    /// Whether the function returned a response.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }

    /// One short word or phrase for the runner's log line.
    pub fn summary(&self) -> String {
        match self {
            Self::Ok(_) => "ok".into(),
            Self::Error { error_type, .. } => format!("error {error_type}"),
            Self::Timeout => "timed out".into(),
            Self::Crashed(why) => format!("crashed ({why})"),
        }
    }
}

/// Where an instance's log lines go: `(function, line)`.
pub type LogFn = Arc<dyn Fn(&str, &str) + Send + Sync>;

struct Pending {
    request_id: String,
    payload: Bytes,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Counts {
    instances: usize,
    /// Spawned, not yet asked for an invocation.
    starting: usize,
    /// Waiting in `next`.
    idle: usize,
    /// Invocations queued, not yet taken.
    waiting: usize,
    stopping: bool,
}

struct Inner {
    spec: Spec,
    counts: Mutex<Counts>,
    tx: mpsc::UnboundedSender<Pending>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    log: LogFn,
    /// Process ids of the live instances.
    pids: Mutex<Vec<u32>>,
    /// Wakes every instance's supervisor on shutdown.
    stop: Notify,
    /// The error the runtime reported to `/runtime/init/error`, if any:
    /// the reason the invocations waiting on a failed init get.
    init_error: Mutex<Option<String>>,
}

/// Why an instance of a function could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The instance's Runtime API endpoint could not listen.
    #[error("binding the Runtime API: {0}")]
    Bind(#[source] std::io::Error),
    /// The function's binary could not be started.
    #[error("starting {}: {source}", binary.display())]
    Start {
        /// The binary.
        binary: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// One function's instances and invocation queue. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

/// An instance's current invocation.
struct Current {
    request_id: String,
    reply: oneshot::Sender<Outcome>,
}

struct Instance {
    current: Mutex<Option<Current>>,
    took_any: std::sync::atomic::AtomicBool,
    kill: Notify,
}

impl Host {
    /// A host for `spec`; instances start on demand and `log` gets their output.
    pub fn new(spec: Spec, log: LogFn) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                spec,
                counts: Mutex::new(Counts::default()),
                tx,
                rx: tokio::sync::Mutex::new(rx),
                log,
                pids: Mutex::new(Vec::new()),
                stop: Notify::new(),
                init_error: Mutex::new(None),
            }),
        }
    }

    /// The function's logical id.
    pub fn logical_id(&self) -> &str {
        &self.inner.spec.logical_id
    }

    /// The process ids of the running instances.
    pub fn pids(&self) -> Vec<u32> {
        self.inner.pids.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Starts one instance now (so the first invocation finds it warm).
    pub async fn prewarm(&self) -> Result<(), SpawnError> {
        {
            let mut c = lock(&self.inner.counts);
            c.instances += 1;
            c.starting += 1;
        }
        spawn_instance(self.inner.clone()).await
    }

    /// Invokes the function once with `payload` and waits for the outcome.
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        let request_id = switchyard_core::ids::ulid();
        let (reply, outcome) = oneshot::channel();
        let spawn = {
            let mut c = lock(&self.inner.counts);
            if c.stopping {
                return Outcome::Crashed("the runner is stopping".into());
            }
            c.waiting += 1;
            let spawn = c.waiting > c.idle + c.starting && c.instances < self.inner.spec.max_instances.max(1);
            if spawn {
                c.instances += 1;
                c.starting += 1;
            }
            spawn
        };
        if self
            .inner
            .tx
            .send(Pending {
                request_id,
                payload,
                reply,
            })
            .is_err()
        {
            return Outcome::Crashed("the function's queue is closed".into());
        }
        if spawn && let Err(e) = spawn_instance(self.inner.clone()).await {
            fail_waiting_if_no_instance(&self.inner, &e.to_string()).await;
        }
        outcome
            .await
            .unwrap_or_else(|_| Outcome::Crashed("the invocation was dropped".into()))
    }

    /// Kills every instance and fails what is still queued.
    pub async fn shutdown(&self) {
        lock(&self.inner.counts).stopping = true;
        self.inner.stop.notify_waiters();
        // Wait (briefly) for the supervisors to reap their processes.
        for _ in 0..100 {
            if lock(&self.inner.counts).instances == 0 {
                break;
            }
            self.inner.stop.notify_waiters();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut rx = self.inner.rx.lock().await;
        while let Ok(p) = rx.try_recv() {
            let _ = p.reply.send(Outcome::Crashed("the runner stopped".into()));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// After an instance could not start or died during init: when no instance
/// is left to take them, the queued invocations fail with `why`.
async fn fail_waiting_if_no_instance(inner: &Arc<Inner>, why: &str) {
    if lock(&inner.counts).instances > 0 {
        return;
    }
    let Ok(mut rx) = inner.rx.try_lock() else { return };
    while let Ok(p) = rx.try_recv() {
        lock(&inner.counts).waiting -= 1;
        let _ = p.reply.send(Outcome::Crashed(why.to_string()));
    }
}

/// Starts one instance: its Runtime API endpoint, its process, and the
/// supervisor that reaps it. The counts already include it.
async fn spawn_instance(inner: Arc<Inner>) -> Result<(), SpawnError> {
    let undo = |inner: &Arc<Inner>| {
        let mut c = lock(&inner.counts);
        c.instances -= 1;
        c.starting -= 1;
    };
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            undo(&inner);
            return Err(SpawnError::Bind(e));
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            undo(&inner);
            return Err(SpawnError::Bind(e));
        }
    };
    let spec = &inner.spec;
    let mut cmd = tokio::process::Command::new(&spec.binary);
    cmd.env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            undo(&inner);
            return Err(SpawnError::Start {
                binary: spec.binary.clone(),
                source: e,
            });
        }
    };
    let pid = child.id().unwrap_or(0);
    lock(&inner.pids).push(pid);
    let tail = Arc::new(Mutex::new(VecDeque::<String>::new()));
    for pipe in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (log, name, tail) = (inner.log.clone(), spec.logical_id.clone(), tail.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log(&name, &line);
                let mut t = lock(&tail);
                t.push_back(line);
                if t.len() > 20 {
                    t.pop_front();
                }
            }
        });
    }
    let instance = Arc::new(Instance {
        current: Mutex::new(None),
        took_any: false.into(),
        kill: Notify::new(),
    });
    let server = tokio::spawn(serve(listener, inner.clone(), instance.clone()));
    let sup_inner = inner.clone();
    tokio::spawn(async move {
        let inner = sup_inner;
        let status = tokio::select! {
            s = child.wait() => s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            _ = instance.kill.notified() => {
                let _ = child.kill().await;
                "killed".to_string()
            }
            _ = inner.stop.notified() => {
                let _ = child.kill().await;
                "stopped".to_string()
            }
        };
        server.abort();
        let _ = server.await;
        lock(&inner.pids).retain(|p| *p != pid);
        let took_any = instance.took_any.load(std::sync::atomic::Ordering::SeqCst);
        if let Some(cur) = lock(&instance.current).take() {
            let _ = cur.reply.send(Outcome::Crashed(format!("Runtime.ExitError: {status}")));
        }
        {
            let mut c = lock(&inner.counts);
            c.instances -= 1;
            if !took_any {
                c.starting = c.starting.saturating_sub(1);
            }
        }
        if !took_any {
            let tail: Vec<String> = lock(&tail).iter().cloned().collect();
            let reported = lock(&inner.init_error)
                .take()
                .map(|e| format!("{e}; "))
                .unwrap_or_default();
            let why = format!(
                "Runtime.InitError: the process exited during init ({status}): {reported}{}",
                tail.join(" | ")
            );
            fail_waiting_if_no_instance(&inner, &why).await;
        }
    });
    Ok(())
}

/// The instance's Runtime API.
async fn serve(listener: TcpListener, inner: Arc<Inner>, instance: Arc<Instance>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (inner, instance) = (inner.clone(), instance.clone());
        conns.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (inner, instance) = (inner.clone(), instance.clone());
                async move { Ok::<_, hyper::Error>(runtime_api(req, &inner, &instance).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}

async fn runtime_api(req: Request<Incoming>, inner: &Arc<Inner>, instance: &Arc<Instance>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return reply(StatusCode::NOT_FOUND, r#"{"errorMessage":"unknown path"}"#);
    };
    match (req.method(), rest) {
        (&Method::GET, "invocation/next") => next(inner, instance).await,
        (&Method::POST, "init/error") => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let (error_type, message) = error_fields(&body);
            *lock(&inner.init_error) = Some(format!("{error_type}: {message}"));
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (&Method::POST, r) => {
            let Some((id, kind)) = r.strip_prefix("invocation/").and_then(|r| r.split_once('/')) else {
                return reply(StatusCode::NOT_FOUND, r#"{"errorMessage":"unknown path"}"#);
            };
            let (id, kind) = (id.to_string(), kind.to_string());
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let cur = {
                let mut slot = lock(&instance.current);
                match slot.as_ref() {
                    Some(c) if c.request_id == id => slot.take(),
                    _ => None,
                }
            };
            let Some(cur) = cur else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    r#"{"errorMessage":"no such invocation in progress"}"#,
                );
            };
            let outcome = match kind.as_str() {
                "response" => Outcome::Ok(body),
                "error" => {
                    let (error_type, message) = error_fields(&body);
                    Outcome::Error { error_type, message }
                }
                _ => return reply(StatusCode::NOT_FOUND, r#"{"errorMessage":"unknown path"}"#),
            };
            let _ = cur.reply.send(outcome);
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"errorMessage":"method not allowed"}"#,
        ),
    }
}

fn error_fields(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
    let t = s("errorType");
    (if t.is_empty() { "Unhandled".into() } else { t }, s("errorMessage"))
}

async fn next(inner: &Arc<Inner>, instance: &Arc<Instance>) -> Response<Full<Bytes>> {
    {
        let mut c = lock(&inner.counts);
        if !instance.took_any.swap(true, std::sync::atomic::Ordering::SeqCst) {
            c.starting = c.starting.saturating_sub(1);
        }
        c.idle += 1;
    }
    // Leaves `idle` when this future ends, however it ends.
    struct Idle<'a>(&'a Mutex<Counts>);
    impl Drop for Idle<'_> {
        fn drop(&mut self) {
            lock(self.0).idle -= 1;
        }
    }
    let idle = Idle(&inner.counts);
    let pending = {
        let mut rx = inner.rx.lock().await;
        rx.recv().await
    };
    drop(idle);
    let Some(p) = pending else {
        return reply(StatusCode::GONE, r#"{"errorMessage":"shutting down"}"#);
    };
    lock(&inner.counts).waiting -= 1;
    let deadline = std::time::SystemTime::now() + inner.spec.timeout;
    let deadline_ms = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let request_id = p.request_id.clone();
    *lock(&instance.current) = Some(Current {
        request_id: p.request_id.clone(),
        reply: p.reply,
    });
    // The timeout clock starts when the instance takes the invocation.
    let (timer_instance, timeout, rid) = (instance.clone(), inner.spec.timeout, request_id.clone());
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let timed_out = {
            let mut slot = lock(&timer_instance.current);
            match slot.as_ref() {
                Some(c) if c.request_id == rid => slot.take(),
                _ => None,
            }
        };
        if let Some(cur) = timed_out {
            let _ = cur.reply.send(Outcome::Timeout);
            timer_instance.kill.notify_one();
        }
    });
    let trace = format!(
        "Root=1-{:08x}-{};Sampled=0",
        deadline_ms / 1000,
        &request_id.to_lowercase()[..24.min(request_id.len())]
    );
    let mut r = Response::new(Full::new(p.payload));
    let h = r.headers_mut();
    let mut set = |k: &'static str, v: &str| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", &request_id);
    set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &inner.spec.arn);
    set("lambda-runtime-trace-id", &trace);
    set("content-type", "application/json");
    r
}
