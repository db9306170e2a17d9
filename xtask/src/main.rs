//! Project commands, run as `cargo xtask <command>`.
//!
//! - `setup`: the Python virtualenv (moto, cfn-lint, standardwebhooks, svix, cargo-lambda);
//! - `test`: setup, then every test: the docs' links, formatting and
//!   clippy (warnings are errors), unit, integration (moto), interop,
//!   cfn-lint; it checks first that `shared/core` has no module cycle;
//! - `lint`: `cargo fmt --check` and clippy over every target, warnings
//!   denied (the workspace's lints are in the root `Cargo.toml`);
//! - `checkov`: the checkov scanner on `template.yaml` (its own
//!   virtualenv): no failed check, and a reason for every skipped one;
//! - `cycles`: the module graph of `shared/core` (or another crate's `src/`)
//!   by layer, and a failure on any cycle;
//! - `check-links`: every relative link and anchor in README.md and docs/ resolves;
//! - `demo`: the main job locally: the whole stack from template.yaml (the
//!   local runner), a tenant, an endpoint and one event over HTTP, a signed
//!   webhook received and verified, a workflow run;
//! - `up`: the whole stack from template.yaml until Ctrl-C;
//! - `invoke`: one function of the template, once, with an `events/` file;
//! - `bench-init`: release binaries' zipped size and init time per function;
//! - `bench-delivery`: the delivery engine against the raw HTTP client;
//! - `bench-cost`: AWS requests per delivery, counted on the local stack,
//!   and the cost per million deliveries;
//! - `fuzz`: the libFuzzer targets of `tests/fuzz` for a bounded time each;
//! - `fuzz-api`: schemathesis against the local stack's HTTP API, every
//!   check and the stateful phase, at a larger size than the test suite's;
//! - `soak`: a steady load through the local stack for a bounded time,
//!   with latency, memory and a zero-loss accounting;
//! - `sam-build`: the real `sam build` (SAM CLI in `.venv-sam`) for arm64, and a
//!   check of every function's `bootstrap`.

mod bench;
mod checkov;
mod cycles;
mod demo;
mod elf;
mod fuzz;
mod fuzz_api;
mod links;
mod local;
mod sam;
mod soak;

use anyhow::{Context as _, Result, anyhow};
use std::path::Path;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <command>
  setup
  test [cargo test args]
  cycles [SRC_DIR]                                 (module layers of shared/core/src or SRC_DIR; fails on a cycle)
  check-links                                      (every relative link and anchor of README.md and docs/ resolves)
  lint                                             (cargo fmt --check, and clippy on every target with warnings denied)
  checkov                                          (checkov on template.yaml: no failed check, every skip with a reason)
  openapi                                          (writes functions/api/openapi.json, generated from the code)
  demo [--keep-running] [OPTIONS]
  up [OPTIONS]                                     (default --port 3000)
  invoke <FunctionLogicalId> [-e events/file.json] [OPTIONS]
  bench-init [--spawns N] [--no-build] [--no-arm64]
  bench-delivery [--n N] [--concurrency C] [--only throughput|cpu|isolation|moto] [--diagnose] [--load L] [--seconds S] [--account-concurrency A]
                                                   (delivery engine vs raw reqwest, in memory and on moto; CPU per delivery; slow-endpoint isolation)
  bench-cost [--n N] [--no-build]                   (AWS requests and cost per million deliveries, measured on the local stack)
  fuzz [--secs N] [TARGET...]                      (libFuzzer targets of tests/fuzz, N s each; cargo-fuzz installed on first use)
  fuzz-api [--examples N] [--seed S] [--no-build]  (schemathesis, every check, against the local stack with a tenant key and the admin key)
  soak [--secs S] [--rate R] [--no-build]          (steady load through the local stack: throughput, latency, memory, zero-loss accounting)
  sam-build [--no-build] [-- <sam build args>]      (sam build for arm64 + check of .aws-sam/build)
OPTIONS: --template FILE, --port N, --stack-name NAME, --param Name=Value (repeatable), --no-build, --function-logs";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = switchyard_local::workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(&root).map(|_| ()),
        Some("test") => test(&root, &args[1..]),
        Some("cycles") => cycles::run(&root, &args[1..]),
        Some("check-links") => links::run(&root),
        Some("lint") => lint(&root),
        Some("checkov") => checkov::run(&root),
        Some("openapi") => openapi(&root),
        Some("demo") => demo::run(&root, &args[1..]),
        Some("up") => local::up(&root, &args[1..]),
        Some("invoke") => local::invoke(&root, &args[1..]),
        Some("bench-init") => bench::init::run(&root, &args[1..]),
        Some("bench-cost") => bench::cost::run(&root, &args[1..]),
        Some("bench-delivery") => bench::delivery::run(&args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("fuzz-api") => fuzz_api::run(&root, &args[1..]),
        Some("soak") => soak::run(&root, &args[1..]),
        Some("sam-build") => sam::run(&root, &args[1..]),
        _ => Err(anyhow!(USAGE)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo fmt --all --check`, then `cargo clippy --workspace --all-targets
/// --locked -- -D warnings`.
fn lint(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let steps: [&[&str]; 2] = [
        &["fmt", "--all", "--check"],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    ];
    for args in steps {
        eprintln!("== cargo {}", args.join(" "));
        let status = Command::new(&cargo)
            .current_dir(root)
            .args(args)
            .status()
            .with_context(|| format!("running cargo {}", args[0]))?;
        if !status.success() {
            return Err(anyhow!(
                "cargo {} failed ({status}): fix what it printed above",
                args[0]
            ));
        }
    }
    Ok(())
}

/// Writes `functions/api/openapi.json` from the code: the drift test,
/// told to write the document it generates.
fn openapi(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root)
        .env("SWITCHYARD_WRITE_OPENAPI", "1")
        .args([
            "test",
            "-p",
            "switchyard-tests",
            "--test",
            "integration",
            "--",
            "--exact",
            "api::the_committed_openapi_document_is_the_generated_one",
        ])
        .status()
        .context("running cargo test")?;
    if !status.success() {
        return Err(anyhow!("generating the OpenAPI document failed ({status})"));
    }
    eprintln!("wrote functions/api/openapi.json");
    Ok(())
}

fn setup(root: &Path) -> Result<switchyard_local::venv::Venv> {
    let venv = switchyard_local::venv::ensure(root)?;
    eprintln!("virtualenv ready: {}", venv.dir.display());
    Ok(venv)
}

/// Every test of the workspace. Extra arguments go to `cargo test`.
///
/// `shared/core`'s module graph is checked for cycles first, which takes a
/// moment, the docs' links (a second or less), then formatting and clippy
/// ([`lint`]). Then the function binaries are built: the local runner's
/// tests run them as processes, as Lambda would.
fn test(root: &Path, extra: &[String]) -> Result<()> {
    let core = root.join("shared/core/src");
    cycles::check(&core, &cycles::module_graph(&core, cycles::TestFiles::Count)?)?;
    links::run(root)?;
    lint(root)?;
    checkov::run(root)?;
    let venv = setup(root)?;
    let template = switchyard_local::template::load(root, &venv)?;
    local::build_functions(root, &template)?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["test", "--workspace", "--locked"])
        .args(extra)
        .status()
        .context("running cargo test")?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow!("tests failed ({status})"))
    }
}
