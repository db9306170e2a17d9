//! template.yaml passes cfn-lint and declares what the code reads.

use std::process::Command;
use switchyard_tests::{root, venv};

/// cfn-lint on `path`, asserting no finding.
fn cfn_lint(path: &std::path::Path, what: &str) {
    let out = Command::new(venv().bin("cfn-lint"))
        .arg(path)
        .output()
        .expect("cfn-lint runs from the project's virtualenv");
    // cfn-lint's exit code is a bitmask: 2 errors, 4 warnings, 8 informational.
    assert!(
        out.status.success(),
        "cfn-lint found problems in {what} ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn template_passes_cfn_lint() {
    cfn_lint(&root().join("template.yaml"), "template.yaml");
}

#[test]
fn template_passes_cfn_lint_in_every_mode() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let dir = switchyard_local::target_dir().join("template-tests");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, value) in switchyard_local::template::MODES {
        let variant = switchyard_local::template::with_default(&text, name, value).unwrap();
        let path = dir.join(format!("template-{name}-{value}.yaml"));
        std::fs::write(&path, variant).unwrap();
        cfn_lint(&path, &format!("template.yaml with {name}={value}"));
    }
}

#[test]
fn template_declares_every_function_and_the_settings_it_reads() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let functions: &[(&str, &str, &[&str])] = &[
        (
            "ingest",
            "switchyard-ingest",
            &[
                "REGISTRY_TABLE",
                "DELIVERIES_TABLE",
                "FANOUT_QUEUE_URL",
                "MAX_BODY_BYTES",
                "AUDIT_RETENTION_DAYS",
                "INGEST_PRODUCER_TENANTS",
                "INGEST_REPLAY_SENDER",
            ],
        ),
        (
            "fanout",
            "switchyard-fanout",
            &[
                "REGISTRY_TABLE",
                "DELIVERIES_QUEUE_URL",
                "DELIVERIES_TABLE",
                "AUDIT_RETENTION_DAYS",
            ],
        ),
        (
            "delivery",
            "switchyard-delivery",
            &[
                "REGISTRY_TABLE",
                "DELIVERIES_TABLE",
                "DELIVERIES_QUEUE_URL",
                "DELIVERIES_DLQ_URL",
                "FANOUT_QUEUE_URL",
                "CIRCUIT_FAILURE_THRESHOLD",
                "CIRCUIT_OPEN_SECS",
                "STALL_AFTER_MS",
                "ENDPOINT_DISABLE_AFTER_HOURS",
                "REQUEST_TIMEOUT_MS",
                "EVENT_RETENTION_DAYS",
                "SECRETS_KEY_ID",
            ],
        ),
        (
            "consumer",
            "switchyard-consumer",
            &[
                "STATE_TABLE",
                "CONSUMER_RETRY_BASE_SECS",
                "CONSUMER_RETRY_MAX_SECS",
                "CONSUMER_LEASE_SECS",
            ],
        ),
        (
            "api",
            "switchyard-api",
            &[
                "REGISTRY_TABLE",
                "DELIVERIES_TABLE",
                "DELIVERIES_QUEUE_URL",
                "ADMIN_KEY_SHA256",
                "ROTATION_OVERLAP_HOURS",
                "EVENT_RETENTION_DAYS",
                "AUDIT_RETENTION_DAYS",
                "SECRETS_KEY_ID",
            ],
        ),
        ("admin", "switchyard-admin", &["ADMIN_KEY_SHA256", "DLQS"]),
        ("monitor", "switchyard-monitor", &["REGISTRY_TABLE", "QUEUES", "STAGE"]),
    ];
    for (dir, bin, vars) in functions {
        assert!(
            template.contains(&format!("CodeUri: functions/{dir}")),
            "no CodeUri for functions/{dir}"
        );
        assert!(template.contains(&format!("Binary: {bin}")), "no Binary: {bin}");
        assert!(root().join("functions").join(dir).join("Cargo.toml").exists());
        for v in *vars {
            assert!(
                template.contains(&format!("{v}:")),
                "{bin} reads {v}, which template.yaml does not set"
            );
        }
    }
    for needle in [
        "BuildMethod: makefile",
        "provided.al2023",
        "arm64",
        "ReportBatchItemFailures",
        "deadLetterTargetArn",
        "PAY_PER_REQUEST",
        "AttributeName: expires_at",
    ] {
        assert!(template.contains(needle), "template.yaml lacks {needle}");
    }
    // Every function directory is in the template.
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_dir() {
            continue; // functions/Makefile
        }
        let dir = entry.file_name().to_string_lossy().to_string();
        assert!(
            functions.iter().any(|(d, _, _)| *d == dir),
            "functions/{dir} is not checked here"
        );
    }
}

