//! Running Switchyard without AWS.
//!
//! - [`venv`]: the project's Python virtualenv (moto, cfn-lint, the Standard
//!   Webhooks libraries), created and kept in step with
//!   `shared/local/python/requirements.txt`;
//! - [`moto`]: moto's server on a free loopback port, stopped with its owner;
//! - [`template`]: `template.yaml` as JSON (decoded by cfn-lint) and the
//!   internal track's rules and queues read from it;
//! - [`resources`]: the queues (with redrive DLQs), tables, bus and rules the
//!   functions use, created in moto with a unique prefix so runs never
//!   collide (the internal track's straight from `template.yaml`);
//! - [`receiver`]: a real HTTP server on loopback that records the webhooks
//!   it receives;
//! - [`esm`]: an SQS poller that plays Lambda's event source mapping for a
//!   handler (batch in, partial batch response out, successes deleted).
//!
//! - [`aws_proxy`]: a proxy before moto that counts requests by operation
//!   and DynamoDB capacity units as AWS bills them, and injects faults;
//! - [`iam`]: the IAM permissions `template.yaml` gives each function, and
//!   IAM's matching of an action and a resource against them;
//! - [`runner`]: the local runner: a template's whole stack, provisioned in
//!   moto, its functions run as their real binaries behind an emulated Lambda
//!   Runtime API, its triggers played (SQS, HTTP API, rules, schedules).
//!
//! Nothing here is deployed; tests, the demo and the benchmarks use it.

pub mod apitools;
pub mod aws_proxy;
pub mod esm;
pub mod http_api;
pub mod iam;
pub mod moto;
pub mod receiver;
pub mod resources;
pub mod runner;
pub mod template;
pub mod venv;

use std::path::PathBuf;

/// The workspace root (where `Cargo.toml`, `template.yaml` and `.venv` live).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).map(PathBuf::from).unwrap_or(here)
}

/// The directory cargo builds into (`$CARGO_TARGET_DIR`, else `target/`
/// in the workspace).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The region local mode uses.
pub const LOCAL_REGION: &str = "us-east-1";

/// An SDK configuration for moto at `endpoint`: fixed region and dummy
/// credentials, so nothing is read from the machine's AWS setup.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    sdk_config_as(endpoint, "testing").await
}

/// [`sdk_config`] with its own access key id, which tells a proxy in front
/// of moto (`aws_proxy`) who called; moto accepts any.
pub async fn sdk_config_as(endpoint: &str, key_id: &str) -> aws_config::SdkConfig {
    let creds = aws_sdk_sqs::config::Credentials::new(key_id, "testing", None, None, "switchyard-local");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(LOCAL_REGION))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The SSRF policy of local mode: plain `http` allowed, and loopback (where
/// the local receivers listen) allow-listed. Everything else is refused as in
/// production.
#[allow(clippy::expect_used, reason = "a literal allow-list that always parses")]
pub fn local_ssrf_policy() -> switchyard_core::ssrf::SsrfPolicy {
    switchyard_core::ssrf::SsrfPolicy {
        allow_http: true,
        allow: switchyard_core::ssrf::SsrfPolicy::parse_allow_list("127.0.0.0/8,::1")
            .expect("a valid literal allow-list"),
    }
}

/// Everything that can go wrong setting up the local stack, with what it
/// was doing: which file, which command, which AWS call, which resource.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Something the local stack needs is missing or unusable.
    #[error("{0}")]
    Setup(String),
    /// A command the local stack runs (pip, python) failed.
    #[error("{command} failed ({status})")]
    Command {
        /// What was run.
        command: String,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// A script of the virtualenv failed.
    #[error("{script} failed: {stderr}")]
    Script {
        /// The script and its command.
        script: String,
        /// What it printed to stderr.
        stderr: String,
    },
    /// moto's server exited before it listened.
    #[error("moto did not start; its log says:\n{log}")]
    MotoDidNotStart {
        /// The end of `target/moto.log`.
        log: String,
    },
    /// Reading, writing or starting something failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An AWS call (to moto) failed.
    #[error("{operation}: {message}")]
    Aws {
        /// The operation, with what it was about.
        operation: String,
        /// The SDK's error, with its context.
        message: String,
    },
    /// `template.yaml` could not be read, or holds something the local
    /// runner cannot reproduce.
    #[error("template: {0}")]
    Template(String),
    /// The template's parameters or conditions cannot be evaluated.
    #[error("template: {0}")]
    Parameters(#[source] runner::cfn::Error),
    /// A resource of the template that the local runner cannot reproduce.
    #[error("template: resource {id} {reason}")]
    Resource {
        /// The resource's logical id.
        id: String,
        /// What about it cannot be reproduced.
        reason: String,
    },
    /// A resource whose intrinsic functions do not evaluate.
    #[error("template: resource {id} {source}")]
    Intrinsic {
        /// The resource's logical id.
        id: String,
        /// The evaluation error.
        source: runner::cfn::Error,
    },
    /// Resources that refer to each other in a cycle.
    #[error("template: resources {ids:?} depend on each other in a cycle")]
    Cycle {
        /// The resources left once everything else was ordered.
        ids: Vec<String>,
    },
    /// A function's first instance did not start.
    #[error("{function}: {source}")]
    Function {
        /// The function's logical id.
        function: String,
        /// Why it did not start.
        source: runner::lambda::SpawnError,
    },
}

impl LocalError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// An AWS (or SDK builder) error as a [`LocalError`].
pub(crate) fn aws_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> LocalError {
    LocalError::Aws {
        operation: what.to_string(),
        message: e.to_string(),
    }
}
