//! `cargo xtask fuzz-api [--examples N] [--seed S] [--no-build]`:
//! schemathesis, every check and the stateful phase included, against the
//! whole HTTP API of the local stack, at a larger size than the test
//! suite's run (more examples per operation, and a fresh seed unless one
//! is given): once with a tenant's key over the tenant's operations, once
//! with the admin key over the operator's. Prints, per run, the operations
//! tested, test cases, failures and time; any failure fails the command
//! with schemathesis's report.

use crate::local::{self, Args};
use anyhow::{Context as _, Result, bail};
use serde_json::json;
use std::path::Path;
use switchyard_local::apitools::{Fuzz, work_dir};

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let (mut examples, mut seed) = (50u32, None);
    let mut largs = Args::parse(root, &[])?;
    largs.port = 0;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--examples" => {
                examples = local::option_value(&mut it, |v| (1..=10_000).contains(v), "--examples takes 1 to 10000")?
            }
            "--seed" => seed = Some(local::option_value(&mut it, |_: &u64| true, "--seed takes a number")?),
            "--no-build" => largs.build = false,
            other => bail!("unknown option {other} (--examples N, --seed S, --no-build)"),
        }
    }
    let venv = switchyard_local::venv::API_TOOLS.ensure(root)?;
    local::with_stack(root, &largs, async |stack| {
        let base = stack.runner.api_url(None).context("the template serves no HTTP API")?;
        let base = base.trim_end_matches('/').to_string();
        let admin = stack.admin_key.as_ref().context("the template has no AdminKeySha256")?;
        let http = reqwest::Client::new();
        crate::demo::expect(
            "POST /v1/admin/tenants",
            crate::demo::call(
                &http,
                &base,
                "POST",
                "/v1/admin/tenants",
                admin.expose(),
                Some(json!({"id": "fuzz_tenant", "name": "fuzz"})),
            )
            .await?,
            201,
        )?;
        let key = crate::demo::expect(
            "POST /v1/admin/tenants/fuzz_tenant/api-keys",
            crate::demo::call(
                &http,
                &base,
                "POST",
                "/v1/admin/tenants/fuzz_tenant/api-keys",
                admin.expose(),
                Some(json!({"scope": "manage"})),
            )
            .await?,
            201,
        )?;
        let key = key["api_key"].as_str().context("no api_key in the answer")?.to_string();
        let mut failed = Vec::new();
        // The tenant's run first: the admin's may delete that tenant.
        for (tag, key) in [("tenant", key.clone()), ("admin", admin.expose().to_string())] {
            let fuzz = Fuzz {
                base_url: base.clone(),
                key,
                tag: tag.to_string(),
                max_examples: examples,
                seed,
            };
            eprintln!("== schemathesis, {tag} operations, {examples} examples per operation");
            let (root, venv) = (root.to_path_buf(), venv.clone());
            let r = tokio::task::spawn_blocking(move || fuzz.run(&root, &venv, &work_dir("fuzz-api"))).await??;
            println!(
                "{tag}: {} operations, {} test cases, {} failures, {:.0} s, seed {}",
                r.operations.map_or("?".into(), |n| n.to_string()),
                r.test_cases.map_or("?".into(), |n| n.to_string()),
                r.failures,
                r.elapsed.as_secs_f64(),
                seed.map_or_else(|| seed_of(&r.output), |s| s.to_string()),
            );
            if !r.passed || r.failures > 0 {
                eprintln!("{}", r.output);
                failed.push(tag);
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!(
                "schemathesis found failures ({}): its report is above",
                failed.join(", ")
            )
        }
    })
}

/// The seed schemathesis printed (`Seed: N`).
fn seed_of(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Seed:"))
        .map_or("?".into(), |s| s.trim().to_string())
}
