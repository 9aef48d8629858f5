//! alexir: what the compiler (`alexc`) and the runtime (`alexrt`) share, and nothing else.
//!
//! - [`ir`]: the one IR of the pipeline, a petgraph graph of ops and values, with its text form;
//! - [`catalog`]: the op catalog, the one place that knows an op (arity, attributes, shape and
//!   gradient rules, fusion class, cost);
//! - [`plan`]: the plan file (`plan.bin`) that the compiler writes and the runtime reads, and
//!   [`memory`], the memory plan it carries;
//! - [`verify`]: the IR's invariants, checked after every pass and on every plan read;
//! - [`diag`]: located diagnostics; [`units`]: numbers as people read them.
//!
//! The front end (the graph-file parser and its AST) and the passes live in `alexc`: the runtime
//! depends on this crate alone, so Cargo keeps it from reaching them.

pub mod catalog;
pub mod diag;
pub mod ir;
pub mod memory;
pub mod plan;
pub mod spec;
pub mod units;
pub mod value;
pub mod verify;

/// Writes `text` to standard output; a closed pipe (`| head`) ends the process quietly.
pub fn say(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write to stdout: {e}");
        std::process::exit(1);
    }
}
