//! tiny.ron's training plan in a precision, as the precision tests on the CPU and on wgpu compile
//! it.

use alexc::ir::{Mode, Precision};
use alexc::plan::Plan;

/// tiny.ron's training plan at `batch`, computing in `precision`.
pub fn tiny(precision: Precision, batch: usize) -> Plan {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/tiny.ron");
    let checked = alexc::front_end(&path, &mut |_, _, _| {}).unwrap();
    let lowering = alexc::Lowering { precision: Some(precision), ..Default::default() };
    alexc::lower_with(&checked, Mode::Train, batch, &lowering, &mut |_, _, _| {})
        .unwrap()
        .into_plan(Mode::Train, "tiny.ron")
}
