//! `alexrt inspect` reads what `alexc compile` writes, and refuses what it did not.

use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn inspects_a_compiled_plan_and_rejects_garbage() {
    let dir = std::env::temp_dir().join(format!("alexrt-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = dir.join("tiny.bin");
    let checked = alexc::front_end(&root().join("graphs/tiny.ron"), &mut |_, _, _| {}).unwrap();
    let lowered = alexc::lower(&checked, alexc::ir::Mode::Train, 32, &mut |_, _, _| {}).unwrap();
    lowered.into_plan(alexc::ir::Mode::Train, "graphs/tiny.ron").write(&plan).unwrap();

    let o = Command::new(env!("CARGO_BIN_EXE_alexrt-under-test")).arg("inspect").arg(&plan).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("Train step of `tiny`"), "{text}");
    assert!(text.contains("104,618 parameters"), "{text}");
    assert!(text.contains("norm1, norm1:1 = fused(image, conv1.weight, conv1.bias) [conv2d"), "{text}");
    let norm1 = text.lines().find(|l| l.contains("conv2d+bias_add+relu+lrn")).unwrap_or_default();
    assert!(norm1.trim_start().starts_with("norm1") && norm1.contains("bias+ReLU+LRN kernel"), "{text}");
    assert!(!text.contains("no fused kernel"), "{text}");

    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"not a plan").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_alexrt-under-test")).arg("inspect").arg(&junk).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an alexc plan file"));
}
