//! `cargo xtask checkov`: the infrastructure scanner checkov on
//! `template.yaml`, from its own virtualenv (`.venv-checkov`).
//!
//! Passes when checkov reports no failed check and every check the template
//! skips (in a resource's `Metadata.checkov.skip`) carries a comment that
//! says why: an unexplained finding, either way, fails. `cargo xtask test`
//! runs it; the choices behind the skips are in `docs/security.md`.

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use switchyard_local::venv::VenvSpec;

const VENV: VenvSpec<'static> = VenvSpec {
    dir: ".venv-checkov",
    requirements: "shared/local/python/requirements-checkov.txt",
    probe: "checkov",
    holds: "checkov",
};

/// What one checkov run found.
#[derive(Debug, PartialEq)]
pub(crate) struct Findings {
    pub(crate) passed: u64,
    /// `check id  resource` of each failed check.
    pub(crate) failed: Vec<String>,
    /// Skipped checks, with the comment of each.
    pub(crate) skipped: Vec<(String, String)>,
}

impl Findings {
    /// The skipped checks whose skip gives no reason.
    pub(crate) fn unexplained(&self) -> Vec<&str> {
        self.skipped
            .iter()
            .filter(|(_, why)| why.trim().is_empty())
            .map(|(what, _)| what.as_str())
            .collect()
    }
}

/// Reads checkov's JSON report (`-o json`) of one framework.
pub(crate) fn parse(report: &Value) -> Result<Findings> {
    let results = &report["results"];
    let name = |c: &Value| {
        format!(
            "{}  {}",
            c["check_id"].as_str().unwrap_or("?"),
            c["resource"].as_str().unwrap_or("?")
        )
    };
    let list = |key: &str| results[key].as_array().cloned().unwrap_or_default();
    Ok(Findings {
        passed: report["summary"]["passed"]
            .as_u64()
            .context("checkov's report has no summary.passed")?,
        failed: list("failed_checks").iter().map(name).collect(),
        skipped: list("skipped_checks")
            .iter()
            .map(|c| {
                let why = c["check_result"]["suppress_comment"].as_str().unwrap_or_default();
                (name(c), why.to_string())
            })
            .collect(),
    })
}

/// Runs checkov on the template, and on it once with each of its
/// [`MODES`](switchyard_local::template::MODES) as a default (checkov
/// drops resources whose condition is false under the defaults), and
/// judges the findings.
pub(crate) fn run(root: &Path) -> Result<()> {
    let venv = VENV.ensure(root)?;
    let text = std::fs::read_to_string(root.join("template.yaml")).context("reading template.yaml")?;
    let dir = switchyard_local::target_dir().join("checkov");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut runs = vec![("template.yaml".to_string(), root.join("template.yaml"))];
    for (name, value) in switchyard_local::template::MODES {
        let variant = switchyard_local::template::with_default(&text, name, value)?;
        // checkov names resources by file: keep the file name.
        let sub = dir.join(format!("{name}-{value}"));
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        let path = sub.join("template.yaml");
        std::fs::write(&path, variant).with_context(|| format!("writing {}", path.display()))?;
        runs.push((format!("template.yaml with {name}={value}"), path));
    }
    for (what, path) in runs {
        check(root, &venv, &what, &path)?;
    }
    Ok(())
}

/// Runs checkov on one template file.
fn check(root: &Path, venv: &switchyard_local::venv::Venv, what: &str, path: &Path) -> Result<()> {
    eprintln!("== checkov on {what}");
    let out = Command::new(venv.bin("checkov"))
        .current_dir(root)
        .arg("--file")
        .arg(path)
        .args(["--framework", "cloudformation", "--output", "json", "--skip-download"])
        .output()
        .context("running checkov")?;
    let report: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "checkov printed no JSON report: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let findings = parse(&report)?;
    eprintln!(
        "checkov: {} passed, {} failed, {} skipped with a reason",
        findings.passed,
        findings.failed.len(),
        findings.skipped.len() - findings.unexplained().len()
    );
    if !findings.failed.is_empty() {
        bail!(
            "checkov ({what}): failed checks (fix them, or skip them in the resource's Metadata.checkov.skip with a comment saying why):\n  {}",
            findings.failed.join("\n  ")
        );
    }
    let unexplained = findings.unexplained();
    if !unexplained.is_empty() {
        bail!(
            "checkov ({what}): skipped without a reason (add a comment):\n  {}",
            unexplained.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(failed: Value, skipped: Value) -> Value {
        json!({
            "check_type": "cloudformation",
            "results": {"failed_checks": failed, "skipped_checks": skipped},
            "summary": {"passed": 33, "failed": 0, "skipped": 1}
        })
    }

    #[test]
    fn failures_and_skips_without_a_reason_are_findings() {
        let r = report(
            json!([{"check_id": "CKV_AWS_27", "resource": "AWS::SQS::Queue.A"}]),
            json!([
                {"check_id": "CKV_AWS_117", "resource": "AWS::Serverless::Function.F",
                 "check_result": {"result": "SKIPPED", "suppress_comment": "no VPC by default"}},
                {"check_id": "CKV_AWS_116", "resource": "AWS::Serverless::Function.G",
                 "check_result": {"result": "SKIPPED", "suppress_comment": " "}}
            ]),
        );
        let f = parse(&r).unwrap();
        assert_eq!(f.passed, 33);
        assert_eq!(f.failed, ["CKV_AWS_27  AWS::SQS::Queue.A"]);
        assert_eq!(f.unexplained(), ["CKV_AWS_116  AWS::Serverless::Function.G"]);
    }

    #[test]
    fn a_clean_report_has_no_findings() {
        let f = parse(&report(json!([]), json!([]))).unwrap();
        assert!(f.failed.is_empty() && f.unexplained().is_empty());
        assert!(
            parse(&json!({"results": {}})).is_err(),
            "a report without a summary is refused"
        );
    }
}
