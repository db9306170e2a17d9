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

/// A virtualenv under the workspace root, built from a requirements file:
/// the project's own ([`PROJECT`]) and, for Python tools whose pins clash
/// with it (the SAM CLI and checkov both pin boto3 below what moto's server
/// runs on), one of their own.
#[derive(Debug, Clone, Copy)]
pub struct VenvSpec<'a> {
    /// The directory under the workspace root, e.g. `.venv`.
    pub dir: &'a str,
    /// The requirements file, relative to the workspace root.
    pub requirements: &'a str,
    /// An executable under `bin/` the requirements install; its presence
    /// (with a matching stamp) means installed.
    pub probe: &'a str,
    /// What the venv holds, for the progress line.
    pub holds: &'a str,
}

/// The project's virtualenv, `<root>/.venv`.
pub const PROJECT: VenvSpec<'static> = VenvSpec {
    dir: ".venv",
    requirements: "shared/local/python/requirements.txt",
    probe: "python",
    holds: "moto, cfn-lint, standardwebhooks, svix, cargo-lambda",
};

/// The AWS CLI's virtualenv, `<root>/.venv-awscli`, for the tests that run
/// the docs' `aws` commands against moto.
pub const AWS_CLI: VenvSpec<'static> = VenvSpec {
    dir: ".venv-awscli",
    requirements: "shared/local/python/requirements-awscli.txt",
    probe: "aws",
    holds: "the AWS CLI",
};

/// The API tools' virtualenv, `<root>/.venv-apitools`: schemathesis and
/// openapi-python-client, for the API fuzz test, `cargo xtask fuzz-api` and
/// the generated-client test.
pub const API_TOOLS: VenvSpec<'static> = VenvSpec {
    dir: ".venv-apitools",
    requirements: "shared/local/python/requirements-apitools.txt",
    probe: "schemathesis",
    holds: "schemathesis, openapi-python-client",
};

/// Makes sure `<root>/.venv` exists and matches the requirements.
pub fn ensure(root: &Path) -> Result<Venv, LocalError> {
    PROJECT.ensure(root)
}

impl VenvSpec<'_> {
    /// Makes sure the virtualenv exists and matches its requirements.
    pub fn ensure(&self, root: &Path) -> Result<Venv, LocalError> {
        let venv = Venv {
            dir: root.join(self.dir),
        };
        let req_path = root.join(self.requirements);
        let wanted =
            fs::read_to_string(&req_path).map_err(LocalError::io(format!("reading {}", req_path.display())))?;
        let stamp = venv.dir.join(".switchyard-requirements");
        let ready = || venv.bin(self.probe).exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted);
        if ready() {
            return Ok(venv);
        }

        let lock_name = format!("{}.lock", self.dir);
        let lock = fs::File::create(root.join(&lock_name)).map_err(LocalError::io(format!("creating {lock_name}")))?;
        lock.lock().map_err(LocalError::io(format!("locking {lock_name}")))?;
        if ready() {
            return Ok(venv);
        }
        eprintln!(
            "setting up the Python virtualenv in {} ({})…",
            venv.dir.display(),
            self.holds
        );
        if !venv.python().exists() {
            let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into());
            run(
                Command::new(&python).args(["-m", "venv"]).arg(&venv.dir),
                &format!("creating {} (is python3 with venv installed?)", self.dir),
            )?;
        }
        run(
            Command::new(venv.python())
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&req_path),
            &format!("installing {}", self.requirements),
        )?;
        fs::write(&stamp, &wanted).map_err(LocalError::io("writing the virtualenv stamp"))?;
        Ok(venv)
    }
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
