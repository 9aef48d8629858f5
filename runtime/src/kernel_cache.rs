//! CubeCL's caches of compiled kernels and autotune results, kept across runs. Without them each
//! process on a CubeCL device compiles every kernel it launches (burn's matrix and convolution
//! kernels with their autotune candidates among them) before its first step: on an H200 that was
//! 180 NVRTC compilations in 190 s, about 1 s each, before alexnet.ron's first training step
//! (`benches/results/gpu-2026-12-04-h200.md`). With them, only the first run on a machine pays.
//!
//! The folder is `$ALEXRT_KERNEL_CACHE`, else the user's cache folder (`~/.cache/alexrt/cubecl`);
//! `ALEXRT_KERNEL_CACHE=off` leaves CubeCL's own settings. A `cubecl.toml` (or `burn.toml`'s
//! `[cubecl]`) and CubeCL's environment variables are read first, as CubeCL reads them; a
//! compilation cache they set is kept.

use std::path::PathBuf;
use std::sync::Arc;

use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// Where the caches go, or `None` when turned off (`ALEXRT_KERNEL_CACHE=off`) or no folder is
/// known.
pub fn folder() -> Option<PathBuf> {
    match std::env::var_os("ALEXRT_KERNEL_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => user_cache().map(|c| c.join("cubecl")),
    }
}

/// alexrt's folder in the user's cache folder: `$XDG_CACHE_HOME/alexrt`, else `~/.cache/alexrt`
/// (the kernel caches here, and the indexes of shards whose own folder cannot take them).
pub fn user_cache() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("alexrt"))
}

/// Sets CubeCL's configuration with the caches in [`folder`], before the first CubeCL device is
/// made; a line for the run's first lines saying where they are. `None` when CubeCL is already
/// configured (a second device in one process) or the caches are off.
pub fn configure() -> Option<String> {
    let dir = folder()?;
    let mut state = CubeClRuntimeConfig::storage().lock();
    if state.is_some() {
        return None;
    }
    if std::fs::create_dir_all(&dir).is_err() {
        return Some(format!(
            "kernel cache: cannot create {}; kernels are compiled anew each run (set ALEXRT_KERNEL_CACHE to a writable folder)",
            dir.display()
        ));
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if config.compilation.cache.is_none() {
        config.compilation.cache = Some(CacheConfig::File(dir.clone()));
    }
    if matches!(config.autotune.cache, CacheConfig::Target) {
        config.autotune.cache = CacheConfig::File(dir.clone());
    }
    *state = Some(Arc::new(config));
    Some(format!(
        "kernel cache: {} (the first run on a device compiles its kernels, minutes on CUDA; later runs read them back)",
        dir.display()
    ))
}
