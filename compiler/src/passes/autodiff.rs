//! Autodiff: derives the backward graph by reverse-mode differentiation — each op's gradient rule
//! from the catalog, gradients of values with several readers summed — and one optimizer update
//! per parameter, with its momentum buffer. On a placed graph each backward node runs on the device
//! of the forward node it differentiates, and each update (and its momentum) on its parameter's.

use std::collections::{BTreeMap, HashSet};

use petgraph::stable_graph::NodeIndex;

use crate::catalog::{AddN, BackwardGraph, GradCtx, GradientError, Op, SgdUpdate, State, StateKind};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{Graph, Node, Optimizer, Phase, TensorType, ValueRef};

/// The types of `inputs`, for the node `name` that reads them.
fn types_of(graph: &Graph, name: &str, inputs: &[ValueRef]) -> Result<Vec<TensorType>, GradientError> {
    inputs
        .iter()
        .map(|v| {
            graph.value_type(*v).cloned().ok_or_else(|| GradientError::UntypedInput { node: name.into() })
        })
        .collect()
}

/// Adds a node reading `inputs`, infers its types, and returns its output 0.
fn emit_node(
    graph: &mut Graph,
    name: String,
    op: Op,
    inputs: &[ValueRef],
    phase: Phase,
) -> Result<ValueRef, GradientError> {
    let types = types_of(graph, &name, inputs)?;
    let refs: Vec<_> = types.iter().collect();
    let inferred =
        op.def().infer(&refs).map_err(|e| GradientError::Shape { node: name.clone(), message: e.message })?;
    let n = graph.add_node(Node { name, op, outputs: inferred.outputs, phase, loc: None, device: 0 });
    for (port, v) in inputs.iter().enumerate() {
        graph.connect(*v, n, port as u8);
    }
    Ok(ValueRef { node: n, port: 0 })
}

/// The IR as gradient rules see it: they add their nodes through this.
struct Backward<'a>(&'a mut Graph);

impl BackwardGraph for Backward<'_> {
    fn add_backward(&mut self, name: String, op: Op, inputs: &[ValueRef]) -> Result<ValueRef, GradientError> {
        emit_node(self.0, name, op, inputs, Phase::Backward)
    }

    fn replace_forward(&mut self, node: NodeIndex, op: Op, outputs: Vec<TensorType>) {
        let node = &mut self.0.g[node];
        node.op = op;
        node.outputs = outputs;
    }
}

pub fn autodiff(graph: &mut Graph) -> Diagnostics {
    let mut diags = Diagnostics::default();
    if let Err(e) = derive(graph) {
        diags.push(
            Diagnostic::error(format!("cannot derive the backward graph: {e}"))
                .help("this is a compiler bug unless the graph uses an op without a gradient rule"),
        );
    }
    diags
}

