//! Mutation tests: no input panics the compiler, and no damaged plan panics its reader.
//!
//! Each shipped graph (graphs/*.ron) is edited at random — bytes flipped, deleted or inserted,
//! digits changed, lines duplicated, deleted or swapped; seeded, so every run edits the same way —
//! and compiled in-process (front end, then lowering for training and for inference at batch 2,
//! every other run with the split-grouped-conv lowering) under `catch_unwind`. Every run must end
//! in a plan that reads back, or in diagnostics that name the file and, but for whole-file
//! problems, a line and column. A compiled plan's bytes are damaged the same way, and so is its
//! postcard payload, re-sealed with a correct checksum so that the decoder and the consistency
//! check see it: every read must end in a plan or a `PlanError`.
//!
//! CI runs 300 edits per graph and 2,000 per plan mode (2 s); `ALEXC_MUTATIONS=20000` runs that
//! many per graph (and per plan mode) instead (about 2 minutes), `ALEXC_MUTATION_SEED=N` starts
//! from another seed. Run it in the debug profile, where an arithmetic overflow panics; add
//! `-- --nocapture` to see the counts of compiled and rejected runs.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use alexc::diag::Diagnostics;
use alexc::ir::Mode;
use alexc::plan::{seal, Plan, PlanError};
use alexc::Lowering;

/// SplitMix64: a small, seeded, deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutations_per_target(ci_default: usize) -> usize {
    std::env::var("ALEXC_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(ci_default)
}

fn seed() -> u64 {
    std::env::var("ALEXC_MUTATION_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x00a1_e8c0)
}

/// Bytes a graph file is made of, and a few it should never contain.
const INTERESTING: &[u8] = b"0123456789(),:[]\"._- \nabcxyzNTe+\x00\xff\xc3";

/// One random edit of `bytes`; returns what it did, for the failure message.
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) -> String {
    if bytes.is_empty() {
        bytes.push(INTERESTING[rng.below(INTERESTING.len())]);
        return "insert into empty".into();
    }
    let at = rng.below(bytes.len());
    match rng.below(8) {
        0 => {
            let bit = 1u8 << rng.below(8);
            bytes[at] ^= bit;
            format!("flip bit {bit:#x} at byte {at}")
        }
        1 => {
            let len = 1 + rng.below(8).min(bytes.len() - at - 1);
            bytes.drain(at..at + len);
            format!("delete {len} bytes at {at}")
        }
        2 => {
            let b = INTERESTING[rng.below(INTERESTING.len())];
            bytes.insert(at, b);
            format!("insert {:?} at {at}", b as char)
        }
        3 | 4 => {
            // Change a digit (grow a number, zero it, or swap two neighbours).
            let digits: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].is_ascii_digit()).collect();
            if digits.is_empty() {
                return "no digit to change".into();
            }
            let i = digits[rng.below(digits.len())];
            match rng.below(3) {
                0 => {
                    let extra = b'0' + rng.below(10) as u8;
                    let times = 1 + rng.below(20);
                    for _ in 0..times {
                        bytes.insert(i, extra);
                    }
                    format!("insert {times} x {:?} at {i}", extra as char)
                }
                1 => {
                    bytes[i] = b'0';
                    format!("zero the digit at {i}")
                }
                _ => {
                    let j = digits[rng.below(digits.len())];
                    bytes.swap(i, j);
                    format!("swap digits at {i} and {j}")
                }
            }
        }
        _ => {
            let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
            let what = match rng.below(3) {
                0 => {
                    let line = lines[i].clone();
                    lines.insert(j, line);
                    format!("copy line {} before line {}", i + 1, j + 1)
                }
                1 => {
                    lines.remove(i);
                    format!("delete line {}", i + 1)
                }
                _ => {
                    lines.swap(i, j);
                    format!("swap lines {} and {}", i + 1, j + 1)
                }
            };
            *bytes = lines.join(&b'\n');
            what
        }
    }
}

/// Why a run's diagnostics are not acceptable, if they are not.
fn bad_diagnostics(diags: &Diagnostics, file: &str) -> Option<String> {
    if !diags.has_errors() {
        return Some(format!("a failed compile reports no error: {diags}"));
    }
    diags
        .errors()
        .find(|d| d.file != file || (d.loc.is_none() && !names_whole_file(&d.message)))
        .map(|d| format!("an error without its place: {d}"))
}

/// Messages about the file as a whole, which have no line to point at.
fn names_whole_file(message: &str) -> bool {
    ["cannot read the graph file", "is a directory", "the step needs more than"]
        .iter()
        .any(|m| message.contains(m))
}

/// How a run that did not go wrong ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Compiled,
    Rejected,
}

