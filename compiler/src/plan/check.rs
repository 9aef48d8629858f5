//! The structural check of a decoded plan: what the runtime relies on without looking again. A
//! plan that decodes but does not hold together (a damaged or hand-edited file whose checksum was
//! recomputed, or a writer's bug) is refused here with what is wrong, never handed on to panic in
//! the interpreter.
//!
//! Checked: every edge joins existing ports; every node reads input ports `0..arity`, each once;
//! fused nodes' steps read existing inputs and earlier steps; the loss, logits and layers name
//! existing values; the schedule runs every computed node once, after its producers; the memory
//! plan places existing values in existing buffers inside the arena; the placement holds together
//! ([`super::devices`]); every all-reduce averages over the plan's replica count.

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;

use super::Plan;
use crate::catalog::{FusedInput, Op};
use crate::ir::{Graph, ValueRef};

/// The first fields of a plan's payload, up to the graph's list of vacant node indices, laid out
/// as postcard lays out [`Plan`] (keep in step with the first fields of `Plan` and `Graph`: a
/// mismatch fails every plan test). Read before the plan itself because petgraph 0.8's decoder
/// asserts, in debug builds, rather than fail on a vacancy past the nodes it has.
#[derive(serde::Deserialize)]
struct PlanPrefix {
    _compiler: String,
    _source: String,
    _mode: crate::ir::Mode,
    _name: String,
    nodes: Vec<crate::ir::Node>,
    node_holes: Vec<NodeIndex>,
}

/// Why a payload's node vacancies would trip petgraph's decoder, if they would: they must rise
/// and lie among the node slots. (A payload that does not decode this far is left to the decoder.)
pub(super) fn check_node_holes(payload: &[u8]) -> Result<(), String> {
    let Ok(prefix) = postcard::from_bytes::<PlanPrefix>(payload) else { return Ok(()) };
    let slots = prefix.nodes.len() + prefix.node_holes.len();
    let rising = prefix.node_holes.windows(2).all(|w| w[0] < w[1]);
    if !rising || prefix.node_holes.iter().any(|h| h.index() >= slots) {
        return Err(format!(
            "the graph's vacant node slots {:?} do not fit its {slots} slots",
            prefix.node_holes
        ));
    }
    Ok(())
}

/// Why a decoded plan is inconsistent: the first problem found, in words.
pub(super) fn check_plan(plan: &Plan) -> Result<(), String> {
    let graph = &plan.graph;
    check_nodes(graph)?;
    check_values(graph)?;
    check_types(graph)?;
    check_schedule(graph)?;
    check_replicas(plan)?;
    check_memory(graph, &plan.memory)?;
    super::devices::check_devices(plan)?;
    for m in &plan.device_memory {
        check_memory(graph, m)?;
    }
    Ok(())
}

/// The replica count is at least 1, and every all-reduce averages over that many replicas.
fn check_replicas(plan: &Plan) -> Result<(), String> {
    if plan.replicas == 0 {
        return Err("the plan is compiled for 0 replicas".into());
    }
    for n in plan.graph.node_indices() {
        if let Op::AllReduceMean(a) = &plan.graph.g[n].op {
            if a.replicas != plan.replicas {
                return Err(format!(
                    "{} averages over {} replicas, but the plan is compiled for {}",
                    name(&plan.graph, n),
                    a.replicas,
                    plan.replicas
                ));
            }
        }
    }
    Ok(())
}

/// Every computed node's output types are what its op's shape rule gives for its inputs' types,
/// so the runtime never meets a tensor of a shape its op does not expect.
fn check_types(graph: &Graph) -> Result<(), String> {
    for n in graph.node_indices() {
        let node = &graph.g[n];
        if node.op.def().is_source() {
            continue;
        }
        let inputs: Option<Vec<_>> = graph.inputs(n).into_iter().map(|v| graph.value_type(v)).collect();
        let follows = inputs
            .and_then(|ins| node.op.def().infer(&ins).ok())
            .is_some_and(|inferred| inferred.outputs == node.outputs);
        if !follows {
            return Err(format!(
                "the types of node `{}` do not follow from its inputs' types",
                name(graph, n)
            ));
        }
    }
    Ok(())
}

pub(super) fn name(graph: &Graph, n: NodeIndex) -> String {
    format!("node {} (`{}`)", n.index(), graph.g[n].name)
}

/// Whether `v` is an output port of an existing node.
fn exists(graph: &Graph, v: ValueRef) -> bool {
    graph.g.contains_node(v.node) && usize::from(v.port) < graph.g[v.node].outputs.len()
}

fn check_nodes(graph: &Graph) -> Result<(), String> {
    for e in (&graph.g).edge_references() {
        let (src, dst) = (e.source(), e.target());
        if !graph.g.contains_node(src) || !graph.g.contains_node(dst) {
            return Err(format!("edge {} joins a missing node", e.id().index()));
        }
        if !exists(graph, ValueRef { node: src, port: e.weight().src_port }) {
            return Err(format!(
                "an edge reads output {} of {}, which has {} output(s)",
                e.weight().src_port,
                name(graph, src),
                graph.g[src].outputs.len()
            ));
        }
    }
    for n in graph.g.node_indices() {
        let mut ports: Vec<u8> =
            graph.g.edges_directed(n, Direction::Incoming).map(|e| e.weight().dst_port).collect();
        ports.sort_unstable();
        if ports.iter().enumerate().any(|(i, &p)| usize::from(p) != i) {
            return Err(format!(
                "{} reads input ports {ports:?}, not 0, 1, 2, ... once each",
                name(graph, n)
            ));
        }
        if let Op::Fused(f) = &graph.g[n].op {
            check_fused(graph, n, f, ports.len())?;
        }
        let arity = graph.g[n].op.def().arity();
        if arity.is_some_and(|a| a != ports.len()) || (arity.is_none() && ports.is_empty()) {
            return Err(format!(
                "{} ({}) has {} input(s), but its op takes {}",
                name(graph, n),
                graph.g[n].op.def().name(),
                ports.len(),
                arity.map_or("at least 1".to_string(), |a| a.to_string())
            ));
        }
    }
    Ok(())
}

