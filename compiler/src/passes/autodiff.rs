//! Autodiff: derives the backward graph by reverse-mode differentiation — each op's gradient rule
//! from the catalog, gradients of values with several readers summed — and one optimizer update
//! per parameter, with its momentum buffer.

use std::collections::{BTreeMap, HashSet};

use crate::ast::OptimizerDecl;
use crate::catalog::{AddN, GradCtx, Op, SgdUpdate, State};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{Graph, Node, Phase, ValueRef};

/// Adds a node reading `inputs`, infers its types, and returns its output 0.
pub(crate) fn emit_node(
    graph: &mut Graph,
    name: String,
    op: Op,
    inputs: &[ValueRef],
    phase: Phase,
) -> Result<ValueRef, String> {
    let types: Vec<_> = inputs
        .iter()
        .map(|v| graph.value_type(*v).cloned().ok_or_else(|| format!("`{name}` reads an untyped value")))
        .collect::<Result<_, _>>()?;
    let refs: Vec<_> = types.iter().collect();
    let inferred = op.def().infer(&refs).map_err(|e| format!("`{name}`: {}", e.message))?;
    let n = graph.add_node(Node { name, op, outputs: inferred.outputs, phase, loc: None });
    for (port, v) in inputs.iter().enumerate() {
        graph.connect(*v, n, port as u8);
    }
    Ok(ValueRef { node: n, port: 0 })
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

fn derive(graph: &mut Graph) -> Result<(), String> {
    let loss = graph.loss.ok_or("the graph has no loss")?;
    let order = graph.topo_order();

    // Which values depend on a parameter (and so need gradients).
    let mut needs_grad: HashSet<petgraph::stable_graph::NodeIndex> = HashSet::new();
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
            out_grads.push(sum_of(graph, contributions.remove(&v).unwrap_or_default())?);
        }
        if !is_loss && out_grads.iter().all(Option::is_none) {
            continue; // does not reach the loss
        }
        let inputs = graph.inputs(n);
        let wanted = inputs.iter().map(|v| needs_grad.contains(&v.node)).collect();
        let mut ctx = GradCtx { graph, node: n, inputs: inputs.clone(), out_grads, wanted };
        let op = ctx.graph.g[n].op.clone();
        let grads = op.def().gradient(&mut ctx)?;
        for (v, g) in inputs.iter().zip(grads) {
            if let Some(g) = g {
                if needs_grad.contains(&v.node) {
                    contributions.entry(*v).or_default().push(g);
                }
            }
        }
    }

    // One update per parameter.
    let OptimizerDecl::Sgd { .. } = graph.spec.optimizer;
    let params: Vec<_> =
        graph.node_indices().into_iter().filter(|&n| matches!(graph.g[n].op, Op::Param(_))).collect();
    for p in params {
        let v = ValueRef { node: p, port: 0 };
        let Some(grad) = sum_of(graph, contributions.remove(&v).unwrap_or_default())? else {
            continue; // a parameter that does not reach the loss
        };
        let Op::Param(param) = graph.g[p].op.clone() else { unreachable!() };
        let name = graph.g[p].name.clone();
        let momentum = graph.add_node(Node {
            name: format!("{name}.momentum"),
            op: Op::State(State { shape: param.shape.clone() }),
            outputs: Vec::new(),
            phase: Phase::Update,
            loc: None,
        });
        graph.g[momentum].outputs = graph.g[momentum].op.def().infer(&[]).unwrap().outputs;
        let op = Op::SgdUpdate(SgdUpdate { lr_mult: param.lr_mult, decay_mult: param.decay_mult });
        let m = ValueRef { node: momentum, port: 0 };
        emit_node(graph, format!("{name}/update"), op, &[v, grad, m], Phase::Update)?;
    }
    Ok(())
}

/// One gradient from several contributions: the value itself, or their sum.
fn sum_of(graph: &mut Graph, mut parts: Vec<ValueRef>) -> Result<Option<ValueRef>, String> {
    match parts.len() {
        0 => Ok(None),
        1 => Ok(parts.pop()),
        _ => {
            parts.sort();
            let name = format!("{}/grad_sum", graph.value_name(parts[0]));
            emit_node(graph, name, Op::AddN(AddN), &parts, Phase::Backward).map(Some)
        }
    }
}
