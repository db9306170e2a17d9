//! The first-deploy walkthrough of `docs/deploying.md`, run as written
//! against the local stack.
//!
//! Each `sh` block of the walkthrough carries a marker: `run` blocks are
//! executed in one bash session, in order, exactly as the page shows them
//! (curl, jq, and the AWS CLI against moto); `deploy-only` blocks (SAM,
//! CloudFormation outputs, the receiver's URL, the console link, teardown)
//! are the ones this test stands in for, by giving the session the
//! variables they set from the local stack. The stack runs with no
//! `AdminKeySha256`: as after a plain first deploy, the only admin key is
//! the one the template generates in Secrets Manager.

use crate::runner::{options, sdk, template};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use switchyard_local::runner::Runner;
use switchyard_tests::{Receiver, assert_verifies, moto_endpoint, root};

/// The walkthrough's section of the page, from its heading to the next
/// heading of the same or a higher level.
fn walkthrough(page: &str) -> &str {
    let start = page
        .find("## Your first deploy, step by step")
        .expect("docs/deploying.md has the walkthrough");
    let rest = &page[start + 3..];
    let end = ["\n## ", "\n### "]
        .iter()
        .filter_map(|h| rest.find(h))
        .min()
        .unwrap_or(rest.len());
    &page[start..start + 3 + end]
}

/// The walkthrough's `sh` blocks with their markers, in order.
fn blocks(section: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(m) = line.trim().strip_prefix("<!-- walkthrough:") {
            marker = Some(m.trim_end_matches("-->").trim().to_string());
        } else if line.trim_start().starts_with("```") {
            let mut code = String::new();
            for l in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                code.push_str(l);
                code.push('\n');
            }
            let m = marker
                .take()
                .unwrap_or_else(|| panic!("a block of the walkthrough has no marker:\n{code}"));
            assert!(line.trim() == "```sh", "walkthrough blocks are sh: {line}");
            out.push((m, code));
        }
    }
    out
}

/// The shell variables a block assigns (`NAME=` at a line's start).
fn assigned(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|l| {
            let (name, _) = l.trim_start().split_once('=')?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn the_walkthrough_marks_every_block_and_stands_in_only_for_what_it_must() {
    let page = std::fs::read_to_string(root().join("docs/deploying.md")).unwrap();
    let blocks = blocks(walkthrough(&page));
    assert!(
        blocks.iter().all(|(m, _)| m == "run" || m == "deploy-only"),
        "{blocks:?}"
    );
    let run = blocks.iter().filter(|(m, _)| m == "run").count();
    assert!(run >= 5, "the steps after deploying run as written: {run}");
    let stood_in: BTreeSet<String> = blocks
        .iter()
        .filter(|(m, _)| m == "deploy-only")
        .flat_map(|(_, c)| assigned(c))
        .collect();
    // What the test gives the session instead, and STACK (only the
    // deploy-only blocks use it).
    let expected: BTreeSet<String> = ["API", "ADMIN_SECRET", "RECEIVER", "STACK"].map(String::from).into();
    assert_eq!(
        stood_in, expected,
        "the deploy-only blocks set exactly what the test provides"
    );
    let sam = blocks
        .iter()
        .filter(|(_, c)| c.contains("sam "))
        .all(|(m, _)| m == "deploy-only");
    assert!(sam, "SAM runs only in deploy-only blocks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_walkthrough_runs_step_for_step_against_the_local_stack() {
    let aws_cli = switchyard_local::venv::AWS_CLI
        .ensure(&root())
        .unwrap_or_else(|e| panic!("the AWS CLI's virtualenv: {e}"));
    let page = std::fs::read_to_string(root().join("docs/deploying.md")).unwrap();
    let script: String = blocks(walkthrough(&page))
        .into_iter()
        .filter(|(m, _)| m == "run")
        .map(|(_, c)| c)
        .collect();

    let mut opts = options("walkthrough", &[]);
    opts.parameters.remove("AdminKeySha256");
    let sdk = sdk().await;
    let runner = Runner::start(&sdk, template(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rx = Receiver::ok().await.unwrap();
    let api = runner.api_url(None).unwrap();
    let secret_arn = runner.plan().reference("AdminKeySecret").unwrap().to_string();
    let out_dir = switchyard_local::target_dir()
        .join("tmp")
        .join(switchyard_local::resources::unique_prefix("walkthrough"));
    std::fs::create_dir_all(&out_dir).unwrap();

    let full = format!("set -euo pipefail\n{script}\nprintf %s \"$SECRET\" > \"$OUT/secret\"\n");
    let path = format!(
        "{}:{}",
        aws_cli.dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let receiver = rx.url("/hook");
    let out_path = out_dir.clone();
    let ran = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("-c")
            .arg(full)
            .env_remove("AWS_PROFILE")
            .env("PATH", path)
            .env("AWS_ENDPOINT_URL", moto_endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", switchyard_local::LOCAL_REGION)
            .env("AWS_DEFAULT_REGION", switchyard_local::LOCAL_REGION)
            .env("API", api.trim_end_matches('/'))
            .env("ADMIN_SECRET", secret_arn)
            .env("RECEIVER", receiver)
            .env("OUT", out_path)
            .output()
    })
    .await
    .unwrap()
    .expect("bash runs");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(
        ran.status.success(),
        "the walkthrough failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        ran.status
    );

    // Step 9's last command shows the delivery with its attempt.
    let shown = stdout
        .rfind("\n{")
        .map(|i| &stdout[i + 1..])
        .unwrap_or_else(|| panic!("no delivery shown:\n{stdout}"));
    let delivery: serde_json::Value = serde_json::from_str(shown)
        .unwrap_or_else(|e| panic!("{e}: the last thing shown is not the delivery:\n{stdout}"));
    assert_eq!(delivery["state"], "succeeded", "{delivery}");
    assert_eq!(delivery["event_id"], "ord_1", "{delivery}");
    let log = delivery["attempt_log"].as_array().expect("the attempt log");
    assert_eq!(log.len(), 1, "{delivery}");
    assert_eq!(log[0]["status_code"], 200, "{delivery}");

    // The receiver got the signed webhook, and it verifies with the secret
    // step 7 printed.
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "one webhook");
    let secret = std::fs::read_to_string(out_dir.join("secret")).unwrap();
    let secret = switchyard_core::WebhookSecret::parse(&secret).unwrap_or_else(|e| panic!("step 7's secret: {e}"));
    assert_verifies(&got[0], &secret);
    assert_eq!(
        got[0].header("webhook-id"),
        Some(switchyard_tests::webhook_id("acme", "ord_1").as_str())
    );
}
