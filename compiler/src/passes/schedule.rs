//! Schedule: a topological order of the computed nodes that keeps peak memory low. List
//! scheduling: of the nodes whose inputs are ready, run the one that adds the fewest bytes (what
//! it allocates minus what it frees), ties to the earliest node. A node that overwrites an input
//! in place (the optimizer update) waits for every other reader of that input. A transfer from the
//! host (the input batch of a placed step, fetched again for the backward pass) waits for the other
//! inputs of its readers, so that its copy lives only from just before them.
//!
//! In a data-parallel step the gradient all-reduce comes before bytes: the nodes that produce a
//! bucket's gradients run as soon as they are ready and the nodes that read its averages (the
//! updates) only when nothing else is, so that every bucket is reduced while the rest of the
//! backward pass computes (DDP's overlap; the gradients are held to the end of the step, as DDP
//! holds them).

use std::collections::{BTreeSet, HashMap, HashSet};

use petgraph::algo::has_path_connecting;
use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;

use crate::catalog::Op;
use crate::ir::{Graph, ValueRef, HOST};
use crate::passes::place::from_host;

pub fn schedule(graph: &mut Graph, batch: usize) {
    let compute = graph.compute_nodes();
    let after = ordering_constraints(graph);
    let mut waiting: HashMap<NodeIndex, usize> = compute
        .iter()
        .map(|&n| {
            let mut preds: BTreeSet<NodeIndex> = graph
                .g
                .neighbors_directed(n, Direction::Incoming)
                .filter(|p| !graph.g[*p].op.def().is_source())
                .collect();
            preds.extend(after.get(&n).into_iter().flatten());
            (n, preds.len())
        })
        .collect();
    let mut successors: HashMap<NodeIndex, BTreeSet<NodeIndex>> = HashMap::new();
    for (&n, preds) in &after {
        for &p in preds {
            successors.entry(p).or_default().insert(n);
        }
    }
    // Readers left for each value.
    let mut readers: HashMap<ValueRef, usize> =
        graph.values().into_iter().map(|v| (v, graph.consumers(v).len())).collect();
    let starts = starts_all_reduce(graph, &compute);
    let overlap: HashMap<NodeIndex, Overlap> =
        compute.iter().map(|&n| (n, overlap(graph, n, &starts))).collect();
    let mut ready: BTreeSet<NodeIndex> = waiting.iter().filter(|(_, w)| **w == 0).map(|(n, _)| *n).collect();
    let mut order = Vec::with_capacity(compute.len());
    while !ready.is_empty() {
        let pick = *ready
            .iter()
            .min_by_key(|&&n| (overlap[&n], net_bytes(graph, n, &readers, batch), n))
            .expect("ready is not empty");
        ready.remove(&pick);
        order.push(pick);
        let mut inputs = graph.inputs(pick);
        inputs.sort();
        inputs.dedup();
        for v in inputs {
            if let Some(r) = readers.get_mut(&v) {
                *r -= 1;
            }
        }
        let mut succs: BTreeSet<NodeIndex> = graph.g.neighbors_directed(pick, Direction::Outgoing).collect();
        succs.extend(successors.get(&pick).into_iter().flatten());
        for s in succs {
            if let Some(w) = waiting.get_mut(&s) {
                *w -= 1;
                if *w == 0 {
                    ready.insert(s);
                }
            }
        }
    }
    graph.schedule = order;
}

/// Where a node stands towards the gradient all-reduce of a data-parallel step, in the order the
/// scheduler prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Overlap {
    /// An all-reduce, or a node producing a gradient it reads: early, to start the bucket.
    StartsAllReduce,
    /// Every other node (all of them in a step without all-reduce).
    Neutral,
    /// Reads a bucket's averages: late, to give the bucket time.
    ReadsAllReduce,
}

fn overlap(graph: &Graph, n: NodeIndex, starts: &HashSet<NodeIndex>) -> Overlap {
    if graph.inputs(n).iter().any(|v| matches!(graph.g[v.node].op, Op::AllReduceMean(_))) {
        Overlap::ReadsAllReduce
    } else if starts.contains(&n) {
        Overlap::StartsAllReduce
    } else {
        Overlap::Neutral
    }
}

