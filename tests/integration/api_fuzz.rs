//! schemathesis, every check and the stateful phase included, against the
//! whole HTTP API of the local stack (the api, admin and ingest functions
//! as the runner serves them): once with a tenant's `manage` key over the
//! tenant's operations, once with the admin key over the operator's. A
//! fixed seed and few examples keep it small enough for CI; `cargo xtask
//! fuzz-api` runs it larger.

use crate::runner::{options, sdk, template};
use switchyard_local::apitools::{Fuzz, work_dir};
use switchyard_local::runner::Runner;
use switchyard_tests::{ADMIN_KEY, Http, root};

/// Test cases per operation and phase, and the seed, of the CI-sized run.
const EXAMPLES: u32 = 5;
const SEED: u64 = 21;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_with_a_tenant_key_or_the_admin_key() {
    let venv = switchyard_local::venv::API_TOOLS
        .ensure(&root())
        .unwrap_or_else(|e| panic!("the API tools' virtualenv: {e}"));
    let runner = Runner::start(&sdk().await, template(), options("api-fuzz", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api = Http::of(&runner);
    let key = api.tenant("fuzz_tenant").await;
    let base = api.base.trim_end_matches('/').to_string();

    // The tenant's run first: the admin's may delete that tenant.
    for (tag, key) in [("tenant", key.as_str()), ("admin", ADMIN_KEY)] {
        let fuzz = Fuzz {
            base_url: base.clone(),
            key: key.to_string(),
            tag: tag.to_string(),
            max_examples: EXAMPLES,
            seed: Some(SEED),
        };
        let venv = venv.clone();
        let report = tokio::task::spawn_blocking(move || fuzz.run(&root(), &venv, &work_dir("api-fuzz")))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("schemathesis ({tag}): {e}"));
        eprintln!(
            "schemathesis ({tag}): {:?} operations, {:?} test cases, {} failures in {:.0?}",
            report.operations, report.test_cases, report.failures, report.elapsed
        );
        assert!(
            report.passed && report.failures == 0,
            "schemathesis ({tag}) found failures:\n{}",
            report.output
        );
        assert!(report.operations.is_some_and(|n| n > 0), "{}", report.output);
    }
    runner.shutdown().await;
}
