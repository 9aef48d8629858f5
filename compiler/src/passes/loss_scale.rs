//! Loss scaling for an f16 training step (part of the precision pass; the ops and their arithmetic
//! are in `alexir::catalog::loss_scale`): the loss gradient goes through `scale_loss_grad`, and the
//! updates read their gradients through one `unscale_grads`, whose verdict guards every update.
//! Run before the precision pass types the step, so that the casts fall where the new nodes meet
//! the f16 values. After the all-reduce pass: the verdict is taken on the averaged gradients,
//! which every replica holds bit for bit the same, so every replica skips the same steps.

use crate::catalog::{Op, ScaleLossGrad, State, StateKind, UnscaleGrads, GROWTH_INTERVAL, LOSS_SCALE_STATE};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{DType, Graph, Node, Phase, TensorType, ValueRef};

/// The name of the state that holds the scale (checkpoints store it under this name).
pub const LOSS_SCALE: &str = "loss_scale";

/// Inserts loss scaling into a training step; a step without updates (inference) is left as it is.
/// The diagnostics say why it cannot be (nothing is changed then).
pub fn insert_loss_scaling(graph: &mut Graph) -> Diagnostics {
    let mut updates: Vec<_> =
        graph.node_indices().into_iter().filter(|&n| matches!(graph.g[n].op, Op::SgdUpdate(_))).collect();
    if updates.is_empty() {
        return Diagnostics::default();
    }
    if graph.devices > 1 {
        return Diagnostic::error(format!(
            "f16 training on {} devices: loss scaling would need every device's gradients on one",
            graph.devices
        ))
        .help("use `--precision bf16` (f32's range, no loss scaling needed), or one device")
        .into();
    }
    let seeds: Vec<_> = graph
        .node_indices()
        .into_iter()
        .filter(|&n| matches!(graph.g[n].op, Op::SoftmaxCrossEntropyGrad(_)))
        .collect();
    let [seed] = seeds[..] else {
        return Diagnostic::error(format!(
            "f16 loss scaling needs the one loss gradient of the step, and it has {}",
            seeds.len()
        ))
        .help("internal: autodiff seeds the backward pass once, at the softmax cross-entropy")
        .into();
    };
    let state = graph.add_node(Node {
        name: LOSS_SCALE.into(),
        op: Op::State(State {
            param: "loss".into(),
            kind: StateKind::LossScale,
            shape: vec![LOSS_SCALE_STATE],
        }),
        outputs: vec![TensorType::fixed(DType::F32, vec![LOSS_SCALE_STATE])],
        phase: Phase::Update,
        loc: None,
        device: 0,
    });
    let scale = ValueRef { node: state, port: 0 };

    // The seed's readers read it scaled.
    let dy = ValueRef { node: seed, port: 0 };
    let dy_type = graph.value_type(dy).cloned().expect("a typed loss gradient");
    let scaled = graph.add_node(Node {
        name: format!("{}/scaled", graph.g[seed].name),
        op: Op::ScaleLossGrad(ScaleLossGrad),
        outputs: vec![dy_type.with_dtype(DType::F32)],
        phase: Phase::Backward,
        loc: None,
        device: graph.g[seed].device,
    });
    graph.connect(dy, scaled, 0);
    graph.connect(scale, scaled, 1);
    graph.redirect(dy, ValueRef { node: scaled, port: 0 }, &[scaled]);

    // One unscale of every update's gradient, in the updates' name order; its verdict guards each.
    updates.sort_by(|a, b| graph.g[*a].name.cmp(&graph.g[*b].name));
    let grads: Vec<ValueRef> = updates.iter().map(|&u| graph.inputs(u)[1]).collect();
    let mut outputs: Vec<TensorType> = grads
        .iter()
        .map(|g| graph.value_type(*g).expect("a typed gradient").with_dtype(DType::F32))
        .collect();
    outputs.push(TensorType::fixed(DType::F32, vec![1]));
    let unscale = graph.add_node(Node {
        name: "grads/unscaled".into(),
        op: Op::UnscaleGrads(UnscaleGrads { growth_interval: GROWTH_INTERVAL }),
        outputs,
        phase: Phase::Update,
        loc: None,
        device: 0,
    });
    graph.connect(scale, unscale, 0);
    for (i, g) in grads.iter().enumerate() {
        graph.connect(*g, unscale, (i + 1) as u8);
    }
    let verdict = ValueRef { node: unscale, port: grads.len() as u8 };
    for (i, &u) in updates.iter().enumerate() {
        super::precision::rewire(graph, u, 1, ValueRef { node: unscale, port: i as u8 });
        graph.connect(verdict, u, 3);
        if let Op::SgdUpdate(s) = &mut graph.g[u].op {
            s.guarded = true;
        }
    }
    Diagnostics::default()
}
