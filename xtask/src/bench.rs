//! `cargo xtask bench-init`: deployment-package size and cold-init time of the
//! three Lambda binaries, checked against the project's targets for binary size and cold start.
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

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Target: deployment package (zipped) at most this many bytes.
const MAX_ZIPPED_BYTES: u64 = 6_000_000;
/// Target: median init at most this long.
const MAX_INIT_MEDIAN: Duration = Duration::from_millis(15);
/// A function that has not polled for an event after this long is broken.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_SPAWNS: usize = 20;

const ARM64_TRIPLE: &str = "aarch64-unknown-linux-gnu";
/// Newest glibc available on `provided.al2023`.
pub(crate) const MAX_GLIBC: (u32, u32) = (2, 34);

/// The request line lambda_runtime sends when it is ready for an event.
const NEXT_INVOCATION: &str = "GET /2018-06-01/runtime/invocation/next ";

/// Writes `sys.argv[2]` into the zip `sys.argv[1]` under the name `bootstrap`.
const ZIP_SCRIPT: &str = "import zipfile,sys; \
    z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED,compresslevel=9); \
    z.write(sys.argv[2],'bootstrap'); z.close()";

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
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let options = Options::parse(args)?;
    let paths = Paths::new(root);
    paths.check_venv()?;
    // Every function the template declares is benchmarked: a new one with
    // no entry here is an error, not a silent gap.
    let template = switchyard_local::template::workspace_template().map_err(|e| e.to_string())?;
    for bin in switchyard_local::runner::provision::function_binaries(template) {
        if !FUNCTIONS.iter().any(|f| f.name == bin) {
            return Err(format!(
                "template.yaml declares {bin}, which bench-init has no settings for"
            ));
        }
    }
    fs::create_dir_all(&paths.bench_dir).map_err(|e| format!("cannot create {}: {e}", paths.bench_dir.display()))?;

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
        .collect::<Result<Vec<_>, String>>()?;

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
    fn parse(args: &[String]) -> Result<Self, String> {
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
                    let value = args.next().ok_or("--spawns needs a number")?;
                    options.spawns = parse_spawns(value)?;
                }
                other => match other.strip_prefix("--spawns=") {
                    Some(value) => options.spawns = parse_spawns(value)?,
                    None => {
                        return Err(format!(
                            "bench-init: unknown argument `{other}`\n\
                             usage: cargo xtask bench-init [--spawns N] [--no-build] [--no-arm64]"
                        ));
                    }
                },
            }
        }
        Ok(options)
    }
}

