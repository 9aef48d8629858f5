//! All-reduce: makes a training step data parallel over `replicas` processes, as PyTorch's
//! DistributedDataParallel does (Li et al., "PyTorch Distributed", VLDB 2020, section 3.2): each
//! replica runs the step on its own batch, and every parameter's gradient is averaged across the
//! replicas between its last producer and the optimizer update that reads it, so that every
//! replica applies the same update to the same weights.
//!
//! Gradients are packed into buckets of at most `bucket_bytes` (DDP's `bucket_cap_mb`, 25 MiB by
//! default; a gradient larger than that is a bucket of its own), one `all_reduce_mean` node per
//! bucket, so a bucket costs one collective call. Buckets are filled in the order the gradients
//! become ready — by how many nodes must run before each gradient exists, fewest first, which puts
//! the last layers' gradients first — so the first buckets can be reduced while the backward pass
//! still computes the earlier layers' gradients. The scheduler then places each bucket as soon as
//! its gradients are ready (it adds no bytes). The pass asks the catalog which input of an op is
//! a gradient ([`crate::catalog::OpDef::gradient_input`]); it does nothing for one replica.

use std::collections::BTreeSet;

use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;

use crate::catalog::{AllReduceMean, Op};
use crate::ir::{Graph, Node, Phase, ValueRef};

/// How a data-parallel step is compiled: `alexc compile --replicas N [--bucket-mib M]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataParallel {
    /// Processes that each run the step on their own batch (2 or more to insert anything).
    pub replicas: usize,
    /// The most gradient bytes in one all-reduce (a larger gradient is a bucket of its own).
    pub bucket_bytes: usize,
}

impl DataParallel {
    /// DDP's default bucket: 25 MiB.
    pub const DEFAULT_BUCKET_BYTES: usize = 25 << 20;

    pub fn new(replicas: usize) -> Self {
        DataParallel { replicas, bucket_bytes: Self::DEFAULT_BUCKET_BYTES }
    }
}

/// Inserts one `all_reduce_mean` node per bucket of gradients and makes every gradient reader
/// (the updates) read the averaged value. Returns the number of buckets.
pub fn insert_gradient_all_reduce(graph: &mut Graph, dp: DataParallel) -> usize {
    if dp.replicas < 2 {
        return 0;
    }
    let mut gradients = Vec::new();
    for n in graph.node_indices() {
        if let Some(port) = graph.g[n].op.def().gradient_input() {
            if let Some(&g) = graph.inputs(n).get(port) {
                if !gradients.contains(&g) {
                    gradients.push(g);
                }
            }
        }
    }
    let mut ready: Vec<(usize, ValueRef)> =
        gradients.iter().map(|&g| (ancestors(graph, g.node), g)).collect();
    ready.sort();
    let buckets = pack(graph, ready.into_iter().map(|(_, g)| g), dp.bucket_bytes);
    for (bucket, members) in buckets.iter().enumerate() {
        let outputs = members.iter().filter_map(|&g| graph.value_type(g).cloned()).collect();
        let node = graph.add_node(Node {
            name: format!("grads.bucket{bucket}"),
            op: Op::AllReduceMean(AllReduceMean { bucket, replicas: dp.replicas }),
            outputs,
            phase: Phase::Backward,
            loc: None,
            device: 0,
        });
        for (port, &g) in members.iter().enumerate() {
            graph.connect(g, node, port as u8);
        }
        for (port, &g) in members.iter().enumerate() {
            graph.redirect(g, ValueRef { node, port: port as u8 }, &[node]);
        }
    }
    buckets.len()
}

/// How many computed nodes must run before node `n`'s outputs exist (its ancestors).
fn ancestors(graph: &Graph, n: NodeIndex) -> usize {
    let mut seen = BTreeSet::new();
    let mut stack = vec![n];
    while let Some(m) = stack.pop() {
        for p in graph.g.neighbors_directed(m, Direction::Incoming) {
            if !graph.g[p].op.def().is_source() && seen.insert(p) {
                stack.push(p);
            }
        }
    }
    seen.len()
}

/// Consecutive gradients, in ready order, grouped into buckets of at most `cap` bytes.
fn pack(graph: &Graph, ready: impl Iterator<Item = ValueRef>, cap: usize) -> Vec<Vec<ValueRef>> {
    let mut buckets: Vec<Vec<ValueRef>> = Vec::new();
    let mut filled = 0usize;
    for g in ready {
        let bytes = graph.value_type(g).map_or(0, |t| t.bytes(1));
        match buckets.last_mut() {
            Some(last) if !last.is_empty() && filled.saturating_add(bytes) <= cap => {
                last.push(g);
                filled += bytes;
            }
            _ => {
                buckets.push(vec![g]);
                filled = bytes;
            }
        }
    }
    buckets
}
