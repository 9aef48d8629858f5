//! Fuse: groups nodes by fusion class, as TVM's FuseOps does. An out-elementwise-fusable op
//! (convolution, matmul, their data gradients, the LRN and pooling gradients) absorbs the chain of
//! elementwise ops that alone read its result: conv + bias + ReLU and linear + bias + ReLU in the
//! forward pass, and the ReLU mask folded into the producer of the gradient in the backward pass.

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::catalog::{FusedInput, FusedOp, FusedStep, FusionClass, Op};
use crate::ir::{Edge, Graph, Node, ValueRef};

/// Node counts before and after fusion (computed nodes only: no parameters or inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusionStats {
    pub before: usize,
    pub after: usize,
}

pub fn fuse(graph: &mut Graph) -> FusionStats {
    let before = graph.compute_nodes().len();
    let order = graph.topo_order();
    let position: std::collections::HashMap<NodeIndex, usize> =
        order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    for &root in &order {
        if !graph.g.contains_node(root)
            || graph.g[root].op.def().fusion_class() != FusionClass::OutElementwiseFusable
            || matches!(graph.g[root].op, Op::Fused(_))
        {
            continue;
        }
        let mut chain = vec![root];
        loop {
            let last = *chain.last().unwrap();
            match absorbable(graph, last, root, &position) {
                Some(next) => chain.push(next),
                None => break,
            }
        }
        if chain.len() > 1 {
            replace_with_fused(graph, &chain);
        }
    }
    FusionStats { before, after: graph.compute_nodes().len() }
}

/// The elementwise node that alone reads `last`'s single output, if it can join the group.
fn absorbable(
    graph: &Graph,
    last: NodeIndex,
    root: NodeIndex,
    position: &std::collections::HashMap<NodeIndex, usize>,
) -> Option<NodeIndex> {
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
    // Its other inputs must come before the group, or fusing would make a cycle.
    let root_pos = position[&root];
    let ok = graph.inputs(next).iter().filter(|i| i.node != last).all(|i| {
        graph.g[i.node].op.def().is_source() || position.get(&i.node).is_some_and(|p| *p < root_pos)
    });
    ok.then_some(next)
}

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
    let head = &graph.g[chain[0]];
    let fused = Node {
        name: graph.g[last].name.clone(),
        op: Op::Fused(FusedOp { steps, outputs: vec![(chain.len() - 1, 0)] }),
        outputs: graph.g[last].outputs.clone(),
        phase: head.phase,
        loc: head.loc,
    };
    let new = graph.add_node(fused);
    for (port, v) in externals.iter().enumerate() {
        graph.connect(*v, new, port as u8);
    }
    let uses: Vec<(NodeIndex, Edge)> =
        graph.g.edges_directed(last, Direction::Outgoing).map(|e| (e.target(), *e.weight())).collect();
    for (target, edge) in uses {
        graph.g.add_edge(new, target, edge);
    }
    let old_out = ValueRef { node: last, port: 0 };
    let new_out = ValueRef { node: new, port: 0 };
    for r in [&mut graph.loss, &mut graph.logits] {
        if *r == Some(old_out) {
            *r = Some(new_out);
        }
    }
    for layer in &mut graph.layers {
        if layer.output == old_out {
            layer.output = new_out;
        }
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
