//! The structural check of a decoded plan: what the runtime relies on without looking again. A
//! plan that decodes but does not hold together (a damaged or hand-edited file whose checksum was
//! recomputed, or a writer's bug) is refused here with what is wrong, never handed on to panic in
//! the interpreter.
//!
//! Checked: everything the verifier checks of a scheduled graph and its memory plans
//! ([`crate::verify`], every violation reported), one memory plan per device of a placed step,
//! and every all-reduce averaging over the plan's replica count.

use petgraph::stable_graph::NodeIndex;

use super::Plan;
use crate::catalog::Op;
use crate::verify::{node_name, verify_graph, verify_memory, Stage, Violations};

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

/// Why a decoded plan is inconsistent: every problem found, in words.
pub(super) fn check_plan(plan: &Plan) -> Result<(), String> {
    let graph = &plan.graph;
    let mut found = match verify_graph(graph, Stage::PLANNED) {
        Ok(()) => Violations::default(),
        Err(v) => v,
    };
    // The memory plans are read against the schedule: only worth it where the graph holds.
    if found.is_empty() {
        let mut memory = vec![(None, &plan.memory)];
        memory.extend(plan.device_memory.iter().enumerate().map(|(d, m)| (Some(d as u8), m)));
        for (device, m) in memory {
            if let Err(v) = verify_memory(graph, m, device) {
                found.0.extend(v.0);
            }
        }
    }
    let mut problems: Vec<String> = found.iter().map(|v| v.to_string()).collect();
    problems.extend(check_replicas(plan));
    problems.extend(check_device_plans(plan));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The replica count is at least 1, and every all-reduce averages over that many replicas.
fn check_replicas(plan: &Plan) -> Vec<String> {
    if plan.replicas == 0 {
        return vec!["the plan is compiled for 0 replicas".into()];
    }
    let mut problems = Vec::new();
    for n in plan.graph.node_indices() {
        if let Op::AllReduceMean(a) = &plan.graph.g[n].op {
            if a.replicas != plan.replicas {
                problems.push(format!(
                    "{} averages over {} replicas, but the plan is compiled for {}",
                    node_name(&plan.graph, n),
                    a.replicas,
                    plan.replicas
                ));
            }
        }
    }
    problems
}

/// A step placed on several devices has one memory plan per device; a step on one, none.
fn check_device_plans(plan: &Plan) -> Vec<String> {
    let devices = plan.graph.devices;
    let placed = devices > 1;
    if placed && plan.device_memory.len() != usize::from(devices) {
        return vec![format!(
            "the plan is placed on {devices} devices but has {} per-device memory plans",
            plan.device_memory.len()
        )];
    }
    if !placed && !plan.device_memory.is_empty() {
        return vec!["a plan on one device has per-device memory plans".into()];
    }
    Vec::new()
}
