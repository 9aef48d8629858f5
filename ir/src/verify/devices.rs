//! Devices: every node on one of the graph's devices (the input of a step placed on several on the
//! host), every transfer running on the device it copies to, and (once the transfers are placed)
//! every edge between two devices through a transfer that says so.

use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use super::{Stage, Violations};
use crate::catalog::Op;
use crate::ir::{Graph, HOST};

pub(super) fn check(graph: &Graph, stage: Stage, found: &mut Violations) {
    if graph.devices == 0 {
        found.other("the graph", "is placed on 0 devices");
        return;
    }
    for n in graph.node_indices() {
        let node = &graph.g[n];
        if node.device == HOST {
            if !(graph.devices > 1 && matches!(node.op, Op::Input(_))) {
                found.node(graph, n, "is on the host, where only the input of a placed step may be");
            }
            continue;
        }
        if node.device >= graph.devices {
            found.node(
                graph,
                n,
                format!("runs on device {}, but the graph has {} device(s)", node.device, graph.devices),
            );
        }
        if let Op::Transfer(t) = &node.op {
            if t.to != node.device || t.from == t.to {
                found.node(
                    graph,
                    n,
                    format!(
                        "is a transfer from device {} to device {} but runs on device {}",
                        t.from, t.to, node.device
                    ),
                );
            }
        }
    }
    if !stage.transferred {
        return;
    }
    for e in (&graph.g).edge_references() {
        let (Some(src), Some(dst)) = (graph.g.node_weight(e.source()), graph.g.node_weight(e.target()))
        else {
            continue;
        };
        let crosses_through = |from: u8| matches!(&dst.op, Op::Transfer(t) if t.from == from);
        let same = src.device == dst.device && !matches!(&dst.op, Op::Transfer(_));
        if !same && !crosses_through(src.device) {
            found.node(
                graph,
                e.target(),
                format!(
                    "on device {} reads {} on device {} without a transfer between them",
                    dst.device,
                    super::node_name(graph, e.source()),
                    src.device
                ),
            );
        }
    }
}
