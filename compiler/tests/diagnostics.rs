//! Every malformed graph file gets a located error naming what is wrong, exit status 2, and no panic.

mod common;
use common::*;

/// (file in tests/malformed, line:col, a fragment of the message or help).
const CASES: &[(&str, &str, &str)] = &[
    ("syntax-unclosed", "24:5", "Unexpected end of RON"),
    ("syntax-bad-token", "10:63", "Expected comma"),
    ("syntax-wrong-type", "10:62", "Expected integer"),
    ("unknown-op", "11:33", "unknown op `Gelu`; expected one of: Conv2d, Linear, Relu"),
    ("unknown-attribute", "10:60", "unknown attribute `kernal` for `Conv2d`"),
    ("missing-attribute", "10:64", "missing attribute `kernel` in `Conv2d`"),
    ("lrn-no-convention", "12:73", "`convention: Paper` (alpha * sum"),
    ("unknown-top-level-field", "5:11", "unknown attribute `clases` for `Graph`"),
    ("unknown-variant", "26:21", "unknown schedule `Cosine`; expected one of: Constant, Step, Plateau"),
    ("duplicate-name", "16:10", "duplicate node name `relu1` (first declared at line 11)"),
    ("unknown-input", "13:69", "input `norm2` names no node"),
    ("unknown-input", "13:69", "did you mean `norm1`?"),
    ("unknown-logits", "24:31", "input `fc5` names no node"),
    ("cycle", "14:10", "the nodes conv2 -> relu2 form a cycle"),
    ("wrong-arity", "20:35", "`Relu` takes 1 input(s), but 2 are given"),
    ("zero-stride", "13:10", "stride and kernel must be at least 1"),
    ("conv-zero-stride", "10:10", "stride is 0"),
    ("bad-groups", "10:10", "3 input channels and 16 output channels cannot be split into 2 groups"),
    ("wrong-fc-width", "19:10", "expects 9216 input features, but its input has 1568"),
    ("dropout-rate", "21:10", "dropout rate 1 is outside [0, 1)"),
    ("window-too-large", "17:10", "the 17x17 window is larger than its 15x15 input"),
    ("linear-without-flatten", "19:10", "insert a Flatten node before it"),
    ("lrn-even-size", "12:10", "LRN size 4 is not a positive odd number"),
    ("classes-mismatch", "24:31", "the logits have 10 classes but the graph declares `classes: 100`"),
    ("batch-size-zero", "27:16", "batch_size is 0"),
    ("momentum-out-of-range", "25:30", "momentum 1.5 is outside [0, 1)"),
    ("empty-node-name", "20:10", "a node has an empty name"),
    ("crop-smaller-than-input", "28:35", "the 31x31 input is larger than the 28x28 centre crop"),
    ("reserved-name", "20:10", "`loss` is a name the compiler gives its own node"),
    ("negative-lr-mult", "15:41", "lr_mult -1 is negative"),
    // Several semantic errors in one file are all reported, together.
    ("several-errors", "16:10", "duplicate node name `relu1`"),
    ("several-errors", "13:69", "input `norm2` names no node"),
    ("several-errors", "17:69", "input `relu2` names no node"),
];

fn check(output: &std::process::Output, what: &str) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{what}: expected exit status 2, stderr:\n{err}");
    assert!(!err.contains("panicked"), "{what}: panicked:\n{err}");
    assert!(!err.is_empty(), "{what}: no message");
    err
}

#[test]
fn malformed_graph_files_get_located_errors() {
    for (name, loc, fragment) in CASES {
        let path = format!("tests/malformed/{name}.ron");
        let output = alexc(&["compile", &path, "-o", "/dev/null"]);
        let err = check(&output, name);
        let located = format!("{path}:{loc}: error");
        assert!(err.contains(&located), "{name}: expected `{located}` in:\n{err}");
        assert!(err.contains(fragment), "{name}: expected `{fragment}` in:\n{err}");
        assert!(err.contains("help: "), "{name}: every error says how to fix it:\n{err}");
    }
}

#[test]
fn every_fixture_is_checked() {
    let dir = root().join("tests/malformed");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned();
        assert!(CASES.iter().any(|(n, _, _)| *n == name), "tests/malformed/{name}.ron has no expectation");
    }
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
