//! Whether the wgpu tests can run: a Vulkan driver (Mesa's lavapipe without a GPU:
//! `apt-get install mesa-vulkan-drivers`, which .ci/run does). Without one the tests say so and
//! skip, except under CI, where a missing device is a failure rather than a silent pass.

use burn::backend::wgpu::WgpuDevice;

/// Whether a Vulkan device can be had; under CI its absence fails the test.
pub fn vulkan() -> bool {
    let lavapipe =
        ["/usr/share/vulkan/icd.d/lvp_icd.x86_64.json", "/usr/share/vulkan/icd.d/lvp_icd.aarch64.json"];
    let found = lavapipe.iter().any(|p| std::path::Path::new(p).exists());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "CI must install mesa-vulkan-drivers for the kernel tests");
        eprintln!(
            "SKIPPED: no Vulkan driver (apt-get install mesa-vulkan-drivers to run the wgpu kernel tests)"
        );
    }
    found
}

/// The wgpu device the tests run on.
pub fn device() -> WgpuDevice {
    WgpuDevice::Cpu
}

/// Trains `plan` (tiny.ron's, batch 32) with `alexrt train --device wgpu` for 3 epochs of 16 steps
/// on synthetic images, in a scratch folder named after `name`: the run's stderr and its epochs'
/// records (metrics.jsonl), after checking the run succeeded on wgpu.
pub fn train_on_wgpu(plan: &alexc::plan::Plan, name: &str) -> (String, Vec<serde_json::Value>) {
    let dir = std::env::temp_dir().join(format!("alexrt-wgpu-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.bin");
    plan.write(&path).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_alexrt-under-test"))
        .arg("train")
        .arg(&path)
        .args(["--device", "wgpu", "--epochs", "3", "--steps-per-epoch", "16"])
        .args(["--train-images", "512", "--val-images", "128", "--out"])
        .arg(dir.join("run"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("device: wgpu"), "{err}");
    let metrics = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let epochs: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(epochs.len(), 3, "{metrics}");
    let _ = std::fs::remove_dir_all(&dir);
    (err, epochs)
}

/// The run learns: validation loss falls every epoch and the last top-1 is over 0.25 (chance 0.10).
pub fn assert_learns(epochs: &[serde_json::Value]) {
    let val_loss: Vec<f64> = epochs.iter().map(|e| e["val"]["loss"].as_f64().unwrap()).collect();
    assert!(val_loss.windows(2).all(|w| w[1] < w[0]), "validation loss does not fall: {val_loss:?}");
    let top1 = epochs.last().unwrap()["val"]["top1"].as_f64().unwrap();
    assert!(top1 > 0.25, "validation top-1 {top1} after 48 steps (chance 0.10)");
}
