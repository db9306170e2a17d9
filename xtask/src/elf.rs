//! What the xtask commands need to know about a Lambda binary, read from its
//! ELF headers with the `object` crate: type, machine, interpreter, the PIE
//! flag and the newest glibc version it needs.

use anyhow::{Context as _, Result, bail};
use object::LittleEndian;
use object::elf::{self, FileHeader64};
use object::read::elf::{Dyn as _, FileHeader as _, ProgramHeader as _};

/// `e_machine` of aarch64 (arm64) binaries.
pub(crate) const MACHINE_AARCH64: u16 = elf::EM_AARCH64.0;
/// `e_machine` of x86_64 binaries.
pub(crate) const MACHINE_X86_64: u16 = elf::EM_X86_64.0;

/// What the checks need from an ELF file.
#[derive(Debug, PartialEq)]
pub(crate) struct ElfFacts {
    pub(crate) e_type: u16,
    pub(crate) machine: u16,
    /// `PT_INTERP`: the dynamic loader a dynamically linked program names.
    pub(crate) interpreter: Option<String>,
    /// `DT_FLAGS_1` has `DF_1_PIE`.
    pub(crate) pie_flag: bool,
    /// Newest `GLIBC_x.y` among the version needs (`.gnu.version_r`).
    pub(crate) glibc: Option<(u32, u32)>,
}

impl ElfFacts {
    /// An executable program, not a shared library: `ET_EXEC`, or `ET_DYN`
    /// that names an interpreter or carries the PIE flag.
    pub(crate) fn is_program(&self) -> bool {
        self.e_type == elf::ET_EXEC.0 || (self.e_type == elf::ET_DYN.0 && (self.interpreter.is_some() || self.pie_flag))
    }
}

/// A readable name for an `e_machine` value.
pub(crate) fn machine_name(machine: u16) -> String {
    match machine {
        MACHINE_AARCH64 => "aarch64".into(),
        MACHINE_X86_64 => "x86_64".into(),
        other => format!("e_machine {other:#x}"),
    }
}

/// Reads a 64-bit little-endian ELF file (the only kind Lambda's Linux
/// runtimes run); anything else, or a truncated table, is an error.
pub(crate) fn read(bytes: &[u8]) -> Result<ElfFacts> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        bail!("not an ELF file");
    }
    if bytes.get(4..6) != Some(&[2, 1]) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let header = FileHeader64::<LittleEndian>::parse(bytes).context("reading the ELF header")?;
    let endian = LittleEndian;

    let mut interpreter = None;
    let mut pie_flag = false;
    let segments = header
        .program_headers(endian, bytes)
        .context("reading the ELF program headers")?;
    for segment in segments {
        if let Some(raw) = segment.interpreter(endian, bytes).context("reading PT_INTERP")? {
            interpreter = Some(String::from_utf8_lossy(raw).into_owned());
        }
        if let Some(entries) = segment.dynamic(endian, bytes).context("reading PT_DYNAMIC")? {
            for entry in entries {
                let tag = entry.d_tag(endian);
                if tag == elf::DT_NULL {
                    break;
                }
                if tag == elf::DT_FLAGS_1 {
                    pie_flag = entry.d_val(endian) & elf::DF_1_PIE.0 != 0;
                }
            }
        }
    }

    let sections = header
        .sections(endian, bytes)
        .context("reading the ELF section headers")?;
    let mut glibc = None;
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, bytes).context("reading .gnu.version_r")? {
        let strings = sections
            .strings(endian, bytes, link)
            .context("reading the version needs' string table")?;
        while let Some((_, mut auxes)) = needs.next().context("reading a version need")? {
            while let Some(aux) = auxes.next().context("reading a version need's entry")? {
                let name = aux.name(endian, strings).context("reading a version name")?;
                if let Some(version) = name.strip_prefix(b"GLIBC_").and_then(parse_major_minor) {
                    glibc = glibc.max(Some(version));
                }
            }
        }
    }
    Ok(ElfFacts {
        e_type: header.e_type(endian).0,
        machine: header.e_machine(endian).0,
        interpreter,
        pie_flag,
        glibc,
    })
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
pub(crate) mod tests {
    use super::*;

    const ET_EXEC: u16 = elf::ET_EXEC.0;
    const ET_DYN: u16 = elf::ET_DYN.0;