fn check_fused(
    graph: &Graph,
    n: NodeIndex,
    f: &crate::catalog::FusedOp,
    inputs: usize,
) -> Result<(), String> {
    if f.steps.is_empty() || f.outputs.is_empty() {
        return Err(format!("fused {} has no steps or no outputs", name(graph, n)));
    }
    if f.outputs.len() != graph.g[n].outputs.len() {
        return Err(format!(
            "fused {} declares {} outputs but types {}",
            name(graph, n),
            f.outputs.len(),
            graph.g[n].outputs.len()
        ));
    }
    for (s, step) in f.steps.iter().enumerate() {
        if matches!(step.op, Op::Fused(_)) {
            return Err(format!("fused {} nests a fused op", name(graph, n)));
        }
        for input in &step.inputs {
            let ok = match *input {
                FusedInput::External(e) => e < inputs,
                FusedInput::Step(st, _) => st < s,
            };
            if !ok {
                return Err(format!(
                    "step {s} of fused {} reads {input:?}, which does not exist",
                    name(graph, n)
                ));
            }
        }
    }
    if let Some(&(s, p)) = f.outputs.iter().find(|(s, _)| *s >= f.steps.len()) {
        return Err(format!("fused {} outputs step {s} port {p}, which does not exist", name(graph, n)));
    }
    Ok(())
}

fn check_values(graph: &Graph) -> Result<(), String> {
    for (what, v) in [("loss", graph.loss), ("logits", graph.logits)] {
        if let Some(v) = v.filter(|v| !exists(graph, *v)) {
            return Err(format!(
                "the {what} names value {}:{}, which does not exist",
                v.node.index(),
                v.port
            ));
        }
    }
    // A layer's `output` is not checked: it names the value the graph file declared, which fusion
    // may have folded into a group (no runtime reads it).
    for layer in &graph.layers {
        if layer.nodes.iter().chain(&layer.params).any(|&n| !graph.g.contains_node(n)) {
            return Err(format!("layer `{}` names a node that does not exist", layer.name));
        }
    }
    Ok(())
}

fn check_schedule(graph: &Graph) -> Result<(), String> {
    let mut step_of: HashMap<NodeIndex, usize> = HashMap::new();
    for (i, &n) in graph.schedule.iter().enumerate() {
        if !graph.g.contains_node(n) {
            return Err(format!("step {i} of the schedule names node {}, which does not exist", n.index()));
        }
        if graph.g[n].op.def().is_source() {
            return Err(format!("step {i} of the schedule runs {}, which is not computed", name(graph, n)));
        }
        if step_of.insert(n, i).is_some() {
            return Err(format!("the schedule runs {} twice", name(graph, n)));
        }
    }
    for n in graph.compute_nodes() {
        let Some(&step) = step_of.get(&n) else {
            return Err(format!("the schedule never runs {}", name(graph, n)));
        };
        for p in graph.g.neighbors_directed(n, Direction::Incoming) {
            if step_of.get(&p).is_some_and(|&at| at >= step) {
                return Err(format!(
                    "the schedule runs {} before its input {}",
                    name(graph, n),
                    name(graph, p)
                ));
            }
        }
    }
    Ok(())
}

/// A memory plan (the step's, or one device's) places existing values in existing buffers inside
/// its arena, over the schedule.
fn check_memory(graph: &Graph, m: &crate::passes::MemoryPlan) -> Result<(), String> {
    let steps = graph.schedule.len().max(1);
    for b in &m.buffers {
        let end = b.offset.checked_add(b.bytes);
        if end.is_none_or(|end| end > m.arena_bytes) || b.first > b.last || b.last >= steps {
            return Err(format!(
                "a buffer ({} bytes at offset {}, steps {}..={}) lies outside the {}-byte arena or the {steps}-step schedule",
                b.bytes, b.offset, b.first, b.last, m.arena_bytes
            ));
        }
    }
    if m.batch_size == 0 {
        return Err("the memory plan's batch size is 0".into());
    }
    for p in &m.values {
        if !exists(graph, p.value) {
            return Err(format!("the memory plan places `{}`, a value that does not exist", p.name));
        }
        if p.first > p.last || p.last >= steps {
            return Err(format!(
                "`{}` lives over steps {}..={} of a {steps}-step schedule",
                p.name, p.first, p.last
            ));
        }
        let Some(b) = m.buffers.get(p.buffer) else {
            return Err(format!(
                "the memory plan puts `{}` in buffer {}, which does not exist",
                p.name, p.buffer
            ));
        };
        if p.bytes > b.bytes || p.offset != b.offset {
            return Err(format!("`{}` does not fit its buffer {} in the memory plan", p.name, p.buffer));
        }
    }
    Ok(())
}
