//! The structural check of a placed plan (`alexc compile --devices 2`): every node on one of the
//! plan's devices (the input may be on the host), every edge between two devices through a transfer that says so, and one memory
//! plan per device holding only that device's values. A plan that fails is refused, as by
//! [`super::check`], before the runtime sees it.

use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use super::check::name;
use super::Plan;
use crate::catalog::Op;
use crate::ir::HOST;

pub(super) fn check_devices(plan: &Plan) -> Result<(), String> {
    let graph = &plan.graph;
    if graph.devices == 0 {
        return Err("the plan is placed on 0 devices".into());
    }
    for n in graph.node_indices() {
        let node = &graph.g[n];
        if node.device == HOST {
            if graph.devices > 1 && matches!(node.op, Op::Input(_)) {
                continue;
            }
            return Err(format!(
                "{} is on the host, where only the input of a placed plan may be",
                name(graph, n)
            ));
        }
        if node.device >= graph.devices {
            return Err(format!(
                "{} runs on device {}, but the plan has {} device(s)",
                name(graph, n),
                node.device,
                graph.devices
            ));
        }
        if let Op::Transfer(t) = &node.op {
            if t.to != node.device || t.from == t.to {
                return Err(format!(
                    "transfer {} copies from device {} to device {} but runs on device {}",
                    name(graph, n),
                    t.from,
                    t.to,
                    node.device
                ));
            }
        }
    }
    for e in (&graph.g).edge_references() {
        let (src, dst) = (&graph.g[e.source()], &graph.g[e.target()]);
        let crosses_through = |from: u8| matches!(&dst.op, Op::Transfer(t) if t.from == from);
        let same = src.device == dst.device && !matches!(&dst.op, Op::Transfer(_));
        if !same && !crosses_through(src.device) {
            return Err(format!(
                "{} on device {} reads {} on device {} without a transfer between them",
                name(graph, e.target()),
                dst.device,
                name(graph, e.source()),
                src.device
            ));
        }
    }
    let placed = graph.devices > 1;
    if placed && plan.device_memory.len() != usize::from(graph.devices) {
        return Err(format!(
            "the plan is placed on {} devices but has {} per-device memory plans",
            graph.devices,
            plan.device_memory.len()
        ));
    }
    if !placed && !plan.device_memory.is_empty() {
        return Err("a plan on one device has per-device memory plans".into());
    }
    for (d, m) in plan.device_memory.iter().enumerate() {
        let elsewhere = m
            .values
            .iter()
            .find(|p| graph.g.contains_node(p.value.node) && usize::from(graph.g[p.value.node].device) != d);
        if let Some(p) = elsewhere {
            return Err(format!("device {d}'s memory plan holds `{}`, a value of another device", p.name));
        }
    }
    Ok(())
}
