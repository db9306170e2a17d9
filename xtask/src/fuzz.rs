//! `cargo xtask fuzz [--secs N] [TARGET...]`: runs the libFuzzer targets of
//! `tests/fuzz` (cargo-fuzz, installed on first use) for a bounded time
//! each, and reports executions, coverage and crashes.
//!
//! Each target starts from its committed seed corpus
//! (`tests/fuzz/corpus/<target>`) and writes what it finds to a scratch
//! corpus under `target/fuzz-corpus/<target>` (kept between runs, never
//! committed). A crash leaves its input in `tests/fuzz/artifacts/<target>/`
//! and fails the command; a crash found once becomes a regression test.
//! cargo-fuzz needs nightly features (`-Zsanitizer`); the machine's stable
//! toolchain provides them with `RUSTC_BOOTSTRAP=1`.

use anyhow::{Context as _, Result, anyhow, bail};
use std::path::Path;
use std::process::{Command, Stdio};

/// The targets, in `tests/fuzz/Cargo.toml`.
pub(crate) const TARGETS: [&str; 4] = ["envelope", "tasks", "verify", "endpoint_url"];
/// The cargo-fuzz this project uses.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut secs = 60u64;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => secs = crate::local::option_value(&mut it, |&v| v >= 1, "--secs takes a number of seconds")?,
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => {
                bail!("unknown option or target {other} (targets: {})", TARGETS.join(", "));
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    ensure_cargo_fuzz()?;
    let target_dir = switchyard_local::target_dir();
    let mut rows = Vec::new();
    let mut crashed = Vec::new();
    for t in &targets {
        let work = target_dir.join("fuzz-corpus").join(t);
        std::fs::create_dir_all(&work).with_context(|| work.display().to_string())?;
        eprintln!("==> fuzzing {t} for {secs} s ...");
        let out = Command::new(cargo())
            .current_dir(root)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--fuzz-dir", "tests/fuzz", "--target-dir"])
            .arg(target_dir.join("fuzz"))
            .arg(t)
            .arg(&work)
            .arg(root.join("tests/fuzz/corpus").join(t))
            .args(["--", &format!("-max_total_time={secs}"), "-print_final_stats=1"])
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .context("running cargo fuzz")?;
        let log = String::from_utf8_lossy(&out.stderr);
        let stats = Stats::parse(&log);
        if !out.status.success() {
            eprintln!("{}", tail(&log, 40));
            crashed.push(t.clone());
        }
        rows.push((t.clone(), stats, out.status.success()));
    }
    println!("\n| target | executions | exec/s | coverage (edges) | corpus | crashes |");
    println!("|---|---|---|---|---|---|");
    for (t, s, ok) in &rows {
        println!(
            "| {t} | {} | {} | {} | {} | {} |",
            s.executions,
            s.per_second,
            s.coverage,
            s.corpus,
            if *ok { "0" } else { "1 (see tests/fuzz/artifacts)" }
        );
    }
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("crashes in {}", crashed.join(", ")))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Installs cargo-fuzz unless this version is there.
fn ensure_cargo_fuzz() -> Result<()> {
    let have = Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION))
        .unwrap_or(false);
    if have {
        return Ok(());
    }
    eprintln!("==> installing cargo-fuzz {CARGO_FUZZ_VERSION} (once) ...");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION])
        .status()
        .context("running cargo install")?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow!("cargo install cargo-fuzz failed ({status})"))
    }
}

/// What libFuzzer's final stats and last status line said.
#[derive(Debug, Default, PartialEq)]
struct Stats {
    executions: u64,
    per_second: u64,
    coverage: u64,
    corpus: u64,
}

impl Stats {
    fn parse(log: &str) -> Self {
        let mut s = Self::default();
        let num = |v: &str| v.trim().parse::<u64>().unwrap_or(0);
        for line in log.lines() {
            if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
                s.executions = num(v);
            } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
                s.per_second = num(v);
            } else if line.starts_with('#') {
                // `#1234  DONE   cov: 567 ft: 890 corp: 12/345b ...`
                let mut words = line.split_whitespace();
                while let Some(w) = words.next() {
                    match w {
                        "cov:" => s.coverage = words.next().map(num).unwrap_or(s.coverage),
                        "corp:" => {
                            s.corpus = words
                                .next()
                                .and_then(|c| c.split('/').next())
                                .map(num)
                                .unwrap_or(s.corpus)
                        }
                        _ => {}
                    }
                }
            }
        }
        s
    }
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_stats_are_read() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 3/120b exec/s: 0 rss: 30Mb\n\
                   #4096\tpulse  cov: 250 ft: 300 corp: 40/2Kb lim: 43 exec/s: 2048 rss: 40Mb\n\
                   #9000\tDONE   cov: 260 ft: 310 corp: 42/2Kb lim: 43 exec/s: 3000 rss: 41Mb\n\
                   Done 9000 runs in 3 second(s)\n\
                   stat::number_of_executed_units: 9000\nstat::average_exec_per_sec:     3000\n";
        assert_eq!(
            Stats::parse(log),
            Stats {
                executions: 9000,
                per_second: 3000,
                coverage: 260,
                corpus: 42
            }
        );
        assert_eq!(Stats::parse(""), Stats::default());
    }

    #[test]
    fn every_target_has_a_seed_corpus_and_a_source() {
        let root = switchyard_local::workspace_root();
        let manifest = std::fs::read_to_string(root.join("tests/fuzz/Cargo.toml")).unwrap();
        for t in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{t}\"")),
                "{t} in tests/fuzz/Cargo.toml"
            );
            assert!(root.join(format!("tests/fuzz/fuzz_targets/{t}.rs")).is_file(), "{t}");
            let seeds = std::fs::read_dir(root.join("tests/fuzz/corpus").join(t))
                .unwrap()
                .count();
            assert!(seeds > 0, "{t} has no seed");
        }
    }
}