fn derive(graph: &mut Graph) -> Result<(), GradientError> {
    let loss = graph.loss.ok_or(GradientError::NoLoss)?;
    let order = graph.topo_order();

    // Which values depend on a parameter (and so need gradients).
    let mut needs_grad: HashSet<NodeIndex> = HashSet::new();
    for &n in &order {
        let is_param = matches!(graph.g[n].op, Op::Param(_));
        if is_param || graph.inputs(n).iter().any(|v| needs_grad.contains(&v.node)) {
            needs_grad.insert(n);
        }
    }

    let mut contributions: BTreeMap<ValueRef, Vec<ValueRef>> = BTreeMap::new();
    for &n in order.iter().rev() {
        let def = graph.g[n].op.def();
        if def.is_source() || !needs_grad.contains(&n) || graph.g[n].phase != Phase::Forward {
            continue;
        }
        let is_loss = n == loss.node;
        let ports = graph.g[n].outputs.len();
        let mut out_grads = Vec::with_capacity(ports);
        for port in 0..ports {
            let v = ValueRef { node: n, port: port as u8 };
            let device = graph.g[n].device;
            out_grads.push(sum_of(graph, contributions.remove(&v).unwrap_or_default(), device)?);
        }
        if !is_loss && out_grads.iter().all(Option::is_none) {
            continue; // does not reach the loss
        }
        let inputs = graph.inputs(n);
        let wanted = inputs.iter().map(|v| needs_grad.contains(&v.node)).collect();
        let name = graph.g[n].name.clone();
        let input_types = types_of(graph, &name, &inputs)?;
        let op = graph.g[n].op.clone();
        let before: HashSet<NodeIndex> = graph.g.node_indices().collect();
        let mut ctx = GradCtx {
            graph: &mut Backward(graph),
            node: n,
            name,
            inputs: inputs.clone(),
            input_types,
            out_grads,
            wanted,
        };
        let grads = op.def().gradient(&mut ctx)?;
        on_device_of(graph, n, &before);
        for (v, g) in inputs.iter().zip(grads) {
            if let Some(g) = g {
                if needs_grad.contains(&v.node) {
                    contributions.entry(*v).or_default().push(g);
                }
            }
        }
    }

    // One update per parameter.
    let Optimizer::Sgd { .. } = graph.spec.optimizer;
    let params: Vec<_> =
        graph.node_indices().into_iter().filter(|&n| matches!(graph.g[n].op, Op::Param(_))).collect();
    for p in params {
        let v = ValueRef { node: p, port: 0 };
        let device = graph.g[p].device;
        let Some(grad) = sum_of(graph, contributions.remove(&v).unwrap_or_default(), device)? else {
            continue; // a parameter that does not reach the loss
        };
        let Op::Param(param) = graph.g[p].op.clone() else { unreachable!() };
        let name = graph.g[p].name.clone();
        let state = State { param: name.clone(), kind: StateKind::Momentum, shape: param.shape.clone() };
        let m = emit_node(graph, format!("{name}.momentum"), Op::State(state), &[], Phase::Update)?;
        let op =
            Op::SgdUpdate(SgdUpdate { lr_mult: param.lr_mult, decay_mult: param.decay_mult, guarded: false });
        let update = emit_node(graph, format!("{name}/update"), op, &[v, grad, m], Phase::Update)?;
        graph.g[m.node].device = device;
        graph.g[update.node].device = device;
    }
    Ok(())
}

/// Puts the nodes added since `before` on the device of forward node `n`.
fn on_device_of(graph: &mut Graph, n: NodeIndex, before: &HashSet<NodeIndex>) {
    let device = graph.g[n].device;
    let added: Vec<NodeIndex> = graph.g.node_indices().filter(|m| !before.contains(m)).collect();
    for m in added {
        graph.g[m].device = device;
    }
}

/// One gradient from several contributions: the value itself, or their sum (on `device`).
fn sum_of(
    graph: &mut Graph,
    mut parts: Vec<ValueRef>,
    device: u8,
) -> Result<Option<ValueRef>, GradientError> {
    match parts.len() {
        0 => Ok(None),
        1 => Ok(parts.pop()),
        _ => {
            parts.sort();
            let name = format!("{}/grad_sum", graph.value_name(parts[0]));
            let sum = emit_node(graph, name, Op::AddN(AddN), &parts, Phase::Backward)?;
            graph.g[sum.node].device = device;
            Ok(Some(sum))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Op, StateKind};
    use crate::ir::Mode;

    #[test]
    fn every_momentum_buffer_names_its_parameter_and_has_its_shape() {
        let text = include_str!("../../../graphs/tiny.ron");
        let checked = crate::front_end_str(text, "tiny.ron", &mut |_, _, _| {}).unwrap();
        let graph = crate::lower(&checked, Mode::Train, 4, &mut |_, _, _| {}).unwrap().graph;
        let params: Vec<_> =
            graph.node_indices().into_iter().filter(|&n| matches!(graph.g[n].op, Op::Param(_))).collect();
        let mut states = 0;
        for n in graph.node_indices() {
            let Op::State(state) = &graph.g[n].op else { continue };
            states += 1;
            let p = graph.find(&state.param).expect("the state names a node");
            let Op::Param(param) = &graph.g[p].op else { panic!("`{}` is not a parameter", state.param) };
            assert_eq!(state.kind, StateKind::Momentum);
            assert_eq!(state.shape, param.shape);
            assert_eq!(
                graph.g[n].name,
                format!("{}.momentum", state.param),
                "checkpoints store it by this name"
            );
        }
        assert_eq!(states, params.len(), "one momentum buffer per parameter");
    }
}
