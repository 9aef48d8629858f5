//! Validate: checks that need the whole graph but no shapes — cycles, reachability of the loss.
//! Reports every problem it finds, and the cycles as data too: shape inference means nothing on a
//! cyclic graph, so the driver skips it when there are any. (The training settings are checked
//! where the graph file is read, by `build`.)

use petgraph::algo::tarjan_scc;

use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::Graph;

/// What validation found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validation {
    /// Every problem, located, each with its fix (one error per cycle among them).
    pub diagnostics: Diagnostics,
    /// The cycles of the graph, each as the layers it runs through in node order.
    pub cycles: Vec<Vec<String>>,
}

pub fn validate(graph: &Graph) -> Validation {
    let mut diagnostics = Diagnostics::default();
    let cycles = check_cycles(graph, &mut diagnostics);
    check_unused(graph, &mut diagnostics);
    Validation { diagnostics, cycles }
}

fn check_cycles(graph: &Graph, diags: &mut Diagnostics) -> Vec<Vec<String>> {
    let mut cycles = Vec::new();
    for scc in tarjan_scc(&graph.g) {
        let is_cycle = scc.len() > 1 || graph.g.contains_edge(scc[0], scc[0]);
        if !is_cycle {
            continue;
        }
        let mut members: Vec<_> = scc.clone();
        members.sort();
        // Name layers, not the nodes they expanded into (`conv2.bias_add` is part of `conv2`).
        let mut names: Vec<String> = Vec::new();
        for &n in &members {
            let layer = graph.layer_of(n).map_or(&graph.g[n].name, |l| &l.name);
            if !names.contains(layer) {
                names.push(layer.clone());
            }
        }
        let first = &graph.g[members[0]];
        diags.push(
            Diagnostic::error(format!("the nodes {} form a cycle", names.join(" -> ")))
                .at(first.loc)
                .node(&first.name)
                .help("a network is a directed acyclic graph: make one of these read an earlier node"),
        );
        cycles.push(names);
    }
    cycles
}

fn check_unused(graph: &Graph, diags: &mut Diagnostics) {
    let Some(loss) = graph.loss else { return };
    let mut reaches = std::collections::HashSet::new();
    let mut stack = vec![loss.node];
    while let Some(n) = stack.pop() {
        if reaches.insert(n) {
            stack.extend(graph.g.neighbors_directed(n, petgraph::Direction::Incoming));
        }
    }
    for layer in &graph.layers {
        if !reaches.contains(&layer.output.node) {
            let head = &graph.g[layer.nodes[0]];
            diags.push(
                Diagnostic::warning("this node does not contribute to the loss")
                    .at(head.loc)
                    .node(&layer.name)
                    .help("remove it, or make a node on the path to the loss read it"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cycle_is_reported_as_the_layers_it_runs_through() {
        let text = include_str!("../../../tests/malformed/cycle.ron");
        let parsed = crate::ast::parse_str(text, "cycle.ron").unwrap();
        let (graph, _) = super::super::build(&parsed);
        let validation = super::validate(&graph);
        assert_eq!(validation.cycles, vec![vec!["conv2".to_string(), "relu2".to_string()]]);
        assert_eq!(validation.diagnostics.errors().count(), 1, "{}", validation.diagnostics);
    }

    #[test]
    fn an_acyclic_graph_has_no_cycles() {
        let text = include_str!("../../../graphs/tiny.ron");
        let parsed = crate::ast::parse_str(text, "tiny.ron").unwrap();
        let (graph, _) = super::super::build(&parsed);
        assert!(super::validate(&graph).cycles.is_empty());
    }
}
