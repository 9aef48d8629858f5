//! Architecture tests for the workspace, the rules Cargo cannot enforce. (That the runtime never
//! reads the compiler's front end or passes, Cargo enforces: alexrt depends on `alexnet-ir`,
//! which holds the IR, the catalog and the plan, and not on `alexc`.)
//!
//! In each crate the top-level modules use each other one way only; in the compiler only the
//! front end reads the AST; no source file outgrows one screen of outline; the binaries stay thin
//! and clap stays in the command-line modules.

#[path = "architecture/modules.rs"]
mod modules;

use std::path::{Path, PathBuf};

use modules::{describe, find_cycle, module_graph, rust_files};

fn src(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src")
}

const CRATES: [(&str, &str); 3] = [("ir", "alexir"), ("compiler", "alexc"), ("runtime", "alexrt")];

#[test]
fn each_crates_modules_use_each_other_without_a_cycle() {
    for (dir, name) in CRATES {
        let (graph, _) = module_graph(&src(dir), name);
        assert!(graph.len() > 3, "{dir}: the checker found the modules:\n{}", describe(&graph));
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "{dir}: the modules form a cycle: {}\nthe module graph:\n{}",
                cycle.join(" -> "),
                describe(&graph)
            );
        }
    }
}

#[test]
fn the_checker_sees_the_known_uses() {
    let (ir, _) = module_graph(&src("ir"), "alexir");
    assert!(ir["ir"].contains("catalog"), "IR nodes hold catalog ops:\n{}", describe(&ir));
    assert!(ir["plan"].contains("verify"), "a plan is verified when read:\n{}", describe(&ir));
    let (rt, _) = module_graph(&src("runtime"), "alexrt");
    assert!(rt["cli"].contains("exec"), "the command line runs the executor:\n{}", describe(&rt));
}

#[test]
fn only_the_build_and_validate_passes_and_the_driver_read_the_ast() {
    let (_, per_file) = module_graph(&src("compiler"), "alexc");
    let allowed = |f: &Path| {
        f.starts_with("passes/build") || f == Path::new("lib.rs") || f == Path::new("passes/validate.rs")
    };
    let readers: Vec<_> = per_file
        .iter()
        .filter(|(f, uses)| uses.contains("ast") && !allowed(f))
        .map(|(f, _)| f.display().to_string())
        .collect();
    assert!(readers.is_empty(), "these files read AST types past `build`: {readers:?}");
}

#[test]
fn no_source_file_is_over_400_lines() {
    let mut long = Vec::new();
    for (dir, _) in CRATES {
        for path in rust_files(&src(dir)) {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            if lines > 400 {
                long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these by concept: {long:#?}");
}

#[test]
fn the_binaries_are_thin_and_clap_stays_in_the_command_line() {
    let main = std::fs::read_to_string(src("runtime").join("main.rs")).unwrap();
    assert!(main.lines().count() < 20, "runtime/src/main.rs: move the work into cli/ or the library");
    let mut clap = Vec::new();
    for (dir, _) in CRATES {
        for path in rust_files(&src(dir)) {
            let command_line = path.ends_with("main.rs") || path.starts_with(src(dir).join("cli"));
            if !command_line && std::fs::read_to_string(&path).unwrap().contains("clap") {
                clap.push(path.display().to_string());
            }
        }
    }
    assert!(clap.is_empty(), "library files use clap: {clap:?}");
}

#[test]
fn the_checker_finds_a_cycle_through_crate_super_grouped_and_macro_paths() {
    let dir = std::env::temp_dir().join(format!("alexnet-architecture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let write = |f: &str, text: &str| std::fs::write(dir.join(f), text).unwrap();
    write(
        "lib.rs",
        "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub struct Root;\npub use other::{x, z as y};\n",
    );
    // a -> b through a grouped use; b -> c through `super::super`; c -> a through the crate name;
    // d -> a inside a macro's arguments, and neither `pub(crate)` nor the root's re-export of
    // another crate's module is a use of the root.
    write("a.rs", "use crate::{b::Thing, Root};\n// crate::c::Nothing is a comment\n");
    write("b/mod.rs", "mod inner;\npub struct Thing;\n");
    write("b/inner.rs", "fn f() -> super::super::c::C { let s = \"crate::a\"; todo!() }\n");
    write(
        "c.rs",
        "pub struct C;\nfn g(_: mycrate::a::A) {}\n#[cfg(test)]\nmod tests { use crate::b::Thing; }\n",
    );
    write("d.rs", "fn h() { println!(\"{}\", crate::a::name()); }\npub(crate) fn k(_: crate::y::Y, _: crate::x::X) {}\n");
    let (graph, _) = module_graph(&dir, "mycrate");
    let _ = std::fs::remove_dir_all(&dir);
    let expect = |m: &str, uses: &[&str]| {
        assert_eq!(graph[m], uses.iter().map(|s| s.to_string()).collect(), "{m}:\n{}", describe(&graph))
    };
    expect("a", &["b", "crate"]);
    expect("b", &["c"]);
    expect("c", &["a"]);
    expect("d", &["a"]);
    let cycle = find_cycle(&graph).expect("a -> b -> c -> a is found");
    assert_eq!(cycle, ["a", "b", "c", "a"]);
}