    /// A minimal ELF64 LE file: header, one PT_INTERP and one PT_DYNAMIC
    /// program header, and sections [null, .dynstr, .gnu.version_r] whose
    /// version needs are `libc.so.6` {GLIBC_2.17, GLIBC_2.34, GLIBC_PRIVATE}
    /// and `libm.so.6` {GLIBC_2.29}.
    ///
    /// `object` reads section names, so `e_shstrndx` points at `.dynstr`
    /// (every name is its empty string at offset 0).
    pub(crate) fn fixture(e_type: u16, machine: u16, interp: bool, pie_flag: bool) -> Vec<u8> {
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
        let flags_1 = if pie_flag { elf::DF_1_PIE.0 | 1 } else { 1 };
        for (tag, val) in [(elf::DT_FLAGS_1.0 as u64, flags_1), (0, 0)] {
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
        f[62..64].copy_from_slice(&1u16.to_le_bytes()); // e_shstrndx: .dynstr
        let phdr = |f: &mut Vec<u8>, kind: u32, off: u64, size: u64| {
            let mut ph = [0u8; 56];
            ph[..4].copy_from_slice(&kind.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[32..40].copy_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&ph);
        };
        let interp_kind = if interp { elf::PT_INTERP.0 } else { elf::PT_LOAD.0 };
        phdr(&mut f, interp_kind, interp_off, interp_str.len() as u64);
        phdr(&mut f, elf::PT_DYNAMIC.0, dynamic_off, dynamic.len() as u64);
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
        shdr(&mut f, elf::SHT_STRTAB.0, strtab_off, strtab.len() as u64, 0, 0);
        shdr(&mut f, elf::SHT_GNU_VERNEED.0, verneed_off, verneed.len() as u64, 1, 2);
        f
    }

    #[test]
    fn parses_an_aarch64_pie_and_its_glibc_needs() {
        let elf = read(&fixture(ET_DYN, MACHINE_AARCH64, true, true)).unwrap();
        assert_eq!(
            elf,
            ElfFacts {
                e_type: ET_DYN,
                machine: MACHINE_AARCH64,
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
            read(&fixture(ET_DYN, MACHINE_AARCH64, false, true))
                .unwrap()
                .is_program()
        );
        // A shared library: neither.
        assert!(
            !read(&fixture(ET_DYN, MACHINE_AARCH64, false, false))
                .unwrap()
                .is_program()
        );
        assert!(
            read(&fixture(ET_EXEC, MACHINE_AARCH64, false, false))
                .unwrap()
                .is_program()
        );
        assert_eq!(
            read(&fixture(ET_DYN, MACHINE_X86_64, true, true)).unwrap().machine,
            MACHINE_X86_64
        );
    }

    #[test]
    fn rejects_what_is_not_a_whole_elf64() {
        assert!(read(b"#!/bin/sh\necho hi\n").is_err());
        let mut elf32 = fixture(ET_DYN, MACHINE_AARCH64, true, true);
        elf32[4] = 1;
        assert!(read(&elf32).is_err());
        let whole = fixture(ET_DYN, MACHINE_AARCH64, true, true);
        assert!(read(&whole[..whole.len() - 40]).is_err(), "truncated section table");
        assert!(read(&whole[..40]).is_err(), "truncated header");
    }

    /// A header alone (no program or section headers) is enough to tell the
    /// machine; `object` also wants `EI_VERSION` set, as every real ELF has.
    #[test]
    fn reads_the_machine_from_a_bare_header() {
        let mut header = vec![0u8; 64];
        header[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        header[18..20].copy_from_slice(&MACHINE_AARCH64.to_le_bytes());
        let facts = read(&header).unwrap();
        assert_eq!((facts.machine, facts.glibc), (MACHINE_AARCH64, None));
        assert_eq!(machine_name(facts.machine), "aarch64");
    }

    /// The test binary itself: a real program linked against glibc.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn reads_a_real_binary() {
        let exe = std::env::current_exe().unwrap();
        let facts = read(&std::fs::read(exe).unwrap()).unwrap();
        let host = if cfg!(target_arch = "aarch64") {
            MACHINE_AARCH64
        } else {
            MACHINE_X86_64
        };
        assert_eq!(facts.machine, host);
        assert!(facts.is_program(), "{facts:?}");
        assert!(facts.glibc.is_some_and(|v| v >= (2, 17)), "{facts:?}");
    }

    #[test]
    fn parses_glibc_versions() {
        assert_eq!(parse_major_minor(b"2.34"), Some((2, 34)));
        assert_eq!(parse_major_minor(b"2.3.4"), Some((2, 3)));
        assert_eq!(parse_major_minor(b"PRIVATE"), None);
        assert_eq!(parse_major_minor(b"2."), None);
        assert_eq!(parse_major_minor(b"2.34x"), None);
    }
}
