//! Per-pass file tests, Cranelift-filetest style: each `compiler/tests/passes/*.ron` is a small
//! hand-written graph, a header that says which pass to dump after and how to compile, and the
//! expected IR text after that pass in a trailing comment. The harness compiles the graph, prints
//! the IR after the named pass (with the memory table after `memory`) and the diagnostics, and
//! compares that with the expectation.
//!
//! ```text
//! // pass: fuse                       build | validate | infer-shapes | autodiff | verify |
//! //                                  split-groups | all-reduce | conv-algo | fuse | schedule | memory
//! // mode: infer                      train (default) or infer
//! // batch: 2                         batch size (default: the graph file's)
//! // options: split-grouped-conv      device lowerings (optional; also conv-algo=NAME, devices=2,
//! //                                  replicas=N and bucket-bytes=N for the all-reduce pass)
//! // What the case shows, in words.
//! Graph( ... )
//! // expected:
//! // graph small // after fuse
//! //   ; sources
//! // ...
//! ```
//!
//! `split-groups` is the `--split-grouped-conv` lowering on its own: the graph after `verify`
//! with [`alexc::passes::split_grouped_convs`] applied, as `lower_with` applies it before fusing.
//!
//! Run with `BLESS=1` to rewrite every file's expectation with what the compiler prints now, then
//! read the diff: an expectation is a spec, not a recording.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use alexc::ir::{print_graph, Graph, Mode};
use alexc::passes::{DataParallel, MemoryPlan, PassName};
use alexc::report::memory_table;
use alexc::Lowering;

/// The line that separates a case's input from its expected output.
const EXPECTED_MARKER: &str = "// expected:";

/// The passes a case may name: every pass `--dump-after` knows, and the split lowering.
const SPLIT_GROUPS: &str = "split-groups";

/// One case: what to compile and how, read from the file's header.
struct Case {
    path: PathBuf,
    text: String,
    pass: String,
    mode: Mode,
    batch: Option<usize>,
    lowering: Lowering,
}

fn case_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/passes")
}

fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(case_dir())
        .expect("compiler/tests/passes exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    files
}

fn read_case(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let (mut pass, mut mode, mut batch, mut lowering) = (None, Mode::Train, None, Lowering::default());
    for line in text.lines().take_while(|l| l.starts_with("//")) {
        let Some((key, value)) = line.trim_start_matches('/').trim().split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "pass" => pass = Some(value.to_string()),
            "mode" => {
                mode = match value {
                    "train" => Mode::Train,
                    "infer" => Mode::Infer,
                    _ => return Err(format!("mode `{value}`: write train or infer")),
                }
            }
            "batch" => batch = Some(value.parse().map_err(|_| format!("batch `{value}` is not a number"))?),
            "options" => {
                for option in value.split_whitespace() {
                    match option {
                        "split-grouped-conv" => lowering.split_grouped_conv = true,
                        "devices=2" => lowering.devices = 2,
                        o if o.starts_with("replicas=") => {
                            let n = o["replicas=".len()..].parse().map_err(|_| format!("`{o}`: a number"))?;
                            let dp = lowering.data_parallel.get_or_insert(DataParallel::new(n));
                            dp.replicas = n;
                        }
                        o if o.starts_with("bucket-bytes=") => {
                            let b =
                                o["bucket-bytes=".len()..].parse().map_err(|_| format!("`{o}`: a number"))?;
                            lowering.data_parallel.get_or_insert(DataParallel::new(1)).bucket_bytes = b;
                        }
                        o if o.starts_with("conv-algo=") => {
                            let name = &o["conv-algo=".len()..];
                            let algo = alexc::catalog::ConvAlgo::from_name(name)
                                .ok_or_else(|| format!("unknown convolution algorithm `{name}`"))?;
                            lowering.conv_algo = alexc::passes::ConvAlgoChoice::Force(algo);
                        }
                        _ => return Err(format!("unknown option `{option}`")),
                    }
                }
            }
            _ => {}
        }
    }
    let pass = pass.ok_or("the header names no pass (`// pass: fuse`)")?;
    let known = PassName::all().iter().any(|p| p.as_str() == pass) || pass == SPLIT_GROUPS;
    if !known {
        return Err(format!("unknown pass `{pass}`"));
    }
    if pass == SPLIT_GROUPS && mode != Mode::Train {
        return Err("split-groups runs on the training graph after verify: use `mode: train`".into());
    }
    Ok(Case { path: path.to_path_buf(), text, pass, mode, batch, lowering })
}