fn parse_spawns(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("--spawns: expected a positive integer, got `{value}`")),
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

    fn check_venv(&self) -> Result<(), String> {
        if self.python.is_file() {
            Ok(())
        } else {
            Err(format!(
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
// Building

/// The `cargo` that runs us (set by `cargo run`), else the one on PATH.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn package_args() -> Vec<&'static str> {
    FUNCTIONS.iter().flat_map(|f| ["-p", f.name]).collect()
}

fn build_native(root: &Path) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--locked"])
        .args(package_args())
        .current_dir(root);
    run_inheriting(cmd, "native release build")
}

/// Runs `cmd` with the terminal's stdio; fails if it does not succeed.
fn run_inheriting(mut cmd: Command, what: &str) -> Result<(), String> {
    eprintln!("bench-init: {what}: {cmd:?}");
    let status = cmd.status().map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// The arm64 packages, or why there are none.
enum Arm64 {
    Measured(Vec<Package>),
    Skipped(String),
}

impl Arm64 {
    fn packages(&self) -> &[Package] {
        match self {
            Arm64::Measured(packages) => packages,
            Arm64::Skipped(_) => &[],
        }
    }
}

/// Builds (unless `build` is false) and packages the arm64 binaries. A
/// missing toolchain skips arm64 with a reason; a failed build is an error.
/// With `--no-build`, existing `target/lambda` artifacts are measured.
fn arm64_packages(paths: &Paths, build: bool) -> Result<Arm64, String> {
    if build {
        if let Err(reason) = arm64_toolchain(paths) {
            eprintln!("bench-init: skipping arm64: {reason}");
            return Ok(Arm64::Skipped(reason));
        }
        build_arm64(paths)?;
    } else if let Some(f) = FUNCTIONS.iter().find(|f| !paths.arm64_binary(f).is_file()) {
        return Ok(Arm64::Skipped(format!(
            "--no-build and {} is missing (run without --no-build)",
            paths.arm64_binary(f).display()
        )));
    }
    package_all(paths, Arch::Aarch64).map(Arm64::Measured)
}

/// Checks that cargo-lambda and the Rust arm64 target are there, adding the
/// target once if it is not. `Err` says why arm64 cannot be built.
fn arm64_toolchain(paths: &Paths) -> Result<(), String> {
    let cargo_lambda = paths.venv_bin.join("cargo-lambda");
    if !cargo_lambda.is_file() {
        return Err(format!(
            "{} not found (run `cargo xtask setup`)",
            cargo_lambda.display()
        ));
    }
    ensure_arm64_target()
}

/// Makes sure the Rust target `aarch64-unknown-linux-gnu` is installed,
/// adding it with rustup once if it is not. `Err` says why it cannot be.
pub(crate) fn ensure_arm64_target() -> Result<(), String> {
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .map_err(|e| format!("cannot list rustup targets: {e}"))?;
    if installed.lines().any(|l| l.trim() == ARM64_TRIPLE) {
        return Ok(());
    }
    eprintln!("xtask: adding Rust target {ARM64_TRIPLE}");
    capture(Command::new("rustup").args(["target", "add", ARM64_TRIPLE]))
        .map(|_| ())
        .map_err(|e| format!("`rustup target add {ARM64_TRIPLE}` failed: {e}"))
}

/// `cargo lambda build --release --arm64`, cross-linking with the venv's zig.
///
/// cargo-lambda links through its embedded cargo-zigbuild, which looks for
/// zig as `$CARGO_ZIGBUILD_PYTHON_PATH -m ziglang` (default: `python3` on
/// PATH) and then as `zig` on PATH. If neither works it offers to install zig
/// with pip, which needs the network; pointing it at the venv's Python, which
/// has the `ziglang` package, keeps it offline.
fn build_arm64(paths: &Paths) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["lambda", "build", "--release", "--arm64", "--locked"])
        .args(package_args())
        .current_dir(&paths.root)
        .env("PATH", prefixed_path(&paths.venv_bin)?)
        .env("CARGO_ZIGBUILD_PYTHON_PATH", paths.venv_bin.join("python3"));
    run_inheriting(cmd, "arm64 build (cargo lambda)")
}

fn prefixed_path(dir: &Path) -> Result<std::ffi::OsString, String> {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest));
    std::env::join_paths(dirs).map_err(|e| format!("cannot build PATH: {e}"))
}

/// Runs `cmd` to completion, returning stdout; stderr goes into the error.
fn capture(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---------------------------------------------------------------------------
// Packages: sizes and ELF facts

#[derive(Clone, Copy, PartialEq)]
enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    fn label(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "arm64",
        }
    }

    fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => crate::elf::MACHINE_X86_64,
            Arch::Aarch64 => crate::elf::MACHINE_AARCH64,
        }
    }
}

/// One binary as it would be deployed.
struct Package {
    function: &'static str,
    arch: Arch,
    raw_bytes: u64,
    zipped_bytes: u64,
    zip: PathBuf,
    /// Newest `GLIBC_x.y` symbol version the binary needs, if any.
    glibc: Option<(u32, u32)>,
}

fn package_all(paths: &Paths, arch: Arch) -> Result<Vec<Package>, String> {
    FUNCTIONS.iter().map(|f| package(paths, f, arch)).collect()
}

fn package(paths: &Paths, function: &Function, arch: Arch) -> Result<Package, String> {
    let binary = match arch {
        Arch::X86_64 => paths.native_binary(function),
        Arch::Aarch64 => paths.arm64_binary(function),
    };
    let bytes = fs::read(&binary).map_err(|e| {
        format!(
            "{} binary {}: {e} (build it, or run without --no-build)",
            arch.label(),
            binary.display()
        )
    })?;
    let glibc = glibc_needed(&bytes, arch).map_err(|e| format!("{}: {e}", binary.display()))?;

    let zip = paths.bench_dir.join(format!("{}-{}.zip", function.name, arch.label()));
    make_zip(&paths.python, &binary, &zip)?;
    let zipped_bytes = file_size(&zip)?;
    Ok(Package {
        function: function.name,
        arch,
        raw_bytes: bytes.len() as u64,
        zipped_bytes,
        zip,
        glibc,
    })
}

fn make_zip(python: &Path, binary: &Path, zip: &Path) -> Result<(), String> {
    capture(Command::new(python).args(["-c", ZIP_SCRIPT]).arg(zip).arg(binary))
        .map(|_| ())
        .map_err(|e| format!("zipping {} failed: {e}", binary.display()))
}

