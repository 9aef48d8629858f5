//! The IR's text form is the whole IR as the passes see it: for every shipped graph, in both
//! modes and with each device lowering, every dump reads back (`read_graph`) into a graph that
//! prints the same, and running the next pass on the graph read back gives exactly the dump the
//! whole pipeline gives after that pass (the driver numbers the nodes in the order the text lists
//! them, so a graph read back is numbered as the pipeline's own). So a one-pass file test
//! (`tests/passes/*.ir`) starts exactly where the pipeline would.

mod common;
use common::*;

use alexc::ir::{print_graph, read_graph, Graph, Mode, Precision};
use alexc::memory::memory_table;
use alexc::passes::{run_pass, DataParallel, MemoryPlan, PassName, PassOptions};
use alexc::Lowering;

/// Every dump of one compile: the pass and the IR text after it (with the memory table).
fn dumps(path: &std::path::Path, mode: Mode, lowering: &Lowering) -> Vec<(PassName, String)> {
    let mut out = Vec::new();
    let mut hook = |pass: PassName, g: &Graph, m: Option<&MemoryPlan>| {
        out.push((pass, print_graph(g, pass.as_str()) + &m.map(memory_table).unwrap_or_default()))
    };
    let checked = alexc::front_end(path, &mut hook).expect("shipped graphs compile");
    alexc::lower_with(&checked, mode, 4, lowering, &mut hook).expect("shipped graphs lower");
    out
}

fn lowerings() -> Vec<(&'static str, Mode, Lowering)> {
    let dp = DataParallel { replicas: 2, bucket_bytes: 1 << 20 };
    vec![
        ("train", Mode::Train, Lowering::default()),
        ("infer", Mode::Infer, Lowering::default()),
        ("split", Mode::Train, Lowering { split_grouped_conv: true, ..Default::default() }),
        ("towers", Mode::Train, Lowering { devices: 2, ..Default::default() }),
        ("replicas", Mode::Train, Lowering { data_parallel: Some(dp), ..Default::default() }),
        ("bf16", Mode::Train, Lowering { precision: Some(Precision::Bf16), ..Default::default() }),
        (
            "bf16-towers",
            Mode::Train,
            Lowering { precision: Some(Precision::Bf16), devices: 2, ..Default::default() },
        ),
        ("bf16-infer", Mode::Infer, Lowering { precision: Some(Precision::Bf16), ..Default::default() }),
        ("f16", Mode::Train, Lowering { precision: Some(Precision::F16), ..Default::default() }),
        (
            "f16-replicas",
            Mode::Train,
            Lowering { precision: Some(Precision::F16), data_parallel: Some(dp), ..Default::default() },
        ),
    ]
}

#[test]
fn every_dump_reads_back_to_a_graph_that_prints_the_same() {
    let mut checked = 0;
    for path in shipped_graphs() {
        for (what, mode, lowering) in lowerings() {
            for (pass, text) in dumps(&path, mode, &lowering) {
                let graph = read_graph(&text)
                    .unwrap_or_else(|e| panic!("{} {what} {}: {e}", path.display(), pass.as_str()));
                let again = print_graph(&graph, pass.as_str());
                let expected = text.split("memory @ batch").next().unwrap();
                assert_eq!(
                    again,
                    expected,
                    "{} {what}: the IR after {} prints differently once read back",
                    path.display(),
                    pass.as_str()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} dumps");
}

#[test]
fn the_next_pass_on_a_dump_read_back_gives_the_pipelines_next_dump() {
    let mut checked = 0;
    for path in shipped_graphs() {
        for (what, mode, lowering) in lowerings() {
            let all = dumps(&path, mode, &lowering);
            let options = PassOptions {
                batch: 4,
                conv_algo: lowering.conv_algo,
                data_parallel: lowering.data_parallel.unwrap_or(DataParallel::new(2)),
                precision: lowering.precision.unwrap_or_default(),
            };
            for pair in all.windows(2) {
                let ((_, before), (pass, after)) = (&pair[0], &pair[1]);
                // Inference drops the loss between the front end and lowering: not a pass.
                if mode == Mode::Infer && before.contains("; loss=") {
                    continue;
                }
                let mut graph = read_graph(before).unwrap();
                let (diags, plans) = run_pass(*pass, &mut graph, &options);
                assert!(!diags.has_errors(), "{} {what} {}: {diags}", path.display(), pass.as_str());
                let text =
                    print_graph(&graph, pass.as_str()) + &plans.first().map(memory_table).unwrap_or_default();
                if &text != after {
                    let at = text.lines().zip(after.lines()).position(|(a, b)| a != b).unwrap_or(0);
                    panic!(
                        "{} {what}: `{}` on the IR read back differs from the pipeline at line {}:\n  read back: {}\n  pipeline:  {}",
                        path.display(),
                        pass.as_str(),
                        at + 1,
                        text.lines().nth(at).unwrap_or("(end)"),
                        after.lines().nth(at).unwrap_or("(end)")
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} pass runs");
}
