//! The module-graph checker behind `tests/architecture.rs`: which top-level modules of a library
//! crate use which, read from source text. It strips comments and literals, then finds every path
//! that names a top-level module — `crate::X`, `<crate name>::X`, `super::`-paths that leave their
//! module, `use crate::{X, ..}` groups, and in `lib.rs` the paths that start with a module's name.
//! An item of `lib.rs` itself (`crate::Checked`) is a use of the crate root, `crate`. Inline
//! `#[cfg(test)]` modules are skipped: test code does not shape the layering. [`module_graph`]
//! takes a `src` directory and a crate name, so any crate's tests can include this file with
//! `#[path = ".../architecture/checker.rs"] mod checker;`.
#![allow(dead_code)] // each including test uses what it needs

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The name the crate root (`lib.rs`) has in the module graph.
const ROOT: &str = "crate";

/// Which top-level modules each top-level module (and the crate root) uses.
pub type ModuleGraph = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// The tokens of Rust source that matter for paths: identifiers, `::` and punctuation, with
/// comments, strings, chars, numbers and lifetimes left out.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(end) = raw_string_end(&c, i) {
            i = end;
        } else if ch == '"' || (ch == 'b' && next == Some('"')) {
            i += if ch == 'b' { 2 } else { 1 };
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '.') {
                i += 1;
            }
        } else if ch == ':' && next == Some(':') {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            if !ch.is_whitespace() {
                out.push(Tok::Punct(ch));
            }
            i += 1;
        }
    }
    out
}

