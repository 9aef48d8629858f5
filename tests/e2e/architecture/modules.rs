//! Which top-level modules of a library crate use which, read from its sources with `syn`: every
//! path that names a top-level module — `crate::X` and `<crate name>::X` (in code, in `use` trees
//! with their groups, and in macro arguments), `super::` paths that leave their module, and in
//! `lib.rs` the paths that start with a module's name. An item of `lib.rs` itself
//! (`crate::Checked`) is a use of the crate root, `crate`. `#[cfg(test)]` items are skipped: test
//! code does not shape the layering.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// The name the crate root (`lib.rs`) has in the module graph.
pub const ROOT: &str = "crate";

/// Which top-level modules each top-level module (and the crate root) uses.
pub type ModuleGraph = BTreeMap<String, BTreeSet<String>>;

/// The module graph of the library crate whose root is `src/lib.rs`, and, for each file, the
/// modules it uses (for rules about single files).
pub fn module_graph(src: &Path, crate_name: &str) -> (ModuleGraph, BTreeMap<PathBuf, BTreeSet<String>>) {
    let lib = parse(&src.join("lib.rs"));
    let modules: BTreeSet<String> = lib
        .items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Mod(m) if m.content.is_none() => Some(m.ident.to_string()),
            _ => None,
        })
        .collect();
    // Names the root re-exports from other crates (`pub use alexir::{diag, ir}`): a path through
    // one of them uses that crate, not this crate's root.
    let mut reexported = BTreeSet::new();
    for item in &lib.items {
        if let syn::Item::Use(u) = item {
            if let syn::UseTree::Path(p) = &u.tree {
                let head = p.ident.to_string();
                if !["crate", "self", "super"].contains(&head.as_str()) && !modules.contains(&head) {
                    leaf_names(&p.tree, &mut reexported);
                }
            }
        }
    }
    let mut graph: ModuleGraph = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    graph.insert(ROOT.to_string(), BTreeSet::new());
    let mut per_file = BTreeMap::new();
    for path in rust_files(src) {
        let rel = path.strip_prefix(src).unwrap().to_path_buf();
        let Some(file) = module_path(&rel, &modules) else { continue };
        let mut finder = Uses {
            crate_name,
            modules: &modules,
            reexported: &reexported,
            file: &file,
            inline: Vec::new(),
            used: BTreeSet::new(),
        };
        finder.visit_file(&parse(&path));
        let me = file.first().map_or(ROOT.to_string(), Clone::clone);
        finder.used.remove(&me);
        graph.get_mut(&me).unwrap().extend(finder.used.iter().cloned());
        per_file.insert(rel, finder.used);
    }
    (graph, per_file)
}

/// A cycle of the graph (its modules in order, the first repeated at the end), if it has one.
pub fn find_cycle(graph: &ModuleGraph) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &ModuleGraph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

/// The graph, one module a line, for failure messages.
pub fn describe(graph: &ModuleGraph) -> String {
    graph
        .iter()
        .map(|(m, uses)| format!("  {m} -> {}\n", uses.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect()
}

/// Every `.rs` file under `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
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

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The module path of a file under `src` (`passes/build/mod.rs` is `[passes, build]`), or `None`
/// for a file that is not part of the library (`main.rs`, `bin/`).
fn module_path(rel: &Path, modules: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let stem = parts.pop()?.strip_suffix(".rs")?.to_string();
    if parts.is_empty() && stem == "lib" {
        return Some(Vec::new());
    }
    if stem != "mod" {
        parts.push(stem);
    }
    modules.contains(parts.first()?).then_some(parts)
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| l.tokens.to_string() == "test")
    })
}

/// The visitor: the top-level modules one file's paths name.
struct Uses<'a> {
    crate_name: &'a str,
    modules: &'a BTreeSet<String>,
    /// The root's re-exports of other crates' items.
    reexported: &'a BTreeSet<String>,
    /// The file's module path.
    file: &'a [String],
    /// The inline modules the visitor is inside.
    inline: Vec<String>,
    used: BTreeSet<String>,
}

impl Uses<'_> {
    /// The module a path's segments (`["crate", "ir", "Graph"]`) name, if it leaves this one.
    fn path(&mut self, segments: &[String]) {
        // One segment names no module: `pub(crate)`, `pub(super)`, a local name.
        let [head, _, ..] = segments else { return };
        if head == "crate" || head == self.crate_name {
            self.use_root(segments.get(1));
        } else if head == "super" {
            let mut at: Vec<String> = self.file.to_vec();
            at.extend(self.inline.iter().cloned());
            let supers = segments.iter().take_while(|s| *s == "super").count();
            at.truncate(at.len().saturating_sub(supers));
            match at.first() {
                Some(top) => {
                    self.used.insert(top.clone());
                }
                None => self.use_root(segments.get(supers)),
            }
        } else if self.file.is_empty()
            && self.inline.is_empty()
            && segments.len() > 1
            && self.modules.contains(head)
        {
            self.used.insert(head.clone());
        }
    }

    fn use_root(&mut self, next: Option<&String>) {
        if next.is_some_and(|n| self.reexported.contains(n)) {
            return;
        }
        let name = next.filter(|n| self.modules.contains(*n)).map_or(ROOT.to_string(), Clone::clone);
        self.used.insert(name);
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.leaf(prefix, n.ident.to_string()),
            syn::UseTree::Rename(r) => self.leaf(prefix, r.ident.to_string()),
            syn::UseTree::Glob(_) => self.leaf(prefix, "*".to_string()),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }

    fn leaf(&mut self, prefix: &[String], last: String) {
        let mut segments = prefix.to_vec();
        segments.push(last);
        // `use crate::x;` names module x itself: a path of two segments still leaves this one.
        self.path(&segments);
    }

    /// `crate :: x` and `super :: x` sequences in a macro's tokens.
    fn tokens(&mut self, tokens: TokenStream) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            if let TokenTree::Group(g) = &tts[i] {
                self.tokens(g.stream());
            }
            let mut segments = Vec::new();
            let mut j = i;
            while let TokenTree::Ident(id) = &tts[j] {
                segments.push(id.to_string());
                let sep = matches!((tts.get(j + 1), tts.get(j + 2)), (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':');
                if !sep || j + 3 >= tts.len() {
                    break;
                }
                j += 3;
            }
            if segments.len() > 1
                && (segments[0] == "crate" || segments[0] == "super" || segments[0] == self.crate_name)
            {
                self.path(&segments);
            }
            i = j.max(i) + 1;
        }
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.inline.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.inline.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.path(&segments);
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The names a use tree brings in (`{a, b as c, d::e}`: a, c, e).
fn leaf_names(tree: &syn::UseTree, out: &mut BTreeSet<String>) {
    match tree {
        syn::UseTree::Path(p) => leaf_names(&p.tree, out),
        syn::UseTree::Name(n) => {
            out.insert(n.ident.to_string());
        }
        syn::UseTree::Rename(r) => {
            out.insert(r.rename.to_string());
        }
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| leaf_names(t, out)),
        syn::UseTree::Glob(_) => {}
    }
}
