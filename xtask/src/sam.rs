//! `cargo xtask sam-build [--no-build] [-- <sam build arguments>]`: the real
//! `sam build` of `template.yaml`, offline, and a check of what it produced.
//!
//! * The SAM CLI lives in its own virtualenv, `.venv-sam`, created here from
//!   `shared/local/python/requirements-sam.txt` (aws-sam-cli, plus the same
//!   cargo-lambda and ziglang pins as the project's `.venv`). It cannot join
//!   `.venv`: every aws-sam-cli release pins boto3 exactly (1.170.0:
//!   `boto3[crt]==1.43.108`) and `click==8.1.8`, which would downgrade the
//!   boto3/botocore and click that moto's server runs on there.
//! * `sam build --no-cached` runs with `.venv-sam/bin` first on PATH,
//!   `CARGO_ZIGBUILD_PYTHON_PATH` at that venv's Python (zig comes from the
//!   `ziglang` package, so cargo-lambda never offers to download it),
//!   `CARGO_TARGET_DIR` at the workspace's `target` unless already set, and
//!   `SAM_CLI_TELEMETRY=0`. Every function has `BuildMethod: makefile` with
//!   `ContextPath: functions`: SAM runs `functions/Makefile`'s
//!   `build-<LogicalId>`, which runs one `cargo lambda build --release
//!   --arm64` of all the functions (fresh after the first) and copies the
//!   function's binary to the artifacts folder. `--no-cached`: SAM's build
//!   cache keys a function on its CodeUri folder alone (`functions/<name>`),
//!   so a change in `shared/*`, `Cargo.toml` or `Cargo.lock` would leave a
//!   stale bootstrap; cargo's own fingerprints make an unchanged rebuild
//!   take seconds. It prints how long `sam build` took and the machine's
//!   load average before and after (the figures in
//!   `docs/evidence/sam-build.md`).
//! * Then every `AWS::Serverless::Function` of the template must have
//!   `.aws-sam/build/<LogicalId>/bootstrap`: an executable 64-bit
//!   little-endian ELF program (`ET_EXEC`, or a PIE: `ET_DYN` with an
//!   interpreter or `DF_1_PIE`) for aarch64, declared `arm64` by the template,
//!   whose newest `GLIBC_x.y` version need (from `.gnu.version_r`) is one its
//!   runtime has (`provided.al2023`: 2.34); and the built template must point
//!   the function's `CodeUri` at that folder. A table says what was found; any
//!   miss fails the command.
//!
//! `--no-build` checks the existing `.aws-sam/build` without running SAM.
//! Arguments after `--` go to `sam build` (e.g. `-- --debug`).

use anyhow::{Context as _, Result, anyhow, bail};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use switchyard_local::venv::{Venv, VenvSpec};

const USAGE: &str = "usage: cargo xtask sam-build [--no-build] [-- <sam build arguments>]";
const FUNCTION: &str = "AWS::Serverless::Function";
/// Where `sam build` puts its artifacts and the built template.
const BUILD_DIR: &str = ".aws-sam/build";
const SAM_VENV: &str = ".venv-sam";
const SAM_REQUIREMENTS: &str = "shared/local/python/requirements-sam.txt";
/// The architecture Switchyard deploys (template: `Architectures: [arm64]`).
const ARCHITECTURE: &str = "arm64";

/// `cargo xtask sam-build [--no-build] [-- <sam build arguments>]`
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let venv = switchyard_local::venv::ensure(root)?;
    if options.build {
        let sam_venv = ensure_sam_venv(root)?;
        crate::bench::init::ensure_arm64_target()?;
        sam_build(root, &sam_venv, &options.sam_args)?;
    }
    let template = switchyard_local::template::load(root, &venv)?;
    let functions = functions(&template)?;
    let built_path = root.join(BUILD_DIR).join("template.yaml");
    let built = if built_path.is_file() {
        Some(switchyard_local::template::load_path(root, &venv, &built_path)?)
    } else {
        None
    };
    let rows: Vec<Row> = functions
        .iter()
        .map(|f| check_function(&root.join(BUILD_DIR), f, built.as_ref()))
        .collect();
    print!("{}", table(&rows));
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| r.problems.iter().map(move |p| format!("{}: {p}", r.logical_id)))
        .collect();
    if built.is_none() {
        bail!(
            "{} is missing: `sam build` did not finish (run without --no-build)",
            built_path.display()
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "sam-build: {} of {} functions failed the check:\n  {}",
            rows.iter().filter(|r| !r.problems.is_empty()).count(),
            rows.len(),
            failures.join("\n  ")
        ))
    }
}

