//! Types: every node's output types (shape and element type) follow from its inputs' types by its
//! op's shape rule, and every optimizer update's gradient has its parameter's type.

use super::Violations;
use crate::ir::{Graph, TensorType};

/// Checks every node but the `broken` ones (whose inputs are already reported).
pub(super) fn check(
    graph: &Graph,
    broken: &std::collections::HashSet<petgraph::stable_graph::NodeIndex>,
    found: &mut Violations,
) {
    for n in graph.node_indices().into_iter().filter(|n| !broken.contains(n)) {
        let node = &graph.g[n];
        let ins = graph.inputs(n);
        let types: Option<Vec<&TensorType>> = ins.iter().map(|v| graph.value_type(*v)).collect();
        let Some(types) = types else {
            found.node(graph, n, "reads a value that has no type");
            continue;
        };
        match node.op.def().infer(&types) {
            Ok(inferred) if inferred.outputs == node.outputs => {}
            Ok(inferred) => found.node(
                graph,
                n,
                format!(
                    "holds types [{}] but its shape rule gives [{}]",
                    list(&node.outputs),
                    list(&inferred.outputs)
                ),
            ),
            Err(e) => found.node(graph, n, format!("fails its shape rule: {}", e.message)),
        }
        if let Some(g) = node.op.def().gradient_input() {
            if let (Some(p), Some(gt)) = (types.first(), types.get(g)) {
                if p != gt {
                    found.node(
                        graph,
                        n,
                        format!(
                            "updates `{}` of type {p} with a gradient of type {gt}",
                            graph.value_name(ins[0])
                        ),
                    );
                }
            }
        }
    }
}

fn list(types: &[TensorType]) -> String {
    types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}
