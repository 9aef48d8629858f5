//! Snapshot tests: the IR text after every pass for every graph in graphs/, the inference plan's
//! memory dump, and the summary table. Review changes to these files like code.

mod common;
use common::*;

use alexc::ir::{print_graph, Mode};
use alexc::report::{build_report, memory_table, summary_table};
use alexc::{front_end, lower};

fn snapshot_graph(path: &std::path::Path) {
    std::env::set_current_dir(root()).unwrap();
    let rel = path.strip_prefix(root()).unwrap();
    let stem = rel.file_stem().unwrap().to_string_lossy().into_owned();
    let mut dumps: Vec<(String, String)> = Vec::new();
    let mut hook =
        |pass: alexc::passes::PassName, g: &alexc::ir::Graph, m: Option<&alexc::passes::MemoryPlan>| {
            let mut text = print_graph(g, pass.as_str());
            if let Some(m) = m {
                text.push_str(&memory_table(m));
            }
            dumps.push((pass.as_str().to_string(), text));
        };
    let checked = front_end(rel, &mut hook).expect("shipped graphs compile");
    let batch = checked.graph.spec.training.batch_size;
    let train = lower(&checked, Mode::Train, batch, &mut hook).unwrap();
    let mut infer_dumps = Vec::new();
    let infer = lower(&checked, Mode::Infer, batch, &mut |pass, g, m| {
        if let Some(m) = m {
            infer_dumps.push((pass, print_graph(g, pass.as_str()) + &memory_table(m)));
        }
    })
    .unwrap();
    // Every pass but `towers`, `place`, `split-groups` and `all-reduce`, which run only with
    // `--devices 2`, `--split-grouped-conv` and `--replicas N` (their snapshots are below).
    assert_eq!(dumps.len(), alexc::passes::PassName::all().len() - 4, "a dump after every pass");
    for (pass, text) in dumps {
        insta::assert_snapshot!(format!("{stem}__train__{pass}"), text);
    }
    let (_, infer_text) = infer_dumps.pop().unwrap();
    insta::assert_snapshot!(format!("{stem}__infer__memory"), infer_text);
    insta::assert_snapshot!(
        format!("{stem}__summary"),
        summary_table(&build_report(&checked, &train, &infer))
    );
}

#[test]
fn every_shipped_graph_has_snapshots() {
    let graphs = shipped_graphs();
    assert!(graphs.len() >= 4, "alexnet, caffenet, torchvision_alexnet, tiny: {graphs:?}");
    for g in graphs {
        snapshot_graph(&g);
    }
}

/// The split-grouped-convolution lowering on the small net: each grouped convolution and its two
/// gradients become per-group convolutions over slices, joined by a concat that leads the fused
/// bias + ReLU group.
#[test]
fn the_split_grouped_conv_lowering_has_a_snapshot() {
    std::env::set_current_dir(root()).unwrap();
    let checked = front_end(std::path::Path::new("graphs/tiny.ron"), &mut |_, _, _| {}).unwrap();
    let lowering = alexc::Lowering { split_grouped_conv: true, ..Default::default() };
    let mut text = String::new();
    alexc::lower_with(&checked, Mode::Train, 32, &lowering, &mut |pass, g, m| {
        if pass == alexc::passes::PassName::Memory {
            text = print_graph(g, pass.as_str()) + &memory_table(m.unwrap());
        }
    })
    .unwrap();
    assert!(!text.contains("g=2"), "a grouped convolution is left:\n{text}");
    insta::assert_snapshot!("tiny__train__memory__split_grouped_conv", text);
}

/// The step placed on two devices (`--devices 2`), after fusion and scheduling: every node with
/// its device, the fused groups within a device, and each device's memory plan.
#[test]
fn the_two_device_placement_has_a_snapshot() {
    std::env::set_current_dir(root()).unwrap();
    let checked = front_end(std::path::Path::new("graphs/tiny.ron"), &mut |_, _, _| {}).unwrap();
    let lowering = alexc::Lowering { devices: 2, ..Default::default() };
    let mut text = String::new();
    let lowered = alexc::lower_with(&checked, Mode::Train, 32, &lowering, &mut |pass, g, _| {
        if pass == alexc::passes::PassName::Memory {
            text = print_graph(g, pass.as_str());
        }
    })
    .unwrap();
    for (d, m) in lowered.device_memory.iter().enumerate() {
        text.push_str(&format!("device d{d} "));
        text.push_str(&memory_table(m));
    }
    insta::assert_snapshot!("tiny__train__memory__two_devices", text);
}

/// The data-parallel lowering on the small net (`--replicas 2`): the gradients averaged in one
/// 25 MiB bucket, scheduled as soon as the last of them is ready, before the updates read them.
#[test]
fn the_data_parallel_lowering_has_a_snapshot() {
    std::env::set_current_dir(root()).unwrap();
    let checked = front_end(std::path::Path::new("graphs/tiny.ron"), &mut |_, _, _| {}).unwrap();
    let data_parallel = Some(alexc::passes::DataParallel::new(2));
    let lowering = alexc::Lowering { data_parallel, ..Default::default() };
    let mut text = String::new();
    let lowered = alexc::lower_with(&checked, Mode::Train, 32, &lowering, &mut |pass, g, m| {
        if pass == alexc::passes::PassName::Memory {
            text = print_graph(g, pass.as_str()) + &memory_table(m.unwrap());
        }
    })
    .unwrap();
    assert_eq!(lowered.replicas, 2);
    assert!(text.contains("all_reduce_mean"), "no all-reduce:\n{text}");
    insta::assert_snapshot!("tiny__train__memory__data_parallel", text);
}

/// The small net in bf16 (`--precision bf16`): the casts, the types, and the memory plan in the
/// real byte sizes.
#[test]
fn the_bf16_lowering_has_a_snapshot() {
    let path = root().join("graphs/tiny.ron");
    let checked = front_end(&path, &mut |_, _, _| {}).unwrap();
    let lowering = alexc::Lowering { precision: Some(alexc::ir::Precision::Bf16), ..Default::default() };
    let mut text = String::new();
    alexc::lower_with(&checked, Mode::Train, 8, &lowering, &mut |pass, g, m| {
        if pass == alexc::passes::PassName::Memory {
            text = print_graph(g, pass.as_str()) + &memory_table(m.unwrap());
        }
    })
    .unwrap();
    insta::assert_snapshot!("tiny__train__memory__bf16", text);
}
