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
