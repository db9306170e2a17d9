//! `cargo xtask sam-build [--no-build] [-- <sam build arguments>]`: the real
//! `sam build` of `template.yaml`, offline, and a check of what it produced.
//!
//! * The SAM CLI lives in its own virtualenv, `.venv-sam`, created here from
//!   `shared/local/python/requirements-sam.txt` (aws-sam-cli, plus the same
//!   cargo-lambda and ziglang pins as the project's `.venv`). It cannot join
//!   `.venv`: every aws-sam-cli release pins boto3 exactly (1.170.0:
//!   `boto3[crt]==1.43.108`) and `click==8.1.8`, which would downgrade the
//!   boto3/botocore and click that moto's server runs on there.
//! * `sam build --beta-features --no-cached` runs with `.venv-sam/bin` first
//!   on PATH (the rust-cargolambda workflow runs the `cargo-lambda` it finds
//!   there: `cargo lambda build --release --arm64 --bin <Binary>` in each
//!   CodeUri), `CARGO_ZIGBUILD_PYTHON_PATH` at that venv's Python (zig comes
//!   from the `ziglang` package, so cargo-lambda never offers to download
//!   it), `CARGO_TARGET_DIR` at the workspace's `target` unless already set,
//!   and `SAM_CLI_TELEMETRY=0`. `--no-cached`: SAM's build cache keys a
//!   function on its CodeUri folder alone (`functions/<name>`), so a change in
//!   `shared/*`, `Cargo.toml` or `Cargo.lock` would leave a stale bootstrap;
//!   cargo's own fingerprints make an unchanged rebuild take seconds.
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

use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use switchyard_local::venv::Venv;

const USAGE: &str = "usage: cargo xtask sam-build [--no-build] [-- <sam build arguments>]";
const FUNCTION: &str = "AWS::Serverless::Function";
/// Where `sam build` puts its artifacts and the built template.
const BUILD_DIR: &str = ".aws-sam/build";
const SAM_VENV: &str = ".venv-sam";
const SAM_REQUIREMENTS: &str = "shared/local/python/requirements-sam.txt";
/// The architecture Switchyard deploys (template: `Architectures: [arm64]`).
const ARCHITECTURE: &str = "arm64";

const ELF_MACHINE_AARCH64: u16 = 0xB7;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
const DT_NULL: u64 = 0;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DF_1_PIE: u64 = 0x0800_0000;

