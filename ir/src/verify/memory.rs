//! A memory plan against its scheduled graph: buffers inside the arena and the schedule; every
//! placed value an existing one (of the plan's device), in a buffer that holds its bytes, live
//! from its producer's step to its last reader's; and no two buffers sharing bytes while both are
//! live.

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;

use super::{Stage, Violations};
use crate::ir::Graph;
use crate::memory::MemoryPlan;

pub(super) fn check(graph: &Graph, m: &MemoryPlan, device: Option<u8>, found: &mut Violations) {
    let steps = graph.schedule.len().max(1);
    let which = device.map_or("the memory plan".to_string(), |d| format!("device {d}'s memory plan"));
    if m.batch_size == 0 {
        found.other(which.clone(), "is for batch size 0");
    }
    for (i, b) in m.buffers.iter().enumerate() {
        let end = b.offset.checked_add(b.bytes);
        if end.is_none_or(|end| end > m.arena_bytes) || b.first > b.last || b.last >= steps {
            found.other(
                format!("buffer {i} of {which}"),
                format!(
                    "({} bytes at offset {}, steps {}..={}) lies outside the {}-byte arena or the {steps}-step schedule",
                    b.bytes, b.offset, b.first, b.last, m.arena_bytes
                ),
            );
        }
    }
    let step_of: HashMap<NodeIndex, usize> =
        graph.schedule.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    for p in &m.values {
        let entity = format!("`{}` in {which}", p.name);
        if !super::structure::exists(graph, p.value, Stage::PLANNED) {
            found.other(entity.clone(), "is placed, but is a value that does not exist");
            continue;
        }
        if let Some(d) = device.filter(|&d| graph.g[p.value.node].device != d) {
            found.other(
                entity.clone(),
                format!("is a value of device {}, not of device {d}", graph.g[p.value.node].device),
            );
        }
        if p.first > p.last || p.last >= steps {
            found.other(
                entity.clone(),
                format!("lives over steps {}..={} of a {steps}-step schedule", p.first, p.last),
            );
            continue;
        }
        let Some(b) = m.buffers.get(p.buffer) else {
            found.other(entity.clone(), format!("is put in buffer {}, which does not exist", p.buffer));
            continue;
        };
        if p.bytes > b.bytes || p.offset != b.offset || p.first < b.first || p.last > b.last {
            found.other(
                entity.clone(),
                format!("does not fit its buffer {} (in bytes or in steps)", p.buffer),
            );
        }
        // A view of a parameter (a tower's slice of a weight) lives in the parameter's memory.
        let view = graph.g[p.value.node].op.def().is_view();
        let needed = graph.value_type(p.value).map_or(0, |t| t.bytes(m.batch_size));
        if p.bytes < needed && !(view && p.bytes == 0) {
            found.other(entity.clone(), format!("is given {} bytes but needs {needed}", p.bytes));
        }
        let readers = graph.consumers(p.value).into_iter().chain([p.value.node]);
        for (reader, at) in readers.filter_map(|r| step_of.get(&r).map(|&at| (r, at))) {
            if at < p.first || at > p.last {
                found.other(
                    entity.clone(),
                    format!(
                        "lives over steps {}..={}, but {} uses it at step {at}",
                        p.first,
                        p.last,
                        super::node_name(graph, reader)
                    ),
                );
            }
        }
    }
    overlaps(m, &which, found);
}

/// No two buffers share bytes while both are live: sorted by offset, each buffer is compared with
/// the later ones that start inside it.
fn overlaps(m: &MemoryPlan, which: &str, found: &mut Violations) {
    let mut order: Vec<usize> = (0..m.buffers.len()).collect();
    order.sort_by_key(|&i| (m.buffers[i].offset, i));
    for (k, &i) in order.iter().enumerate() {
        let a = &m.buffers[i];
        let a_end = a.offset.saturating_add(a.bytes);
        for &j in order[k + 1..].iter().take_while(|&&j| m.buffers[j].offset < a_end) {
            let b = &m.buffers[j];
            if b.bytes > 0 && a.bytes > 0 && a.first <= b.last && b.first <= a.last {
                found.other(
                    format!("buffers {i} and {j} of {which}"),
                    format!(
                        "share bytes {}..{} while both are live (steps {}..={} and {}..={})",
                        b.offset,
                        a_end.min(b.offset.saturating_add(b.bytes)),
                        a.first,
                        a.last,
                        b.first,
                        b.last
                    ),
                );
            }
        }
    }
}