/// The all-reduces, the nodes that produce a gradient one of them reads, and the nodes whose
/// every reader only assembles such a gradient (the parts of a split grouped convolution's weight
/// gradient, read by its concat).
fn starts_all_reduce(graph: &Graph, compute: &[NodeIndex]) -> HashSet<NodeIndex> {
    let is_all_reduce = |n: NodeIndex| matches!(graph.g[n].op, Op::AllReduceMean(_));
    let mut starts: HashSet<NodeIndex> = compute.iter().copied().filter(|&n| is_all_reduce(n)).collect();
    if starts.is_empty() {
        return starts;
    }
    let assembles = |n: NodeIndex| graph.g[n].op.def().is_view() || matches!(graph.g[n].op, Op::Concat(_));
    starts.extend(
        compute
            .iter()
            .copied()
            .filter(|&n| graph.g.neighbors_directed(n, Direction::Outgoing).any(is_all_reduce)),
    );
    loop {
        let more: Vec<NodeIndex> = compute
            .iter()
            .copied()
            .filter(|n| !starts.contains(n))
            .filter(|&n| {
                let mut readers = graph.g.neighbors_directed(n, Direction::Outgoing).peekable();
                readers.peek().is_some() && readers.all(|r| starts.contains(&r) && assembles(r))
            })
            .collect();
        if more.is_empty() {
            return starts;
        }
        starts.extend(more);
    }
}

/// For each node that overwrites inputs, the other readers of those inputs: they run first.
pub fn ordering_constraints(graph: &Graph) -> HashMap<NodeIndex, BTreeSet<NodeIndex>> {
    let mut after: HashMap<NodeIndex, BTreeSet<NodeIndex>> = HashMap::new();
    for n in graph.compute_nodes() {
        let inputs = graph.inputs(n);
        for &i in graph.g[n].op.def().writes_inputs() {
            let Some(v) = inputs.get(i) else { continue };
            // Readers of views of the value (slices of a weight) read it too.
            let mut readers = Vec::new();
            let mut values = vec![*v];
            while let Some(value) = values.pop() {
                for r in graph.consumers(value).into_iter().filter(|&r| r != n) {
                    if graph.g[r].op.def().is_view() {
                        values.push(ValueRef { node: r, port: 0 });
                    }
                    readers.push(r);
                }
            }
            after.entry(n).or_default().extend(readers);
        }
        if from_host(graph, n) {
            let copy = ValueRef { node: n, port: 0 };
            let others: BTreeSet<NodeIndex> = graph
                .consumers(copy)
                .into_iter()
                .flat_map(|r| graph.inputs(r))
                .filter(|v| v.node != n && !graph.g[v.node].op.def().is_source())
                .filter(|v| !has_path_connecting(&graph.g, n, v.node, None))
                .map(|v| v.node)
                .collect();
            after.entry(n).or_default().extend(others);
        }
    }
    after
}

fn net_bytes(graph: &Graph, n: NodeIndex, readers: &HashMap<ValueRef, usize>, batch: usize) -> i64 {
    let def = graph.g[n].op.def();
    let alloc: usize =
        if def.is_view() { 0 } else { graph.g[n].outputs.iter().map(|t| t.bytes(batch)).sum() };
    let mut inputs = graph.inputs(n);
    inputs.sort();
    inputs.dedup();
    // A view keeps its source alive, so reading it last frees nothing.
    let freed: usize = inputs
        .iter()
        .filter(|_| !def.is_view())
        .filter(|v| !graph.g[v.node].op.def().is_persistent() && readers.get(v) == Some(&1))
        // The host's memory is no device's.
        .filter(|v| graph.g[v.node].device != HOST)
        .filter_map(|v| graph.value_type(*v).map(|t| t.bytes(batch)))
        .sum();
    alloc as i64 - freed as i64
}
