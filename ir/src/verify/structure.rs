//! The graph's structure: edges, input ports and arities, fused nodes' steps, and the values the
//! graph names (loss, logits, layers).

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;

use super::{Stage, Violations};
use crate::catalog::{FusedInput, FusedOp, Op};
use crate::ir::{Graph, ValueRef};

/// What the structure check found broken, so that the later checks do not report it again.
#[derive(Default)]
pub(super) struct Broken {
    /// Nodes whose own inputs are broken (their types cannot be checked).
    pub nodes: std::collections::HashSet<NodeIndex>,
    /// An edge joins a missing node: walking the graph's edges is not safe.
    pub edges: bool,
}

/// Checks the structure; what it found broken.
pub(super) fn check(graph: &Graph, stage: Stage, found: &mut Violations) -> Broken {
    let mut broken = Broken::default();
    for e in (&graph.g).edge_references() {
        let (src, dst) = (e.source(), e.target());
        if !graph.g.contains_node(src) || !graph.g.contains_node(dst) {
            found.other(format!("edge {}", e.id().index()), "joins a missing node");
            broken.edges = true;
            continue;
        }
        let outputs = graph.g[src].outputs.len();
        if stage.typed && usize::from(e.weight().src_port) >= outputs {
            broken.nodes.insert(dst);
            found.node(
                graph,
                dst,
                format!(
                    "an edge reads output {} of {}, which has {outputs} output(s)",
                    e.weight().src_port,
                    super::node_name(graph, src)
                ),
            );
        }
    }
    for n in graph.g.node_indices() {
        let before = found.len();
        inputs(graph, n, found);
        if found.len() > before {
            broken.nodes.insert(n);
        }
    }
    for (what, v) in [("the loss", graph.loss), ("the logits", graph.logits)] {
        if let Some(v) = v.filter(|v| !exists(graph, *v, stage)) {
            found.other(what, format!("names value {}:{}, which does not exist", v.node.index(), v.port));
        }
    }
    // A layer's `output` is not checked: it names the value the graph file declared, which fusion
    // may have folded into a group (no pass or runtime reads it after fusion).
    for layer in &graph.layers {
        if let Some(n) = layer.nodes.iter().chain(&layer.params).find(|&&n| !graph.g.contains_node(n)) {
            found.other(
                format!("layer `{}`", layer.name),
                format!("names node {}, which does not exist", n.index()),
            );
        }
    }
    broken
}

/// Whether `v` is an output of an existing node (any port of one, before shapes are inferred).
pub(super) fn exists(graph: &Graph, v: ValueRef, stage: Stage) -> bool {
    graph.g.contains_node(v.node) && (!stage.typed || usize::from(v.port) < graph.g[v.node].outputs.len())
}

/// Node `n` reads input ports `0..k` once each, `k` its op's arity; a fused node's steps hold.
fn inputs(graph: &Graph, n: NodeIndex, found: &mut Violations) {
    let mut ports: Vec<u8> =
        graph.g.edges_directed(n, Direction::Incoming).map(|e| e.weight().dst_port).collect();
    ports.sort_unstable();
    if ports.iter().enumerate().any(|(i, &p)| usize::from(p) != i) {
        found.node(graph, n, format!("reads input ports {ports:?}, not 0, 1, 2, ... once each"));
        return;
    }
    let def = graph.g[n].op.def();
    let arity = def.arity();
    if arity.is_some_and(|a| a != ports.len()) || (arity.is_none() && ports.is_empty()) {
        found.node(
            graph,
            n,
            format!(
                "has {} input(s), but its op takes {} ({})",
                ports.len(),
                arity.map_or("at least 1".to_string(), |a| a.to_string()),
                def.name()
            ),
        );
    }
    if let Op::Fused(f) = &graph.g[n].op {
        fused(graph, n, f, ports.len(), found);
    }
}

fn fused(graph: &Graph, n: NodeIndex, f: &FusedOp, inputs: usize, found: &mut Violations) {
    if f.steps.is_empty() || f.outputs.is_empty() {
        found.node(graph, n, "is a fused node with no steps or no outputs");
        return;
    }
    let typed = graph.g[n].outputs.len();
    if typed != 0 && f.outputs.len() != typed {
        found.node(
            graph,
            n,
            format!("is a fused node of {} outputs with {typed} output types", f.outputs.len()),
        );
    }
    for (s, step) in f.steps.iter().enumerate() {
        if matches!(step.op, Op::Fused(_)) {
            found.node(graph, n, format!("nests a fused op in step {s}"));
        }
        for input in &step.inputs {
            let ok = match *input {
                FusedInput::External(e) => e < inputs,
                FusedInput::Step(st, _) => st < s,
            };
            if !ok {
                found.node(graph, n, format!("step {s} reads {input:?}, which does not exist"));
            }
        }
    }
    if let Some(&(s, p)) = f.outputs.iter().find(|(s, _)| *s >= f.steps.len()) {
        found.node(graph, n, format!("outputs step {s} port {p}, which does not exist"));
    }
}