fn file_size(path: &Path) -> Result<u64, String> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks that `bytes` is a 64-bit little-endian ELF binary for `arch`, and
/// returns the newest `GLIBC_x.y` version it needs, if any.
fn glibc_needed(bytes: &[u8], arch: Arch) -> Result<Option<(u32, u32)>, String> {
    let facts = crate::elf::read(bytes).map_err(|e| format!("{e:#}"))?;
    if facts.machine == arch.elf_machine() {
        Ok(facts.glibc)
    } else {
        Err(format!(
            "ELF e_machine is {:#x}, expected {:#x} ({})",
            facts.machine,
            arch.elf_machine(),
            arch.label()
        ))
    }
}

// ---------------------------------------------------------------------------
// Init time

/// Init-time statistics for one function over all counted spawns.
struct InitStats {
    function: &'static str,
    median: Duration,
    p90: Duration,
    min: Duration,
    /// The largest resident set (VmHWM) a process reached by the end of
    /// init, median over the spawns.
    hwm_kb: u64,
}

/// Spawns the native binary `spawns` times (after one uncounted warm-up) and
/// times each until it asks the stub for its first event.
fn measure_init(paths: &Paths, function: &Function, spawns: usize) -> Result<InitStats, String> {
    let binary = paths.native_binary(function);
    let stderr_file = paths.bench_dir.join(format!("{}.stderr", function.name));
    let stub = RuntimeStub::start()?;
    eprintln!(
        "bench-init: timing init of {} ({spawns} spawns + 1 warm-up)",
        function.name
    );

    let mut samples = Vec::with_capacity(spawns);
    let mut hwms = Vec::with_capacity(spawns);
    for i in 0..=spawns {
        let (elapsed, hwm) = time_one_spawn(&binary, function, &stub, &stderr_file).map_err(|e| match i {
            0 => format!("{} (warm-up spawn): {e}", function.name),
            _ => format!("{} (spawn {i} of {spawns}): {e}", function.name),
        })?;
        if i > 0 {
            samples.push(elapsed);
            hwms.push(hwm);
        }
    }
    samples.sort();
    hwms.sort_unstable();
    Ok(InitStats {
        function: function.name,
        median: median(&samples),
        p90: nearest_rank(&samples, 90),
        min: samples[0],
        hwm_kb: hwms[hwms.len() / 2],
    })
}

/// Median of sorted, non-empty `samples` (mean of the middle two when even).
fn median(samples: &[Duration]) -> Duration {
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2
    }
}

/// The nearest-rank `percent`th percentile of sorted values; the default
/// (zero) for none.
pub(crate) fn nearest_rank<T: Copy + Default>(sorted: &[T], percent: usize) -> T {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// One spawn: start the process, wait for its `next` request, read its peak
/// memory, kill it.
fn time_one_spawn(
    binary: &Path,
    function: &Function,
    stub: &RuntimeStub,
    stderr_file: &Path,
) -> Result<(Duration, u64), String> {
    stub.drain();
    let stderr = File::create(stderr_file).map_err(|e| format!("cannot create {}: {e}", stderr_file.display()))?;
    let mut cmd = lambda_command(binary, function, stub.addr);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);

    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let outcome = wait_for_next(&mut child, stub);
    let hwm = crate::local::proc_status_kib(child.id(), "VmHWM").unwrap_or(0);
    // Always reap the child, whatever happened.
    let _ = child.kill();
    let _ = child.wait();

    match outcome {
        Ok(seen) => Ok((seen.saturating_duration_since(started), hwm)),
        Err(Early::Exited(status)) => Err(format!(
            "exited with {status} before polling the Runtime API; stderr:\n{}",
            read_tail(stderr_file)
        )),
        Err(Early::TimedOut) => Err(format!(
            "did not poll the Runtime API within {SPAWN_TIMEOUT:?}; stderr:\n{}",
            read_tail(stderr_file)
        )),
    }
}

/// The command line and environment Lambda would give the function: nothing
/// inherited from ours, only the runtime's variables and the settings.
fn lambda_command(binary: &Path, function: &Function, api: SocketAddr) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        // Never contacted during init; a closed port should anything try.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .envs(function.settings.iter().copied());
    cmd
}

enum Early {
    Exited(ExitStatus),
    TimedOut,
}

