//! Mixed precision as a compiler pass (`--precision bf16|f16`): what computes in the low type, what
//! stays f32, where the casts go, what it does to the memory plan, and f16's loss scaling.

use alexc::catalog::Op;
use alexc::ir::{DType, Graph, Mode, Phase, Precision};
use alexc::Lowering;

fn lowered(graph_file: &str, mode: Mode, batch: usize, precision: Precision) -> alexc::Lowered {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs").join(graph_file);
    let checked = alexc::front_end(&path, &mut |_, _, _| {}).expect("the shipped graphs compile");
    let lowering = Lowering { precision: Some(precision), ..Default::default() };
    alexc::lower_with(&checked, mode, batch, &lowering, &mut |_, _, _| {}).expect("the shipped graphs lower")
}

/// The ops of a graph's computed nodes, a fused node's steps each on their own, with the type of
/// the node's first output.
fn ops(graph: &Graph) -> Vec<(String, Op, Option<DType>)> {
    let mut out = Vec::new();
    for n in graph.compute_nodes() {
        let node = &graph.g[n];
        let dtype = node.outputs.first().map(|t| t.dtype);
        match &node.op {
            Op::Fused(f) => out.extend(f.steps.iter().map(|s| (node.name.clone(), s.op.clone(), dtype))),
            op => out.push((node.name.clone(), op.clone(), dtype)),
        }
    }
    out
}

#[test]
fn a_bf16_step_computes_in_bf16_and_keeps_masters_loss_sums_and_updates_in_f32() {
    let step = lowered("tiny.ron", Mode::Train, 8, Precision::Bf16);
    let g = &step.graph;
    assert_eq!(g.spec.precision, Precision::Bf16);
    for n in g.node_indices() {
        let node = &g.g[n];
        if node.op.def().is_source() && node.outputs[0].dtype.is_float() {
            assert_eq!(
                node.outputs[0].dtype,
                DType::F32,
                "{}: parameters, momentum and the input stay f32",
                node.name
            );
        }
    }
    for (name, op, dtype) in ops(g) {
        let want = match op {
            Op::Conv2dBackwardWeight(_) | Op::LinearBackwardWeight(_) | Op::BiasGrad(_) => continue,
            Op::SoftmaxCrossEntropy(_) | Op::SoftmaxCrossEntropyGrad(_) => Some(DType::F32),
            Op::SgdUpdate(_) => None,
            Op::Cast(_) => continue,
            _ => Some(DType::BF16),
        };
        // A fused node's steps are checked by the node's type: its first output's.
        assert_eq!(dtype, want, "{name} ({})", op.def().name());
    }
    // The sums over the batch (weight and bias gradients) and what the updates read are f32.
    for n in g.compute_nodes() {
        if let Op::SgdUpdate(_) = g.g[n].op {
            for v in g.inputs(n) {
                assert_eq!(
                    g.value_type(v).unwrap().dtype,
                    DType::F32,
                    "{} reads {}",
                    g.g[n].name,
                    g.value_name(v)
                );
            }
        }
    }
}

#[test]
fn the_casts_are_the_input_batch_and_the_loss_gradient_and_weights_are_read_as_their_masters() {
    let step = lowered("tiny.ron", Mode::Train, 8, Precision::Bf16);
    let g = &step.graph;
    let casts: Vec<(String, String, Phase)> = g
        .compute_nodes()
        .into_iter()
        .filter(|&n| matches!(g.g[n].op, Op::Cast(_)))
        .map(|n| (g.g[n].name.clone(), g.value_name(g.inputs(n)[0]), g.g[n].phase))
        .collect();
    let mut read: Vec<&str> = casts.iter().map(|(_, input, _)| input.as_str()).collect();
    read.sort();
    assert_eq!(read, ["image", "loss/grad"], "{casts:?}");
    assert!(casts.iter().all(|(name, _, _)| name.ends_with("/bf16")), "{casts:?}");
    assert!(
        casts.iter().any(|(_, input, phase)| input == "loss/grad" && *phase == Phase::Backward),
        "{casts:?}"
    );
    // The products read their weights' f32 masters (their kernels convert them as they pack
    // them): no bf16 copy of a weight lives through the step.
    let conv2 = g.find("conv2.weight").unwrap();
    for reader in g.consumers(alexc::ir::ValueRef { node: conv2, port: 0 }) {
        assert!(!matches!(g.g[reader].op, Op::Cast(_)), "{} casts conv2's weight", g.g[reader].name);
    }
}

#[test]
fn f32_is_unchanged_by_the_pass() {
    let f32_step = lowered("tiny.ron", Mode::Train, 8, Precision::F32);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/tiny.ron");
    let checked = alexc::front_end(&path, &mut |_, _, _| {}).unwrap();
    let default = alexc::lower(&checked, Mode::Train, 8, &mut |_, _, _| {}).unwrap();
    assert_eq!(
        alexc::ir::print_graph(&f32_step.graph, "memory"),
        alexc::ir::print_graph(&default.graph, "memory")
    );
    assert!(ops(&f32_step.graph).iter().all(|(_, op, _)| !matches!(op, Op::Cast(_))));
}

