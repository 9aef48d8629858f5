//! Architecture tests for the runtime: its modules use each other one way only, it reads the
//! compiler's IR, catalog and plan (and the report's byte formatting) but never the AST or the
//! passes, no source file outgrows one screen of outline, and the binary stays thin. The checker
//! is the compiler's (`compiler/tests/architecture/checker.rs`).

#[path = "../../compiler/tests/architecture/checker.rs"]
mod checker;

use std::path::{Path, PathBuf};

use checker::{describe, find_cycle, module_graph, oversized_files};

fn runtime_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` with its text, outside `#[cfg(test)]` modules' files.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

#[test]
fn the_runtime_modules_use_each_other_without_a_cycle() {
    let (graph, _) = module_graph(&runtime_src(), "alexrt");
    assert!(graph.contains_key("exec") && graph.contains_key("checkpoint"), "{}", describe(&graph));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("the modules form a cycle: {}\nthe module graph:\n{}", cycle.join(" -> "), describe(&graph));
    }
}

#[test]
fn the_runtime_reads_the_compilers_ir_catalog_and_plan_never_its_ast_or_passes() {
    let allowed = ["ir", "catalog", "plan", "report", "say"];
    let mut bad = Vec::new();
    for (path, text) in sources(&runtime_src()) {
        // Tests inside a module may compile graphs through the whole compiler.
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, _) in text.match_indices("alexc::") {
            let module: String =
                text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !allowed.contains(&module.as_str()) {
                bad.push(format!("{}: alexc::{module}", path.display()));
            }
        }
    }
    assert!(bad.is_empty(), "the runtime reaches past the IR, catalog and plan: {bad:#?}");
}

#[test]
fn no_runtime_source_file_is_over_400_lines_and_the_binary_is_thin() {
    let long = oversized_files(&runtime_src(), 400);
    assert!(long.is_empty(), "split these by concept: {long:?}");
    let main = std::fs::read_to_string(runtime_src().join("main.rs")).unwrap();
    assert!(
        main.lines().count() < 150,
        "main.rs has {} lines; move the work into cli/ or the library",
        main.lines().count()
    );
}

#[test]
fn clap_stays_in_the_binary() {
    let lib: Vec<_> = sources(&runtime_src())
        .into_iter()
        .filter(|(p, t)| {
            !p.starts_with(runtime_src().join("cli")) && !p.ends_with("main.rs") && t.contains("clap")
        })
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(lib.is_empty(), "library files use clap: {lib:?}");
}
