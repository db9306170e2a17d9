//! `check-links`: every relative link and anchor in the Markdown docs
//! (`*.md` at the root and everything under `docs/`) resolves, and none
//! leaves the repository.
//!
//! A link is `[text](target)` or a reference definition `[label]: target`,
//! outside fenced code blocks and inline code. Links with a scheme
//! (`https:`, `mailto:`) are not checked. A target's path is resolved
//! against the file's folder; an `#anchor` must name a heading of the
//! target Markdown file, slugged as GitHub does. `cargo xtask test` runs it
//! first, and a unit test runs it over the repository.

use anyhow::{Result, anyhow, bail};
use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The Markdown files checked: `*.md` at the root and under `docs/`.
pub(crate) fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() && p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    walk(&root.join("docs"), &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

/// Every broken link of the Markdown files under `root`, one line each
/// (`file:line: target: why`); empty when all resolve.
pub(crate) fn check(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for file in files(root) {
        let Ok(text) = fs::read_to_string(&file) else {
            problems.push(format!("{}: unreadable", rel(root, &file)));
            continue;
        };
        for (line, target) in links(&text) {
            if let Err(why) = resolve(root, &file, &text, &target) {
                problems.push(format!("{}:{line}: {target}: {why}", rel(root, &file)));
            }
        }
    }
    problems
}

/// `cargo xtask check-links`.
pub(crate) fn run(root: &Path) -> Result<()> {
    let problems = check(root);
    if problems.is_empty() {
        eprintln!("links: every relative link in {} files resolves", files(root).len());
        Ok(())
    } else {
        Err(anyhow!("broken links:\n  {}", problems.join("\n  ")))
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

fn resolve(root: &Path, file: &Path, text: &str, target: &str) -> Result<()> {
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    if path.starts_with('/') {
        bail!("absolute path; link relative to the file");
    }
    let (dest, dest_text) = if path.is_empty() {
        (file.to_path_buf(), text.to_string())
    } else {
        let dir = file.parent().unwrap_or(root);
        let dest = normalise(&dir.join(path));
        if !dest.starts_with(normalise(root)) {
            bail!("outside the repository");
        }
        if !dest.exists() {
            bail!("no such file");
        }
        let dest_text = if anchor.is_some() {
            fs::read_to_string(&dest).unwrap_or_default()
        } else {
            String::new()
        };
        (dest, dest_text)
    };
    if let Some(anchor) = anchor {
        if dest.extension().is_some_and(|x| x == "md") {
            if !anchors(&dest_text).contains(anchor) {
                bail!("no heading with anchor #{anchor}");
            }
        } else if !anchor.starts_with('L') {
            bail!("anchor into a file that is not Markdown");
        }
    }
    Ok(())
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The relative link targets of a Markdown text with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
            continue;
        }
        let line = strip_code(raw);
        // Reference definitions: `[label]: target`.
        if let Some(rest) = line.trim_start().strip_prefix('[')
            && let Some((label, after)) = rest.split_once("]:")
            && !label.contains(']')
        {
            push(&mut out, i + 1, after.trim());
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let mut depth = 0usize;
            let mut end = after.len();
            for (j, ch) in after.char_indices() {
                match ch {
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        end = j;
                        break;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            push(&mut out, i + 1, &after[..end]);
            rest = &after[end.min(after.len())..];
        }
    }
    out
}

fn push(out: &mut Vec<(usize, String)>, line: usize, raw: &str) {
    // `<target>` and `target "title"`.
    let t = raw.trim().trim_start_matches('<');
    let t = t.split_whitespace().next().unwrap_or("").trim_end_matches('>');
    let has_scheme = t
        .split_once(':')
        .is_some_and(|(s, _)| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)));
    if !t.is_empty() && !has_scheme {
        out.push((line, t.to_string()));
    }
}

/// The line without its inline code spans.
fn strip_code(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let fence = &rest[start..start + ticks];
        let after = &rest[start + ticks..];
        match after.find(fence) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The anchors GitHub gives the headings of a Markdown text.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !t.starts_with('#') {
            continue;
        }
        let heading = t.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading.trim());
        let mut anchor = base.clone();
        let mut n = 1;
        while seen.contains(&anchor) {
            anchor = format!("{base}-{n}");
            n += 1;
        }
        seen.insert(anchor);
    }
    seen
}

/// GitHub's heading slug: lowercase; letters, digits, `-` and `_` kept;
/// spaces become `-`; everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xtask-links-{}-{}",
            std::process::id(),
            files.iter().map(|(n, _)| n.len()).sum::<usize>() + files.len() * 1000
        ));
        let _ = fs::remove_dir_all(&dir);
        for (name, text) in files {
            let p = dir.join(name);
            fs::create_dir_all(p.parent().expect("a parent")).expect("create the folder");
            fs::write(p, text).expect("write the file");
        }
        dir
    }

    #[test]
    fn every_relative_link_of_the_repository_resolves() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root");
        assert!(files(root).iter().any(|f| f.ends_with("README.md")));
        let problems = check(root);
        assert!(problems.is_empty(), "broken links:\n  {}", problems.join("\n  "));
    }

    #[test]
    fn slugs_are_githubs() {
        assert_eq!(slug("Three doors, one envelope"), "three-doors-one-envelope");
        assert_eq!(slug("`cargo xtask up`: the stack"), "cargo-xtask-up-the-stack");
        assert_eq!(slug("What a delivery costs on AWS"), "what-a-delivery-costs-on-aws");
        let a = anchors("# A\n## Notes\n```\n# not a heading\n```\n## Notes\n");
        assert!(a.contains("notes") && a.contains("notes-1") && !a.contains("not-a-heading"));
    }

    #[test]
    fn broken_links_and_anchors_are_reported_and_good_ones_are_not() {
        let root = tree(&[
            (
                "README.md",
                "# Top\n[ok](docs/a.md) [ok](docs/a.md#part-one) [ok](#top) [web](https://example.com)\n\
                 [gone](docs/missing.md) [bad anchor](docs/a.md#nope) [out](../elsewhere.md)\n\
                 `[code](not/checked.md)`\n```\n[fenced](not/checked.md)\n```\n[ref]: docs/nothing.md\n",
            ),
            ("docs/a.md", "# A\n## Part one\n[back](../README.md#top) [self](#a)\n"),
        ]);
        let problems = check(&root);
        let _ = fs::remove_dir_all(&root);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].contains("docs/missing.md: no such file"), "{problems:#?}");
        assert!(problems[1].contains("#nope"), "{problems:#?}");
        assert!(problems[2].contains("outside the repository"), "{problems:#?}");
        assert!(problems[3].contains("docs/nothing.md"), "{problems:#?}");
    }
}
