//! Rematerialization of the input batch on each device: the input of a placed step stays on the
//! host ([`HOST`]), and a device that reads it in the forward pass and again in the backward pass
//! (conv1's weight gradient reads conv1's input) gets it by two transfers, one for each pass,
//! rather than holding one copy from conv1's forward to its weight gradient. Copying it again is
//! cheap next to what holding it costs: at batch 128 the input is 75.5 MiB on each device, through
//! the whole step. The scheduler runs a transfer from the host only once the other inputs of its
//! readers are ready ([`crate::passes::schedule`]), so each copy lives from just before its readers
//! to them; the per-device memory plans see two short lifetimes.

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::catalog::{Op, Transfer};
use crate::ir::{Edge, Graph, Node, Phase, HOST};

/// Gives every forward transfer from the host that backward nodes read a second transfer, in the
/// backward phase, that those nodes read instead; returns how many it added.
pub fn refetch_host_values(graph: &mut Graph) -> usize {
    let early: Vec<NodeIndex> = graph
        .node_indices()
        .into_iter()
        .filter(|&n| from_host(graph, n) && graph.g[n].phase == Phase::Forward)
        .collect();
    let mut added = 0;
    for t in early {
        let late_readers: Vec<_> = graph
            .g
            .edges_directed(t, Direction::Outgoing)
            .filter(|e| graph.g[e.target()].phase == Phase::Backward)
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        if late_readers.is_empty() {
            continue;
        }
        let source = graph.inputs(t)[0];
        let node = Node {
            name: format!("{}/refetch", graph.g[t].name),
            phase: Phase::Backward,
            ..graph.g[t].clone()
        };
        let late = graph.add_node(node);
        graph.connect(source, late, 0);
        for (edge, reader, weight) in late_readers {
            graph.g.remove_edge(edge);
            graph.g.add_edge(late, reader, Edge { src_port: 0, ..weight });
        }
        added += 1;
    }
    added
}

/// Whether `n` copies a value from the host to a device.
pub fn from_host(graph: &Graph, n: NodeIndex) -> bool {
    matches!(&graph.g[n].op, Op::Transfer(Transfer { from, .. }) if *from == HOST)
}
