//! `cargo xtask cycles [SRC_DIR]`: the module graph of one crate (its
//! top-level modules) and the cycles in it; `shared/core/src` unless told.
//!
//! A module is `src/NAME.rs` with everything under `src/NAME/`. It depends
//! on every top-level module its files name as `crate::NAME` (or inside a
//! `crate::{…}` group), in code, attributes and strings such as serde's
//! `with = "crate::…"`, but not in comments or docs. An item marked
//! `#[cfg(test)]` inside a file (the inline `mod tests { … }`) may reach
//! anywhere and is left out; a module's separate test files (such as
//! `delivery/tests.rs`) count, as they are the module's files. A second
//! test reads the graph without those files and checks the layers: model
//! and ports below the services, and no module's own code on the
//! in-memory ports.
//!
//! The graph must have no cycle: `cargo xtask test` checks `shared/core`
//! first, and this crate's unit test `shared_core_has_no_module_cycle` checks
//! it in every `cargo test --workspace`.

use anyhow::{Context as _, Result, anyhow, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the other top-level modules it names.
pub(crate) type Graph = BTreeMap<String, BTreeSet<String>>;

/// `cargo xtask cycles [SRC_DIR]`: prints the layers, or fails on a cycle.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let src = match args {
        [] => root.join("shared/core/src"),
        [dir] => root.join(dir),
        _ => bail!("usage: cargo xtask cycles [SRC_DIR]"),
    };
    let graph = module_graph(&src, TestFiles::Count)?;
    check(&src, &graph)?;
    for (i, layer) in layers(&graph).iter().enumerate() {
        println!("layer {i}: {}", layer.join(", "));
    }
    println!("{}: {} modules, no cycle", src.display(), graph.len());
    Ok(())
}

/// Fails with the cycles of the graph of `src`, if any.
pub(crate) fn check(src: &Path, graph: &Graph) -> Result<()> {
    let found = cycles(graph);
    if found.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = found.iter().map(|c| c.join(" <-> ")).collect();
    Err(anyhow!("module cycles in {}: {}", src.display(), text.join("; ")))
}

/// Whether a module's separate test files (`NAME/tests.rs`, and any file
/// under a `tests/` directory of the module) count as its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TestFiles {
    Count,
    Skip,
}