/// What the compiler prints for a case: the IR after its pass, then its diagnostics.
fn run_case(case: &Case) -> String {
    let file = case.path.file_name().unwrap().to_string_lossy().into_owned();
    let mut dump: Option<String> = None;
    let mut after_verify: Option<Graph> = None;
    let wanted = case.pass.as_str();
    let mut hook = |pass: PassName, g: &Graph, m: Option<&MemoryPlan>| {
        if pass.as_str() == wanted {
            let mut text = print_graph(g, wanted);
            if let Some(m) = m {
                text.push_str(&memory_table(m));
            }
            dump = Some(text);
        }
        if pass == PassName::Verify {
            after_verify = Some(g.clone());
        }
    };
    let mut out = String::new();
    let diags = match alexc::front_end_str(&case.text, &file, &mut hook) {
        Err(d) => d,
        Ok(checked) => {
            let batch = case.batch.unwrap_or(checked.graph.spec.training.batch_size);
            match alexc::lower_with(&checked, case.mode, batch, &case.lowering, &mut hook) {
                Ok(_) => checked.warnings,
                Err(d) => d,
            }
        }
    };
    if case.pass == SPLIT_GROUPS {
        dump = after_verify.map(|mut g| {
            alexc::passes::split_grouped_convs(&mut g);
            print_graph(&g, SPLIT_GROUPS)
        });
    }
    match dump {
        Some(text) => out.push_str(&text),
        None => {
            let _ = writeln!(out, "; no dump: the pipeline stopped before {}", case.pass);
        }
    }
    if !diags.0.is_empty() {
        let _ = writeln!(out, "; diagnostics\n{diags}");
    }
    out
}

/// The expectation in a case file: the commented lines after the marker, uncommented.
fn expected_of(text: &str) -> Option<String> {
    let (_, tail) = text.split_once(&format!("\n{EXPECTED_MARKER}\n"))?;
    let mut out = String::new();
    for line in tail.lines() {
        let line = line.strip_prefix("//").unwrap_or(line);
        out.push_str(line.strip_prefix(' ').unwrap_or(line));
        out.push('\n');
    }
    Some(out)
}

/// The case file with `actual` as its expectation.
fn blessed(text: &str, actual: &str) -> String {
    let input = match text.split_once(&format!("\n{EXPECTED_MARKER}\n")) {
        Some((input, _)) => input,
        None => text.trim_end(),
    };
    let mut out = format!("{input}\n{EXPECTED_MARKER}\n");
    for line in actual.lines() {
        if line.is_empty() {
            out.push_str("//\n");
        } else {
            let _ = writeln!(out, "// {line}");
        }
    }
    out
}

/// The first line where two texts differ, for the failure message.
fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = e.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(e.len().min(a.len()));
    format!(
        "first difference at output line {}:\n  expected: {}\n  actual:   {}",
        at + 1,
        e.get(at).unwrap_or(&"<end>"),
        a.get(at).unwrap_or(&"<end>")
    )
}

#[test]
fn every_pass_file_prints_its_expected_ir() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| v != "0");
    let files = case_files();
    assert!(!files.is_empty(), "no cases in {}", case_dir().display());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let case = match read_case(path) {
            Ok(case) => case,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let actual = run_case(&case);
        if bless {
            std::fs::write(path, blessed(&case.text, &actual)).unwrap();
            continue;
        }
        match expected_of(&case.text) {
            None => failures.push(format!("{name}: no `{EXPECTED_MARKER}` block (run with BLESS=1)")),
            Some(expected) if expected.trim_end() != actual.trim_end() => failures.push(format!(
                "{name}: the output after `{}` differs from the expectation; {}\n--- actual ---\n{actual}",
                case.pass,
                first_difference(&expected, &actual)
            )),
            Some(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} pass files failed (BLESS=1 rewrites the expectations):\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_pass_has_a_pass_file() {
    let mut covered = Vec::new();
    for path in case_files() {
        if let Ok(case) = read_case(&path) {
            covered.push(case.pass);
        }
    }
    let mut missing: Vec<&str> = PassName::all().iter().map(|p| p.as_str()).collect();
    missing.push(SPLIT_GROUPS);
    missing.retain(|p| !covered.iter().any(|c| c == p));
    assert!(missing.is_empty(), "passes without a case in compiler/tests/passes: {missing:?}");
}
