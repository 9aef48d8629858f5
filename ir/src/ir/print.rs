//! The textual form of the IR: one line per node, `outputs = op(inputs) attrs : types`. A header
//! says what travels with the graph (`; loss=loss logits=fc8 devices=2 scheduled`) and the layers
//! the graph file declared (`; layer conv1: Conv2d [conv1, conv1.bias_add] params [conv1.weight,
//! conv1.bias] -> conv1.bias_add`); then the sources (inputs, parameters, optimizer state), then
//! the computed nodes in schedule order once there is one, else in topological order, phase by
//! phase; a placed graph's lines end in each node's device (`@d1`). Snapshot tests hold this
//! text, and [`super::read_graph`] reads it back.

use std::fmt::Write;

use super::{Graph, Phase};

pub fn print_graph(graph: &Graph, after: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "graph {} // after {after}", graph.name);
    let mut facts = Vec::new();
    for (key, v) in [("loss", graph.loss), ("logits", graph.logits)] {
        if let Some(v) = v.filter(|v| graph.g.contains_node(v.node)) {
            facts.push(format!("{key}={}", graph.value_name(v)));
        }
    }
    if graph.devices > 1 {
        facts.push(format!("devices={}", graph.devices));
    }
    if graph.spec.precision != crate::spec::Precision::F32 {
        facts.push(format!("precision={}", graph.spec.precision.name()));
    }
    if !graph.schedule.is_empty() {
        facts.push("scheduled".into());
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "  ; {}", facts.join(" "));
    }
    let names = |ns: &[petgraph::stable_graph::NodeIndex]| {
        ns.iter()
            .filter_map(|n| graph.g.node_weight(*n))
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for layer in &graph.layers {
        let output = if graph.g.contains_node(layer.output.node) {
            graph.value_name(layer.output)
        } else {
            "(fused)".into()
        };
        let _ = writeln!(
            out,
            "  ; layer {}: {} [{}] params [{}] -> {output}",
            layer.name,
            layer.op,
            names(&layer.nodes),
            names(&layer.params)
        );
    }
    let order = graph.print_order();
    let sources = order.iter().take_while(|n| graph.g[**n].op.def().is_source()).count();
    if sources > 0 {
        out.push_str("  ; sources\n");
    }
    let mut phase = None;
    for (i, n) in order.iter().enumerate() {
        let node = &graph.g[*n];
        if i >= sources && phase != Some(node.phase) {
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
