//! Per-pass file tests, Cranelift-filetest style: each `compiler/tests/passes/*.ir` states one
//! pass's input as IR text (what `--dump-after` prints), runs exactly that pass on it, then the
//! verifier, and compares the IR after it with the expectation in the file. A change to one pass
//! shows in its own files only. Build's input is a graph file, so its cases are `*.ron`.
//!
//! ```text
//! // pass: fuse                       validate | infer-shapes | towers | autodiff | place |
//! //                                  split-groups | all-reduce | conv-algo | fuse | schedule | memory
//! // batch: 2                         batch size, for schedule and memory (default 1)
//! // options: conv-algo=winograd      conv-algo=NAME; replicas=N bucket-bytes=N for all-reduce;
//! //                                  precision=bf16 for precision
//! // What the case shows, in words.
//! graph small // after conv-algo
//!   ; loss=loss logits=fc
//!   ...
//! // expected:
//! // graph small // after fuse
//! // ...
//! ```
//!
//! Run with `BLESS=1` to rewrite every file's expectation with what the compiler prints now, then
//! read the diff: an expectation is a spec, not a recording.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use alexc::diag::Diagnostics;
use alexc::ir::{print_graph, read_graph, Precision};
use alexc::passes::{self, ConvAlgoChoice, DataParallel, PassName, PassOptions};
use alexc::report::memory_table;

/// The line that separates a case's input from its expected output.
const EXPECTED_MARKER: &str = "// expected:";

/// One case: the pass, its settings, and the input (IR text, or a graph file for build).
struct Case {
    path: PathBuf,
    text: String,
    pass: PassName,
    batch: usize,
    conv_algo: ConvAlgoChoice,
    data_parallel: DataParallel,
    precision: Precision,
    input: String,
}

fn case_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/passes")
}

fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(case_dir())
        .expect("compiler/tests/passes exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ir" || e == "ron"))
        .collect();
    files.sort();
    files
}

fn read_case(path: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let (mut pass, mut batch, mut conv_algo, mut data_parallel, mut precision) =
        (None, 1, ConvAlgoChoice::default(), DataParallel::new(2), Precision::F32);
    for line in text.lines().take_while(|l| l.starts_with("//")) {
        let Some((key, value)) = line.trim_start_matches('/').trim().split_once(':') else { continue };
        let value = value.trim();
        match key.trim() {
            "pass" => {
                pass = Some(
                    PassName::all()
                        .into_iter()
                        .find(|p| p.as_str() == value)
                        .ok_or(format!("unknown pass `{value}`"))?,
                )
            }
            "batch" => batch = value.parse().map_err(|_| format!("batch `{value}` is not a number"))?,
            "options" => {
                for option in value.split_whitespace() {
                    let (key, v) = option.split_once('=').ok_or(format!("`{option}`: write KEY=VALUE"))?;
                    let number = || v.parse::<usize>().map_err(|_| format!("`{option}`: a number"));
                    match key {
                        "replicas" => data_parallel.replicas = number()?,
                        "bucket-bytes" => data_parallel.bucket_bytes = number()?,
                        "precision" => {
                            precision = Precision::from_name(v)
                                .ok_or_else(|| format!("`{option}`: f32, bf16 or f16"))?
                        }
                        "conv-algo" => {
                            let algo = alexc::catalog::ConvAlgo::from_name(v)
                                .ok_or_else(|| format!("unknown convolution algorithm `{v}`"))?;
                            conv_algo = ConvAlgoChoice::Force(algo);
                        }
                        _ => return Err(format!("unknown option `{option}`")),
                    }
                }
            }
            _ => {}
        }
    }
    let pass = pass.ok_or("the header names no pass (`// pass: fuse`)")?;
    let is_ron = path.extension().is_some_and(|e| e == "ron");
    if is_ron != (pass == PassName::Build) {
        return Err(
            "build's cases are graph files (*.ron); every other pass's input is IR text (*.ir)".into()
        );
    }
    let body = text.split(&format!("\n{EXPECTED_MARKER}\n")).next().unwrap_or("");
    let input = body.lines().skip_while(|l| l.starts_with("//")).collect::<Vec<_>>().join("\n");
    Ok(Case {
        path: path.to_path_buf(),
        text: text.clone(),
        pass,
        batch,
        conv_algo,
        data_parallel,
        precision,
        input,
    })
}

/// Runs the case's one pass on its input, then the verifier: the IR after it (with the memory
/// table after `memory`) and every diagnostic.
fn run_case(case: &Case) -> String {
    let file = case.path.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = String::new();
    let mut diags = Diagnostics::default();
    let (graph, memory) = if case.pass == PassName::Build {
        match alexc::ast::parse_str(&case.input, &file) {
            Err(e) => {
                diags.extend(Diagnostics::from(e));
                (None, None)
            }
            Ok(parsed) => {
                let (graph, d) = passes::build(&parsed);
                diags.extend(d);
                (Some(graph), None)
            }
        }
    } else {
        match read_graph(&case.input) {
            Err(e) => {
                let _ = writeln!(out, "; the input does not read: {e}");
                return out;
            }
            Ok(mut graph) => {
                let options = PassOptions {
                    batch: case.batch,
                    conv_algo: case.conv_algo,
                    data_parallel: case.data_parallel,
                    precision: case.precision,
                };
                let (d, plans) = passes::run_pass(case.pass, &mut graph, &options);
                diags.extend(d);
                (Some(graph), (!plans.is_empty()).then_some(plans))
            }
        }
    };
    match graph {
        Some(graph) => {
            if !diags.has_errors() {
                let mut plans = Vec::new();
                if let Some(m) = &memory {
                    plans.push((None, &m[0]));
                    plans.extend(m[1..].iter().enumerate().map(|(d, m)| (Some(d as u8), m)));
                }
                diags.extend(passes::verify_after(case.pass, &graph, &plans));
            }
            out.push_str(&print_graph(&graph, case.pass.as_str()));
            if let Some(m) = memory {
                m.iter().for_each(|m| out.push_str(&memory_table(m)));
            }
        }
        None => {
            let _ = writeln!(out, "; no graph: the file does not parse");
        }
    }
    let diags = diags.in_file(&file);
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
        "first difference at line {}:\n  expected: {}\n  actual:   {}",
        at + 1,
        e.get(at).unwrap_or(&"(end)"),
        a.get(at).unwrap_or(&"(end)")
    )
}

#[test]
fn every_pass_file_gives_its_expected_ir() {
    let bless = std::env::var_os("BLESS").is_some();
    let files = case_files();
    assert!(files.len() >= 10, "found only {} pass files in {}", files.len(), case_dir().display());
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
                case.pass.as_str(),
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
    let covered: Vec<PassName> =
        case_files().iter().filter_map(|p| read_case(p).ok()).map(|c| c.pass).collect();
    let missing: Vec<&str> =
        PassName::all().into_iter().filter(|p| !covered.contains(p)).map(|p| p.as_str()).collect();
    assert!(missing.is_empty(), "passes without a case in compiler/tests/passes: {missing:?}");
}

#[test]
fn an_input_that_does_not_read_is_reported_with_its_line() {
    let text = "graph broken // after fuse\n  ; sources\n  x = input() size=1x5x5 : f32[N,1,5,5]\n  y = relu(z) : f32[N,1,5,5]\n";
    let err = read_graph(text).unwrap_err();
    assert_eq!(err.line, 4, "{err}");
    assert!(err.message.contains("`z` is not declared on an earlier line"), "{err}");
}
