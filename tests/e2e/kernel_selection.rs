//! The runtime's kernel selection covers what the compiler's fusion produces.

use alexc::ir::Mode;

/// Every fused node of the shipped graphs, in both modes, with and without the split of
/// grouped convolutions, has a fused kernel.
#[test]
fn every_fused_node_of_the_shipped_graphs_has_a_kernel() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs");
    for name in ["alexnet", "caffenet", "torchvision_alexnet", "tiny"] {
        let path = root.join(format!("{name}.ron"));
        let text = std::fs::read_to_string(&path).unwrap();
        let checked = alexc::front_end_str(&text, &path.display().to_string(), &mut |_, _, _| {}).unwrap();
        for split_grouped_conv in [false, true] {
            let lowering = alexc::Lowering { split_grouped_conv, ..Default::default() };
            for mode in [Mode::Train, Mode::Infer] {
                let lowered = alexc::lower_with(&checked, mode, 8, &lowering, &mut |_, _, _| {}).unwrap();
                for (node, pattern, how) in alexrt::select::kernel_table(&lowered.graph) {
                    assert!(
                        !how.contains("no fused kernel"),
                        "{name} ({mode:?}, {lowering:?}): {node} ({pattern})"
                    );
                }
            }
        }
    }
}
