//! The local runner: the whole stack of a SAM template on one machine, with
//! moto as AWS and the runner playing Lambda.
//!
//! [`Runner::start`] provisions the template in moto ([`provision`]), then
//! plays every trigger the template declares:
//!
//! - each `SQS` event as Lambda's event source mapping: long polls, the
//!   template's `BatchSize` and `MaximumBatchingWindowInSeconds`, up to
//!   `ScalingConfig.MaximumConcurrency` batches in flight, and the batch
//!   response read as Lambda reads it (with `ReportBatchItemFailures`, the
//!   successes are deleted and the listed failures stay; an error fails the
//!   whole batch);
//! - each HTTP API on localhost ([`http`]);
//! - each rule whose target is a function, through a runner-owned queue
//!   that the rule targets in moto, as an asynchronous invocation (retried
//!   `MaximumRetryAttempts` times, then sent to the `OnFailure` queue);
//! - each schedule ([`schedule`]).
//!
//! Functions run as their real binaries ([`lambda`]). Every invocation
//! makes one line: time, function, trigger, batch size, duration, outcome.
//! Each trigger runs as its own task (`triggers`).

pub mod cfn;
pub mod http;
pub mod lambda;
pub mod provision;
pub mod schedule;
mod triggers;

use crate::LocalError;
use aws_config::SdkConfig;
use bytes::Bytes;
use lambda::{Host, Outcome};
use provision::Plan;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use triggers::{poll_rule, poll_sqs, run_schedule, serve_api};

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Prefix of every physical name (`AWS::StackName`).
    pub stack_name: String,
    /// Parameter overrides (`sam deploy --parameter-overrides`).
    pub parameters: HashMap<String, String>,
    /// Where the function binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    /// The port of the first HTTP API (0: any free port); the others take
    /// free ports.
    pub http_port: u16,
    /// Variables set in every function's environment after the template's
    /// (`sam local --env-vars`); [`Options::local_env`] by default.
    pub env_overrides: Vec<(String, String)>,
    /// The most instances of one function (execution environments).
    pub max_instances: usize,
    /// Play the triggers (SQS, HTTP, rules, schedules); off for a single
    /// invocation.
    pub triggers: bool,
    /// Print a line per invocation to stderr.
    pub print_invocations: bool,
    /// Where the functions' own log lines go: printed to stderr (`None`) or
    /// appended to `<dir>/<function>.log`.
    pub function_log_dir: Option<PathBuf>,
    /// Seconds an SQS poll waits for messages (long polling).
    pub poll_wait_secs: i32,
}

impl Options {
    /// The environment local mode adds to every function: plain `http` and
    /// loopback webhook endpoints allowed (the demo's receiver listens on
    /// 127.0.0.1); everything else is refused as in production. A function
    /// that looks like it runs in Lambda refuses those switches unless
    /// `LOCAL_MODE` says it runs here.
    pub fn local_env() -> Vec<(String, String)> {
        vec![
            ("LOCAL_MODE".into(), "true".into()),
            ("ALLOW_HTTP".into(), "true".into()),
            ("SSRF_ALLOW_LIST".into(), "127.0.0.0/8,::1".into()),
        ]
    }

    /// The defaults for stack `stack_name` with binaries in `bin_dir`: any free port, [`Options::local_env`], 4 instances, triggers on.
    pub fn new(stack_name: &str, bin_dir: PathBuf) -> Self {
        Self {
            stack_name: stack_name.to_string(),
            parameters: HashMap::new(),
            bin_dir,
            http_port: 0,
            env_overrides: Self::local_env(),
            max_instances: 4,
            triggers: true,
            print_invocations: false,
            function_log_dir: None,
            poll_wait_secs: 2,
        }
    }
}

/// One invocation, as the runner's log line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The function's logical id.
    pub function: String,
    /// `sqs:<queue>`, `http:<METHOD path>`, `rule:<rule>`,
    /// `schedule:<rule>`, or `invoke`.
    pub trigger: String,
    /// How many records the payload carried (1 for HTTP and direct invokes).
    pub batch: usize,
    /// Wall time of the invocation.
    pub duration: Duration,
    /// A one-line summary of the result (a status code, a failure count, an error).
    pub outcome: String,
    /// Whether the invocation counts as a success for its trigger.
    pub ok: bool,
}

impl std::fmt::Display for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = switchyard_core::time_util::now_utc();
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03}  {:<18} {:<40} batch {:>2}  {:>6} ms  {}",
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond(),
            self.function,
            self.trigger,
            self.batch,
            self.duration.as_millis(),
            self.outcome
        )
    }
}

struct Shared {
    sqs: aws_sdk_sqs::Client,
    hosts: HashMap<String, Host>,
    records: Mutex<Vec<Invocation>>,
    print: bool,
    moto_endpoint: String,
}

