//! `cargo xtask up` and `cargo xtask invoke`: the template's whole stack on
//! this machine, and one function invoked once with an `events/` file.
//!
//! Both build the function binaries the template names (debug profile),
//! start moto from the project's virtualenv (or use
//! `$SWITCHYARD_MOTO_ENDPOINT`), and provision `template.yaml` in it with
//! the local runner (`switchyard_local::runner`).

use anyhow::{Context as _, Result, anyhow, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use switchyard_core::ApiKey;
use switchyard_local::moto::Moto;
use switchyard_local::runner::{Options, Runner};
use switchyard_local::venv::Venv;

/// Command-line options shared by `up`, `invoke` and `demo`.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) template: PathBuf,
    pub(crate) port: u16,
    pub(crate) stack_name: Option<String>,
    pub(crate) parameters: HashMap<String, String>,
    pub(crate) build: bool,
    /// Function logs to stderr (else to target/local/<stack>/logs).
    pub(crate) function_logs: bool,
    pub(crate) event_file: Option<PathBuf>,
    pub(crate) function: Option<String>,
    pub(crate) keep_running: bool,
    /// Put the counting, fault-injecting AWS proxy between the stack and
    /// moto (`switchyard_local::aws_proxy`).
    pub(crate) aws_proxy: bool,
    /// Run the release binaries (`target/release`), as deployed.
    pub(crate) release: bool,
    /// Variables set in every function's environment, after the template's.
    pub(crate) env: Vec<(String, String)>,
}

impl Args {
    pub(crate) fn parse(root: &Path, args: &[String]) -> Result<Self> {
        let mut a = Self {
            template: root.join("template.yaml"),
            port: 3000,
            stack_name: None,
            parameters: HashMap::new(),
            build: true,
            function_logs: false,
            event_file: None,
            function: None,
            keep_running: false,
            aws_proxy: false,
            release: false,
            env: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().cloned().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--template" | "-t" => a.template = PathBuf::from(value(arg)?),
                "--port" => a.port = value(arg)?.parse().map_err(|_| anyhow!("--port takes a number"))?,
                "--stack-name" => a.stack_name = Some(value(arg)?),
                "--param" | "--parameter-overrides" => {
                    let v = value(arg)?;
                    let (k, v) = v.split_once('=').context("--param takes Name=Value")?;
                    a.parameters.insert(k.to_string(), v.to_string());
                }
                "--no-build" => a.build = false,
                "--function-logs" => a.function_logs = true,
                "--keep-running" => a.keep_running = true,
                "-e" | "--event" => a.event_file = Some(PathBuf::from(value(arg)?)),
                s if s.starts_with('-') => bail!("unknown option {s}"),
                s if a.function.is_none() => a.function = Some(s.to_string()),
                s => bail!("unexpected argument {s}"),
            }
        }
        Ok(a)
    }
}

/// `cargo build` of the binaries `template` names.
pub(crate) fn build_functions(root: &Path, template: &serde_json::Value) -> Result<()> {
    build_functions_in(root, template, false)
}

/// [`build_functions`], with the release profile (the Lambda binaries')
/// when `release`.
pub(crate) fn build_functions_in(root: &Path, template: &serde_json::Value, release: bool) -> Result<()> {
    let bins = switchyard_local::runner::provision::function_binaries(template);
    if bins.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root).args(["build", "--locked", "--quiet"]);
    if release {
        cmd.arg("--release");
    }
    for b in &bins {
        cmd.args(["--bin", b]);
    }
    eprintln!("building {} ...", bins.join(", "));
    let status = cmd.status().context("running cargo build")?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow!("cargo build failed ({status})"))
    }
}

/// A running local stack and what a user needs to reach it.
pub(crate) struct Stack {
    pub(crate) moto: Moto,
    pub(crate) runner: Runner,
    /// The admin key of this run (random; only its SHA-256 goes to the
    /// template's `AdminKeySha256`), unless the parameter was given.
    pub(crate) admin_key: Option<ApiKey>,
    /// The proxy every AWS call of the stack goes through, if asked for.
    pub(crate) aws_proxy: Option<switchyard_local::aws_proxy::AwsProxy>,
    /// `AWS::StackName` of this run (the prefix of every physical name).
    pub(crate) stack_name: String,
}

