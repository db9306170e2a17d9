//! Building the release binaries and packaging each as Lambda would
//! deploy it: zipped sizes and what the ELF says (machine, glibc needs).

use anyhow::{Context as _, Result, anyhow, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{FUNCTIONS, Function, Paths};

const ARM64_TRIPLE: &str = "aarch64-unknown-linux-gnu";

/// Writes `sys.argv[2]` into the zip `sys.argv[1]` under the name `bootstrap`.
const ZIP_SCRIPT: &str = "import zipfile,sys; \
    z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED,compresslevel=9); \
    z.write(sys.argv[2],'bootstrap'); z.close()";

// ---------------------------------------------------------------------------
// Building

/// The `cargo` that runs us (set by `cargo run`), else the one on PATH.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn package_args() -> Vec<&'static str> {
    FUNCTIONS.iter().flat_map(|f| ["-p", f.name]).collect()
}

pub(super) fn build_native(root: &Path) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--locked"])
        .args(package_args())
        .current_dir(root);
    run_inheriting(cmd, "native release build")
}

/// Runs `cmd` with the terminal's stdio; fails if it does not succeed.
fn run_inheriting(mut cmd: Command, what: &str) -> Result<()> {
    eprintln!("bench-init: {what}: {cmd:?}");
    let status = cmd.status().with_context(|| format!("{what}: cannot run {cmd:?}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow!("{what} failed ({status})"))
    }
}

/// The arm64 packages, or why there are none.
pub(super) enum Arm64 {
    Measured(Vec<Package>),
    Skipped(String),
}

impl Arm64 {
    pub(super) fn packages(&self) -> &[Package] {
        match self {
            Arm64::Measured(packages) => packages,
            Arm64::Skipped(_) => &[],
        }
    }
}

/// Builds (unless `build` is false) and packages the arm64 binaries. A
/// missing toolchain skips arm64 with a reason; a failed build is an error.
/// With `--no-build`, existing `target/lambda` artifacts are measured.
pub(super) fn arm64_packages(paths: &Paths, build: bool) -> Result<Arm64> {
    if build {
        if let Err(reason) = arm64_toolchain(paths) {
            eprintln!("bench-init: skipping arm64: {reason:#}");
            return Ok(Arm64::Skipped(format!("{reason:#}")));
        }
        build_arm64(paths)?;
    } else if let Some(f) = FUNCTIONS.iter().find(|f| !paths.arm64_binary(f).is_file()) {
        return Ok(Arm64::Skipped(format!(
            "--no-build and {} is missing (run without --no-build)",
            paths.arm64_binary(f).display()
        )));
    }
    package_all(paths, Arch::Aarch64).map(Arm64::Measured)
}

/// Checks that cargo-lambda and the Rust arm64 target are there, adding the
/// target once if it is not. `Err` says why arm64 cannot be built.
fn arm64_toolchain(paths: &Paths) -> Result<()> {
    let cargo_lambda = paths.venv_bin.join("cargo-lambda");
    if !cargo_lambda.is_file() {
        bail!("{} not found (run `cargo xtask setup`)", cargo_lambda.display());
    }
    ensure_arm64_target()
}

/// Makes sure the Rust target `aarch64-unknown-linux-gnu` is installed,
/// adding it with rustup once if it is not. `Err` says why it cannot be.
pub(crate) fn ensure_arm64_target() -> Result<()> {
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("cannot list rustup targets")?;
    if installed.lines().any(|l| l.trim() == ARM64_TRIPLE) {
        return Ok(());
    }
    eprintln!("xtask: adding Rust target {ARM64_TRIPLE}");
    capture(Command::new("rustup").args(["target", "add", ARM64_TRIPLE]))
        .map(|_| ())
        .with_context(|| format!("`rustup target add {ARM64_TRIPLE}` failed"))
}

/// `cargo lambda build --release --arm64`, cross-linking with the venv's zig.
///
/// cargo-lambda links through its embedded cargo-zigbuild, which looks for
/// zig as `$CARGO_ZIGBUILD_PYTHON_PATH -m ziglang` (default: `python3` on
/// PATH) and then as `zig` on PATH. If neither works it offers to install zig
/// with pip, which needs the network; pointing it at the venv's Python, which
/// has the `ziglang` package, keeps it offline.
fn build_arm64(paths: &Paths) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["lambda", "build", "--release", "--arm64", "--locked"])
        .args(package_args())
        .current_dir(&paths.root)
        .env("PATH", prefixed_path(&paths.venv_bin)?)
        .env("CARGO_ZIGBUILD_PYTHON_PATH", paths.venv_bin.join("python3"));
    run_inheriting(cmd, "arm64 build (cargo lambda)")
}

