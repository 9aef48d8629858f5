//! Split grouped convolutions: a lowering for devices where a convolution library runs `g`
//! ungrouped convolutions faster than one grouped one (`alexrt check-kernels` measures it). Runs
//! after autodiff, so the backward convolutions are explicit nodes and are split the same way:
//!
//! ```text
//! conv2d g=G (x, w)                 -> concat_C( conv2d g=1 (slice_C(x, i), slice_O(w, i)) )
//! conv2d_backward_data g=G (dy, w)  -> concat_C( conv2d_backward_data g=1 (slice_O(dy, i), slice_O(w, i)) )
//! conv2d_backward_weight g=G (x, dy)-> concat_O( conv2d_backward_weight g=1 (slice_C(x, i), slice_O(dy, i)) )
//! ```
//!
//! Slices are views; the concatenation keeps the original node's name, so every reader and the
//! rest of the pipeline see the same value. It leads a fused group in the fuse pass like the
//! convolution did (bias + ReLU + LRN after it).

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;

use crate::catalog::{Concat, Conv2d, Conv2dBackwardData, Conv2dBackwardWeight, ConvAttrs, Op, Slice};
use crate::ir::{Graph, Node, Phase, ValueRef};

/// Splits every grouped convolution of `graph`; returns how many nodes were split.
pub fn split_grouped_convs(graph: &mut Graph) -> usize {
    let grouped: Vec<NodeIndex> = graph
        .node_indices()
        .into_iter()
        .filter(|&n| attrs_of(&graph.g[n].op).is_some_and(|a| a.groups > 1))
        .collect();
    // Slices are shared: the forward convolution and the weight gradient slice the same input,
    // the forward convolution and the data gradient the same weight.
    let mut slices = HashMap::new();
    for &n in &grouped {
        split(graph, n, &mut slices);
    }
    grouped.len()
}

fn attrs_of(op: &Op) -> Option<&ConvAttrs> {
    match op {
        Op::Conv2d(c) => Some(&c.0),
        Op::Conv2dBackwardData(c) => Some(&c.attrs),
        Op::Conv2dBackwardWeight(c) => Some(&c.0),
        _ => None,
    }
}

/// Adds `op` reading `inputs`, typed by the catalog, and returns its output.
fn add(graph: &mut Graph, like: NodeIndex, name: String, op: Op, inputs: &[ValueRef]) -> ValueRef {
    let types: Vec<_> = inputs.iter().map(|v| graph.value_type(*v).cloned().expect("typed input")).collect();
    let refs: Vec<_> = types.iter().collect();
    let outputs = op.def().infer(&refs).expect("a split of a well-typed convolution is well typed").outputs;
    let (phase, loc, device) = (graph.g[like].phase, graph.g[like].loc, graph.g[like].device);
    let node = graph.add_node(Node { name, op, outputs, phase, loc, device });
    for (port, v) in inputs.iter().enumerate() {
        graph.connect(*v, node, port as u8);
    }
    ValueRef { node, port: 0 }
}

/// A slice already made: (value, start, len) to the slice's value.
type Slices = HashMap<(ValueRef, usize, usize), ValueRef>;

fn split(graph: &mut Graph, n: NodeIndex, slices: &mut Slices) {
    let op = graph.g[n].op.clone();
    let name = graph.g[n].name.clone();
    let ins = graph.inputs(n);
    let a = attrs_of(&op).expect("a convolution").clone();
    let g = a.groups;
    let one = ConvAttrs { groups: 1, out_channels: a.out_channels / g, ..a.clone() };
    let (o, c) = (a.out_channels / g, graph.value_type(ins[0]).expect("typed").dims[0] / g);
    let mut created = Vec::new();
    // Batched values slice dimension 1 (channels); weights their dimension 0 (outputs). A slice
    // runs in its source's phase: a forward value's slice is there for the forward pass too.
    let mut slice = |graph: &mut Graph, v: ValueRef, what: &str, i: usize, len: usize| {
        if let Some(s) = slices.get(&(v, i * len, len)) {
            return *s;
        }
        let dim = usize::from(graph.value_type(v).expect("typed").batched);
        let op = Op::Slice(Slice { dim, start: i * len, len });
        let s = add(graph, n, format!("{name}/{what}.g{i}"), op, &[v]);
        let source = &graph.g[v.node];
        graph.g[s.node].phase = if source.op.def().is_source() { Phase::Forward } else { source.phase };
        slices.insert((v, i * len, len), s);
        created.push(s.node);
        s
    };
    let mut parts = Vec::with_capacity(g);
    for i in 0..g {
        let (part_op, inputs) = match &op {
            Op::Conv2d(_) => (
                Op::Conv2d(Conv2d(one.clone())),
                [slice(graph, ins[0], "x", i, c), slice(graph, ins[1], "w", i, o)],
            ),
            Op::Conv2dBackwardData(d) => (
                Op::Conv2dBackwardData(Conv2dBackwardData { attrs: one.clone(), input_hw: d.input_hw }),
                [slice(graph, ins[0], "dy", i, o), slice(graph, ins[1], "w", i, o)],
            ),
            Op::Conv2dBackwardWeight(_) => (
                Op::Conv2dBackwardWeight(Conv2dBackwardWeight(one.clone())),
                [slice(graph, ins[0], "x", i, c), slice(graph, ins[1], "dy", i, o)],
            ),
            _ => unreachable!("attrs_of admits convolutions only"),
        };
        parts.push(add(graph, n, format!("{name}.g{i}"), part_op, &inputs));
    }
    // The concatenation takes the node's place: its name, its readers, its layer.
    let dim = usize::from(graph.value_type(parts[0]).expect("typed").batched);
    let joined = add(graph, n, name, Op::Concat(Concat { dim }), &parts);
    created.extend(parts.iter().map(|p| p.node));
    created.push(joined.node);
    graph.redirect(ValueRef { node: n, port: 0 }, joined, &[]);
    for layer in &mut graph.layers {
        if let Some(at) = layer.nodes.iter().position(|&m| m == n) {
            layer.nodes.remove(at);
            layer.nodes.extend(&created);
        }
    }
    graph.g.remove_node(n);
    // The index may be reused: forget slices of the removed node's value.
    slices.retain(|(v, _, _), _| v.node != n);
}