/// `cargo xtask sam-build [--no-build] [-- <sam build arguments>]`
pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let options = Options::parse(args)?;
    let venv = switchyard_local::venv::ensure(root).map_err(|e| e.to_string())?;
    if options.build {
        let sam_venv = ensure_sam_venv(root)?;
        crate::bench::ensure_arm64_target()?;
        sam_build(root, &sam_venv, &options.sam_args)?;
    }
    let template = switchyard_local::template::load(root, &venv).map_err(|e| e.to_string())?;
    let functions = functions(&template)?;
    let built_path = root.join(BUILD_DIR).join("template.yaml");
    let built = if built_path.is_file() {
        Some(switchyard_local::template::load_path(root, &venv, &built_path).map_err(|e| e.to_string())?)
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
        return Err(format!(
            "{} is missing: `sam build` did not finish (run without --no-build)",
            built_path.display()
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
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
    fn parse(args: &[String]) -> Result<Self, String> {
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
                other => return Err(format!("sam-build: unknown argument `{other}`\n{USAGE}")),
            }
        }
        if !options.build && !options.sam_args.is_empty() {
            return Err(format!(
                "sam-build: --no-build runs no `sam build` to pass arguments to\n{USAGE}"
            ));
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------
// The SAM virtualenv and `sam build`

/// Makes sure `<root>/.venv-sam` exists and matches `requirements-sam.txt`,
/// the way `switchyard_local::venv::ensure` keeps `.venv`: a stamp holding
/// the requirements it was built from, a lock against concurrent installs.
fn ensure_sam_venv(root: &Path) -> Result<Venv, String> {
    let venv = Venv {
        dir: root.join(SAM_VENV),
    };
    let req_path = root.join(SAM_REQUIREMENTS);
    let wanted = fs::read_to_string(&req_path).map_err(|e| format!("reading {}: {e}", req_path.display()))?;
    let stamp = venv.dir.join(".switchyard-requirements");
    let ready = || venv.bin("sam").is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted);
    if ready() {
        return Ok(venv);
    }
    let lock_path = root.join(format!("{SAM_VENV}.lock"));
    let lock = File::create(&lock_path).map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if ready() {
        return Ok(venv);
    }
    eprintln!(
        "sam-build: setting up the SAM CLI virtualenv in {} (aws-sam-cli, cargo-lambda, ziglang)…",
        venv.dir.display()
    );
    if !venv.python().exists() {
        let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into());
        run_status(
            Command::new(&python).args(["-m", "venv"]).arg(&venv.dir),
            "creating the SAM virtualenv (is python3 with venv installed?)",
        )?;
    }
    run_status(
        Command::new(venv.python())
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&req_path),
        "installing requirements-sam.txt",
    )?;
    fs::write(&stamp, &wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(venv)
}

fn sam_build(root: &Path, sam_venv: &Venv, extra: &[String]) -> Result<(), String> {
    let bin = sam_venv.dir.join("bin");
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(&rest)))
        .map_err(|e| format!("cannot build PATH: {e}"))?;
    let mut cmd = Command::new(sam_venv.bin("sam"));
    cmd.current_dir(root)
        .args([
            "build",
            "--beta-features",
            "--no-cached",
            "--template-file",
            "template.yaml",
        ])
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
    let started = Instant::now();
    run_status(&mut cmd, "sam build").map_err(|e| {
        format!(
            "{e}\n(the same arm64 binaries without SAM: `PATH=.venv/bin:$PATH \
             CARGO_ZIGBUILD_PYTHON_PATH=.venv/bin/python3 cargo lambda build --release --arm64`, \
             into target/lambda/<binary>/bootstrap)"
        )
    })?;
    eprintln!("sam-build: sam build took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_status(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
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

fn functions(template: &Value) -> Result<Vec<FunctionSpec>, String> {
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or("the template has no Resources object")?;
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
                        .ok_or_else(|| format!("{id}: Architectures holds {a}, not a string"))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("{id}: Architectures is {other}, not a list of strings")),
        };
        let runtime = match property("Runtime") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(format!("{id}: Runtime is {other}, not a string")),
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
        return Err(format!("the template declares no {FUNCTION}"));
    }
    Ok(out)
}