/// `sam build` runs `functions/Makefile`'s `build-<LogicalId>` for every
/// function: each must exist and copy the binary the template names in
/// `Metadata.BuildProperties.Binary` (what the local runner runs), and the
/// one cargo build must build every function's package.
#[test]
fn the_makefile_builds_every_function_as_the_template_names_it() {
    let makefile = std::fs::read_to_string(root().join("functions/Makefile")).unwrap();
    let made: std::collections::BTreeMap<&str, &str> = makefile
        .lines()
        .filter_map(|l| l.strip_prefix("build-")?.split_once(": BINARY := "))
        .map(|(id, bin)| (id, bin.trim()))
        .collect();
    let packages: Vec<&str> = makefile
        .split_once("PACKAGES := ")
        .unwrap()
        .1
        .split("\n\n")
        .next()
        .unwrap()
        .split_whitespace()
        .filter(|w| *w != "\\")
        .collect();

    let template = switchyard_local::template::workspace_template().unwrap();
    let resources = template["Resources"].as_object().unwrap();
    let mut functions = std::collections::BTreeMap::new();
    for (id, r) in resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
    {
        let metadata = &r["Metadata"];
        assert_eq!(metadata["BuildMethod"], "makefile", "{id}");
        assert_eq!(metadata["ContextPath"], "functions", "{id}: the Makefile's folder");
        let binary = metadata["BuildProperties"]["Binary"].as_str().unwrap();
        functions.insert(id.as_str(), binary);
        assert!(
            packages.contains(&binary),
            "the cargo build in functions/Makefile lacks -p {binary}"
        );
    }
    assert_eq!(
        made, functions,
        "functions/Makefile's BINARY lines and the template disagree"
    );
    assert_eq!(packages.len(), functions.len(), "PACKAGES: {packages:?}");
}

#[test]
fn the_admin_function_is_told_about_every_dlq_the_template_declares() {
    let template = switchyard_local::template::workspace_template().unwrap();
    let resources = template["Resources"].as_object().unwrap();
    let dlqs: Vec<&String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::SQS::Queue")
        .filter(|(id, _)| id.ends_with("DLQ"))
        .map(|(id, _)| id)
        .collect();
    let setting = resources["AdminFunction"]["Properties"]["Environment"]["Variables"]["DLQS"].to_string();
    assert!(dlqs.len() >= 10, "{dlqs:?}");
    for id in dlqs {
        assert!(setting.contains(&format!("${{{id}}}")), "DLQS lacks {id}: {setting}");
        if id == "AwsEventsDLQ" {
            // No queue sends to it: it is replayed into the ingest queue.
            let expected = r#"{\"name\":\"aws-events\",\"dlq_url\":\"${AwsEventsDLQ}\",\"source_url\":\"${IngestQueue}\",\"replay\":\"eventbridge_to_ingest\"}"#;
            assert!(setting.contains(expected), "{setting}");
            continue;
        }
        // …paired with the queue whose redrive policy names it.
        let source = resources
            .iter()
            .find(|(_, r)| r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] == id.as_str())
            .map(|(sid, _)| sid)
            .unwrap_or_else(|| panic!("no queue sends to {id}"));
        assert!(setting.contains(&format!("${{{source}}}")), "DLQS lacks {source}");
    }
}

/// The HTTP API routes of `function` in the template: (method, path).
fn http_routes(function: &str) -> Vec<(String, String)> {
    let template = switchyard_local::template::workspace_template().unwrap();
    template["Resources"][function]["Properties"]["Events"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let p = &e["Properties"];
            (
                p["Method"].as_str().unwrap().to_uppercase(),
                p["Path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether the route `(method, path)` of the template takes `m p`.
fn covers((method, path): &(String, String), m: &str, p: &str) -> bool {
    let method_ok = method == "ANY" || method == m;
    let path_ok = match path.strip_suffix("{proxy+}") {
        Some(prefix) => p.starts_with(prefix) && p.len() > prefix.len(),
        None => path == p,
    };
    method_ok && path_ok
}

#[test]
fn every_management_route_reaches_its_own_function_through_the_http_api() {
    let api = http_routes("ApiFunction");
    let admin = http_routes("AdminFunction");
    for (m, p, _) in switchyard_api::routes::<switchyard_api::Aws>() {
        assert!(
            api.iter().any(|r| covers(r, m.as_str(), p)),
            "{m} {p} is not routed to ApiFunction by template.yaml ({api:?})"
        );
        assert!(
            !admin.iter().any(|r| covers(r, m.as_str(), p)),
            "{m} {p} is routed to AdminFunction too"
        );
        assert!(!switchyard_admin::serves(p), "{m} {p}");
        // ...and never shadows ingest's POST /v1/events.
        assert_ne!((m.as_str(), p), ("POST", "/v1/events"));
    }
    for (m, p, _) in switchyard_admin::routes() {
        assert!(
            admin.iter().any(|r| covers(r, m.as_str(), p)),
            "{m} {p} is not routed to AdminFunction by template.yaml ({admin:?})"
        );
        assert!(
            !api.iter().any(|r| covers(r, m.as_str(), p)),
            "{m} {p} is routed to the tenant-facing ApiFunction too"
        );
        assert!(switchyard_admin::serves(p), "{m} {p}");
    }
}