/// Reads the module graph of a crate's `src/` directory.
pub(crate) fn module_graph(src: &Path, test_files: TestFiles) -> Result<Graph> {
    let is_test_file = |p: &Path| {
        p.strip_prefix(src)
            .is_ok_and(|rel| rel.iter().skip(1).any(|part| part == "tests" || part == "tests.rs"))
    };
    let read_dir = |dir: &Path| -> Result<Vec<PathBuf>> {
        let mut paths = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .map(|e| {
                e.map(|e| e.path())
                    .with_context(|| format!("reading {}", dir.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        paths.sort();
        Ok(paths)
    };
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for path in read_dir(src)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let module = if path.is_dir() {
            name.to_string()
        } else if let Some(stem) = name.strip_suffix(".rs") {
            stem.to_string()
        } else {
            continue;
        };
        if module == "lib" || module == "main" {
            continue;
        }
        let entry = files.entry(module).or_default();
        if path.is_dir() {
            let mut stack = vec![path];
            while let Some(dir) = stack.pop() {
                for p in read_dir(&dir)? {
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|e| e == "rs")
                        && !(test_files == TestFiles::Skip && is_test_file(&p))
                    {
                        entry.push(p);
                    }
                }
            }
        } else {
            entry.push(path);
        }
    }
    let mut graph = Graph::new();
    for (module, paths) in &files {
        let mut deps = BTreeSet::new();
        for path in paths {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            deps.extend(crate_refs(&text));
        }
        deps.retain(|d| d != module && files.contains_key(d));
        graph.insert(module.clone(), deps);
    }
    Ok(graph)
}

/// The first path segments after `crate::` in `source`, outside comments
/// and `#[cfg(test)]` items.
pub(crate) fn crate_refs(source: &str) -> BTreeSet<String> {
    let code = strip_comments(source);
    let code = strip_test_items(&code);
    let chars: Vec<char> = code.text.chars().collect();
    let mut found = BTreeSet::new();
    let pattern: Vec<char> = "crate::".chars().collect();
    let mut i = 0;
    while i + pattern.len() <= chars.len() {
        let boundary = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if !boundary || chars[i..i + pattern.len()] != pattern[..] {
            i += 1;
            continue;
        }
        i += pattern.len();
        if chars.get(i) == Some(&'{') {
            // A group: the first segment of each of its top-level items.
            let mut depth = 0;
            let mut at_item_start = true;
            while i < chars.len() {
                match chars[i] {
                    '{' => {
                        depth += 1;
                        at_item_start = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => at_item_start = true,
                    c if c.is_whitespace() => {}
                    _ if at_item_start => {
                        let name = ident_at(&chars, i);
                        i += name.len().max(1);
                        found.insert(name);
                        at_item_start = false;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            found.insert(ident_at(&chars, i));
        }
    }
    found.remove("");
    found
}

fn ident_at(chars: &[char], start: usize) -> String {
    chars[start..]
        .iter()
        .take_while(|c| c.is_alphanumeric() || **c == '_')
        .collect()
}

/// Source text with comments blanked; `in_literal[i]` says whether char `i`
/// is inside a string or char literal (kept, but no brace there counts).
struct Code {
    text: String,
    in_literal: Vec<bool>,
}

fn strip_comments(source: &str) -> Code {
    let s: Vec<char> = source.chars().collect();
    let mut text = String::with_capacity(source.len());
    let mut in_literal = Vec::with_capacity(s.len());
    let mut push = |c: char, lit: bool, text: &mut String| {
        text.push(c);
        in_literal.push(lit);
    };
    let mut i = 0;
    while i < s.len() {
        let next = s.get(i + 1).copied();
        match s[i] {
            '/' if next == Some('/') => {
                while i < s.len() && s[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < s.len() {
                    if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                push(' ', false, &mut text);
            }
            'r' if (next == Some('"') || next == Some('#')) && starts_token(&s, i) => {
                // A raw string r"…" or r#"…"#; `r#ident` is no string.
                let mut j = i + 1;
                let mut hashes = 0;
                while s.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if s.get(j) != Some(&'"') {
                    push(s[i], false, &mut text);
                    i += 1;
                    continue;
                }
                let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                let mut end = j + 1;
                while end < s.len() && !s[end..].starts_with(&close) {
                    end += 1;
                }
                let end = (end + close.len()).min(s.len());
                for &c in &s[i..end] {
                    push(c, true, &mut text);
                }
                i = end;
            }
            '"' => {
                let mut end = i + 1;
                while end < s.len() && s[end] != '"' {
                    end += if s[end] == '\\' { 2 } else { 1 };
                }
                let end = (end + 1).min(s.len());
                for &c in &s[i..end] {
                    push(c, true, &mut text);
                }
                i = end;
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{..}'), or a lifetime.
                let end = if next == Some('\\') {
                    s.get(i + 3..)
                        .and_then(|rest| rest.iter().position(|&c| c == '\''))
                        .map(|p| i + 3 + p + 1)
                } else if s.get(i + 2) == Some(&'\'') {
                    Some(i + 3)
                } else {
                    None
                };
                let end = end.unwrap_or(i + 1).min(s.len());
                for &c in &s[i..end] {
                    push(c, end > i + 1, &mut text);
                }
                i = end;
            }
            c => {
                push(c, false, &mut text);
                i += 1;
            }
        }
    }
    Code { text, in_literal }
}

/// Whether `s[i]` starts a token: no identifier character before it, or
/// only a `b` (a raw byte string `br"…"`).
fn starts_token(s: &[char], i: usize) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    match i {
        0 => true,
        1 => !ident(s[0]) || s[0] == 'b',
        _ => !ident(s[i - 1]) || (s[i - 1] == 'b' && !ident(s[i - 2])),
    }
}

/// Blanks each item marked `#[cfg(test)]`: up to its `;`, or to the end of
/// its first `{ … }` block, or to the end of the block around it (an
/// attribute on a field or a statement).
fn strip_test_items(code: &Code) -> Code {
    let chars: Vec<char> = code.text.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut keep = vec![true; chars.len()];
    let mut i = 0;
    while i + marker.len() <= chars.len() {
        if code.in_literal[i] || chars[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + marker.len();
        let mut depth = 0;
        let mut end = chars.len();
        while j < chars.len() {
            if !code.in_literal[j] {
                match chars[j] {
                    ';' | ',' if depth == 0 => {
                        end = j + 1;
                        break;
                    }
                    '{' | '(' | '[' => depth += 1,
                    '}' | ')' | ']' if depth == 0 => {
                        end = j;
                        break;
                    }
                    '}' if depth == 1 => {
                        end = j + 1;
                        break;
                    }
                    '}' | ')' | ']' => depth -= 1,
                    _ => {}
                }
            }
            j += 1;
        }
        keep[start..end].iter_mut().for_each(|k| *k = false);
        i = end;
    }
    let mut text = String::with_capacity(code.text.len());
    let mut in_literal = Vec::with_capacity(chars.len());
    for (n, c) in chars.iter().enumerate() {
        let c = if keep[n] || *c == '\n' { *c } else { ' ' };
        text.push(c);
        in_literal.push(code.in_literal[n] && keep[n]);
    }
    Code { text, in_literal }
}

/// The strongly connected components of more than one module, each sorted.
pub(crate) fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.graph.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    if let Some(lv) = self.low.get_mut(v) {
                        *lv = (*lv).min(lw);
                    }
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    if let Some(lv) = self.low.get_mut(v) {
                        *lv = (*lv).min(iw);
                    }
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found.sort();
    t.found
}

/// The modules by layer: a module's layer is one more than the highest of
/// the modules it depends on (0: it depends on none). For a graph without
/// cycles.
pub(crate) fn layers(graph: &Graph) -> Vec<Vec<String>> {
    let mut layer: BTreeMap<&str, usize> = BTreeMap::new();
    while layer.len() < graph.len() {
        let before = layer.len();
        for (m, deps) in graph {
            if layer.contains_key(m.as_str()) {
                continue;
            }
            if let Some(l) = deps
                .iter()
                .map(|d| layer.get(d.as_str()).copied())
                .collect::<Option<Vec<_>>>()
            {
                layer.insert(m, l.into_iter().map(|l| l + 1).max().unwrap_or(0));
            }
        }
        if layer.len() == before {
            break; // a cycle: the rest has no layer
        }
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for (m, l) in layer {
        if out.len() <= l {
            out.resize(l + 1, Vec::new());
        }
        out[l].push(m.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(m, deps)| (m.to_string(), deps.iter().map(|d| d.to_string()).collect()))
            .collect()
    }

    #[test]
    fn shared_core_has_no_module_cycle() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/core/src");
        let graph = module_graph(&src, TestFiles::Count).unwrap();
        assert!(graph.len() > 20, "read {} modules only", graph.len());
        assert!(graph["ingest"].contains("ports"), "the graph reads `crate::` paths");
        if let Err(e) = check(&src, &graph) {
            panic!("{e:#}");
        }
    }

    #[test]
    fn shared_core_keeps_its_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/core/src");
        let graph = module_graph(&src, TestFiles::Skip).unwrap();
        let above_ports = ["delivery", "fanout", "ingest", "memory", "metrics", "reconcile"];
        for low in ["ports", "model"] {
            let wrong: Vec<_> = graph[low]
                .iter()
                .filter(|d| above_ports.contains(&d.as_str()))
                .collect();
            assert!(wrong.is_empty(), "{low} depends on {wrong:?}");
        }
        assert!(!graph["model"].contains("ports"), "model depends on ports");
        // The in-memory ports are for tests and benchmarks: no module's own
        // code needs them.
        let users: Vec<_> = graph
            .iter()
            .filter(|(_, deps)| deps.contains("memory"))
            .map(|(m, _)| m)
            .collect();
        assert!(users.is_empty(), "{users:?} depend on memory outside tests");
    }

    #[test]
    fn finds_every_cycle_and_no_other() {
        let g = graph(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a", "d"]),
            ("d", &[]),
            ("e", &["f"]),
            ("f", &["e"]),
        ]);
        assert_eq!(
            cycles(&g),
            vec![
                vec!["a".to_string(), "b".into(), "c".into()],
                vec!["e".to_string(), "f".into()]
            ]
        );
        assert!(cycles(&graph(&[("a", &["b"]), ("b", &[]), ("c", &["a", "b"])])).is_empty());
    }

    #[test]
    fn layers_put_each_module_above_its_dependencies() {
        let g = graph(&[
            ("ids", &[]),
            ("model", &["ids"]),
            ("ports", &["model", "ids"]),
            ("svc", &["ports"]),
        ]);
        assert_eq!(
            layers(&g),
            vec![
                vec!["ids".to_string()],
                vec!["model".into()],
                vec!["ports".into()],
                vec!["svc".into()]
            ]
        );
    }

    #[test]
    fn reads_paths_and_groups_but_not_comments_or_test_items() {
        let source = r##"
//! See [`crate::documented`].
use crate::plain::Thing;
use crate::{grouped::A, other, nested::{B, C}};
/* crate::block */
#[serde(with = "crate::in_string::serde")]
struct S;
fn f() -> &'static str { let _ = ('"', '\''); "}" }
#[cfg(test)]
mod tests {
    use crate::only_tests::X;
    fn g() { let _ = "}"; }
}
#[cfg(test)]
use crate::test_use;
pub(crate) fn after_tests() { crate::after::call(); }
"##;
        let found: Vec<String> = crate_refs(source).into_iter().collect();
        assert_eq!(found, ["after", "grouped", "in_string", "nested", "other", "plain"]);
    }

    #[test]
    fn a_cycle_through_a_modules_test_file_counts() {
        let dir = std::env::temp_dir().join(format!("xtask-cycles-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
        std::fs::write(dir.join("a.rs"), "#[cfg(test)]\nmod tests;\n").unwrap();
        std::fs::write(dir.join("a/tests.rs"), "use crate::b::B;\n").unwrap();
        std::fs::write(dir.join("b.rs"), "use crate::a::A;\n").unwrap();
        let graph = module_graph(&dir, TestFiles::Count).unwrap();
        let result = check(&dir, &graph);
        let without_tests = module_graph(&dir, TestFiles::Skip).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cycles(&graph), vec![vec!["a".to_string(), "b".into()]]);
        assert!(cycles(&without_tests).is_empty());
        assert!(result.unwrap_err().to_string().ends_with("a <-> b"));
    }
}
