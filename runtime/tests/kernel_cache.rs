//! CubeCL's kernel caches are turned on in a known folder before the first CubeCL device, so that
//! a second run on a machine reads compiled kernels and autotune results back (one process per
//! test file: CubeCL's configuration is global and set once).

use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

#[test]
fn the_caches_go_to_the_folder_named_and_are_set_once() {
    let dir = std::env::temp_dir().join(format!("alexrt-kernel-cache-{}", std::process::id()));
    // SAFETY: this test binary has one test, so nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("ALEXRT_KERNEL_CACHE", &dir) };
    assert_eq!(alexrt::kernel_cache::folder(), Some(dir.clone()));
    let line = alexrt::kernel_cache::configure().expect("the first call configures CubeCL");
    assert!(line.contains(&dir.display().to_string()), "{line}");
    assert!(dir.is_dir(), "the folder is made");
    let config = CubeClRuntimeConfig::get();
    assert!(
        matches!(&config.compilation.cache, Some(CacheConfig::File(p)) if *p == dir),
        "{:?}",
        config.compilation.cache
    );
    assert!(
        matches!(&config.autotune.cache, CacheConfig::File(p) if *p == dir),
        "{:?}",
        config.autotune.cache
    );
    assert_eq!(alexrt::kernel_cache::configure(), None, "CubeCL is configured once per process");
    unsafe { std::env::set_var("ALEXRT_KERNEL_CACHE", "off") };
    assert_eq!(alexrt::kernel_cache::folder(), None);
    let _ = std::fs::remove_dir_all(&dir);
}
