//! Property tests of scheduling and memory planning over random graphs: no two values whose
//! lifetimes overlap share bytes, every value lies inside the arena, offsets are aligned, the arena
//! is never below the lower bound, and the schedule runs every node after its inputs.

use std::collections::HashMap;

use alexc::ir::Mode;
use alexc::passes::memory::{assign_offsets, lower_bound, Buffer, ALIGNMENT};
use alexc::{front_end_str, lower};
use proptest::prelude::*;

/// One layer of a random network; `Residual` adds a 3x3 conv branch back onto its input.
#[derive(Debug, Clone)]
enum Layer {
    Conv { out: usize, kernel: usize, stride: usize, groups: usize },
    Relu,
    Lrn,
    Pool,
    Residual,
    Dropout,
}

fn layer() -> impl Strategy<Value = Layer> {
    prop_oneof![
        (1usize..5, prop::sample::select(vec![1usize, 3, 5]), 1usize..3, 1usize..3)
            .prop_map(|(o, k, s, g)| Layer::Conv { out: o * 2, kernel: k, stride: s, groups: g }),
        Just(Layer::Relu),
        Just(Layer::Lrn),
        Just(Layer::Pool),
        Just(Layer::Residual),
        Just(Layer::Dropout),
    ]
}

/// A graph file for `layers` on a `size x size` input, skipping layers that would not fit.
fn graph_text(layers: &[Layer], size: usize, fc: usize) -> String {
    let mut nodes = Vec::new();
    let (mut prev, mut channels, mut hw) = ("x".to_string(), 3usize, size);
    let mut node = |name: String, op: String, inputs: &[&str]| {
        let ins: Vec<String> = inputs.iter().map(|i| format!("\"{i}\"")).collect();
        nodes.push(format!("(name: \"{name}\", op: {op}, inputs: [{}])", ins.join(", ")));
        name
    };
    for (i, l) in layers.iter().enumerate() {
        match l {
            Layer::Conv { out, kernel, stride, groups } => {
                let groups = if channels % groups == 0 && out % groups == 0 { *groups } else { 1 };
                if *kernel > hw {
                    continue;
                }
                let op = format!(
                    "Conv2d(out_channels: {out}, kernel: {kernel}, stride: {stride}, groups: {groups})"
                );
                prev = node(format!("conv{i}"), op, &[&prev]);
                channels = *out;
                hw = (hw - kernel) / stride + 1;
            }
            Layer::Relu => prev = node(format!("relu{i}"), "Relu".into(), &[&prev]),
            Layer::Lrn => {
                let op = "Lrn(size: 3, alpha: 1e-4, beta: 0.75, k: 1.0, convention: Caffe)".to_string();
                prev = node(format!("lrn{i}"), op, &[&prev]);
            }
            Layer::Pool if hw >= 3 => {
                prev = node(format!("pool{i}"), "MaxPool(kernel: 3, stride: 2)".into(), &[&prev]);
                hw = (hw - 3) / 2 + 1;
            }
            Layer::Pool => {}
            Layer::Residual => {
                let op = format!("Conv2d(out_channels: {channels}, kernel: 3, padding: 1)");
                let branch = node(format!("branch{i}"), op, &[&prev]);
                prev = node(format!("add{i}"), "Add".into(), &[&branch, &prev]);
            }
            Layer::Dropout => prev = node(format!("drop{i}"), "Dropout(rate: 0.5)".into(), &[&prev]),
        }
    }
    prev = node("flat".into(), "Flatten".into(), &[&prev]);
    prev = node("hidden".into(), format!("Linear(out_features: {fc})"), &[&prev]);
    prev = node("hidden_relu".into(), "Relu".into(), &[&prev]);
    node("logits".into(), "Linear(out_features: 5)".into(), &[&prev]);
    format!(
        "Graph(name: \"random\", input: (name: \"x\", channels: 3, height: {size}, width: {size}), classes: 5,
          nodes: [{}], loss: SoftmaxCrossEntropy(logits: \"logits\"),
          optimizer: Sgd(lr: 0.1), training: (batch_size: 4, epochs: 1))",
        nodes.join(",\n")
    )
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

fn check_buffers(buffers: &[Buffer], arena: usize, lower: usize) -> Result<(), TestCaseError> {
    prop_assert!(arena >= lower, "arena {arena} below the lower bound {lower}");
    for (i, a) in buffers.iter().enumerate() {
        prop_assert_eq!(a.offset % ALIGNMENT, 0);
        prop_assert!(a.offset + a.bytes <= arena, "buffer {i} ends past the arena");
        for b in &buffers[i + 1..] {
            if overlaps((a.first, a.last), (b.first, b.last)) {
                let disjoint = a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset;
                prop_assert!(disjoint, "live at once and sharing bytes: {a:?} {b:?}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_graphs_get_sound_memory_plans(
        layers in prop::collection::vec(layer(), 1..10),
        size in 5usize..24,
        fc in 1usize..20,
        batch in 1usize..9,
        train in any::<bool>(),
    ) {
        let text = graph_text(&layers, size, fc);
        let checked = front_end_str(&text, "random.ron", &mut |_, _, _| {})
            .map_err(|d| TestCaseError::fail(format!("{d}\n{text}")))?;
        let mode = if train { Mode::Train } else { Mode::Infer };
        let lowered = lower(&checked, mode, batch, &mut |_, _, _| {}).map_err(|d| TestCaseError::fail(d.to_string()))?;
        let (g, m) = (&lowered.graph, &lowered.memory);

        // The schedule runs each computed node once, after everything it reads.
        let step: HashMap<_, _> = g.schedule.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        prop_assert_eq!(step.len(), g.compute_nodes().len());
        for (&n, &s) in &step {
            for v in g.inputs(n) {
                if let Some(&p) = step.get(&v.node) {
                    prop_assert!(p < s, "{} runs before its input {}", g.g[n].name, g.g[v.node].name);
                }
            }
        }
        // A node that overwrites an input (the optimizer update) runs after its other readers.
        for (n, readers) in alexc::passes::schedule::ordering_constraints(g) {
            for r in readers {
                prop_assert!(step[&r] < step[&n], "{} overwrites what {} reads later", g.g[n].name, g.g[r].name);
            }
        }
        // Each value is live from its producer to its last reader.
        for p in &m.values {
            let first = step.get(&p.value.node).copied().unwrap_or(0);
            prop_assert_eq!(p.first, first);
            for c in g.consumers(p.value) {
                prop_assert!(step[&c] <= p.last, "{} is read after its interval ends", p.name);
            }
            prop_assert!(p.bytes <= m.buffers[p.buffer].bytes);
            prop_assert_eq!(p.offset, m.buffers[p.buffer].offset);
        }
        check_buffers(&m.buffers, m.arena_bytes, m.lower_bound_bytes)?;
        prop_assert!(m.arena_bytes <= m.naive_bytes.div_ceil(ALIGNMENT) * ALIGNMENT + m.values.len() * ALIGNMENT);
    }

    #[test]
    fn offset_assignment_is_sound_for_any_intervals(
        spans in prop::collection::vec((0usize..40, 0usize..15, 1usize..5000), 1..60),
    ) {
        let mut buffers: Vec<Buffer> = spans
            .iter()
            .map(|&(first, len, bytes)| Buffer { bytes, first, last: first + len, offset: 0 })
            .collect();
        let end = buffers.iter().map(|b| b.last).max().unwrap();
        let lower = lower_bound(&buffers, end);
        let arena = assign_offsets(&mut buffers);
        check_buffers(&buffers, arena, lower)?;
    }
}