/// Where a raw string literal starting at `i` (`r"..."`, `r#"..."#`, `br"..."`) ends, if one does.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if c.get(j) == Some(&'b') {
        j += 1;
    }
    if c.get(j) != Some(&'r') || (i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_')) {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&h| h == '#').count();
    j += hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"' && c[j + 1..].iter().take(hashes).filter(|&&h| h == '#').count() == hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// The top-level modules `lib.rs` declares (`mod x;`, `pub mod x;`).
fn declared_modules(lib: &[Tok]) -> BTreeSet<String> {
    let mut mods = BTreeSet::new();
    for w in lib.windows(3) {
        if let (Some("mod"), Some(name), Tok::Punct(';')) = (ident(w.first()), ident(w.get(1)), &w[2]) {
            mods.insert(name.to_string());
        }
    }
    mods
}

/// The module path of a file under `src` (`passes/build/mod.rs` is `[passes, build]`), or `None`
/// for a file that is not part of the library (`main.rs`, `bin/`).
fn module_path(rel: &Path, modules: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    if parts.is_empty() && stem == "lib" {
        return Some(Vec::new());
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    modules.contains(parts.first()?).then_some(parts)
}

/// The top-level module (or the root) that a path from the crate root names, reading the tokens
/// after `crate::`; a `{..}` group names each of its items.
fn targets_from_root(toks: &[Tok], at: usize, modules: &BTreeSet<String>) -> Vec<String> {
    let name = |s: &str| if modules.contains(s) { s.to_string() } else { ROOT.to_string() };
    match toks.get(at) {
        Some(Tok::Ident(s)) => vec![name(s)],
        Some(Tok::Punct('{')) => {
            let (mut depth, mut first, mut found) = (0, true, Vec::new());
            for t in &toks[at..] {
                match t {
                    Tok::Punct('{') => {
                        depth += 1;
                        first = depth == 1;
                        continue;
                    }
                    Tok::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Punct(',') if depth == 1 => {
                        first = true;
                        continue;
                    }
                    Tok::Ident(s) if first && depth == 1 => found.push(name(s)),
                    Tok::Punct('*') if first && depth == 1 => found.push(ROOT.to_string()),
                    _ => {}
                }
                first = false;
            }
            found
        }
        _ => Vec::new(),
    }
}

/// The top-level modules (or the root) that the file at module path `file` uses.
fn uses_of(toks: &[Tok], file: &[String], crate_name: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    // Inline modules: (name, brace depth inside them, is a #[cfg(test)] module).
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut cfg_test = false;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|m| m.1 == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Punct('#') if toks.get(i + 2) == Some(&Tok::Ident("cfg".into())) => {
                cfg_test = toks.get(i + 4) == Some(&Tok::Ident("test".into()));
            }
            Tok::Ident(kw) if kw == "mod" && toks.get(i + 2) == Some(&Tok::Punct('{')) => {
                let name = ident(toks.get(i + 1)).unwrap_or_default().to_string();
                inline.push((name, depth + 1, cfg_test));
            }
            _ => {}
        }
        // An attribute applies to the next item only.
        if matches!(t, Tok::Punct(';') | Tok::Punct('{') | Tok::Punct('}')) {
            cfg_test = false;
        }
        if inline.iter().any(|m| m.2) || (i > 0 && toks[i - 1] == Tok::PathSep) {
            continue;
        }
        let Tok::Ident(head) = t else { continue };
        if toks.get(i + 1) != Some(&Tok::PathSep) {
            continue;
        }
        if head == "crate" || head == crate_name {
            used.extend(targets_from_root(toks, i + 2, modules));
        } else if head == "super" {
            let mut path: Vec<String> = file.to_vec();
            path.extend(inline.iter().map(|m| m.0.clone()));
            let mut j = i;
            while ident(toks.get(j)) == Some("super") && toks.get(j + 1) == Some(&Tok::PathSep) {
                path.pop();
                j += 2;
            }
            match path.first() {
                Some(top) => {
                    used.insert(top.clone());
                }
                None => used.extend(targets_from_root(toks, j, modules)),
            }
        } else if file.is_empty()
            && modules.contains(head)
            && ident(toks.get(i.wrapping_sub(1))) != Some("mod")
        {
            used.insert(head.clone());
        }
    }
    let me = file.first().map_or(ROOT, String::as_str);
    used.remove(me);
    used
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module graph of the library crate whose root is `src/lib.rs`, and, for each file, the
/// modules it uses (for rules about single files).
pub fn module_graph(src: &Path, crate_name: &str) -> (ModuleGraph, BTreeMap<PathBuf, BTreeSet<String>>) {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let modules = declared_modules(&tokens(&lib));
    let mut graph: ModuleGraph = BTreeMap::new();
    graph.insert(ROOT.to_string(), BTreeSet::new());
    let mut per_file = BTreeMap::new();
    for m in &modules {
        graph.insert(m.clone(), BTreeSet::new());
    }
    for path in rust_files(src) {
        let rel = path.strip_prefix(src).unwrap().to_path_buf();
        let Some(file) = module_path(&rel, &modules) else { continue };
        let text = std::fs::read_to_string(&path).unwrap();
        let used = uses_of(&tokens(&text), &file, crate_name, &modules);
        let me = file.first().map_or(ROOT.to_string(), Clone::clone);
        graph.get_mut(&me).unwrap().extend(used.iter().cloned());
        per_file.insert(rel, used);
    }
    (graph, per_file)
}

/// A cycle of the graph (its modules in order, the first repeated at the end), if it has one.
pub fn find_cycle(graph: &ModuleGraph) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &ModuleGraph,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

/// Files under `src` longer than `limit` lines, with their lengths.
pub fn oversized_files(src: &Path, limit: usize) -> Vec<(PathBuf, usize)> {
    rust_files(src)
        .into_iter()
        .map(|p| {
            let lines = std::fs::read_to_string(&p).unwrap().lines().count();
            (p, lines)
        })
        .filter(|(_, lines)| *lines > limit)
        .collect()
}

/// The graph, one module a line, for failure messages.
pub fn describe(graph: &ModuleGraph) -> String {
    graph.iter().map(|(m, uses)| format!("  {m} -> {uses:?}\n")).collect()
}
