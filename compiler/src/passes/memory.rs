//! Plan memory: live intervals of every transient value over the schedule (activations saved for
//! the backward pass live until their last backward use), in-place reuse where the catalog allows
//! it, and offsets in one arena by greedy-by-size best fit (TFLite's arena planner, XLA's heap
//! simulator). Parameters and momentum buffers are persistent and placed on their own.

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;

use crate::ir::{Graph, ValueRef, HOST};
pub use crate::memory::{Buffer, MemoryPlan, Placement};

/// Offsets are multiples of this many bytes.
pub const ALIGNMENT: usize = 256;

/// Whether `v` is a view (through any chain of views) of a parameter or optimizer state.
fn views_persistent(graph: &Graph, mut v: ValueRef) -> bool {
    while graph.g[v.node].op.def().is_view() {
        match graph.inputs(v.node).first() {
            Some(src) => v = *src,
            None => return false,
        }
    }
    graph.g[v.node].op.def().is_persistent()
}

/// The memory plan of the whole step, every device's values in one arena (not the values held on
/// the host, [`HOST`]).
pub fn plan_memory(graph: &Graph, batch: usize) -> MemoryPlan {
    plan_memory_of(graph, batch, |n| graph.g[n].device != HOST)
}

/// One memory plan per device of a placed step: the values each device holds (those its nodes
/// produce), live over the one schedule, in an arena of its own.
pub fn plan_memory_per_device(graph: &Graph, batch: usize) -> Vec<MemoryPlan> {
    (0..graph.devices).map(|d| plan_memory_of(graph, batch, |n| graph.g[n].device == d)).collect()
}

/// The memory plan of the values produced by the nodes `holds` admits.
fn plan_memory_of(graph: &Graph, batch: usize, holds: impl Fn(NodeIndex) -> bool) -> MemoryPlan {
    let step_of: HashMap<_, _> = graph.schedule.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let end = graph.schedule.len().saturating_sub(1);
    let mut persistent = Vec::new();
    let mut values: Vec<Placement> = Vec::new();
    let mut index_of: HashMap<ValueRef, usize> = HashMap::new();
    // Values in the order the step makes them: the sources (in node order, as the dumps list
    // them), then each scheduled node's outputs. Node indices depend on how a graph was built (a
    // graph read back from its text numbers its nodes afresh), the step's order does not.
    let mut order: Vec<ValueRef> = graph.values().into_iter().filter(|v| holds(v.node)).collect();
    order.sort_by_key(|v| (step_of.get(&v.node).map_or((0, v.node.index()), |&s| (1, s)), v.port));
    for v in order {
        let node = &graph.g[v.node];
        let ty = &node.outputs[v.port as usize];
        if node.op.def().is_persistent() {
            persistent.push((graph.value_name(v), ty.bytes(batch)));
            continue;
        }
        let first = step_of.get(&v.node).copied().unwrap_or(0);
        let mut last =
            graph.consumers(v).iter().filter_map(|c| step_of.get(c)).max().copied().unwrap_or(first);
        if Some(v) == graph.loss || Some(v) == graph.logits {
            last = end; // read by the runtime after the step
        }
        index_of.insert(v, values.len());
        values.push(Placement {
            value: v,
            name: graph.value_name(v),
            // A view of a parameter (a weight's slice) lives in the parameter's storage.
            bytes: if views_persistent(graph, v) { 0 } else { ty.bytes(batch) },
            first,
            last,
            buffer: values.len(),
            offset: 0,
        });
    }
    let naive_bytes =
        values.iter().filter(|p| !graph.g[p.value.node].op.def().is_view()).map(|p| p.bytes).sum();

    // Buffers: union of values that views and in-place ops let share storage.
    let mut buffer_of: Vec<usize> = (0..values.len()).collect();
    let mut buffer_last: Vec<usize> = values.iter().map(|p| p.last).collect();
    for &n in &graph.schedule {
        let def = graph.g[n].op.def();
        let inputs = graph.inputs(n);
        let pairs = if def.is_view() { vec![(0, 0)] } else { def.in_place_ports(inputs.len()) };
        for (port, i) in pairs {
            let Some(out) = index_of.get(&ValueRef { node: n, port }).copied() else {
                continue;
            };
            let Some(&src) = inputs.get(i).and_then(|v| index_of.get(v)) else {
                continue;
            };
            let b = find(&mut buffer_of, src);
            let same_size = values[src].bytes == values[out].bytes;
            let read_once = inputs.iter().filter(|v| index_of.get(v) == Some(&src)).count() == 1;
            let dies_here = buffer_last[b] == step_of[&n];
            if def.is_view() || (same_size && read_once && dies_here) {
                buffer_of[out] = b;
                buffer_last[b] = buffer_last[b].max(values[out].last);
            }
        }
    }
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut buffer_index: HashMap<usize, usize> = HashMap::new();
    #[allow(clippy::needless_range_loop)] // `i` names a value and its union-find entry
    for i in 0..values.len() {
        let root = find(&mut buffer_of, i);
        let bi = *buffer_index.entry(root).or_insert_with(|| {
            buffers.push(Buffer { bytes: 0, first: usize::MAX, last: 0, offset: 0 });
            buffers.len() - 1
        });
        let b = &mut buffers[bi];
        b.bytes = b.bytes.max(values[i].bytes);
        b.first = b.first.min(values[i].first);
        b.last = b.last.max(values[i].last);
        values[i].buffer = bi;
    }

    let lower_bound_bytes = lower_bound(&buffers, end);
    let arena_bytes = assign_offsets(&mut buffers);
    for p in &mut values {
        p.offset = buffers[p.buffer].offset;
    }
    let persistent_bytes = persistent.iter().map(|(_, b)| b).sum();
    MemoryPlan {
        batch_size: batch,
        values,
        buffers,
        naive_bytes,
        lower_bound_bytes,
        arena_bytes,
        persistent_bytes,
        persistent,
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// The largest sum of buffer bytes live at one step.
pub fn lower_bound(buffers: &[Buffer], end: usize) -> usize {
    let mut delta = vec![0i64; end + 2];
    for b in buffers {
        delta[b.first] += b.bytes as i64;
        delta[b.last + 1] -= b.bytes as i64;
    }
    let (mut live, mut peak) = (0i64, 0i64);
    for d in delta {
        live += d;
        peak = peak.max(live);
    }
    peak as usize
}

fn align(bytes: usize) -> usize {
    bytes.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// Greedy by size, best fit: largest buffers first, each into the smallest gap among the buffers
/// already placed whose lifetimes overlap its own. Returns the arena size.
pub fn assign_offsets(buffers: &mut [Buffer]) -> usize {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].bytes), buffers[i].first, i));
    let mut placed: Vec<usize> = Vec::new();
    let mut arena = 0;
    for i in order {
        let size = align(buffers[i].bytes);
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].first <= buffers[i].last && buffers[i].first <= buffers[j].last)
            .map(|&j| (buffers[j].offset, buffers[j].offset + align(buffers[j].bytes)))
            .collect();
        busy.sort();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0;
        for (start, stop) in busy {
            if start > cursor {
                let gap = start - cursor;
                if gap >= size && best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(stop);
        }
        let offset = best.map(|(_, o)| o).unwrap_or(cursor);
        buffers[i].offset = offset;
        arena = arena.max(offset + size);
        placed.push(i);
    }
    arena
}