/// Builds (unless told not to), starts moto and the runner.
pub(crate) async fn start(root: &Path, venv: &Venv, args: &Args, triggers: bool) -> Result<Stack> {
    let template = switchyard_local::template::load_path(root, venv, &args.template)
        .with_context(|| format!("loading {}", args.template.display()))?;
    if args.build {
        build_functions_in(root, &template, args.release)?;
    }
    let moto = Moto::start(root, venv).context("starting moto")?;
    let aws_proxy = if args.aws_proxy {
        Some(
            switchyard_local::aws_proxy::AwsProxy::start(&moto.endpoint)
                .await
                .context("starting the AWS proxy")?,
        )
    } else {
        None
    };
    let sdk = switchyard_local::sdk_config(&aws_proxy.as_ref().map_or(moto.endpoint.clone(), |p| p.endpoint())).await;
    let stack_name = args.stack_name.clone().unwrap_or_else(|| {
        if moto.owns_process() {
            "switchyard-local".into()
        } else {
            // moto's CreateQueue reuses a queue of the same name: a shared
            // server gets fresh names.
            switchyard_local::resources::unique_prefix("up")
        }
    });
    let mut parameters = args.parameters.clone();
    let declares_admin = template.pointer("/Parameters/AdminKeySha256").is_some();
    let admin_key = (declares_admin && !parameters.contains_key("AdminKeySha256")).then(ApiKey::generate);
    if let Some(k) = &admin_key {
        parameters.insert("AdminKeySha256".into(), k.hash().as_str().to_string());
    }
    let profile = if args.release { "release" } else { "debug" };
    let mut opts = Options::new(&stack_name, switchyard_local::target_dir().join(profile));
    opts.parameters = parameters;
    opts.env_overrides.extend(args.env.iter().cloned());
    opts.http_port = args.port;
    opts.triggers = triggers;
    opts.print_invocations = true;
    opts.function_log_dir = (!args.function_logs).then(|| {
        switchyard_local::target_dir()
            .join("local")
            .join(&stack_name)
            .join("logs")
    });
    let runner = Runner::start(&sdk, &template, opts)
        .await
        .context("starting the local runner")?;
    Ok(Stack {
        moto,
        runner,
        admin_key,
        aws_proxy,
        stack_name,
    })
}

/// What the stack is: resources, functions, routes, what is not emulated.
pub(crate) fn describe(stack: &Stack, args: &Args) {
    let plan = stack.runner.plan();
    println!("==> moto (AWS) at {}", stack.moto.endpoint);
    println!("==> provisioned from {}:", args.template.display());
    for (id, kind, physical) in &plan.created {
        println!("      {kind:<24} {id:<34} {}", short(physical));
    }
    println!("==> functions (their real binaries, behind a local Lambda Runtime API):");
    for f in &plan.functions {
        let mut triggers: Vec<String> = f
            .sqs
            .iter()
            .map(|s| format!("sqs:{} (batch {}, window {} s)", s.queue, s.batch_size, s.window_secs))
            .collect();
        triggers.extend(
            plan.rule_invokes
                .iter()
                .filter(|r| r.function == f.logical_id)
                .map(|r| format!("rule:{}", r.rule)),
        );
        triggers.extend(
            plan.schedules
                .iter()
                .filter(|s| matches!(&s.target, switchyard_local::runner::provision::ScheduleTarget::Function(x) if x == &f.logical_id))
                .map(|s| format!("schedule:{} {}", s.rule, s.expression)),
        );
        let routes = plan.routes.iter().filter(|r| r.function == f.logical_id).count();
        if routes > 0 {
            triggers.push(format!("{routes} HTTP route(s)"));
        }
        println!("      {:<20} {}", f.logical_id, triggers.join(", "));
    }
    for api in &plan.apis {
        if let Some(url) = stack.runner.api_url(Some(api)) {
            println!("==> HTTP API {api} at {url}");
            for r in plan.routes.iter().filter(|r| &r.api == api) {
                println!("      {:<6} {:<28} → {}", r.method, r.path, r.function);
            }
        }
    }
    if !plan.notes.is_empty() {
        println!("==> not emulated or not applied locally:");
        for line in grouped_notes(&plan.notes) {
            println!("      {line}");
        }
    }
    if let Some(k) = &stack.admin_key {
        println!(
            "==> admin key of this run (AdminKeySha256 is its SHA-256): {}",
            k.expose()
        );
    }
}

/// The notes with the same text after their resource id on one line:
/// `FanoutDLQ.SqsManagedSseEnabled: …` and `DeliveriesDLQ.SqsManagedSseEnabled: …`
/// become `.SqsManagedSseEnabled: … — FanoutDLQ, DeliveriesDLQ`.
fn grouped_notes(notes: &[String]) -> Vec<String> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for n in notes {
        let cut = n.find(['.', ' ', ':']).unwrap_or(n.len());
        let (id, rest) = n.split_at(cut);
        match groups.iter_mut().find(|(r, _)| r == rest) {
            Some((_, ids)) => ids.push(id.to_string()),
            None => groups.push((rest.to_string(), vec![id.to_string()])),
        }
    }
    groups
        .into_iter()
        .map(|(rest, ids)| {
            let n = ids.len();
            let who = if n <= 3 {
                ids.join(", ")
            } else {
                format!("{n} resources ({}, {}, … {})", ids[0], ids[1], ids[n - 1])
            };
            match rest.strip_prefix('.') {
                Some(property) => format!("{property} — {who}"),
                None => format!("{who}{rest}"),
            }
        })
        .collect()
}