impl Shared {
    fn record(&self, inv: Invocation) {
        if self.print {
            eprintln!("{inv}");
        }
        let mut r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() >= 100_000 {
            r.drain(..50_000);
        }
        r.push(inv);
    }

    async fn invoke(&self, function: &str, trigger: &str, batch: usize, payload: Bytes) -> Outcome {
        self.invoke_described(function, trigger, batch, payload, |o| (o.summary(), o.is_ok()))
            .await
    }

    /// Invokes and records, `describe` saying what the log line shows and
    /// whether it counts as a success.
    async fn invoke_described(
        &self,
        function: &str,
        trigger: &str,
        batch: usize,
        payload: Bytes,
        describe: impl FnOnce(&Outcome) -> (String, bool),
    ) -> Outcome {
        let Some(host) = self.hosts.get(function) else {
            return Outcome::Crashed(format!("no function {function}"));
        };
        let t = Instant::now();
        let outcome = host.invoke(payload).await;
        let (summary, ok) = describe(&outcome);
        self.record(Invocation {
            function: function.to_string(),
            trigger: trigger.to_string(),
            batch,
            duration: t.elapsed(),
            outcome: summary,
            ok,
        });
        outcome
    }
}

/// A running local stack. Stop it with [`Runner::shutdown`]; dropping it
/// also kills the function processes (their handles kill on drop).
pub struct Runner {
    plan: Plan,
    shared: Arc<Shared>,
    apis: HashMap<String, SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Runner {
    /// Provisions `template` in moto (`sdk` points at it) and starts playing
    /// it.
    pub async fn start(sdk: &SdkConfig, template: &Value, opts: Options) -> Result<Self, LocalError> {
        let moto_endpoint = sdk
            .endpoint_url()
            .ok_or_else(|| LocalError::Setup("the SDK configuration has no endpoint URL (moto's)".into()))?
            .to_string();
        // Bind the HTTP APIs first, so their URLs are known to the template.
        let mut listeners = Vec::new();
        let mut api_endpoints = HashMap::new();
        let mut apis = HashMap::new();
        if opts.triggers {
            for (i, api) in provision::http_apis(template).into_iter().enumerate() {
                let port = if i == 0 { opts.http_port } else { 0 };
                let l = TcpListener::bind(("127.0.0.1", port))
                    .await
                    .map_err(LocalError::io(format!("binding 127.0.0.1:{port} for {api}")))?;
                let addr = l.local_addr().map_err(LocalError::io("local address"))?;
                api_endpoints.insert(api.clone(), format!("http://{addr}"));
                apis.insert(api.clone(), addr);
                listeners.push((api, l));
            }
        }
        let plan = provision::provision(
            sdk,
            template,
            &provision::Options {
                stack_name: opts.stack_name.clone(),
                parameters: opts.parameters.clone(),
                bin_dir: opts.bin_dir.clone(),
                api_endpoints,
            },
        )
        .await?;
        let log = log_fn(opts.function_log_dir.clone())?;
        let mut hosts = HashMap::new();
        for f in &plan.functions {
            if !f.binary.is_file() {
                return Err(LocalError::Setup(format!(
                    "{}: no binary at {} (build it: cargo build --workspace --bins)",
                    f.logical_id,
                    f.binary.display()
                )));
            }
            let spec = lambda::Spec {
                logical_id: f.logical_id.clone(),
                arn: f.arn.clone(),
                binary: f.binary.clone(),
                env: function_env(f, &moto_endpoint, &opts),
                timeout: Duration::from_secs(f.timeout_secs.max(1)),
                max_instances: f
                    .reserved_concurrency
                    .map(|r| r as usize)
                    .unwrap_or(opts.max_instances)
                    .clamp(1, opts.max_instances.max(1)),
            };
            hosts.insert(f.logical_id.clone(), Host::new(spec, log.clone()));
        }
        let shared = Arc::new(Shared {
            sqs: aws_sdk_sqs::Client::new(sdk),
            hosts,
            records: Mutex::new(Vec::new()),
            print: opts.print_invocations,
            moto_endpoint,
        });
        let mut runner = Self {
            plan,
            shared,
            apis,
            tasks: Vec::new(),
        };
        if opts.triggers {
            // Warm one instance of each function, so init errors show now.
            for host in runner.shared.hosts.values() {
                host.prewarm().await.map_err(|source| LocalError::Function {
                    function: host.logical_id().to_string(),
                    source,
                })?;
            }
            runner.start_triggers(listeners, &opts);
        }
        Ok(runner)
    }

    fn start_triggers(&mut self, listeners: Vec<(String, TcpListener)>, opts: &Options) {
        for f in &self.plan.functions {
            for src in &f.sqs {
                let concurrency = src
                    .max_concurrency
                    .map(|c| c as usize)
                    .unwrap_or(opts.max_instances)
                    .clamp(1, opts.max_instances.max(1));
                self.tasks.push(tokio::spawn(poll_sqs(
                    self.shared.clone(),
                    f.logical_id.clone(),
                    src.clone(),
                    concurrency,
                    opts.poll_wait_secs,
                )));
            }
        }
        for ri in &self.plan.rule_invokes {
            let async_cfg = self
                .plan
                .function(&ri.function)
                .map(|f| f.async_config.clone())
                .unwrap_or(provision::AsyncConfig {
                    max_retries: 2,
                    on_failure_queue_url: None,
                });
            self.tasks.push(tokio::spawn(poll_rule(
                self.shared.clone(),
                ri.clone(),
                async_cfg,
                opts.poll_wait_secs,
            )));
        }
        for s in &self.plan.schedules {
            self.tasks
                .push(tokio::spawn(run_schedule(self.shared.clone(), s.clone())));
        }
        for (api, listener) in listeners {
            let routes: Vec<provision::Route> = self.plan.routes.iter().filter(|r| r.api == api).cloned().collect();
            let api_id = self.plan.reference(&api).unwrap_or(&api).to_string();
            self.tasks
                .push(tokio::spawn(serve_api(self.shared.clone(), listener, api_id, routes)));
        }
    }

    /// What was provisioned and what the runner plays.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The base URL of an HTTP API (the first one when `api` is `None`).
    pub fn api_url(&self, api: Option<&str>) -> Option<String> {
        let addr = match api {
            Some(a) => self.apis.get(a)?,
            None => self.plan.apis.first().and_then(|a| self.apis.get(a))?,
        };
        Some(format!("http://{addr}"))
    }

    /// The moto endpoint the stack lives in.
    pub fn moto_endpoint(&self) -> &str {
        &self.shared.moto_endpoint
    }

    /// Invokes `function` once with `payload`, as `sam local invoke` does.
    pub async fn invoke(&self, function: &str, payload: Bytes) -> Outcome {
        self.shared.invoke(function, "invoke", 1, payload).await
    }

    /// Every invocation so far (the last 50,000 at least).
    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The process ids of every function instance running now.
    pub fn pids(&self) -> Vec<u32> {
        self.shared.hosts.values().flat_map(Host::pids).collect()
    }

    /// The process ids of one function's instances.
    pub fn pids_of(&self, function: &str) -> Vec<u32> {
        self.shared.hosts.get(function).map(Host::pids).unwrap_or_default()
    }

    /// Stops the triggers and every function process.
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        for host in self.shared.hosts.values() {
            host.shutdown().await;
        }
    }
}

