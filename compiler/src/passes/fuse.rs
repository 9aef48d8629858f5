//! Fuse: groups nodes by fusion class, as TVM's FuseOps does. An out-elementwise-fusable op
//! (convolution, matmul, their data gradients, the LRN and pooling gradients) absorbs the chain of
//! elementwise ops that alone read its result: conv + bias + ReLU and linear + bias + ReLU in the
//! forward pass, and the ReLU mask folded into the producer of the gradient in the backward pass.
//!
//! A window op that can read its input through such a chain's elementwise tail (the catalog's
//! `fuses_into_producer`: LRN) then joins the group as one more output: conv + bias + ReLU + LRN
//! is one node whose kernel computes the ReLU per read of the window. The ReLU's own result stays
//! an output of the group only while something else (the backward pass) reads it.

use petgraph::algo::has_path_connecting;
use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::catalog::{FusedInput, FusedOp, FusedStep, FusionClass, Op};
use crate::ir::{Graph, Node, ValueRef};

/// Node counts before and after fusion (computed nodes only: no parameters or inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusionStats {
    pub before: usize,
    pub after: usize,
}

pub fn fuse(graph: &mut Graph) -> FusionStats {
    let before = graph.compute_nodes().len();
    for root in graph.topo_order() {
        if !graph.g.contains_node(root)
            || graph.g[root].op.def().fusion_class() != FusionClass::OutElementwiseFusable
            || matches!(graph.g[root].op, Op::Fused(_))
        {
            continue;
        }
        let mut chain = vec![root];
        while let Some(next) = absorbable(graph, *chain.last().unwrap(), root) {
            chain.push(next);
        }
        if chain.len() == 1 {
            continue;
        }
        if let Some(window) = window_reader(graph, *chain.last().unwrap()) {
            chain.push(window);
        }
        replace_with_fused(graph, &chain);
    }
    FusionStats { before, after: graph.compute_nodes().len() }
}

/// The elementwise node that alone reads `last`'s single output, if it can join `root`'s group.
fn absorbable(graph: &Graph, last: NodeIndex, root: NodeIndex) -> Option<NodeIndex> {
    if graph.g[last].outputs.len() != 1 {
        return None;
    }
    let v = ValueRef { node: last, port: 0 };
    let uses: Vec<_> = graph.g.edges_directed(last, Direction::Outgoing).collect();
    let [only] = uses.as_slice() else { return None };
    let next = only.target();
    let node = &graph.g[next];
    if node.op.def().fusion_class() != FusionClass::Elementwise
        || node.phase != graph.g[root].phase
        || node.outputs.len() != 1
        || Some(v) == graph.loss
        || Some(v) == graph.logits
    {
        return None;
    }
    // Its other inputs must not depend on the group, or fusing would make a cycle.
    let ok =
        graph.inputs(next).iter().filter(|i| i.node != last).all(|i| {
            graph.g[i.node].op.def().is_source() || !has_path_connecting(&graph.g, root, i.node, None)
        });
    ok.then_some(next)
}

/// A window op (LRN) in `tail`'s phase that reads `tail`'s single output as its only input.
fn window_reader(graph: &Graph, tail: NodeIndex) -> Option<NodeIndex> {
    if graph.g[tail].outputs.len() != 1 {
        return None;
    }
    graph.g.edges_directed(tail, Direction::Outgoing).map(|e| e.target()).find(|&n| {
        let node = &graph.g[n];
        node.op.def().fuses_into_producer()
            && node.phase == graph.g[tail].phase
            && node.outputs.len() == 1
            && graph.inputs(n).len() == 1
    })
}

/// Replaces `chain` (each node reading the one before) with one fused node. Its outputs are the
/// last node's, then every other chain value that something outside the chain still reads.
fn replace_with_fused(graph: &mut Graph, chain: &[NodeIndex]) {
    let mut externals: Vec<ValueRef> = Vec::new();
    let mut steps = Vec::new();
    for (s, &n) in chain.iter().enumerate() {
        let inputs = graph
            .inputs(n)
            .into_iter()
            .map(|v| match chain.iter().position(|&c| c == v.node) {
                Some(st) if st < s => FusedInput::Step(st, v.port),
                _ => {
                    let i = externals.iter().position(|e| *e == v).unwrap_or_else(|| {
                        externals.push(v);
                        externals.len() - 1
                    });
                    FusedInput::External(i)
                }
            })
            .collect();
        steps.push(FusedStep { op: graph.g[n].op.clone(), inputs });
    }
    let last = *chain.last().unwrap();
    let mut visible = vec![(chain.len() - 1, ValueRef { node: last, port: 0 })];
    for (s, &n) in chain.iter().enumerate().take(chain.len() - 1) {
        let v = ValueRef { node: n, port: 0 };
        let outside = graph.g.edges_directed(n, Direction::Outgoing).any(|e| !chain.contains(&e.target()));
        if outside || graph.loss == Some(v) || graph.logits == Some(v) {
            visible.push((s, v));
        }
    }
    let head = &graph.g[chain[0]];
    let fused = Node {
        name: graph.g[last].name.clone(),
        op: Op::Fused(FusedOp { steps, outputs: visible.iter().map(|&(s, v)| (s, v.port)).collect() }),
        outputs: visible.iter().map(|(_, v)| graph.g[v.node].outputs[v.port as usize].clone()).collect(),
        phase: head.phase,
        loc: head.loc,
        device: head.device,
    };
    let new = graph.add_node(fused);
    for (port, v) in externals.iter().enumerate() {
        graph.connect(*v, new, port as u8);
    }
    for (port, &(_, old)) in visible.iter().enumerate() {
        graph.redirect(old, ValueRef { node: new, port: port as u8 }, chain);
    }
    for layer in &mut graph.layers {
        if layer.nodes.iter().any(|n| chain.contains(n)) {
            layer.nodes.retain(|n| !chain.contains(n));
            if !layer.nodes.contains(&new) {
                layer.nodes.push(new);
            }
        }
    }
    for &n in chain {
        graph.g.remove_node(n);
    }
}
