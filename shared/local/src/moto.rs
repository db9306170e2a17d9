//! moto's server, started on a free loopback port.

use crate::LocalError;
use crate::venv::Venv;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Set this to use a moto server that is already running (e.g.
/// `http://127.0.0.1:5000`) instead of starting one.
pub const ENDPOINT_ENV: &str = "SWITCHYARD_MOTO_ENDPOINT";

/// A running moto server. Dropping it stops the server; so does the death of
/// this process, because moto exits when its standard input closes.
#[derive(Debug)]
pub struct Moto {
    /// Moto's base URL (`http://127.0.0.1:<port>`).
    pub endpoint: String,
    child: Option<Child>,
}

impl Moto {
    /// Uses `$SWITCHYARD_MOTO_ENDPOINT` if set, or starts moto from the venv.
    pub fn start(root: &Path, venv: &Venv) -> Result<Self, LocalError> {
        if let Ok(endpoint) = std::env::var(ENDPOINT_ENV) {
            return Ok(Self { endpoint, child: None });
        }
        Self::spawn(root, venv)
    }

    /// Starts a moto server of this process's own, whatever the environment
    /// says (a load test that must not slow other tests' server down).
    pub fn spawn(root: &Path, venv: &Venv) -> Result<Self, LocalError> {
        let script = root.join("shared/local/python/moto_server.py");
        let log_path = root.join("target/moto.log");
        let _ = std::fs::create_dir_all(root.join("target"));
        let log = std::fs::File::create(&log_path).map_err(LocalError::io("creating target/moto.log"))?;
        let mut child = Command::new(venv.python())
            .arg(&script)
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(LocalError::io("starting moto"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| LocalError::Setup("moto has no stdout".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let port: Option<u16> = line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok());
        match port {
            Some(port) => Ok(Self {
                endpoint: format!("http://127.0.0.1:{port}"),
                child: Some(child),
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                Err(LocalError::MotoDidNotStart { log })
            }
        }
    }

    /// Whether this value started (and will stop) the server.
    pub fn owns_process(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