fn function_env(f: &provision::Function, moto: &str, opts: &Options) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
        ("_HANDLER".into(), "bootstrap".into()),
        ("LAMBDA_TASK_ROOT".into(), opts.bin_dir.display().to_string()),
        ("AWS_REGION".into(), crate::LOCAL_REGION.into()),
        ("AWS_DEFAULT_REGION".into(), crate::LOCAL_REGION.into()),
        // Dummy credentials; the key id names the function, so a proxy in
        // front of moto can tell who called (moto accepts any key).
        ("AWS_ACCESS_KEY_ID".into(), f.logical_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_ENDPOINT_URL".into(), moto.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("AWS_EXECUTION_ENV".into(), "AWS_Lambda_provided.al2023".into()),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), f.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), f.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME".into(), f.log_group.clone()),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "local".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
    ];
    if f.log_format.eq_ignore_ascii_case("json") {
        env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
        if let Some(level) = &f.log_level {
            env.push(("AWS_LAMBDA_LOG_LEVEL".into(), level.clone()));
        }
    }
    env.extend(f.environment.iter().cloned());
    env.extend(opts.env_overrides.iter().cloned());
    env
}

fn log_fn(dir: Option<PathBuf>) -> Result<lambda::LogFn, LocalError> {
    match dir {
        None => Ok(Arc::new(|function: &str, line: &str| eprintln!("[{function}] {line}"))),
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(LocalError::io(format!("creating {}", dir.display())))?;
            let files: Arc<Mutex<HashMap<String, std::fs::File>>> = Arc::default();
            Ok(Arc::new(move |function: &str, line: &str| {
                use std::io::Write;
                let mut files = files.lock().unwrap_or_else(|p| p.into_inner());
                if !files.contains_key(function) {
                    let path = dir.join(format!("{function}.log"));
                    match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                        Ok(f) => {
                            files.insert(function.to_string(), f);
                        }
                        Err(_) => return,
                    }
                }
                if let Some(f) = files.get_mut(function) {
                    let _ = writeln!(f, "{line}");
                }
            }))
        }
    }
}
