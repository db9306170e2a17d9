//! `cargo xtask bench-init`: deployment-package size and cold-init time of
//! every Lambda binary of `template.yaml`, checked against the project's
//! targets for binary size and cold start.
//!
//! * Size: each release binary zipped as `bootstrap` with deflate, exactly as a
//!   Lambda deployment package. The arm64 build (what is deployed, on
//!   `provided.al2023`) comes from `cargo lambda build --arm64`; the native
//!   x86_64 build is measured too because it is the one that can run here.
//! * Init: time from spawning the native binary to its first
//!   `GET /2018-06-01/runtime/invocation/next` against a local stub of the
//!   Lambda Runtime API. That covers process start, SDK configuration and
//!   client construction, i.e. everything a cold start pays before the first
//!   event.
//!
//! It is a benchmark, not a test: a missed target is reported, not an error.
//! Errors are things that make the numbers meaningless (a failed build, a
//! missing binary, a function that exits or never polls for an event).

mod packages;
mod spawn;
#[cfg(test)]
mod tests;

use anyhow::{Context as _, Result, anyhow, bail};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::stats::{mb, mib, ms};
pub(crate) use packages::ensure_arm64_target;
use packages::{Arch, Arm64, Package, arm64_packages, build_native, capture, package_all};
use spawn::{InitStats, measure_init};

/// Target: deployment package (zipped) at most this many bytes.
const MAX_ZIPPED_BYTES: u64 = 6_000_000;
/// Target: median init at most this long.
const MAX_INIT_MEDIAN: Duration = Duration::from_millis(15);
const DEFAULT_SPAWNS: usize = 20;

/// Newest glibc available on `provided.al2023`.
pub(crate) const MAX_GLIBC: (u32, u32) = (2, 34);

/// One Lambda function: its package/binary name and the settings it needs to
/// start (the same values `template.yaml` would give it, pointing nowhere).
struct Function {
    name: &'static str,
    settings: &'static [(&'static str, &'static str)],
}

const FUNCTIONS: [Function; 7] = [
    Function {
        name: "switchyard-ingest",
        settings: &[
            ("REGISTRY_TABLE", "registry"),
            ("DELIVERIES_TABLE", "deliveries"),
            ("FANOUT_QUEUE_URL", "http://127.0.0.1:9/000000000000/fanout"),
        ],
    },
    Function {
        name: "switchyard-fanout",
        settings: &[
            ("REGISTRY_TABLE", "registry"),
            ("DELIVERIES_QUEUE_URL", "http://127.0.0.1:9/000000000000/deliveries"),
        ],
    },
    Function {
        name: "switchyard-delivery",
        settings: &[
            ("REGISTRY_TABLE", "registry"),
            ("DELIVERIES_TABLE", "deliveries"),
            ("DELIVERIES_QUEUE_URL", "http://127.0.0.1:9/000000000000/deliveries"),
            ("DELIVERIES_DLQ_URL", "http://127.0.0.1:9/000000000000/deliveries-dlq"),
            ("FANOUT_QUEUE_URL", "http://127.0.0.1:9/000000000000/fanout"),
            ("SECRETS_KEY_ID", "00000000-0000-0000-0000-000000000000"),
        ],
    },
    Function {
        name: "switchyard-consumer",
        settings: &[("STATE_TABLE", "state")],
    },
    Function {
        name: "switchyard-api",
        settings: &[
            ("REGISTRY_TABLE", "registry"),
            ("DELIVERIES_TABLE", "deliveries"),
            ("DELIVERIES_QUEUE_URL", "http://127.0.0.1:9/000000000000/deliveries"),
            ("SECRETS_KEY_ID", "00000000-0000-0000-0000-000000000000"),
        ],
    },
    Function {
        name: "switchyard-admin",
        settings: &[("DLQS", "[]")],
    },
    Function {
        name: "switchyard-monitor",
        settings: &[("REGISTRY_TABLE", "registry"), ("QUEUES", "[]")],
    },
];

/// `cargo xtask bench-init [--spawns N] [--no-build] [--no-arm64]`
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let paths = Paths::new(root);
    paths.check_venv()?;
    // Every function the template declares is benchmarked: a new one with
    // no entry here is an error, not a silent gap.
    let template = switchyard_local::template::workspace_template()?;
    for bin in switchyard_local::runner::provision::function_binaries(template) {
        if !FUNCTIONS.iter().any(|f| f.name == bin) {
            bail!("template.yaml declares {bin}, which bench-init has no settings for");
        }
    }
    fs::create_dir_all(&paths.bench_dir).with_context(|| format!("cannot create {}", paths.bench_dir.display()))?;

    if options.build {
        build_native(root)?;
    }
    let native = package_all(&paths, Arch::X86_64)?;
    let arm64 = if options.arm64 {
        arm64_packages(&paths, options.build)?
    } else {
        Arm64::Skipped("--no-arm64".into())
    };
    let inits = FUNCTIONS
        .iter()
        .map(|f| measure_init(&paths, f, options.spawns))
        .collect::<Result<Vec<_>>>()?;

    print!("{}", report(&options, &native, &arm64, &inits));
    Ok(())
}

// ---------------------------------------------------------------------------
// Options and paths

struct Options {
    spawns: usize,
    build: bool,
    arm64: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options {
            spawns: DEFAULT_SPAWNS,
            build: true,
            arm64: true,
        };
        // Tolerate the subcommand name in case the caller passes it through.
        let mut args = args.iter().skip_while(|a| *a == "bench-init");
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--no-build" => options.build = false,
                "--no-arm64" => options.arm64 = false,
                "--spawns" => {
                    let value = args.next().context("--spawns needs a number")?;
                    options.spawns = parse_spawns(value)?;
                }
                other => match other.strip_prefix("--spawns=") {
                    Some(value) => options.spawns = parse_spawns(value)?,
                    None => {
                        bail!(
                            "bench-init: unknown argument `{other}`\n\
                             usage: cargo xtask bench-init [--spawns N] [--no-build] [--no-arm64]"
                        );
                    }
                },
            }
        }
        Ok(options)
    }
}

