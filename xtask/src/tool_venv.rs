//! Virtualenvs of their own for Python tools whose pins clash with the
//! project's `.venv` (the SAM CLI and checkov both pin boto3, which moto's
//! server runs on there): `<root>/<name>`, built from a requirements file
//! and kept the way `switchyard_local::venv::ensure` keeps `.venv`: a stamp
//! holding the requirements it was built from, and a lock against
//! concurrent installs.

use anyhow::{Context as _, Result, anyhow};
use std::fs::{self, File};
use std::path::Path;
use std::process::Command;
use switchyard_local::venv::Venv;

/// One tool's virtualenv.
pub(crate) struct ToolVenv<'a> {
    /// The directory under the workspace root, e.g. `.venv-sam`.
    pub(crate) dir: &'a str,
    /// The requirements file, relative to the workspace root.
    pub(crate) requirements: &'a str,
    /// An executable the requirements install; its presence means installed.
    pub(crate) probe: &'a str,
    /// What the venv holds, for the progress line.
    pub(crate) holds: &'a str,
}

impl ToolVenv<'_> {
    /// Makes sure the virtualenv exists and matches its requirements.
    pub(crate) fn ensure(&self, root: &Path) -> Result<Venv> {
        let venv = Venv {
            dir: root.join(self.dir),
        };
        let req_path = root.join(self.requirements);
        let wanted = fs::read_to_string(&req_path).with_context(|| format!("reading {}", req_path.display()))?;
        let stamp = venv.dir.join(".switchyard-requirements");
        let ready = || venv.bin(self.probe).is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted);
        if ready() {
            return Ok(venv);
        }
        let lock_path = root.join(format!("{}.lock", self.dir));
        let lock = File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
        if ready() {
            return Ok(venv);
        }
        eprintln!("setting up the virtualenv {} ({})…", venv.dir.display(), self.holds);
        if !venv.python().exists() {
            let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into());
            run_status(
                Command::new(&python).args(["-m", "venv"]).arg(&venv.dir),
                &format!("creating {} (is python3 with venv installed?)", self.dir),
            )?;
        }
        run_status(
            Command::new(venv.python())
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&req_path),
            &format!("installing {}", self.requirements),
        )?;
        fs::write(&stamp, &wanted).with_context(|| format!("writing {}", stamp.display()))?;
        Ok(venv)
    }
}

/// Runs `cmd` and fails unless it succeeds.
pub(crate) fn run_status(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("{what}: cannot run {cmd:?}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow!("{what} failed ({status})"))
    }
}
