//! Every malformed graph file gets a located error naming what is wrong, exit status 2, and no panic.
//! Each file in tests/malformed says which errors it expects, in `// error LINE:COL: FRAGMENT`
//! comments at its end.

mod common;
use common::*;

/// One expected error: its `line:col` and a fragment of its message or help.
struct Expected {
    loc: String,
    fragment: String,
}

/// The expectations a malformed file carries in comments of the form
/// `// error LINE:COL: FRAGMENT` (one per expected error; a file may hold several), or
/// `// error file: FRAGMENT` for an error about the whole file or step, which has no line. They
/// sit at the end of the file, where they shift no located line.
fn expectations(text: &str) -> Vec<Expected> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("// error "))
        .filter_map(|rest| rest.split_once(": "))
        .map(|(loc, fragment)| Expected { loc: loc.trim().to_string(), fragment: fragment.to_string() })
        .collect()
}

fn malformed_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("tests/malformed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn check(output: &std::process::Output, what: &str) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{what}: expected exit status 2, stderr:\n{err}");
    assert!(!err.contains("panicked"), "{what}: panicked:\n{err}");
    assert!(!err.is_empty(), "{what}: no message");
    err
}

#[test]
fn malformed_graph_files_get_the_located_errors_they_expect() {
    let files = malformed_files();
    assert!(files.len() >= 30, "{files:?}");
    for name in files {
        let path = format!("tests/malformed/{name}");
        let expected = expectations(&std::fs::read_to_string(root().join(&path)).unwrap());
        assert!(!expected.is_empty(), "{path} carries no `// error LINE:COL: FRAGMENT` expectation");
        let output = alexc(&["compile", &path, "-o", "/dev/null"]);
        let err = check(&output, &name);
        for Expected { loc, fragment } in expected {
            let located =
                if loc == "file" { format!("{path}: error") } else { format!("{path}:{loc}: error") };
            assert!(err.contains(&located), "{name}: expected `{located}` in:\n{err}");
            assert!(err.contains(&fragment), "{name}: expected `{fragment}` in:\n{err}");
        }
        assert!(err.contains("help: "), "{name}: every error says how to fix it:\n{err}");
    }
}

#[test]
fn expectations_are_read_from_comments() {
    let text = "Graph(\n)\n// error 13:69: input `norm2` names no node\n// error 2:1: did you mean: this\n";
    let e = expectations(text);
    assert_eq!(e.len(), 2);
    assert_eq!((e[0].loc.as_str(), e[0].fragment.as_str()), ("13:69", "input `norm2` names no node"));
    assert_eq!((e[1].loc.as_str(), e[1].fragment.as_str()), ("2:1", "did you mean: this"));
}

#[test]
fn several_errors_are_counted() {
    let err = check(&alexc(&["compile", "tests/malformed/several-errors.ron"]), "several-errors");
    assert!(err.trim_end().ends_with("3 errors"), "{err}");
    // Errors only: no warnings about nodes cut off by the errors.
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn empty_and_blank_files() {
    let dir = scratch("empty");
    for (name, text) in [("empty.ron", ""), ("blank.ron", "  \n\n   \n")] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = check(&alexc(&["compile", path.to_str().unwrap()]), name);
        assert!(err.contains(":1:1: error: the graph file is empty"), "{err}");
    }
}

#[test]
fn missing_file() {
    let err = check(&alexc(&["compile", "graphs/no-such-graph.ron"]), "missing");
    assert!(err.contains("graphs/no-such-graph.ron: error: cannot read the graph file"), "{err}");
    assert!(err.contains("help: check the path"), "{err}");
}

#[test]
fn directory_instead_of_file() {
    let err = check(&alexc(&["compile", "graphs"]), "directory");
    assert!(err.contains("graphs: error: is a directory, not a graph file"), "{err}");
}

#[test]
fn non_utf8_file() {
    let dir = scratch("utf8");
    let path = dir.join("latin1.ron");
    let mut bytes = std::fs::read(root().join("graphs/tiny.ron")).unwrap();
    let at = bytes.windows(6).position(|w| w == b"Graph(").unwrap();
    bytes.splice(at..at, [b'/', b'/', b' ', 0xE9, b'\n']);
    std::fs::write(&path, bytes).unwrap();
    let err = check(&alexc(&["compile", path.to_str().unwrap()]), "non-utf8");
    assert!(err.contains("error: the file is not valid UTF-8 text"), "{err}");
    assert!(err.contains(":4:4: error"), "the place of the bad byte: {err}");
}

#[test]
fn bad_flags_exit_2() {
    for args in [
        vec!["compile", "graphs/tiny.ron", "--batch-size", "0"],
        vec!["compile", "graphs/tiny.ron", "--batch-size", "many"],
        vec!["compile", "graphs/tiny.ron", "--memory-limit", "24 parsecs"],
        vec!["compile", "graphs/tiny.ron", "--dump-after", "lex"],
        vec!["compile", "graphs/tiny.ron", "--batch-size", "max"],
        vec!["compile", "graphs/tiny.ron", "--mode", "evaluate"],
    ] {
        let output = alexc(&args);
        check(&output, &args.join(" "));
    }
}