#[test]
fn the_bf16_arena_of_alexnet_at_batch_128_is_at_most_0_6_of_the_f32_one() {
    let (f32_step, bf16_step) = (
        lowered("alexnet.ron", Mode::Train, 128, Precision::F32),
        lowered("alexnet.ron", Mode::Train, 128, Precision::Bf16),
    );
    let (a, b) = (f32_step.memory.arena_bytes as f64, bf16_step.memory.arena_bytes as f64);
    eprintln!("alexnet.ron, batch 128: f32 arena {a:.0} B, bf16 arena {b:.0} B, ratio {:.3}", b / a);
    assert!(b <= 0.6 * a, "bf16 arena {b} B is {:.3} of the f32 arena {a} B", b / a);
    assert_eq!(f32_step.memory.persistent_bytes, bf16_step.memory.persistent_bytes, "the masters stay f32");
}

#[test]
fn an_f16_step_scales_its_loss_gradient_and_guards_every_update_with_one_verdict() {
    let step = lowered("tiny.ron", Mode::Train, 8, Precision::F16);
    let g = &step.graph;
    let find = |pred: &dyn Fn(&Op) -> bool| {
        g.compute_nodes().into_iter().filter(|&n| pred(&g.g[n].op)).collect::<Vec<_>>()
    };
    let state = g.find("loss_scale").expect("a loss_scale state");
    assert!(matches!(&g.g[state].op, Op::State(s) if s.kind == alexc::catalog::StateKind::LossScale));
    // The seed is scaled in f32, then cast to f16 for the backward pass.
    let [scale] = find(&|op| matches!(op, Op::ScaleLossGrad(_)))[..] else { panic!("one scale_loss_grad") };
    let ins = g.inputs(scale);
    assert!(matches!(g.g[ins[0].node].op, Op::SoftmaxCrossEntropyGrad(_)) && ins[1].node == state);
    for r in g.consumers(alexc::ir::ValueRef { node: scale, port: 0 }) {
        assert!(
            matches!(&g.g[r].op, Op::Cast(c) if c.to == DType::F16),
            "{} reads the scaled seed",
            g.g[r].name
        );
    }
    // One unscale of every gradient, in f32; every update reads its gradient and the verdict there.
    let [unscale] = find(&|op| matches!(op, Op::UnscaleGrads(_)))[..] else { panic!("one unscale_grads") };
    let updates = find(&|op| matches!(op, Op::SgdUpdate(_)));
    assert_eq!(updates.len(), 8);
    assert_eq!(g.inputs(unscale).len(), 1 + updates.len());
    assert!(g.g[unscale].outputs.iter().all(|t| t.dtype == DType::F32));
    let verdict = alexc::ir::ValueRef { node: unscale, port: updates.len() as u8 };
    for u in updates {
        let Op::SgdUpdate(sgd) = &g.g[u].op else { unreachable!() };
        let ins = g.inputs(u);
        assert!(sgd.guarded && ins[1].node == unscale && ins[3] == verdict, "{}", g.g[u].name);
    }
    // No update runs before the verdict: each comes after the unscale in the schedule.
    let at = |n| g.schedule.iter().position(|&s| s == n).unwrap();
    assert!(find(&|op| matches!(op, Op::SgdUpdate(_))).into_iter().all(|u| at(u) > at(unscale)));
    // The activations are f16, like bf16's; the scale is a persistent 12 bytes.
    assert!(ops(g).iter().any(|(_, op, t)| matches!(op, Op::Conv2d(_)) && *t == Some(DType::F16)));
    assert!(step.memory.persistent.iter().any(|(n, b)| n == "loss_scale" && *b == 12));
}

#[test]
fn an_f16_inference_plan_has_no_loss_scaling_and_two_devices_are_refused() {
    let infer = lowered("tiny.ron", Mode::Infer, 8, Precision::F16);
    assert!(infer.graph.find("loss_scale").is_none());
    assert!(ops(&infer.graph)
        .iter()
        .all(|(_, op, _)| !matches!(op, Op::ScaleLossGrad(_) | Op::UnscaleGrads(_))));

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/alexnet.ron");
    let checked = alexc::front_end(&path, &mut |_, _, _| {}).unwrap();
    let lowering = Lowering { precision: Some(Precision::F16), devices: 2, ..Default::default() };
    let err =
        alexc::lower_with(&checked, Mode::Train, 8, &lowering, &mut |_, _, _| {}).unwrap_err().to_string();
    assert!(err.contains("f16 training on 2 devices") && err.contains("--precision bf16"), "{err}");
}