/// Waits for the stub to see a `next` request, watching for the child dying.
/// Returns the instant the request line was read (timestamped by the stub
/// thread, so the polling interval here does not affect the measurement).
fn wait_for_next(child: &mut Child, stub: &RuntimeStub) -> Result<Instant, Early> {
    let deadline = Instant::now() + SPAWN_TIMEOUT;
    loop {
        match stub.requests.recv_timeout(Duration::from_millis(5)) {
            Ok(seen) => return Ok(seen),
            Err(RecvTimeoutError::Disconnected) => return Err(Early::TimedOut),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            // It may have polled just before exiting.
            return stub.requests.try_recv().map_err(|_| Early::Exited(status));
        }
        if Instant::now() >= deadline {
            return Err(Early::TimedOut);
        }
    }
}

fn read_tail(path: &Path) -> String {
    const MAX: usize = 4000;
    match fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => "(empty)".into(),
        Ok(text) => {
            let mut start = text.len().saturating_sub(MAX);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            text[start..].to_string()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A minimal Lambda Runtime API: accepts connections on 127.0.0.1, and for
/// each `GET .../invocation/next` sends the instant its request line arrived.
/// It never answers; the function blocks on the request until it is killed.
struct RuntimeStub {
    addr: SocketAddr,
    requests: Receiver<Instant>,
}

impl RuntimeStub {
    fn start() -> Result<Self, String> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind the Runtime API stub: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("stub address: {e}"))?;
        let (tx, requests) = mpsc::channel();
        // Detached: it ends with the process. One connection at a time is
        // enough, since each spawn is killed before the next starts.
        thread::spawn(move || {
            // The open connection is held (unanswered) until the next one
            // arrives, so the function just waits for an event; by then the
            // spawn that made it has been killed.
            let mut _held = None;
            for stream in listener.incoming().flatten() {
                if let Some(seen) = read_next_request(&stream)
                    && tx.send(seen).is_err()
                {
                    return;
                }
                _held = Some(stream);
            }
        });
        Ok(RuntimeStub { addr, requests })
    }

    /// Drops requests left over from an earlier spawn.
    fn drain(&self) {
        while self.requests.try_recv().is_ok() {}
    }
}

/// Reads one request line; returns when it was read if it is `next`.
fn read_next_request(stream: &TcpStream) -> Option<Instant> {
    stream.set_read_timeout(Some(SPAWN_TIMEOUT)).ok()?;
    let mut line = String::new();
    // Only the request line is read; headers and body are irrelevant.
    BufReader::new(stream.take(8192)).read_line(&mut line).ok()?;
    let seen = Instant::now();
    line.starts_with(NEXT_INVOCATION).then_some(seen)
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
            format!("{:.1}", init.hwm_kb as f64 / 1024.0),
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

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        let o = Options::parse(&args(&["--spawns", "7", "--no-build", "--no-arm64"])).unwrap();
        assert_eq!((o.spawns, o.build, o.arm64), (7, false, false));
        let o = Options::parse(&args(&["bench-init", "--spawns=3"])).unwrap();
        assert_eq!((o.spawns, o.build, o.arm64), (3, true, true));
        assert!(Options::parse(&args(&["--spawns", "0"])).is_err());
        assert!(Options::parse(&args(&["--spawns"])).is_err());
        assert!(Options::parse(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn finds_newest_glibc() {
        let pie = crate::elf::tests::fixture(3, crate::elf::MACHINE_AARCH64, true, true);
        assert_eq!(glibc_needed(&pie, Arch::Aarch64), Ok(Some((2, 34))));
    }

    #[test]
    fn statistics() {
        let d = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        assert_eq!(median(&d(&[1, 2, 3])), Duration::from_millis(2));
        assert_eq!(median(&d(&[1, 2, 3, 5])), Duration::from_micros(2500));
        let twenty = d(&(1..=20).collect::<Vec<_>>());
        assert_eq!(nearest_rank(&twenty, 90), Duration::from_millis(18));
        assert_eq!(nearest_rank(&d(&[4]), 90), Duration::from_millis(4));
    }

    #[test]
    fn checks_elf_machine() {
        let mut header = vec![0u8; 64];
        header[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        header[18..20].copy_from_slice(&0xB7u16.to_le_bytes());
        assert_eq!(glibc_needed(&header, Arch::Aarch64), Ok(None));
        assert!(glibc_needed(&header, Arch::X86_64).is_err());
        assert!(glibc_needed(b"#!/bin/sh", Arch::Aarch64).is_err());
    }
}
