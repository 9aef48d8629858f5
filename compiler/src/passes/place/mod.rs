//! Place: the paper's two-GPU training (Krizhevsky et al. 2012, section 3.2 and figure 2) as a
//! placement of the step's nodes on two devices, in the manner of TensorFlow's placer (every node
//! gets a device; a value read on another device goes through an explicit transfer node, as
//! TensorFlow's partitioner inserts Send/Recv pairs) with the towers made explicit as GSPMD
//! shards them (each tower a channel half of every feature map).
//!
//! The pass runs in two halves around autodiff:
//!
//! - [`split_towers`] (before autodiff) rewrites the forward graph into two towers, one per
//!   device: every convolution computes half of its output channels on each device (a grouped
//!   convolution one group each; an ungrouped one — conv1, conv3 — reads its whole input, joined
//!   on each device, with half of the kernels), and the channel-wise layers after it (bias, ReLU,
//!   max pooling) follow their input's halves. LRN normalises across channels: each device
//!   computes its half over its channels plus the `size / 2` channels beyond the boundary from the
//!   other tower (a halo), and keeps its own half, so the result equals the unsplit layer's. The
//!   halo is taken right after the convolution where only bias and ReLU lie between it and the
//!   LRN (they then run in place on the extended half: no copy of the activation), else just
//!   before the LRN.
//!   Everything else (the fully connected layers, dropout, the loss) runs whole on one device,
//!   [`TAIL_DEVICE`], with the towers joined there (the paper splits the fully connected layers by
//!   output neurons too; whole is simpler, and their activations are small: the arena is
//!   dominated by the convolutional layers). Parameters stay whole — one tensor per parameter, the
//!   checkpoint's — on the device of their first reader that is not a slice, else device 0; a
//!   tower reads its half of a weight through a slice (a view) and, on the other device, a
//!   transfer of that half.
//! - autodiff then gives each backward node the device of the forward node it differentiates,
//!   and each update the device of its parameter;
//! - [`insert_transfers`] (after autodiff) puts a [`Transfer`] node on every edge that joins two
//!   devices, one per value and destination, so that every other node reads only values of its
//!   own device. The input batch stays on the host ([`crate::ir::HOST`]); a device that reads it
//!   in both passes gets a second transfer for the backward pass ([`refetch`]), so that it holds
//!   the batch only around its readers rather than through the step.
//!
//! The schedule stays one order for the whole step (each device runs its nodes in that order);
//! memory is planned per device over it ([`crate::passes::plan_memory_per_device`]).

mod refetch;
mod towers;

pub use refetch::{from_host, refetch_host_values};
pub use towers::split_towers;

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::{EdgeRef, IntoEdgeReferences};

use crate::catalog::{Op, Transfer};
use crate::ir::{Edge, Graph, Node, ValueRef};

/// The device that runs the layers not split into towers.
pub const TAIL_DEVICE: u8 = 1;

/// The number of devices the towers split into: the paper's two.
pub const TOWERS: u8 = 2;

/// Puts a transfer on every edge whose ends lie on different devices, and a second one for the
/// backward readers of a value from the host ([`refetch_host_values`]); returns how many it added.
pub fn insert_transfers(graph: &mut Graph) -> usize {
    let crossing: Vec<(petgraph::stable_graph::EdgeIndex, ValueRef, NodeIndex, u8)> = (&graph.g)
        .edge_references()
        .filter(|e| graph.g[e.source()].device != graph.g[e.target()].device)
        .map(|e| {
            let v = ValueRef { node: e.source(), port: e.weight().src_port };
            (e.id(), v, e.target(), e.weight().dst_port)
        })
        .collect();
    let mut transfers: HashMap<(ValueRef, u8), NodeIndex> = HashMap::new();
    for (edge, v, target, dst_port) in crossing {
        let to = graph.g[target].device;
        let phase = graph.g[target].phase;
        let t = *transfers.entry((v, to)).or_insert_with(|| {
            let from = graph.g[v.node].device;
            let node = Node {
                name: format!("{}@d{to}", graph.value_name(v)),
                op: Op::Transfer(Transfer { from, to }),
                outputs: vec![graph.value_type(v).cloned().expect("a typed value")],
                phase,
                loc: graph.g[target].loc,
                device: to,
            };
            let t = graph.add_node(node);
            graph.connect(v, t, 0);
            t
        });
        // A transfer serves its earliest reader's phase (a forward value read by the backward
        // pass too is copied in the forward pass, which evaluation runs alone).
        if phase < graph.g[t].phase {
            graph.g[t].phase = phase;
        }
        graph.g.remove_edge(edge);
        graph.g.add_edge(t, target, Edge { src_port: 0, dst_port });
    }
    transfers.len() + refetch_host_values(graph)
}
