//! A step as a Chrome trace (the JSON trace-event format that Perfetto and chrome://tracing
//! open): one slice per node of the schedule (its name, op, kernel, and the bytes it reads and
//! writes at the plan's batch), a track per device, and the gradient buckets of a data-parallel
//! plan on a track of their own, from their start until their sum was seen complete.

use std::path::Path;
use std::time::Instant;

use alexir::catalog::Op;
use alexir::ir::{Graph, HOST};
use serde_json::{json, Value as Json};

use crate::error::RunError;
use crate::exec::Timeline;
use crate::select::select;

/// The track (trace-event `tid`) of the buckets in flight; devices are 0, 1, ... and the host 255.
pub const BUCKET_TRACK: u64 = 1000;

/// How node `op` runs: a fused node's kernels, a convolution's algorithm, else the op.
fn kernel(op: &Op) -> String {
    match op {
        Op::Fused(f) => match select(f) {
            Some(k) => format!("{}: {}", f.pattern(), k.describe()),
            None => format!("{}: step by step", f.pattern()),
        },
        other => format!("{} {}", other.def().name(), other.def().attrs()).trim_end().to_string(),
    }
}

fn micros(t: Instant, origin: Instant) -> f64 {
    t.saturating_duration_since(origin).as_secs_f64() * 1e6
}

/// The trace of one step of `graph` at `batch`, as its `timeline` recorded it, for process `rank`.
pub fn chrome_trace(graph: &Graph, batch: usize, timeline: &Timeline, rank: usize) -> Json {
    let origin = timeline
        .nodes
        .iter()
        .map(|n| n.1)
        .chain(timeline.buckets.iter().map(|b| b.2))
        .min()
        .unwrap_or_else(Instant::now);
    let bytes = |vs: Vec<alexir::ir::ValueRef>| -> usize {
        vs.iter().filter_map(|v| graph.value_type(*v)).map(|t| t.bytes(batch)).sum()
    };
    let mut events = vec![
        json!({"ph": "M", "pid": rank, "name": "process_name", "args": {"name": format!("alexrt rank {rank}: {}", graph.name)}}),
    ];
    let mut tracks = std::collections::BTreeSet::new();
    for &(n, start, end) in &timeline.nodes {
        let node = &graph.g[n];
        let track = u64::from(node.device);
        tracks.insert(track);
        let outputs =
            (0..node.outputs.len()).map(|p| alexir::ir::ValueRef { node: n, port: p as u8 }).collect();
        events.push(json!({
            "ph": "X", "pid": rank, "tid": track, "name": node.name,
            "cat": format!("{:?}", node.phase).to_lowercase(),
            "ts": micros(start, origin), "dur": micros(end, start.min(end)).max(0.0),
            "args": {
                "op": node.op.def().name(), "kernel": kernel(&node.op),
                "bytes_in": bytes(graph.inputs(n)), "bytes_out": bytes(outputs),
            },
        }));
    }
    for &(n, bucket, start, end) in &timeline.buckets {
        let node = &graph.g[n];
        events.push(json!({
            "ph": "X", "pid": rank, "tid": BUCKET_TRACK, "name": format!("bucket {bucket}"), "cat": "all-reduce",
            "ts": micros(start, origin), "dur": micros(end, start.min(end)),
            "args": {"node": node.name, "gradients": graph.inputs(n).len(), "bytes": bytes(graph.inputs(n))},
        }));
    }
    if !timeline.buckets.is_empty() {
        tracks.insert(BUCKET_TRACK);
    }
    for t in tracks {
        let name = match t {
            BUCKET_TRACK => "gradient buckets in flight (all-reduce)".to_string(),
            t if t == u64::from(HOST) => "host".to_string(),
            t => format!("device d{t}"),
        };
        events.push(json!({"ph": "M", "pid": rank, "tid": t, "name": "thread_name", "args": {"name": name}}));
    }
    json!({"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"graph": graph.name, "batch": batch}})
}

/// Writes `trace` to `path` atomically.
pub fn write(path: &Path, trace: &Json) -> Result<(), RunError> {
    let text = serde_json::to_string(trace)
        .map_err(|e| RunError::Internal(format!("the trace does not serialise: {e}")))?;
    alexir::plan::write_atomically(path, text.as_bytes())
        .map_err(|source| RunError::Io { path: path.display().to_string(), source })
}
