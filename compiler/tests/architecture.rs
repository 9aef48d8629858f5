//! Architecture tests: the compiler's top-level modules use each other one way only (no import
//! cycle), only the front end reads the AST, and no source file outgrows one screen of outline.
//! The checker is in `architecture/checker.rs` (it reads source text; see its header).

#[path = "architecture/checker.rs"]
mod checker;

use std::path::{Path, PathBuf};

use checker::{describe, find_cycle, module_graph, oversized_files};

fn compiler_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_compiler_modules_use_each_other_without_a_cycle() {
    let (graph, _) = module_graph(&compiler_src(), "alexc");
    assert!(
        graph.contains_key("ir") && graph.contains_key("catalog"),
        "modules found:\n{}",
        describe(&graph)
    );
    assert!(
        graph["ir"].contains("catalog"),
        "the checker sees that IR nodes hold catalog ops:\n{}",
        describe(&graph)
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("the modules form a cycle: {}\nthe module graph:\n{}", cycle.join(" -> "), describe(&graph));
    }
}

#[test]
fn only_the_build_and_validate_passes_and_the_driver_read_the_ast() {
    let (_, per_file) = module_graph(&compiler_src(), "alexc");
    let allowed = ["lib.rs", "passes/build/mod.rs", "passes/build/spec.rs", "passes/validate.rs"];
    let readers: Vec<_> = per_file
        .iter()
        .filter(|(f, uses)| uses.contains("ast") && !allowed.iter().any(|a| Path::new(a) == f.as_path()))
        .map(|(f, _)| f.display().to_string())
        .collect();
    assert!(readers.is_empty(), "these files read AST types past `build`: {readers:?}");
}

#[test]
fn no_compiler_source_file_is_over_400_lines() {
    let long = oversized_files(&compiler_src(), 400);
    assert!(long.is_empty(), "split these by concept: {long:?}");
}

#[test]
fn the_checker_finds_a_cycle_through_crate_super_and_grouped_paths() {
    let dir = std::env::temp_dir().join(format!("alexc-architecture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let write = |f: &str, text: &str| std::fs::write(dir.join(f), text).unwrap();
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub struct Root;\n");
    // a -> b through a grouped use; b -> c through `super::super`; c -> a through the crate name.
    write("a.rs", "use crate::{b::Thing, Root};\n// crate::c::Nothing is a comment\n");
    write("b/mod.rs", "mod inner;\npub struct Thing;\n");
    write("b/inner.rs", "fn f() -> super::super::c::C { let s = \"crate::a\"; todo!() }\n");
    write(
        "c.rs",
        "pub struct C;\nfn g(_: mycrate::a::A) {}\n#[cfg(test)]\nmod tests { use crate::b::Thing; }\n",
    );
    let (graph, _) = module_graph(&dir, "mycrate");
    let _ = std::fs::remove_dir_all(&dir);
    let expect = |m: &str, uses: &[&str]| {
        assert_eq!(graph[m], uses.iter().map(|s| s.to_string()).collect(), "{m}:\n{}", describe(&graph))
    };
    expect("a", &["b", "crate"]);
    expect("b", &["c"]);
    expect("c", &["a"]);
    let cycle = find_cycle(&graph).expect("a -> b -> c -> a is found");
    assert_eq!(cycle, ["a", "b", "c", "a"]);
}