fn prefixed_path(dir: &Path) -> Result<std::ffi::OsString> {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest));
    std::env::join_paths(dirs).context("cannot build PATH")
}

/// Runs `cmd` to completion, returning stdout; stderr goes into the error.
pub(super) fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(anyhow!(
            "{} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---------------------------------------------------------------------------
// Packages: sizes and ELF facts

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub(super) fn label(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "arm64",
        }
    }

    fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => crate::elf::MACHINE_X86_64,
            Arch::Aarch64 => crate::elf::MACHINE_AARCH64,
        }
    }
}

/// One binary as it would be deployed.
pub(super) struct Package {
    pub(super) function: &'static str,
    pub(super) arch: Arch,
    pub(super) raw_bytes: u64,
    pub(super) zipped_bytes: u64,
    pub(super) zip: PathBuf,
    /// Newest `GLIBC_x.y` symbol version the binary needs, if any.
    pub(super) glibc: Option<(u32, u32)>,
}

pub(super) fn package_all(paths: &Paths, arch: Arch) -> Result<Vec<Package>> {
    FUNCTIONS.iter().map(|f| package(paths, f, arch)).collect()
}

fn package(paths: &Paths, function: &Function, arch: Arch) -> Result<Package> {
    let binary = match arch {
        Arch::X86_64 => paths.native_binary(function),
        Arch::Aarch64 => paths.arm64_binary(function),
    };
    let bytes = fs::read(&binary).map_err(|e| {
        anyhow!(
            "{} binary {}: {e} (build it, or run without --no-build)",
            arch.label(),
            binary.display()
        )
    })?;
    let glibc = glibc_needed(&bytes, arch).with_context(|| binary.display().to_string())?;

    let zip = paths.bench_dir.join(format!("{}-{}.zip", function.name, arch.label()));
    make_zip(&paths.python, &binary, &zip)?;
    let zipped_bytes = file_size(&zip)?;
    Ok(Package {
        function: function.name,
        arch,
        raw_bytes: bytes.len() as u64,
        zipped_bytes,
        zip,
        glibc,
    })
}

fn make_zip(python: &Path, binary: &Path, zip: &Path) -> Result<()> {
    capture(Command::new(python).args(["-c", ZIP_SCRIPT]).arg(zip).arg(binary))
        .map(|_| ())
        .with_context(|| format!("zipping {} failed", binary.display()))
}

fn file_size(path: &Path) -> Result<u64> {
    fs::metadata(path)
        .map(|m| m.len())
        .with_context(|| format!("{}", path.display()))
}

/// Checks that `bytes` is a 64-bit little-endian ELF binary for `arch`, and
/// returns the newest `GLIBC_x.y` version it needs, if any.
fn glibc_needed(bytes: &[u8], arch: Arch) -> Result<Option<(u32, u32)>> {
    let facts = crate::elf::read(bytes)?;
    if facts.machine == arch.elf_machine() {
        Ok(facts.glibc)
    } else {
        Err(anyhow!(
            "ELF e_machine is {:#x}, expected {:#x} ({})",
            facts.machine,
            arch.elf_machine(),
            arch.label()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_newest_glibc() {
        let pie = crate::elf::tests::fixture(3, crate::elf::MACHINE_AARCH64, true, true);
        assert_eq!(glibc_needed(&pie, Arch::Aarch64).unwrap(), Some((2, 34)));
    }

    #[test]
    fn checks_elf_machine() {
        let mut header = vec![0u8; 64];
        header[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        header[18..20].copy_from_slice(&0xB7u16.to_le_bytes());
        assert_eq!(glibc_needed(&header, Arch::Aarch64).unwrap(), None);
        assert!(glibc_needed(&header, Arch::X86_64).is_err());
        assert!(glibc_needed(b"#!/bin/sh", Arch::Aarch64).is_err());
    }
}