fn parse_spawns(value: &str) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(anyhow!("--spawns: expected a positive integer, got `{value}`")),
    }
}

struct Paths {
    root: PathBuf,
    venv_bin: PathBuf,
    python: PathBuf,
    target: PathBuf,
    bench_dir: PathBuf,
}

impl Paths {
    fn new(root: &Path) -> Self {
        let venv_bin = root.join(".venv").join("bin");
        let target = root.join("target");
        Paths {
            root: root.to_path_buf(),
            python: venv_bin.join("python"),
            venv_bin,
            bench_dir: target.join("bench"),
            target,
        }
    }

    fn check_venv(&self) -> Result<()> {
        if self.python.is_file() {
            Ok(())
        } else {
            Err(anyhow!(
                "{} not found: the project virtualenv is missing; run `cargo xtask setup` first",
                self.python.display()
            ))
        }
    }

    fn native_binary(&self, function: &Function) -> PathBuf {
        self.target.join("release").join(function.name)
    }

    /// Where `cargo lambda build` leaves each function.
    fn arm64_binary(&self, function: &Function) -> PathBuf {
        self.target.join("lambda").join(function.name).join("bootstrap")
    }
}

// ---------------------------------------------------------------------------
// Report

fn report(options: &Options, native: &[Package], arm64: &Arm64, inits: &[InitStats]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nSwitchyard bench-init  (reproduce: cargo xtask bench-init)");
    let _ = writeln!(out, "{}", machine_line());
    let _ = writeln!(
        out,
        "targets: zipped deployment package <= {} (arm64 when built, 1 MB = 10^6 bytes); \
         init median <= {} ms over {} spawns after 1 warm-up\n",
        mb(MAX_ZIPPED_BYTES),
        MAX_INIT_MEDIAN.as_millis(),
        options.spawns
    );
    summary_table(&mut out, native, arm64.packages(), inits);
    out.push('\n');
    package_table(&mut out, native, arm64);
    out
}

fn summary_table(out: &mut String, native: &[Package], arm64: &[Package], inits: &[InitStats]) {
    let _ = writeln!(
        out,
        "{:<20} | {:>12} | {:>13} | {:>11} | {:>9} | {:>9} | {:>10} | result",
        "function", "arm64 zipped", "x86_64 zipped", "init median", "p90", "min", "peak RSS"
    );
    let _ = writeln!(out, "{}", "-".repeat(113));
    for init in inits {
        let x86 = native.iter().find(|p| p.function == init.function);
        let arm = arm64.iter().find(|p| p.function == init.function);
        // The size target is about the deployed (arm64) package; without it
        // the x86_64 one is the best stand-in.
        let deployed = arm.or(x86).map(|p| p.zipped_bytes);
        let _ = writeln!(
            out,
            "{:<20} | {:>12} | {:>13} | {:>11} | {:>9} | {:>9} | {:>7} MB | {}",
            init.function,
            arm.map_or("n/a".into(), |p| mb(p.zipped_bytes)),
            x86.map_or("n/a".into(), |p| mb(p.zipped_bytes)),
            ms(init.median),
            ms(init.p90),
            ms(init.min),
            mib(init.hwm_kb),
            verdict(deployed, init.median),
        );
    }
}

fn verdict(zipped: Option<u64>, median: Duration) -> String {
    let mut missed = Vec::new();
    if zipped.is_none_or(|z| z > MAX_ZIPPED_BYTES) {
        missed.push("size");
    }
    if median > MAX_INIT_MEDIAN {
        missed.push("init");
    }
    if missed.is_empty() {
        "PASS".into()
    } else {
        format!("MISS ({})", missed.join(", "))
    }
}

fn package_table(out: &mut String, native: &[Package], arm64: &Arm64) {
    let _ = writeln!(
        out,
        "{:<20} | {:<6} | {:>9} | {:>9} | {:<18} | zip",
        "package", "arch", "raw", "zipped", "max glibc"
    );
    let _ = writeln!(out, "{}", "-".repeat(100));
    for p in arm64.packages().iter().chain(native) {
        let _ = writeln!(
            out,
            "{:<20} | {:<6} | {:>9} | {:>9} | {:<18} | {}",
            p.function,
            p.arch.label(),
            mb(p.raw_bytes),
            mb(p.zipped_bytes),
            glibc_note(p),
            p.zip.display()
        );
    }
    if let Arm64::Skipped(reason) = arm64 {
        let _ = writeln!(out, "arm64: not measured: {reason}");
    }
}

/// The glibc requirement, judged against `provided.al2023` for arm64 (the
/// native binary is built against this machine's glibc and is not deployed).
fn glibc_note(p: &Package) -> String {
    match (p.glibc, p.arch) {
        (None, _) => "none".into(),
        (Some((a, b)), Arch::X86_64) => format!("{a}.{b}"),
        (Some(v @ (a, b)), Arch::Aarch64) => {
            let ok = if v <= MAX_GLIBC { "ok" } else { "TOO NEW" };
            format!("{a}.{b} ({ok} <= {}.{})", MAX_GLIBC.0, MAX_GLIBC.1)
        }
    }
}

fn machine_line() -> String {
    let nproc = capture(&mut Command::new("nproc"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let rustc = capture(Command::new("rustc").arg("-V"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "rustc ?".into());
    format!("machine: {nproc} CPUs, {cpu}, Linux {kernel}, {rustc}")
}