// ---------------------------------------------------------------------------
// Options

#[derive(Debug, PartialEq)]
struct Options {
    build: bool,
    sam_args: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options {
            build: true,
            sam_args: Vec::new(),
        };
        // Tolerate the subcommand name in case the caller passes it through.
        let mut args = args.iter().skip_while(|a| *a == "sam-build");
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--no-build" => options.build = false,
                "--" => options.sam_args.extend(args.by_ref().cloned()),
                other => bail!("sam-build: unknown argument `{other}`\n{USAGE}"),
            }
        }
        if !options.build && !options.sam_args.is_empty() {
            bail!("sam-build: --no-build runs no `sam build` to pass arguments to\n{USAGE}");
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------
// The SAM virtualenv and `sam build`

/// `.venv-sam`, from `requirements-sam.txt`.
fn ensure_sam_venv(root: &Path) -> Result<Venv> {
    Ok(VenvSpec {
        dir: SAM_VENV,
        requirements: SAM_REQUIREMENTS,
        probe: "sam",
        holds: "aws-sam-cli, cargo-lambda, ziglang",
    }
    .ensure(root)?)
}

/// Runs `cmd` and fails unless it succeeds.
fn run_status(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("{what}: cannot run {cmd:?}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow!("{what} failed ({status})"))
    }
}

fn sam_build(root: &Path, sam_venv: &Venv, extra: &[String]) -> Result<()> {
    let bin = sam_venv.dir.join("bin");
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(&rest)))
        .context("cannot build PATH")?;
    let mut cmd = Command::new(sam_venv.bin("sam"));
    cmd.current_dir(root)
        .args(["build", "--no-cached", "--template-file", "template.yaml"])
        .arg("--build-dir")
        .arg(BUILD_DIR)
        .args(extra)
        .env("PATH", path)
        .env("CARGO_ZIGBUILD_PYTHON_PATH", bin.join("python3"))
        .env("SAM_CLI_TELEMETRY", "0");
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        cmd.env("CARGO_TARGET_DIR", root.join("target"));
    }
    eprintln!("sam-build: {cmd:?}");
    let load_before = load_average();
    let started = Instant::now();
    run_status(&mut cmd, "sam build").map_err(|e| {
        anyhow!(
            "{e:#}\n(the same arm64 binaries without SAM: `PATH=.venv/bin:$PATH \
             CARGO_ZIGBUILD_PYTHON_PATH=.venv/bin/python3 make -f functions/Makefile lambdas`, \
             into target/lambda/<binary>/bootstrap)"
        )
    })?;
    eprintln!(
        "sam-build: sam build took {:.1} s (load average before: {load_before}; after: {}; {} CPUs)",
        started.elapsed().as_secs_f64(),
        load_average(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    Ok(())
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), or `?`.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------------------
// The template's functions

/// One `AWS::Serverless::Function`, with the properties that decide its build
/// (its own, else the template's `Globals.Function`).
#[derive(Debug, PartialEq)]
struct FunctionSpec {
    logical_id: String,
    /// `Metadata.BuildProperties.Binary` (the cargo bin SAM builds), if set.
    binary: Option<String>,
    /// `Architectures`; SAM's default is x86_64.
    architectures: Vec<String>,
    runtime: Option<String>,
}

fn functions(template: &Value) -> Result<Vec<FunctionSpec>> {
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .context("the template has no Resources object")?;
    let globals = template.pointer("/Globals/Function");
    let mut out = Vec::new();
    for (id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some(FUNCTION) {
            continue;
        }
        let property = |name: &str| {
            resource
                .get("Properties")
                .and_then(|p| p.get(name))
                .or_else(|| globals.and_then(|g| g.get(name)))
        };
        let architectures = match property("Architectures") {
            None => vec!["x86_64".to_string()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| {
                    a.as_str()
                        .map(str::to_string)
                        .with_context(|| format!("{id}: Architectures holds {a}, not a string"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => bail!("{id}: Architectures is {other}, not a list of strings"),
        };
        let runtime = match property("Runtime") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => bail!("{id}: Runtime is {other}, not a string"),
        };
        let binary = resource
            .pointer("/Metadata/BuildProperties/Binary")
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(FunctionSpec {
            logical_id: id.clone(),
            binary,
            architectures,
            runtime,
        });
    }
    if out.is_empty() {
        bail!("the template declares no {FUNCTION}");
    }
    Ok(out)
}

/// The newest glibc a Lambda OS-only runtime provides.
fn runtime_glibc(runtime: &str) -> Option<(u32, u32)> {
    match runtime {
        "provided.al2023" => Some(crate::bench::init::MAX_GLIBC),
        "provided.al2" => Some((2, 26)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Checking one function's artifact

struct Row {
    logical_id: String,
    binary: String,
    size: Option<u64>,
    arch: String,
    glibc: String,
    problems: Vec<String>,
}

fn check_function(build_dir: &Path, f: &FunctionSpec, built: Option<&Value>) -> Row {
    let mut row = Row {
        logical_id: f.logical_id.clone(),
        binary: f.binary.clone().unwrap_or_else(|| "-".into()),
        size: None,
        arch: "-".into(),
        glibc: "-".into(),
        problems: Vec::new(),
    };
    if f.architectures != [ARCHITECTURE] {
        row.problems.push(format!(
            "the template declares Architectures {:?}; Switchyard deploys [{ARCHITECTURE}]",
            f.architectures
        ));
    }
    let limit = f.runtime.as_deref().and_then(runtime_glibc);
    if limit.is_none() {
        row.problems.push(format!(
            "runtime {:?} is not an OS-only Lambda runtime this check knows (provided.al2023, provided.al2)",
            f.runtime
        ));
    }
    if let Some(built) = built {
        let code_uri = built.pointer(&format!("/Resources/{}/Properties/CodeUri", f.logical_id));
        if code_uri.and_then(Value::as_str) != Some(f.logical_id.as_str()) {
            row.problems.push(format!(
                "the built template's CodeUri is {}, not {:?}: sam deploy would not package this build",
                code_uri.map_or("missing".into(), Value::to_string),
                f.logical_id
            ));
        }
    }

    let path = bootstrap_path(build_dir, &f.logical_id);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            row.problems.push(format!("{}: {e}", path.display()));
            return row;
        }
    };
    row.size = Some(bytes.len() as u64);
    match fs::metadata(&path) {
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            row.problems.push(format!("{} is not executable", path.display()));
        }
        Ok(_) => {}
        Err(e) => row.problems.push(format!("{}: {e}", path.display())),
    }
    let elf = match crate::elf::read(&bytes) {
        Ok(elf) => elf,
        Err(e) => {
            row.problems.push(format!("{}: {e:#}", path.display()));
            return row;
        }
    };
    row.arch = crate::elf::machine_name(elf.machine);
    if elf.machine != crate::elf::MACHINE_AARCH64 {
        row.problems
            .push(format!("{} is built for {}, not aarch64", path.display(), row.arch));
    }
    if !elf.is_program() {
        row.problems.push(format!(
            "{} is not an executable program (e_type {}, no interpreter or PIE flag)",
            path.display(),
            elf.e_type
        ));
    }
    row.glibc = match (elf.glibc, limit) {
        (None, _) => "none".into(),
        (Some((a, b)), None) => format!("{a}.{b}"),
        (Some(v @ (a, b)), Some(l @ (la, lb))) => {
            if v > l {
                row.problems.push(format!(
                    "needs GLIBC_{a}.{b}, newer than {} has ({la}.{lb})",
                    f.runtime.as_deref().unwrap_or("?")
                ));
            }
            format!("{a}.{b} (<= {la}.{lb})")
        }
    };
    row
}

fn bootstrap_path(build_dir: &Path, logical_id: &str) -> PathBuf {
    build_dir.join(logical_id).join("bootstrap")
}

fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<18} | {:<20} | {:>9} | {:<7} | {:<18} | result",
        "function", "binary", "bootstrap", "arch", "max glibc needed"
    );
    let _ = writeln!(out, "{}", "-".repeat(92));
    for r in rows {
        let _ = writeln!(
            out,
            "{:<18} | {:<20} | {:>9} | {:<7} | {:<18} | {}",
            r.logical_id,
            r.binary,
            r.size.map_or("missing".into(), crate::bench::stats::mb),
            r.arch,
            r.glibc,
            if r.problems.is_empty() { "ok" } else { "FAIL" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::fixture;
    use crate::elf::{MACHINE_AARCH64, MACHINE_X86_64};
    use serde_json::json;

    const ET_DYN: u16 = 3;

    fn spec(architectures: &[&str], runtime: &str) -> FunctionSpec {
        FunctionSpec {
            logical_id: "IngestFunction".into(),
            binary: Some("switchyard-ingest".into()),
            architectures: architectures.iter().map(|s| s.to_string()).collect(),
            runtime: Some(runtime.into()),
        }
    }

    #[test]
    fn reads_functions_with_globals() {
        let template = json!({
            "Globals": {"Function": {"Runtime": "provided.al2023", "Architectures": ["arm64"]}},
            "Resources": {
                "IngestFunction": {
                    "Type": FUNCTION,
                    "Metadata": {"BuildMethod": "makefile", "BuildProperties": {"Binary": "switchyard-ingest"}},
                    "Properties": {"CodeUri": "functions/ingest"}
                },
                "Other": {"Type": FUNCTION, "Properties": {"Architectures": ["x86_64"], "Runtime": "provided.al2"}},
                "Queue": {"Type": "AWS::SQS::Queue"}
            }
        });
        let mut found = functions(&template).unwrap();
        found.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
        assert_eq!(found[0], spec(&["arm64"], "provided.al2023"));
        assert_eq!(found[1].architectures, ["x86_64"]);
        assert_eq!(found[1].runtime.as_deref(), Some("provided.al2"));
        assert_eq!(found[1].binary, None);
        assert!(functions(&json!({"Resources": {}})).is_err());
    }

    #[test]
    fn checks_a_build_folder() {
        let dir = std::env::temp_dir().join(format!("xtask-sam-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let built = json!({"Resources": {"IngestFunction": {"Properties": {"CodeUri": "IngestFunction"}}}});

        let missing = check_function(&dir, &spec(&["arm64"], "provided.al2023"), Some(&built));
        assert_eq!(missing.problems.len(), 1, "{:?}", missing.problems);
        assert_eq!(missing.size, None);

        let bootstrap = bootstrap_path(&dir, "IngestFunction");
        fs::create_dir_all(bootstrap.parent().unwrap()).unwrap();
        fs::write(&bootstrap, fixture(ET_DYN, MACHINE_AARCH64, true, true)).unwrap();
        fs::set_permissions(&bootstrap, fs::Permissions::from_mode(0o755)).unwrap();
        let ok = check_function(&dir, &spec(&["arm64"], "provided.al2023"), Some(&built));
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!((ok.arch.as_str(), ok.glibc.as_str()), ("aarch64", "2.34 (<= 2.34)"));

        // glibc 2.34 is too new for provided.al2 (2.26); x86_64 is not what we deploy.
        let old = check_function(&dir, &spec(&["x86_64"], "provided.al2"), Some(&built));
        assert_eq!(old.problems.len(), 2, "{:?}", old.problems);

        fs::write(&bootstrap, fixture(ET_DYN, MACHINE_X86_64, true, true)).unwrap();
        let wrong = check_function(&dir, &spec(&["arm64"], "provided.al2023"), None);
        assert_eq!(wrong.arch, "x86_64");
        assert_eq!(wrong.problems.len(), 1, "{:?}", wrong.problems);

        fs::set_permissions(&bootstrap, fs::Permissions::from_mode(0o644)).unwrap();
        let stale = json!({"Resources": {"IngestFunction": {"Properties": {"CodeUri": "functions/ingest"}}}});
        let both = check_function(&dir, &spec(&["arm64"], "provided.al2023"), Some(&stale));
        assert_eq!(both.problems.len(), 3, "{:?}", both.problems);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_options() {
        let args = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Options::parse(&args(&["sam-build", "--", "--debug", "--no-build"])).unwrap(),
            Options {
                build: true,
                sam_args: args(&["--debug", "--no-build"])
            }
        );
        assert!(!Options::parse(&args(&["--no-build"])).unwrap().build);
        assert!(Options::parse(&args(&["--no-build", "--", "--debug"])).is_err());
        assert!(Options::parse(&args(&["--bogus"])).is_err());
    }

    /// `requirements-sam.txt` must install the cargo-lambda and zig that
    /// `requirements.txt` does, so `sam build` and `bench-init` link alike.
    #[test]
    fn sam_requirements_share_the_build_pins() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let pins = |path: &str| -> Vec<(String, String)> {
            fs::read_to_string(root.join(path))
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| l.split_once("=="))
                .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_string()))
                .collect()
        };
        let (project, sam) = (pins("shared/local/python/requirements.txt"), pins(SAM_REQUIREMENTS));
        for tool in ["cargo-lambda", "ziglang"] {
            let find = |list: &[(String, String)]| list.iter().find(|(n, _)| n == tool).cloned();
            assert!(find(&sam).is_some(), "{tool} is not pinned in {SAM_REQUIREMENTS}");
            assert_eq!(find(&sam), find(&project), "{tool}: the two requirement files disagree");
        }
        assert!(sam.iter().any(|(n, _)| n == "aws-sam-cli"));
    }
}
