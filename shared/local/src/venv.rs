//! The project's Python virtualenv at `<root>/.venv`.
//!
//! Created with the machine's `python3` (or `$SWITCHYARD_PYTHON`) and filled
//! from `shared/local/python/requirements.txt`; a stamp file holding the
//! requirements it was built from makes later calls instant, and a change to
//! the requirements reinstalls. A file lock keeps concurrent callers (test
//! processes) from installing at the same time.

use crate::LocalError;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A ready virtualenv.
#[derive(Debug, Clone)]
pub struct Venv {
    /// The virtualenv's directory (`<root>/.venv`).
    pub dir: PathBuf,
}

impl Venv {
    /// The venv's Python interpreter.
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin/python")
    }

    /// An executable the venv installed (`cfn-lint`, `cargo-lambda`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

/// The requirements the venv is kept in step with, under the workspace `root`.
pub fn requirements_file(root: &Path) -> PathBuf {
    root.join("shared/local/python/requirements.txt")
}

/// Makes sure `<root>/.venv` exists and matches the requirements.
pub fn ensure(root: &Path) -> Result<Venv, LocalError> {
    let dir = root.join(".venv");
    let venv = Venv { dir: dir.clone() };
    let req_path = requirements_file(root);
    let wanted = fs::read_to_string(&req_path).map_err(LocalError::io(format!("reading {}", req_path.display())))?;
    let stamp = dir.join(".switchyard-requirements");
    let ready = || venv.python().exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted);
    if ready() {
        return Ok(venv);
    }

    let lock_path = root.join(".venv.lock");
    let lock = fs::File::create(&lock_path).map_err(LocalError::io("creating .venv.lock"))?;
    lock.lock().map_err(LocalError::io("locking .venv.lock"))?;
    if ready() {
        return Ok(venv);
    }
    eprintln!(
        "setting up the Python virtualenv in {} (moto, cfn-lint, standardwebhooks, svix, cargo-lambda)…",
        dir.display()
    );
    if !venv.python().exists() {
        let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into());
        run(
            Command::new(&python).args(["-m", "venv"]).arg(&dir),
            "creating the virtualenv (is python3 with venv installed?)",
        )?;
    }
    run(
        Command::new(venv.python())
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&req_path),
        "installing the Python requirements",
    )?;
    fs::write(&stamp, &wanted).map_err(LocalError::io("writing the virtualenv stamp"))?;
    Ok(venv)
}

fn run(cmd: &mut Command, what: &str) -> Result<(), LocalError> {
    let status = cmd.status().map_err(LocalError::io(what))?;
    if status.success() {
        Ok(())
    } else {
        Err(LocalError::Command {
            command: what.to_string(),
            status,
        })
    }
}

/// Runs `shared/local/python/webhooks_interop.py <command>` with `input` on
/// stdin and returns its JSON answer.
pub fn webhooks_interop(
    root: &Path,
    venv: &Venv,
    command: &str,
    input: &serde_json::Value,
) -> Result<serde_json::Value, LocalError> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(venv.python())
        .arg(root.join("shared/local/python/webhooks_interop.py"))
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(LocalError::io("starting webhooks_interop.py"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.to_string().as_bytes())
            .map_err(LocalError::io("writing to webhooks_interop.py"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(LocalError::io("running webhooks_interop.py"))?;
    if !out.status.success() {
        return Err(LocalError::Script {
            script: format!("webhooks_interop.py {command}"),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        });
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| LocalError::Setup(format!("webhooks_interop.py printed no JSON: {e}")))
}
