//! Init time: spawning a function as Lambda would, against a stub of the
//! Runtime API, until it asks for its first event.

use anyhow::{Context as _, Result, anyhow};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::{Function, Paths};
use crate::bench::stats::{median, nearest_rank};

/// A function that has not polled for an event after this long is broken.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The request line lambda_runtime sends when it is ready for an event.
const NEXT_INVOCATION: &str = "GET /2018-06-01/runtime/invocation/next ";

// ---------------------------------------------------------------------------
// Init time

/// Init-time statistics for one function over all counted spawns.
pub(super) struct InitStats {
    pub(super) function: &'static str,
    pub(super) median: Duration,
    pub(super) p90: Duration,
    pub(super) min: Duration,
    /// The largest resident set (VmHWM) a process reached by the end of
    /// init, median over the spawns.
    pub(super) hwm_kb: u64,
}

/// Spawns the native binary `spawns` times (after one uncounted warm-up) and
/// times each until it asks the stub for its first event.
pub(super) fn measure_init(paths: &Paths, function: &Function, spawns: usize) -> Result<InitStats> {
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
            0 => anyhow!("{} (warm-up spawn): {e:#}", function.name),
            _ => anyhow!("{} (spawn {i} of {spawns}): {e:#}", function.name),
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

/// One spawn: start the process, wait for its `next` request, read its peak
/// memory, kill it.
fn time_one_spawn(
    binary: &Path,
    function: &Function,
    stub: &RuntimeStub,
    stderr_file: &Path,
) -> Result<(Duration, u64)> {
    stub.drain();
    let stderr = File::create(stderr_file).with_context(|| format!("cannot create {}", stderr_file.display()))?;
    let mut cmd = lambda_command(binary, function, stub.addr);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);

    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let outcome = wait_for_next(&mut child, stub);
    let hwm = crate::local::proc_status_kib(child.id(), "VmHWM").unwrap_or(0);
    // Always reap the child, whatever happened.
    let _ = child.kill();
    let _ = child.wait();

    match outcome {
        Ok(seen) => Ok((seen.saturating_duration_since(started), hwm)),
        Err(Early::Exited(status)) => Err(anyhow!(
            "exited with {status} before polling the Runtime API; stderr:\n{}",
            read_tail(stderr_file)
        )),
        Err(Early::TimedOut) => Err(anyhow!(
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
    fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the Runtime API stub")?;
        let addr = listener.local_addr().context("stub address")?;
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
