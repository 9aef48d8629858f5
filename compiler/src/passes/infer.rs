//! Infer shapes: every value's type, from the input forwards, by the catalog's shape rules.
//! Parameter shapes follow from the layer they feed. All shape errors are reported together;
//! nodes downstream of an error are skipped, and so are nodes whose inputs build could not connect
//! (a misspelled or missing input, reported there): a shape rule only sees a node wired in full.

use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;

use crate::catalog::Op;
use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::{Graph, TensorType};

pub fn infer_shapes(graph: &mut Graph) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for n in graph.topo_order() {
        if !wired_in_full(graph, n) {
            continue; // an input build could not connect: reported there
        }
        let inputs = graph.inputs(n);
        // Parameters take the shape their consumer needs.
        let mut oversized = false;
        for (port, v) in inputs.iter().enumerate() {
            if let Op::Param(p) = &graph.g[v.node].op {
                if p.shape.is_empty() {
                    let known: Vec<Option<&TensorType>> =
                        inputs.iter().map(|i| graph.value_type(*i)).collect();
                    if let Some(shape) = graph.g[n].op.def().param_shape(port, &known) {
                        if elements(&shape).is_none() {
                            let layer = graph.layer_of(n).map_or(&graph.g[n].name, |l| &l.name);
                            let what = format!("parameter `{}` of shape {shape:?}", graph.g[v.node].name);
                            diags.push(too_large(&what).at(graph.g[n].loc).node(layer));
                            oversized = true;
                            continue;
                        }
                        if let Op::Param(p) = &mut graph.g[v.node].op {
                            p.shape = shape;
                        }
                        let inferred = graph.g[v.node].op.def().infer(&[]).expect("params always infer");
                        graph.g[v.node].outputs = inferred.outputs;
                    }
                }
            }
        }
        if oversized || matches!(graph.g[n].op, Op::Param(_)) {
            continue; // inferred with its consumer, or too large (reported)
        }
        // Diagnostics name the declared layer, not the node it expanded into (`conv1.bias_add`).
        let layer = graph.layer_of(n).map_or(&graph.g[n].name, |l| &l.name).clone();
        let node = &graph.g[n];
        let is_param = |v: &crate::ir::ValueRef| matches!(graph.g[v.node].op, Op::Param(_));
        if inputs.iter().any(|v| !is_param(v) && graph.value_type(*v).is_none()) {
            continue; // upstream failed
        }
        let types: Vec<TensorType> = inputs.iter().filter_map(|v| graph.value_type(*v).cloned()).collect();
        if types.len() < inputs.len() {
            // A parameter could not be shaped: the data input does not suit the op. Its shape
            // rule, given the data inputs alone, says why.
            let data: Vec<&TensorType> = types.iter().collect();
            let e = match node.op.def().infer(&data) {
                Err(e) => e,
                Ok(_) => crate::catalog::ShapeError::new(
                    "cannot infer the shape of this layer's parameters from its input",
                    "check the input of this layer",
                ),
            };
            diags.push(Diagnostic::error(e.message).at(node.loc).node(&layer).help(e.help));
            continue;
        }
        if node.op.def().arity().is_some_and(|a| a != types.len()) {
            continue; // miswired: reported by build
        }
        let refs: Vec<&TensorType> = types.iter().collect();
        match node.op.def().infer(&refs) {
            Ok(inferred) => {
                if let Some(t) = inferred.outputs.iter().find(|t| elements(&t.dims).is_none()) {
                    let what = format!("output {t}");
                    diags.push(too_large(&what).at(node.loc).node(&layer));
                    continue;
                }
                for (message, help) in inferred.warnings {
                    diags.push(Diagnostic::warning(message).at(node.loc).node(&layer).help(help));
                }
                graph.g[n].outputs = inferred.outputs;
            }
            Err(e) => diags.push(Diagnostic::error(e.message).at(node.loc).node(&layer).help(e.help)),
        }
    }
    set_fan_in(graph);
    diags
}

/// The most elements a value may hold per sample (a parameter: in all), 2^32: far beyond any
/// network this compiler is for, and small enough that byte counts at any batch stay exact.
pub const MAX_ELEMENTS: u64 = 1 << 32;

/// The element count of `dims`, if it is at most [`MAX_ELEMENTS`].
fn elements(dims: &[usize]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).filter(|&e| e <= MAX_ELEMENTS)
}

fn too_large(what: &str) -> Diagnostic {
    Diagnostic::error(format!("the {what} holds more than 2^32 elements per sample"))
        .help("check the sizes: the input's height and width, out_channels, out_features, kernel, padding")
}

/// Whether node `n` reads exactly input ports `0..arity` (`0..k`, `k >= 1`, for any-arity ops),
/// each once.
fn wired_in_full(graph: &Graph, n: NodeIndex) -> bool {
    let mut ports: Vec<u8> =
        graph.g.edges_directed(n, Direction::Incoming).map(|e| e.weight().dst_port).collect();
    ports.sort_unstable();
    let contiguous = ports.iter().enumerate().all(|(i, &p)| usize::from(p) == i);
    match graph.g[n].op.def().arity() {
        Some(arity) => contiguous && ports.len() == arity,
        None => contiguous && !ports.is_empty(),
    }
}

/// Each parameter's fan-in: a weight's from its shape, a bias's from its layer's weight.
fn set_fan_in(graph: &mut Graph) {
    for layer in graph.layers.clone() {
        let mut weight_fan_in = 0;
        for &p in &layer.params {
            if let Op::Param(param) = &mut graph.g[p].op {
                if param.role == crate::catalog::ParamRole::Weight && !param.shape.is_empty() {
                    weight_fan_in = param.shape[1..].iter().product();
                }
            }
        }
        for &p in &layer.params {
            if let Op::Param(param) = &mut graph.g[p].op {
                param.fan_in = weight_fan_in;
            }
        }
    }
}