/// The newest glibc a Lambda OS-only runtime provides.
fn runtime_glibc(runtime: &str) -> Option<(u32, u32)> {
    match runtime {
        "provided.al2023" => Some(crate::bench::MAX_GLIBC),
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
    let elf = match parse_elf(&bytes) {
        Ok(elf) => elf,
        Err(e) => {
            row.problems.push(format!("{}: {e}", path.display()));
            return row;
        }
    };
    row.arch = machine_name(elf.machine);
    if elf.machine != ELF_MACHINE_AARCH64 {
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

fn machine_name(machine: u16) -> String {
    match machine {
        ELF_MACHINE_AARCH64 => "aarch64".into(),
        0x3E => "x86_64".into(),
        other => format!("e_machine {other:#x}"),
    }
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
            r.size.map_or("missing".into(), |s| format!("{:.2} MB", s as f64 / 1e6)),
            r.arch,
            r.glibc,
            if r.problems.is_empty() { "ok" } else { "FAIL" }
        );
    }
    out
}

// ---------------------------------------------------------------------------
// ELF

/// What the check needs from an ELF file.
#[derive(Debug, PartialEq)]
struct ElfFacts {
    e_type: u16,
    machine: u16,
    /// `PT_INTERP`: the dynamic loader a dynamically linked program names.
    interpreter: Option<String>,
    /// `DT_FLAGS_1` has `DF_1_PIE`.
    pie_flag: bool,
    /// Newest `GLIBC_x.y` among the version needs (`.gnu.version_r`).
    glibc: Option<(u32, u32)>,
}

impl ElfFacts {
    /// An executable program, not a shared library: `ET_EXEC`, or `ET_DYN`
    /// that names an interpreter or carries the PIE flag.
    fn is_program(&self) -> bool {
        self.e_type == ET_EXEC || (self.e_type == ET_DYN && (self.interpreter.is_some() || self.pie_flag))
    }
}

/// Parses a 64-bit little-endian ELF file (the only kind Lambda's Linux
/// runtimes run); anything else, or a truncated table, is an error.
fn parse_elf(bytes: &[u8]) -> Result<ElfFacts, String> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if bytes.get(4..6) != Some(&[2, 1]) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let e_type = u16_at(bytes, 16)?;
    let machine = u16_at(bytes, 18)?;
    let phoff = u64_at(bytes, 32)?;
    let shoff = u64_at(bytes, 40)?;
    let phentsize = u64::from(u16_at(bytes, 54)?);
    let phnum = u64::from(u16_at(bytes, 56)?);
    let shentsize = u64::from(u16_at(bytes, 58)?);
    let shnum = u64::from(u16_at(bytes, 60)?);

    let mut interpreter = None;
    let mut pie_flag = false;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (p_type, offset, size) = (u32_at(bytes, ph)?, u64_at(bytes, ph + 8)?, u64_at(bytes, ph + 32)?);
        match p_type {
            PT_INTERP => {
                let raw = slice(bytes, offset, size)?;
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                interpreter = Some(String::from_utf8_lossy(&raw[..end]).into_owned());
            }
            PT_DYNAMIC => {
                for entry in (0..size / 16).map(|k| offset + k * 16) {
                    match u64_at(bytes, entry)? {
                        DT_NULL => break,
                        DT_FLAGS_1 => pie_flag = u64_at(bytes, entry + 8)? & DF_1_PIE != 0,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    let section = |i: u64| -> Result<Section, String> {
        let sh = shoff + i * shentsize;
        Ok(Section {
            kind: u32_at(bytes, sh + 4)?,
            offset: u64_at(bytes, sh + 24)?,
            size: u64_at(bytes, sh + 32)?,
            link: u64::from(u32_at(bytes, sh + 40)?),
            info: u64::from(u32_at(bytes, sh + 44)?),
        })
    };
    let mut glibc = None;
    for i in 0..shnum {
        let verneed = section(i)?;
        if verneed.kind != SHT_GNU_VERNEED {
            continue;
        }
        let strtab = section(verneed.link)?;
        let strings = slice(bytes, strtab.offset, strtab.size)?;
        // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32.
        // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32.
        let mut need = verneed.offset;
        for _ in 0..verneed.info {
            let count = u16_at(bytes, need + 2)?;
            let mut aux = need + u64::from(u32_at(bytes, need + 8)?);
            for _ in 0..count {
                let name = c_str(strings, u64::from(u32_at(bytes, aux + 8)?))?;
                if let Some(version) = name.strip_prefix(b"GLIBC_").and_then(parse_major_minor) {
                    glibc = glibc.max(Some(version));
                }
                aux += u64::from(u32_at(bytes, aux + 12)?);
            }
            need += u64::from(u32_at(bytes, need + 12)?);
        }
    }
    Ok(ElfFacts {
        e_type,
        machine,
        interpreter,
        pie_flag,
        glibc,
    })
}

struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u64,
    info: u64,
}

fn slice(bytes: &[u8], offset: u64, len: u64) -> Result<&[u8], String> {
    let start = usize::try_from(offset).map_err(|_| "offset out of range")?;
    let len = usize::try_from(len).map_err(|_| "length out of range")?;
    start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| {
            format!(
                "truncated ELF: {len} bytes at {offset:#x} past the end ({:#x})",
                bytes.len()
            )
        })
}

fn u16_at(bytes: &[u8], at: u64) -> Result<u16, String> {
    Ok(u16::from_le_bytes(slice(bytes, at, 2)?.try_into().expect("2 bytes")))
}

fn u32_at(bytes: &[u8], at: u64) -> Result<u32, String> {
    Ok(u32::from_le_bytes(slice(bytes, at, 4)?.try_into().expect("4 bytes")))
}

fn u64_at(bytes: &[u8], at: u64) -> Result<u64, String> {
    Ok(u64::from_le_bytes(slice(bytes, at, 8)?.try_into().expect("8 bytes")))
}

/// The NUL-terminated string at `at` in a string table.
fn c_str(strings: &[u8], at: u64) -> Result<&[u8], String> {
    let rest = usize::try_from(at)
        .ok()
        .and_then(|at| strings.get(at..))
        .ok_or_else(|| format!("string offset {at:#x} outside the string table"))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or("unterminated string in the string table")?;
    Ok(&rest[..end])
}

/// `MAJOR.MINOR` or `MAJOR.MINOR.PATCH` (the patch is ignored); nothing else.
fn parse_major_minor(version: &[u8]) -> Option<(u32, u32)> {
    let text = std::str::from_utf8(version).ok()?;
    let mut parts = text.split('.');
    let number = |p: Option<&str>| {
        p.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()
    };
    let major = number(parts.next())?;
    let minor = number(parts.next())?;
    match parts.next() {
        None => Some((major, minor)),
        Some(patch) => number(Some(patch)).map(|_: u32| (major, minor)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal ELF64 LE file: header, one PT_INTERP and one PT_DYNAMIC
    /// program header, and sections [null, .dynstr, .gnu.version_r] whose
    /// version needs are `libc.so.6` {GLIBC_2.17, GLIBC_2.34, GLIBC_PRIVATE}
    /// and `libm.so.6` {GLIBC_2.29}.
    fn fixture(e_type: u16, machine: u16, interp: bool, pie_flag: bool) -> Vec<u8> {
        let mut strtab = b"\0".to_vec();
        let mut name = |s: &str| {
            let at = strtab.len() as u32;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            at
        };
        let (libc, libm) = (name("libc.so.6"), name("libm.so.6"));
        let versions = [
            name("GLIBC_2.17"),
            name("GLIBC_2.34"),
            name("GLIBC_PRIVATE"),
            name("GLIBC_2.29"),
        ];

        let mut verneed = Vec::new();
        // Verneed for libc (16 bytes), its 3 auxes (16 each), then libm and its aux.
        let need = |out: &mut Vec<u8>, cnt: u16, file: u32, next: u32| {
            out.extend_from_slice(&1u16.to_le_bytes());
            out.extend_from_slice(&cnt.to_le_bytes());
            out.extend_from_slice(&file.to_le_bytes());
            out.extend_from_slice(&16u32.to_le_bytes()); // aux right after
            out.extend_from_slice(&next.to_le_bytes());
        };
        let aux = |out: &mut Vec<u8>, name: u32, last: bool| {
            out.extend_from_slice(&[0; 8]); // hash, flags, other
            out.extend_from_slice(&name.to_le_bytes());
            out.extend_from_slice(&(if last { 0u32 } else { 16 }).to_le_bytes());
        };
        need(&mut verneed, 3, libc, 64);
        aux(&mut verneed, versions[0], false);
        aux(&mut verneed, versions[1], false);
        aux(&mut verneed, versions[2], true);
        need(&mut verneed, 1, libm, 0);
        aux(&mut verneed, versions[3], true);

        let interp_str = b"/lib/ld-linux-aarch64.so.1\0";
        let mut dynamic = Vec::new();
        for (tag, val) in [(DT_FLAGS_1, if pie_flag { DF_1_PIE | 1 } else { 1 }), (DT_NULL, 0)] {
            dynamic.extend_from_slice(&tag.to_le_bytes());
            dynamic.extend_from_slice(&val.to_le_bytes());
        }

        let phoff = 64u64;
        let data = phoff + 2 * 56;
        let interp_off = data;
        let dynamic_off = interp_off + interp_str.len() as u64;
        let strtab_off = dynamic_off + dynamic.len() as u64;
        let verneed_off = strtab_off + strtab.len() as u64;
        let shoff = verneed_off + verneed.len() as u64;

        let mut f = vec![0u8; 64];
        f[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[32..40].copy_from_slice(&phoff.to_le_bytes());
        f[40..48].copy_from_slice(&shoff.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        f[58..60].copy_from_slice(&64u16.to_le_bytes());
        f[60..62].copy_from_slice(&3u16.to_le_bytes());
        let phdr = |f: &mut Vec<u8>, kind: u32, off: u64, size: u64| {
            let mut ph = [0u8; 56];
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&ph);
        };
        let interp_kind = if interp {
            PT_INTERP
        } else {
            1 /* PT_LOAD */
        };
        phdr(&mut f, interp_kind, interp_off, interp_str.len() as u64);
        phdr(&mut f, PT_DYNAMIC, dynamic_off, dynamic.len() as u64);
        f.extend_from_slice(interp_str);
        f.extend_from_slice(&dynamic);
        f.extend_from_slice(&strtab);
        f.extend_from_slice(&verneed);
        let shdr = |f: &mut Vec<u8>, kind: u32, off: u64, size: u64, link: u32, info: u32| {
            let mut sh = [0u8; 64];
            sh[4..8].copy_from_slice(&kind.to_le_bytes());
            sh[24..32].copy_from_slice(&off.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            sh[40..44].copy_from_slice(&link.to_le_bytes());
            sh[44..48].copy_from_slice(&info.to_le_bytes());
            f.extend_from_slice(&sh);
        };
        shdr(&mut f, 0, 0, 0, 0, 0);
        shdr(&mut f, 3 /* SHT_STRTAB */, strtab_off, strtab.len() as u64, 0, 0);
        shdr(&mut f, SHT_GNU_VERNEED, verneed_off, verneed.len() as u64, 1, 2);
        f
    }

    #[test]
    fn parses_an_aarch64_pie_and_its_glibc_needs() {
        let elf = parse_elf(&fixture(ET_DYN, ELF_MACHINE_AARCH64, true, true)).unwrap();
        assert_eq!(
            elf,
            ElfFacts {
                e_type: ET_DYN,
                machine: ELF_MACHINE_AARCH64,
                interpreter: Some("/lib/ld-linux-aarch64.so.1".into()),
                pie_flag: true,
                glibc: Some((2, 34)),
            }
        );
        assert!(elf.is_program());
    }

    #[test]
    fn tells_programs_from_shared_libraries() {
        // A static PIE: no interpreter, but DF_1_PIE.
        assert!(
            parse_elf(&fixture(ET_DYN, ELF_MACHINE_AARCH64, false, true))
                .unwrap()
                .is_program()
        );
        // A shared library: neither.
        assert!(
            !parse_elf(&fixture(ET_DYN, ELF_MACHINE_AARCH64, false, false))
                .unwrap()
                .is_program()
        );
        assert!(
            parse_elf(&fixture(ET_EXEC, ELF_MACHINE_AARCH64, false, false))
                .unwrap()
                .is_program()
        );
        assert_eq!(parse_elf(&fixture(ET_DYN, 0x3E, true, true)).unwrap().machine, 0x3E);
    }

    #[test]
    fn rejects_what_is_not_a_whole_elf64() {
        assert!(parse_elf(b"#!/bin/sh\necho hi\n").is_err());
        let mut elf32 = fixture(ET_DYN, ELF_MACHINE_AARCH64, true, true);
        elf32[4] = 1;
        assert!(parse_elf(&elf32).is_err());
        let whole = fixture(ET_DYN, ELF_MACHINE_AARCH64, true, true);
        assert!(
            parse_elf(&whole[..whole.len() - 40]).is_err(),
            "truncated section table"
        );
        assert!(parse_elf(&whole[..40]).is_err(), "truncated header");
    }

    #[test]
    fn parses_glibc_versions() {
        assert_eq!(parse_major_minor(b"2.34"), Some((2, 34)));
        assert_eq!(parse_major_minor(b"2.3.4"), Some((2, 3)));
        assert_eq!(parse_major_minor(b"PRIVATE"), None);
        assert_eq!(parse_major_minor(b"2."), None);
        assert_eq!(parse_major_minor(b"2.34x"), None);
    }

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
                    "Metadata": {"BuildMethod": "rust-cargolambda", "BuildProperties": {"Binary": "switchyard-ingest"}},
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
        fs::write(&bootstrap, fixture(ET_DYN, ELF_MACHINE_AARCH64, true, true)).unwrap();
        fs::set_permissions(&bootstrap, fs::Permissions::from_mode(0o755)).unwrap();
        let ok = check_function(&dir, &spec(&["arm64"], "provided.al2023"), Some(&built));
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!((ok.arch.as_str(), ok.glibc.as_str()), ("aarch64", "2.34 (<= 2.34)"));

        // glibc 2.34 is too new for provided.al2 (2.26); x86_64 is not what we deploy.
        let old = check_function(&dir, &spec(&["x86_64"], "provided.al2"), Some(&built));
        assert_eq!(old.problems.len(), 2, "{:?}", old.problems);

        fs::write(&bootstrap, fixture(ET_DYN, 0x3E, true, true)).unwrap();
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
