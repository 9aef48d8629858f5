//! The schedule: empty until the schedule pass; then every computed node runs exactly once, no
//! source runs, each node after its producers, and each op that overwrites an input (the optimizer
//! update) after every other reader of that input.

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;

use super::{Stage, Violations};
use crate::ir::Graph;

pub(super) fn check(graph: &Graph, stage: Stage, found: &mut Violations) {
    if !stage.scheduled {
        if !graph.schedule.is_empty() {
            found.other("the schedule", "is set before the schedule pass ran");
        }
        return;
    }
    let mut step_of: HashMap<NodeIndex, usize> = HashMap::new();
    for (i, &n) in graph.schedule.iter().enumerate() {
        let entity = format!("schedule step {i}");
        if !graph.g.contains_node(n) {
            found.other(entity, format!("names node {}, which does not exist", n.index()));
        } else if graph.g[n].op.def().is_source() {
            found.other(entity, format!("runs {}, which is not computed", super::node_name(graph, n)));
        } else if let Some(first) = step_of.insert(n, i) {
            found.other(entity, format!("runs {} twice (first at step {first})", super::node_name(graph, n)));
        }
    }
    for n in graph.compute_nodes() {
        let Some(&step) = step_of.get(&n) else {
            found.node(graph, n, "is computed, but the schedule never runs it");
            continue;
        };
        for p in graph.g.neighbors_directed(n, Direction::Incoming) {
            if step_of.get(&p).is_some_and(|&at| at >= step) {
                found.node(graph, n, format!("runs before its input {}", super::node_name(graph, p)));
            }
        }
        let ins = graph.inputs(n);
        for &w in graph.g[n].op.def().writes_inputs() {
            let Some(&v) = ins.get(w) else { continue };
            for reader in graph.consumers(v).into_iter().filter(|&r| r != n) {
                if step_of.get(&reader).is_some_and(|&at| at > step) {
                    found.node(
                        graph,
                        n,
                        format!(
                            "overwrites `{}` before {} reads it",
                            graph.value_name(v),
                            super::node_name(graph, reader)
                        ),
                    );
                }
            }
        }
    }
}
