//! `alexrt check-nvrtc` refuses what it cannot do in one sentence and exit status 2: without the
//! `cuda` feature it says how to build it; with it, an unknown architecture is refused with the
//! known ones. NVRTC itself runs in `.ci/run` (docs/gpu-kernels-nvrtc.md).

use std::process::Command;

#[test]
fn check_nvrtc_refuses_what_it_cannot_do_with_the_fix_and_status_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_alexrt"))
        .args(["check-nvrtc", "--arch", "sm_52"])
        .output()
        .expect("alexrt runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let want = if cfg!(feature = "cuda") { "the check knows sm_80" } else { "--features cuda" };
    assert!(err.contains(want), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