/// Compiles one mutated file through the library; `Err` says what went wrong.
fn compile(bytes: &[u8], file: &str, split: bool) -> Result<Outcome, String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Not UTF-8: the file path reports the byte's place.
        let dir = common::scratch("mutation-utf8");
        let path = dir.join(file);
        std::fs::write(&path, bytes).unwrap();
        let shown = path.display().to_string();
        return match alexc::front_end(&path, &mut |_, _, _| {}) {
            Ok(_) => Err("a file that is not UTF-8 compiled".into()),
            Err(d) => bad_diagnostics(&d, &shown).map_or(Ok(Outcome::Rejected), Err),
        };
    };
    let checked = match alexc::front_end_str(text, file, &mut |_, _, _| {}) {
        Ok(c) => c,
        Err(d) => return bad_diagnostics(&d, file).map_or(Ok(Outcome::Rejected), Err),
    };
    let lowering = Lowering { split_grouped_conv: split, ..Default::default() };
    for mode in [Mode::Train, Mode::Infer] {
        match alexc::lower_with(&checked, mode, 2, &lowering, &mut |_, _, _| {}) {
            Ok(lowered) => {
                let bytes = lowered.into_plan(mode, file).to_bytes();
                if let Err(e) = Plan::from_bytes(&bytes, file) {
                    return Err(format!("a plan the compiler wrote does not read back: {e}"));
                }
            }
            Err(d) => return Err(format!("the front end accepted a graph that lowering rejects:\n{d}")),
        }
    }
    Ok(Outcome::Compiled)
}

/// Runs `f`, turning a panic into `Err` with its message.
fn no_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

#[test]
fn edited_graph_files_end_in_a_plan_or_located_errors() {
    let count = mutations_per_target(300);
    let mut failures: Vec<String> = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    let mut failed = 0usize;
    let start = std::time::Instant::now();
    for path in common::shipped_graphs() {
        let original = std::fs::read(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut rng = Rng(seed() ^ original.len() as u64);
        for run in 0..count {
            let mut bytes = original.clone();
            let edits: Vec<String> = (0..1 + rng.below(3)).map(|_| mutate(&mut bytes, &mut rng)).collect();
            let split = run % 2 == 1;
            let outcome = no_panic(|| compile(&bytes, &file, split)).and_then(|r| r);
            match outcome {
                Ok(o) => *outcomes.entry(o).or_insert(0usize) += 1,
                Err(e) => {
                    failed += 1;
                    if failures.len() < 20 {
                        let text = String::from_utf8_lossy(&bytes);
                        failures.push(format!(
                            "{file} run {run} ({}): {e}\n--- the file ---\n{text}",
                            edits.join("; ")
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "{} edited graphs in {:.1}s: {outcomes:?}, {failed} failed",
        outcomes.values().sum::<usize>() + failed,
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failed} failures, the first:\n\n{}", failures.join("\n\n"));
}

/// A compiled plan of the small net, for training.
fn tiny_plan() -> Plan {
    let text = std::fs::read_to_string(common::root().join("graphs/tiny.ron")).unwrap();
    alexc::compile_str(&text, "tiny.ron", Mode::Train, 2).unwrap()
}

/// Reads `bytes` as a plan under `catch_unwind`; counts each outcome by its kind.
fn read_counted(
    bytes: &[u8],
    counts: &mut std::collections::BTreeMap<&'static str, usize>,
) -> Result<(), String> {
    let outcome = no_panic(|| Plan::from_bytes(bytes, "plan.bin"))?;
    let kind = match outcome {
        Ok(_) => "read",
        Err(PlanError::Decode { .. }) => "does not decode",
        Err(PlanError::Inconsistent { .. }) => "inconsistent",
        Err(PlanError::Checksum { .. }) => "checksum",
        Err(_) => "header",
    };
    *counts.entry(kind).or_default() += 1;
    Ok(())
}

#[test]
fn damaged_plan_files_end_in_a_plan_or_a_plan_error() {
    let count = mutations_per_target(2000);
    let plan = tiny_plan();
    let (file, payload) = (plan.to_bytes(), plan.payload());
    let mut rng = Rng(seed());
    let mut counts = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for run in 0..count {
        // The file as a whole (the checksum catches most), then the payload re-sealed.
        let mut damaged = file.clone();
        let edit = mutate(&mut damaged, &mut rng);
        if let Err(e) = read_counted(&damaged, &mut counts) {
            failures.push(format!("file run {run} ({edit}): panicked: {e}"));
        }
        let mut damaged = payload.clone();
        let edits: Vec<String> = (0..1 + rng.below(2)).map(|_| mutate(&mut damaged, &mut rng)).collect();
        if let Err(e) = read_counted(&seal(&damaged), &mut counts) {
            failures.push(format!("payload run {run} ({}): panicked: {e}", edits.join("; ")));
        }
    }
    eprintln!("{} damaged plans read: {counts:?}", 2 * count);
    assert!(failures.is_empty(), "{} panics:\n{}", failures.len(), failures.join("\n"));
    assert!(counts.get("inconsistent").is_some_and(|&n| n > 0), "the check never fired: {counts:?}");
}
