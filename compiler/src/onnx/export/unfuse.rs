//! Fused nodes written back as their parts: each fused node of a plan becomes the chain of ops it
//! runs, named after the graph file's layers it came from (`conv1`, `conv1.bias_add`, `relu1`,
//! `norm1`), so that an exported plan reads like its graph file.

use crate::catalog::{FusedInput, Op};
use crate::ir::{Graph, Node, ValueRef};

/// Replaces every fused node of `graph` by its steps.
pub fn unfuse(graph: &mut Graph) -> Result<(), String> {
    for f in graph.node_indices() {
        let Op::Fused(fused) = graph.g[f].op.clone() else { continue };
        let inputs = graph.inputs(f);
        let ins: Vec<&crate::ir::TensorType> = inputs
            .iter()
            .map(|v| graph.value_type(*v))
            .collect::<Option<_>>()
            .ok_or("a fused node reads a value without a type")?;
        let types = fused.step_types(&ins).map_err(|e| e.message)?;
        let names = step_names(graph, f, &fused.steps.iter().map(|s| &s.op).collect::<Vec<_>>());
        let (phase, loc, device) = (graph.g[f].phase, graph.g[f].loc, graph.g[f].device);
        let mut made = Vec::with_capacity(fused.steps.len());
        for (i, step) in fused.steps.iter().enumerate() {
            let n = graph.add_node(Node {
                name: names[i].0.clone(),
                op: step.op.clone(),
                outputs: types[i].outputs.clone(),
                phase,
                loc,
                device,
            });
            for (port, input) in step.inputs.iter().enumerate() {
                let from = match *input {
                    FusedInput::External(e) => *inputs.get(e).ok_or("a fused step reads a missing input")?,
                    FusedInput::Step(s, p) => ValueRef { node: made[s], port: p },
                };
                graph.connect(from, n, port as u8);
            }
            made.push(n);
        }
        for (port, &(s, p)) in fused.outputs.iter().enumerate() {
            graph.redirect(ValueRef { node: f, port: port as u8 }, ValueRef { node: made[s], port: p }, &[]);
        }
        // Each layer of the fused node gets back its steps, and its output where fusion hid it
        // (a bias add read only inside the group).
        for layer in &mut graph.layers {
            let Some(at) = layer.nodes.iter().position(|&n| n == f) else { continue };
            layer.nodes.remove(at);
            let mine: Vec<_> = made
                .iter()
                .zip(&names)
                .filter(|(_, (_, owner))| owner.as_deref() == Some(layer.name.as_str()))
                .map(|(n, _)| *n)
                .collect();
            layer.nodes.extend(&mine);
            if let Some(&last) = mine.last() {
                if !graph.g.contains_node(layer.output.node) || layer.output.node == f {
                    layer.output = ValueRef { node: last, port: 0 };
                }
            }
        }
        graph.g.remove_node(f);
    }
    Ok(())
}

/// Names for the steps of fused node `f`, and the layer each belongs to: the layers of `f`, in
/// file order, each taking its op's step (and a following bias add, named `<layer>.bias_add`, as
/// `build` names it).
fn step_names(
    graph: &Graph,
    f: petgraph::stable_graph::NodeIndex,
    ops: &[&Op],
) -> Vec<(String, Option<String>)> {
    let layers: Vec<&str> =
        graph.layers.iter().filter(|l| l.nodes.contains(&f)).map(|l| l.name.as_str()).collect();
    let mut names: Vec<(String, Option<String>)> = Vec::with_capacity(ops.len());
    let mut next = layers.iter();
    for (i, op) in ops.iter().enumerate() {
        let named = match op {
            Op::BiasAdd(_) if i > 0 && matches!(ops[i - 1], Op::Conv2d(_) | Op::Linear(_)) => {
                names.last().and_then(|(_, l)| l.clone()).map(|l| (format!("{l}.bias_add"), Some(l)))
            }
            _ => next.next().map(|l| (l.to_string(), Some(l.to_string()))),
        };
        names.push(named.unwrap_or_else(|| (format!("{}.step{i}", graph.g[f].name), None)));
    }
    names
}