fn short(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// The runtime the commands run on: two workers, like the machine.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// `cargo xtask up`: the stack until Ctrl-C.
pub(crate) fn up(root: &Path, args: &[String]) -> Result<()> {
    let args = Args::parse(root, args)?;
    let venv = crate::setup(root)?;
    runtime()?.block_on(async {
        let stack = start(root, &venv, &args, true).await?;
        describe(&stack, &args);
        println!("==> ready; a line per invocation below. Ctrl-C stops everything.");
        wait_for_stop().await;
        eprintln!("==> stopping");
        stop(stack).await;
        eprintln!("==> stopped");
        Ok(())
    })
}

/// Stops the runner (every function process), then moto.
pub(crate) async fn stop(stack: Stack) {
    stack.runner.shutdown().await;
    drop(stack.moto);
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `cargo xtask invoke <Function> [-e events/x.json]`: one invocation,
/// the response on stdout (as `sam local invoke -e`).
pub(crate) fn invoke(root: &Path, args: &[String]) -> Result<()> {
    let args = Args::parse(root, args)?;
    let function = args
        .function
        .clone()
        .context("usage: cargo xtask invoke <FunctionLogicalId> [-e events/file.json]")?;
    let payload = match &args.event_file {
        Some(p) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s
        }
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        None => "{}".to_string(),
    };
    serde_json::from_str::<serde_json::Value>(&payload).context("the event is not JSON")?;
    let venv = crate::setup(root)?;
    runtime()?.block_on(async {
        let mut args = args.clone();
        args.port = 0;
        let stack = start(root, &venv, &args, false).await?;
        if stack.runner.plan().function(&function).is_none() {
            let names: Vec<String> = stack
                .runner
                .plan()
                .functions
                .iter()
                .map(|f| f.logical_id.clone())
                .collect();
            stop(stack).await;
            bail!("no function {function} in the template (it has {})", names.join(", "));
        }
        let outcome = stack.runner.invoke(&function, bytes::Bytes::from(payload)).await;
        stop(stack).await;
        match outcome {
            switchyard_local::runner::lambda::Outcome::Ok(body) => {
                println!("{}", String::from_utf8_lossy(&body));
                Ok(())
            }
            other => {
                if let switchyard_local::runner::lambda::Outcome::Error { error_type, message } = &other {
                    println!(
                        "{}",
                        serde_json::json!({ "errorType": error_type, "errorMessage": message })
                    );
                }
                Err(anyhow!("the invocation failed: {}", other.summary()))
            }
        }
    })
}

/// Starts the stack `args` describe (building first unless told not to),
/// runs `f` on it, and stops it whatever `f` returned.
pub(crate) fn with_stack(root: &Path, args: &Args, f: impl AsyncFnOnce(&Stack) -> Result<()>) -> Result<()> {
    let venv = crate::setup(root)?;
    runtime()?.block_on(async {
        let stack = start(root, &venv, args, true).await?;
        let result = f(&stack).await;
        stop(stack).await;
        result
    })
}

/// The value after a command-line option, parsed and checked by `ok`;
/// `help` when it is missing, does not parse, or is refused.
pub(crate) fn option_value<T: std::str::FromStr>(
    it: &mut std::slice::Iter<'_, String>,
    ok: impl Fn(&T) -> bool,
    help: &str,
) -> Result<T> {
    it.next()
        .and_then(|v| v.parse().ok())
        .filter(|v| ok(v))
        .ok_or_else(|| anyhow!(help.to_string()))
}

/// A `kB` field of a process's `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in
/// KiB; `None` if the process or the field is not there.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The largest `field` of [`proc_status_kib`] among the running processes
/// of one function of the stack; `None` if none has it.
pub(crate) fn function_status_kib(stack: &Stack, function: &str, field: &str) -> Option<u64> {
    stack
        .runner
        .pids_of(function)
        .into_iter()
        .filter_map(|p| proc_status_kib(p, field))
        .max()
}

#[cfg(test)]
mod tests {
    use super::grouped_notes;

    #[test]
    fn notes_with_the_same_text_share_a_line() {
        let notes: Vec<String> = [
            "A.Sse: not applied",
            "B.Sse: not applied",
            "L1 (AWS::Logs::LogGroup): not emulated",
            "Q.Other: x",
            "C.Sse: not applied",
            "D.Sse: not applied",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            grouped_notes(&notes),
            [
                "Sse: not applied — 4 resources (A, B, … D)",
                "L1 (AWS::Logs::LogGroup): not emulated",
                "Other: x — Q",
            ]
        );
    }
}
