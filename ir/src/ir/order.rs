//! The order the text form lists nodes in, and the graph renumbered to it. The driver renumbers
//! the IR after every pass, so a node's number is its line in the dump: a graph read back from
//! its text ([`super::read_graph`]) is numbered as the pipeline's own, and a pass whose ties fall
//! to node numbers (the scheduler's) does the same on both.

use std::collections::HashMap;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use super::{Graph, ValueRef};

impl Graph {
    /// The nodes in the order the text form lists them: the sources in node order, then the
    /// computed nodes in schedule order once there is one, else in topological order, phase by
    /// phase.
    pub fn print_order(&self) -> Vec<NodeIndex> {
        let is_source = |n: &NodeIndex| self.g[*n].op.def().is_source();
        let computed: Vec<NodeIndex> = if self.schedule.is_empty() {
            // Phase by phase (still a topological order: no phase reads a later one).
            let mut order = self.topo_order();
            order.sort_by_key(|n| self.g[*n].phase as u8);
            order
        } else {
            self.schedule.clone()
        };
        let mut order: Vec<NodeIndex> = self.node_indices().into_iter().filter(is_source).collect();
        order.extend(computed.into_iter().filter(|n| !is_source(n)));
        order
    }

    /// Renumbers the nodes `0..n` in [`Graph::print_order`], with no vacant numbers; the edges (in
    /// the order the text lists them), the loss and logits, the layers and the schedule follow. A layer's output
    /// whose node fusion folded away stays dangling ([`NodeIndex::end`]). A graph with a cycle,
    /// which has no such order, is left as it is.
    pub fn renumber(&mut self) {
        let order = self.print_order();
        if order.len() != self.g.node_count() {
            return;
        }
        let new_of: HashMap<NodeIndex, NodeIndex> =
            order.iter().enumerate().map(|(i, &n)| (n, NodeIndex::new(i))).collect();
        let map = |n: NodeIndex| new_of.get(&n).copied().unwrap_or(NodeIndex::end());
        let map_value = |v: ValueRef| ValueRef { node: map(v.node), port: v.port };
        let mut g = StableDiGraph::with_capacity(order.len(), self.g.edge_count());
        for &n in &order {
            g.add_node(self.g[n].clone());
        }
        // Edges as the text lists them (each node's inputs in port order), as a reader adds them.
        let mut edges: Vec<(NodeIndex, u8, NodeIndex, super::Edge)> = (&self.g)
            .edge_references()
            .filter_map(|e| {
                Some((*new_of.get(&e.target())?, e.weight().dst_port, *new_of.get(&e.source())?, *e.weight()))
            })
            .collect();
        edges.sort_by_key(|&(t, port, _, _)| (t, port));
        for (t, _, s, w) in edges {
            g.add_edge(s, t, w);
        }
        self.g = g;
        self.loss = self.loss.map(map_value);
        self.logits = self.logits.map(map_value);
        for layer in &mut self.layers {
            layer.output = map_value(layer.output);
            layer.nodes = layer.nodes.iter().map(|&n| map(n)).collect();
            layer.params = layer.params.iter().map(|&n| map(n)).collect();
        }
        self.schedule = self.schedule.iter().map(|&n| map(n)).collect();
    }
}
