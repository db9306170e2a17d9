//! schemathesis, the property-based API tester, run on the committed API
//! document (`functions/api/openapi.json`) against a running HTTP API, with
//! the repository's `schemathesis.toml` (every check on; the per-operation
//! exceptions there carry their reasons).

use crate::LocalError;
use crate::venv::Venv;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The committed API document, relative to the workspace root.
pub const DOCUMENT: &str = "functions/api/openapi.json";

/// One schemathesis run.
#[derive(Debug, Clone)]
pub struct Fuzz {
    /// The API's base URL (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// The bearer key every request carries.
    pub key: String,
    /// Only the operations of this tag (`admin`, `tenant`).
    pub tag: String,
    /// Test cases per operation and phase (`--max-examples`).
    pub max_examples: u32,
    /// A fixed seed, or none for a fresh one each run.
    pub seed: Option<u64>,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct FuzzReport {
    /// Whether schemathesis exited 0.
    pub passed: bool,
    /// Operations tested.
    pub operations: Option<u64>,
    /// Test cases generated.
    pub test_cases: Option<u64>,
    /// Failures found (0 when none are reported).
    pub failures: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// Its whole output (stdout and stderr), for a failure's report.
    pub output: String,
}

impl Fuzz {
    /// Runs schemathesis from `venv` (see [`crate::venv::API_TOOLS`]); its
    /// working directory is `work` (it writes nothing there either: no
    /// example database, no report files).
    pub fn run(&self, root: &Path, venv: &Venv, work: &Path) -> Result<FuzzReport, LocalError> {
        std::fs::create_dir_all(work).map_err(LocalError::io(format!("creating {}", work.display())))?;
        let mut cmd = Command::new(venv.bin("schemathesis"));
        cmd.current_dir(work)
            .arg("--config-file")
            .arg(root.join("schemathesis.toml"))
            .arg("--no-color")
            .arg("run")
            .arg(root.join(DOCUMENT))
            .args(["--url", self.base_url.as_str()])
            .args(["--header", &format!("Authorization: Bearer {}", self.key)])
            .args(["--include-tag", self.tag.as_str()])
            .args(["--max-examples", &self.max_examples.to_string()])
            // One worker: Hypothesis is not thread-safe in every part (a
            // second worker has crashed its lambda-source cache).
            .args(["--workers", "1"]);
        if let Some(seed) = self.seed {
            cmd.args(["--seed", &seed.to_string()]);
        }
        let started = Instant::now();
        let out = cmd.output().map_err(LocalError::io("running schemathesis"))?;
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(FuzzReport {
            passed: out.status.success(),
            operations: figure(&output, "Tested:", ""),
            test_cases: figure(&output, "", " generated"),
            failures: figure(&output, "", " failure").unwrap_or(0),
            elapsed: started.elapsed(),
            output,
        })
    }
}

/// The number on the first line of schemathesis's summary that has
/// `before` right before it and `after` right after it.
fn figure(output: &str, before: &str, after: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        let line = line.trim().trim_matches('=').trim();
        let rest = line.strip_prefix(before)?.trim_start();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let tail = &rest[digits.len()..];
        (!digits.is_empty() && tail.starts_with(after)).then(|| digits.parse().ok())?
    })
}

/// Where a run's scratch files go: `target/tmp/<label>`.
pub fn work_dir(label: &str) -> PathBuf {
    crate::target_dir()
        .join("tmp")
        .join(crate::resources::unique_prefix(label))
}

#[cfg(test)]
mod tests {
    use super::figure;

    #[test]
    fn the_summary_figures_are_read() {
        let out = "API Operations:\n  Selected: 11/31\n  Tested: 11\n\nTest cases:\n  362 generated, 7 found 7 unique failures, 20 skipped\n\n=== 7 failures, 1 warning in 64.42s ===\n";
        assert_eq!(figure(out, "Tested:", ""), Some(11));
        assert_eq!(figure(out, "", " generated"), Some(362));
        assert_eq!(figure(out, "", " failure"), Some(7));
        let clean = "Test cases:\n  742 generated, 742 passed\n\n==== No issues found in 25.78s ====\n";
        assert_eq!(figure(clean, "", " failure"), None);
    }
}
