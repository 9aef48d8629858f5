//! The textual form of the IR: one line per node, `outputs = op(inputs) attrs : types`. Sources
//! (inputs, parameters, optimizer state) come first, then the computed nodes in schedule order
//! once there is one, else in topological order, phase by phase; a placed graph's lines end in
//! each node's device (`@d1`). Snapshot tests hold this text.

use std::fmt::Write;

use super::{Graph, Phase};

pub fn print_graph(graph: &Graph, after: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "graph {} // after {after}", graph.name);
    let order = if graph.schedule.is_empty() {
        // Phase by phase (still a topological order: no phase reads a later one).
        let mut order = graph.topo_order();
        order.sort_by_key(|n| graph.g[*n].phase as u8);
        order
    } else {
        graph.schedule.clone()
    };
    let is_source = |n: &petgraph::stable_graph::NodeIndex| graph.g[*n].op.def().is_source();
    let sources: Vec<_> = graph.node_indices().into_iter().filter(is_source).collect();
    let computed: Vec<_> = order.into_iter().filter(|n| !is_source(n)).collect();
    if !sources.is_empty() {
        out.push_str("  ; sources\n");
    }
    let mut phase = None;
    for (i, n) in sources.iter().chain(&computed).enumerate() {
        let node = &graph.g[*n];
        if i >= sources.len() && phase != Some(node.phase) {
            phase = Some(node.phase);
            let name = match node.phase {
                Phase::Forward => "forward",
                Phase::Backward => "backward",
                Phase::Update => "update",
            };
            let _ = writeln!(out, "  ; {name}");
        }
        let def = node.op.def();
        let lhs = (0..node.outputs.len().max(1))
            .map(|p| if p == 0 { node.name.clone() } else { format!("{}:{p}", node.name) })
            .collect::<Vec<_>>()
            .join(", ");
        let ins: Vec<String> = graph.inputs(*n).iter().map(|v| graph.value_name(*v)).collect();
        let _ = write!(out, "  {lhs} = {}({})", def.name(), ins.join(", "));
        let attrs = def.attrs();
        if !attrs.is_empty() {
            let _ = write!(out, " {attrs}");
        }
        if !node.outputs.is_empty() {
            let types: Vec<String> = node.outputs.iter().map(|t| t.to_string()).collect();
            let _ = write!(out, " : {}", types.join(", "));
        }
        if node.device == super::HOST {
            out.push_str(" @host");
        } else if graph.devices > 1 {
            let _ = write!(out, " @d{}", node.device);
        }
        out.push('\n');
    }
    out
}
