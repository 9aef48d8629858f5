//! The memory plan of a step: where each transient value lives in one arena and for which steps
//! of the schedule, and what is persistent. The compiler's `memory` pass writes it
//! (`alexc::passes::plan_memory`); the plan file carries it; the runtime allocates by it.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::value::ValueRef;

/// Where one transient value lives: its bytes, its live interval in schedule steps (inclusive), and
/// its offset in the arena. Values that share a buffer (views, in-place) share `buffer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub value: ValueRef,
    pub name: String,
    pub bytes: usize,
    pub first: usize,
    pub last: usize,
    pub buffer: usize,
    pub offset: usize,
}

/// One buffer of the arena, holding one or more values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buffer {
    pub bytes: usize,
    pub first: usize,
    pub last: usize,
    pub offset: usize,
}

/// The memory plan of one step at one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryPlan {
    pub batch_size: usize,
    pub values: Vec<Placement>,
    pub buffers: Vec<Buffer>,
    /// Every transient value in a buffer of its own.
    pub naive_bytes: usize,
    /// The largest sum of bytes live at one step: no placement can do better.
    pub lower_bound_bytes: usize,
    pub arena_bytes: usize,
    /// Parameters and optimizer state, placed on their own.
    pub persistent_bytes: usize,
    pub persistent: Vec<(String, usize)>,
}

impl MemoryPlan {
    /// Bytes a device needs for this step: the arena and the persistent values.
    pub fn total_bytes(&self) -> usize {
        self.arena_bytes + self.persistent_bytes
    }
}

/// The per-value memory table of `--dump-after memory` and `alexc inspect`.
pub fn memory_table(m: &MemoryPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "memory @ batch {}", m.batch_size);
    let _ = writeln!(
        out,
        "  {:<36} {:>12} {:>11} {:>6} {:>12}",
        "value", "bytes", "interval", "buffer", "offset"
    );
    for p in &m.values {
        let _ = writeln!(
            out,
            "  {:<36} {:>12} {:>11} {:>6} {:>12}",
            p.name,
            p.bytes,
            format!("[{}, {}]", p.first, p.last),
            p.buffer,
            p.offset
        );
    }
    let _ = writeln!(out, "  persistent:");
    for (name, bytes) in &m.persistent {
        let _ = writeln!(out, "  {:<36} {:>12}", name, bytes);
    }
    let _ = writeln!(
        out,
        "  naive {} B, lower bound {} B, arena {} B, persistent {} B",
        m.naive_bytes, m.lower_bound_bytes, m.arena_bytes, m.persistent_bytes
    );
    out
}
