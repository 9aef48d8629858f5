//! Graphviz output of the IR: one box per node, edges labelled with the value's type.

use std::fmt::Write;

use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use super::{Graph, Phase};

pub fn to_dot(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", escape(&graph.name));
    let _ = writeln!(out, "  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];");
    for n in graph.node_indices() {
        let node = &graph.g[n];
        let def = node.op.def();
        let (fill, style) = match (node.phase, def.is_source()) {
            (_, true) => ("#eeeeee", "filled,dashed"),
            (Phase::Forward, _) => ("#dbe9ff", "filled"),
            (Phase::Backward, _) => ("#ffe3d6", "filled"),
            (Phase::Update, _) => ("#ddf5dd", "filled"),
        };
        let _ = writeln!(
            out,
            "  n{} [label=\"{}\\n{} {}\", style=\"{style}\", fillcolor=\"{fill}\"];",
            n.index(),
            escape(&node.name),
            def.name(),
            escape(&def.attrs())
        );
    }
    for e in (&graph.g).edge_references() {
        let ty = graph.g[e.source()]
            .outputs
            .get(e.weight().src_port as usize)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "  n{} -> n{} [label=\"{}\"];", e.source().index(), e.target().index(), ty);
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
