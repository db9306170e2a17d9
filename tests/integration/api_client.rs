//! A Python client generated from the committed API document with
//! openapi-python-client (into target/, never into the repository) drives
//! one tenant's lifecycle against the local stack (`tests/client/lifecycle.py`):
//! tenant, key, endpoint to a loopback receiver, event, delivery log,
//! resend, rotation, deletes.

use crate::runner::{options, sdk, template};
use std::process::Command;
use std::time::Duration;
use switchyard_local::apitools::{DOCUMENT, work_dir};
use switchyard_local::runner::Runner;
use switchyard_tests::{ADMIN_KEY, Receiver, root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_drives_a_whole_lifecycle() {
    let venv = switchyard_local::venv::API_TOOLS
        .ensure(&root())
        .unwrap_or_else(|e| panic!("the API tools' virtualenv: {e}"));
    let out = work_dir("api-client");
    let package = out.join("switchyard_client");
    let generated = Command::new(venv.bin("openapi-python-client"))
        .current_dir(root())
        .args(["generate", "--meta", "none", "--path", DOCUMENT, "--output-path"])
        .arg(&package)
        .env(
            "PATH",
            format!(
                "{}:{}",
                venv.dir.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    assert!(
        generated.status.success() && package.join("api/tenant/send_an_event.py").is_file(),
        "openapi-python-client failed:\n{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );

    let runner = Runner::start(&sdk().await, template(), options("api-client", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rx = Receiver::ok().await.unwrap();
    let api = runner.api_url(None).unwrap();
    let (python, script, hook) = (venv.python(), root().join("tests/client/lifecycle.py"), rx.url("/hook"));
    let ran = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("PYTHONPATH", &out)
            .env("API", api.trim_end_matches('/'))
            .env("ADMIN_KEY", ADMIN_KEY)
            .env("RECEIVER", hook)
            .output()
    })
    .await
    .unwrap()
    .expect("python runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr),
    );
    assert!(
        ran.status.success() && stdout.contains("lifecycle: ok"),
        "lifecycle.py failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        ran.status
    );
    // The event's webhook, then the resend of the same message.
    let got = rx.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "the delivery and its resend:\n{stdout}");
    let id = switchyard_tests::webhook_id("client_lifecycle", "ord_1");
    assert!(
        got.iter().all(|r| r.header("webhook-id") == Some(id.as_str())),
        "{got:?}"
    );
    runner.shutdown().await;
}
